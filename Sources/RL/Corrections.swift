// The rollout corrections current frameworks put beside the algorithm's own weight: rejection
// of tokens or responses whose mismatch is too large (verl `rollout_rs`, IcePop, the
// geometric sequence mask), the veto of a response holding one very unlikely token (slime),
// and batch normalisation of the importance weights (verl `rollout_is_batch_normalize`).
//
// With ℓ_t = log ρ_t = old_t − mu_t (the log mismatch ratio π_old/μ of token t):
//
//   k1 (ratio bounds)   keep when low ≤ ρ ≤ high, ρ being
//        token_k1        ρ_t                          (IcePop: [0.5, 2])
//        seq_sum_k1      exp(Σ_t ℓ_t)                 (the sequence ratio)
//        seq_mean_k1     exp(mean_t ℓ_t)              (the geometric mask: SkyRL [0.99, 1.01])
//   k2 = ½ ℓ_t²,  k3 = ρ_t − 1 − ℓ_t  (≥ 0; k3 averages to KL[μ‖π_old] over μ's samples)
//        token_k2/k3     keep the token when its k ≤ high
//        seq_sum_k2/k3   keep the response when Σ_t k ≤ high
//        seq_mean_k2/k3  … when mean_t k ≤ high
//        seq_max_k2/k3   … when max_t k ≤ high
//   veto V              drop a response holding any token with ρ_t < V (off when V = 0)
//
// A rejected token (every token of a rejected response) contributes neither loss nor
// gradient, and is left out of the aggregation's counts (verl removes it from the response
// mask): token-mean divides by the kept tokens, sequence means count the responses with a
// kept token and their kept tokens.

import Numerics

/// How responses' tokens are rejected before the loss (verl's `rollout_rs` options).
public enum RejectionMode: String, CaseIterable, Sendable, Codable, Hashable {
    case none
    case tokenK1 = "token_k1", tokenK2 = "token_k2", tokenK3 = "token_k3"
    case seqSumK1 = "seq_sum_k1", seqSumK2 = "seq_sum_k2", seqSumK3 = "seq_sum_k3"
    case seqMeanK1 = "seq_mean_k1", seqMeanK2 = "seq_mean_k2", seqMeanK3 = "seq_mean_k3"
    case seqMaxK2 = "seq_max_k2", seqMaxK3 = "seq_max_k3"

    /// Other names: `icepop` (token_k1), `geo` (seq_mean_k1).
    public static let aliases = ["icepop": "token_k1", "geo": "seq_mean_k1", "off": "none"]

    /// Whether the mode bounds a ratio from both sides (k1) rather than a score from above.
    public var usesRatioBounds: Bool { [.tokenK1, .seqSumK1, .seqMeanK1].contains(self) }
}

/// The corrections beside the algorithm's own importance weight. The default is none of
/// them; then the loss is exactly the algorithm's.
public struct CorrectionSettings: Sendable, Hashable, Codable {
    public var rejection: RejectionMode = .none
    /// Ratio bounds of the k1 modes; `high` is also the upper bound of k2/k3 scores.
    public var low: Double = 0.5
    public var high: Double = 2
    /// Veto floor V of ρ_t (0: off; slime uses 1e-4).
    public var veto: Double = 0
    /// Divide the algorithm's importance weights by their mean over the kept tokens (token
    /// weights) or kept responses (sequence weights) of the minibatch.
    public var batchNormalize = false

    public init() {}

    public func validate() throws(NumericsError) {
        func need(_ ok: Bool, _ message: String) throws(NumericsError) { if !ok { throw .invalidArgument(message) } }
        try need(low.isFinite && high.isFinite && high > 0, "rs_high must be positive (got \(high))")
        if rejection.usesRatioBounds {
            try need(low > 0 && low <= high, "rs_low must be in (0, rs_high] for \(rejection.rawValue) (got \(low), rs_high \(high))")
        }
        try need(veto.isFinite && veto >= 0 && veto < 1, "veto must be 0 (off) or in (0, 1) (got \(veto))")
    }
}

/// Which tokens of each response the corrections keep, and how many they rejected.
struct Rejection: Equatable {
    /// keep[i][t]: token t of response i enters the loss.
    var keep: [[Bool]]
    /// Tokens rejected; responses with a rejected token; responses vetoed.
    var rejectedTokens = 0, rejectedResponses = 0, vetoedResponses = 0

    init(_ responses: [ResponseLogProbs], _ c: CorrectionSettings) {
        keep = responses.map { [Bool](repeating: true, count: $0.count) }
        for (i, r) in responses.enumerated() where r.count > 0 {
            let logRho = (0..<r.count).map { r.logOld[$0] - r.logMu[$0] }
            if c.veto > 0, logRho.contains(where: { $0 < logD(c.veto) }) {
                keep[i] = [Bool](repeating: false, count: r.count)
                vetoedResponses += 1
            } else {
                keep[i] = Rejection.kept(logRho, c)
            }
            let rejected = keep[i].filter { !$0 }.count
            rejectedTokens += rejected
            if rejected > 0 { rejectedResponses += 1 }
        }
    }

    /// The tokens `mode` keeps of one response.
    static func kept(_ logRho: [Double], _ c: CorrectionSettings) -> [Bool] {
        let n = logRho.count
        let lower = c.rejection.usesRatioBounds ? logD(c.low) : -Double.infinity, upper = c.rejection.usesRatioBounds ? logD(c.high) : c.high
        func k2(_ l: Double) -> Double { 0.5 * l * l }
        func k3(_ l: Double) -> Double { expD(min(l, logRatioClamp)) - 1 - l }
        func inBounds(_ x: Double) -> Bool { x >= lower && x <= upper }
        func all(_ keep: Bool) -> [Bool] { [Bool](repeating: keep, count: n) }
        switch c.rejection {
        case .none: return all(true)
        case .tokenK1: return logRho.map(inBounds)
        case .tokenK2: return logRho.map { inBounds(k2($0)) }
        case .tokenK3: return logRho.map { inBounds(k3($0)) }
        case .seqSumK1: return all(inBounds(logRho.reduce(0, +)))
        case .seqSumK2: return all(inBounds(logRho.map(k2).reduce(0, +)))
        case .seqSumK3: return all(inBounds(logRho.map(k3).reduce(0, +)))
        case .seqMeanK1: return all(inBounds(logRho.reduce(0, +) / Double(n)))
        case .seqMeanK2: return all(inBounds(logRho.map(k2).reduce(0, +) / Double(n)))
        case .seqMeanK3: return all(inBounds(logRho.map(k3).reduce(0, +) / Double(n)))
        case .seqMaxK2: return all(inBounds(logRho.map(k2).max()!))
        case .seqMaxK3: return all(inBounds(logRho.map(k3).max()!))
        }
    }
}

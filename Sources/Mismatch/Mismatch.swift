// The mismatch statistics (README, "Mismatch statistics"): pure functions of two engines' log-probabilities.
//
// Input: one rollout and its recomputation. For every sequence, each sampled response
// token t has log μ_t (rollout engine) and log π_t (training engine), optionally the full
// next-token distributions of both engines at that position, and its position in the
// response. Output: `MismatchStats` over all tokens (and per position, and per sequence).
//
// Notation: d_t = log μ_t − log π_t; the log-ratio is ℓ_t = −d_t = log(π_t/μ_t); r_t = e^ℓ_t.
//
// Determinism. The printed figures must be the same bits on every machine, so exponentials
// and logarithms come from Numerics' `expD`/`logD` (never the C library), every sum over
// tokens or sequences is an `ExactSum` (the exact sum rounded once, so the order of the
// sequences does not matter either: shuffling them gives the same bits), and sums over a
// vocabulary row run in token-id order. Everything is accumulated in Double.
//
// Edge cases (all defined, none traps):
// - No tokens at all → `MismatchError.noTokens`. Sequences with no tokens are ignored (they
//   count neither as tokens nor as sequences).
// - A token with probability 0 under one engine (log p = −inf): d_t = ±inf, so k1/k2/k3,
//   mean/max |Δlog p| and the perplexity of that engine are infinite (JSON `null`; k1 is NaN
//   if both +inf and −inf occur). Probability-space figures stay finite. Ratios are taken
//   from log-ratios clamped to ±20 (verl's SAFETY_BOUND), so χ², importance weights and ESS
//   stay finite: such a token has weight e^±20.
// - A token with probability 0 under both engines: d_t = 0 (the engines agree).
// - A sequence holding both a +inf and a −inf log-ratio has an undefined (NaN) sequence
//   log-ratio; the sequence-level figures are then NaN (JSON `null`). The slope uses the
//   unclamped sequence log-ratios, so one infinite log-ratio makes it non-finite.
// - NaN or +inf log-probabilities are not valid input; they propagate as NaN.
// - Full distributions are renormalised in Double (log-softmax of the given row) before KL and
//   total variation, so the small normalisation error of a low-precision softmax does not
//   count as mismatch; a row without any finite entry gives NaN. Argmax is taken on the row
//   as given, ties to the lowest token id.

import JSON
import Numerics

// MARK: Input

/// Both engines' full next-token distributions for the tokens of one sequence.
public struct FullDistributions: Sendable, Equatable, Codable {
    /// V, the number of entries per row.
    public var vocabularySize: Int
    /// Rollout engine log-probabilities, (T, V) row-major: row t is the distribution that
    /// token t was sampled from.
    public var rollout: [Float]
    /// Training engine log-probabilities, (T, V) row-major.
    public var train: [Float]

    public init(vocabularySize: Int, rollout: [Float], train: [Float]) {
        self.vocabularySize = vocabularySize
        self.rollout = rollout
        self.train = train
    }
}

/// One sequence of a rollout: both engines' log-probabilities of its sampled response tokens.
public struct TokenLogProbs: Sendable, Equatable, Codable {
    /// log μ_t, one per response token.
    public var rollout: [Float]
    /// log π_t, one per response token (same count).
    public var train: [Float]
    /// Position of each token in the response (0 = first response token); nil means 0, 1, 2, …
    public var positions: [Int]?
    /// The full next-token distributions at each token, if recorded.
    public var full: FullDistributions?

    public init(rollout: [Float], train: [Float], positions: [Int]? = nil, full: FullDistributions? = nil) {
        self.rollout = rollout
        self.train = train
        self.positions = positions
        self.full = full
    }

    /// Number of response tokens.
    public var count: Int { rollout.count }
}

/// Caps for the importance-weight statistics.
public struct MismatchOptions: Sendable, Equatable, Codable {
    /// C for token weights: the fraction of weights outside [1/C, C] is reported, and the
    /// clamped ESS clamps to that interval. verl's default `rollout_is_threshold` is 2.
    public var tokenCap: Double
    /// The same for sequence weights ρ (2–10 in the literature; default 2 as verl's).
    public var sequenceCap: Double

    /// Log-ratios are clamped to ±20 before exponentiating (verl's SAFETY_BOUND).
    public static let logRatioBound = 20.0

    public init(tokenCap: Double = 2, sequenceCap: Double = 2) {
        self.tokenCap = tokenCap
        self.sequenceCap = sequenceCap
    }
}

public enum MismatchError: Error, Equatable, CustomStringConvertible {
    /// No sequence has a response token.
    case noTokens
    /// `rollout` and `train` differ in length.
    case lengthMismatch(sequence: Int, rollout: Int, train: Int)
    /// `positions` has another length than the tokens, or a negative entry.
    case badPositions(sequence: Int)
    /// Full distributions whose sizes are not tokens × vocabularySize, or V < 1.
    case badFullDistributions(sequence: Int)
    /// A cap that is not a finite number ≥ 1.
    case badCap(Double)

    public var description: String {
        switch self {
        case .noTokens: return "no response tokens to compare"
        case let .lengthMismatch(s, r, t):
            return "sequence \(s): \(r) rollout log-probabilities but \(t) training ones"
        case let .badPositions(s): return "sequence \(s): positions must be one non-negative index per token"
        case let .badFullDistributions(s):
            return "sequence \(s): full distributions must hold tokens × vocabulary entries for each engine"
        case let .badCap(c): return "importance-weight cap \(c) must be a finite number ≥ 1"
        }
    }
}

// MARK: Output

/// Mismatch statistics over a set of tokens (all tokens of a rollout, or those at one position).
///
/// Means are over tokens unless the name says sequences. Fields marked "sequence level" are
/// nil in per-position statistics; fields from full distributions are nil without them.
public struct MismatchStats: Sendable, Equatable, Codable {
    /// Number of response tokens.
    public var tokens: Int
    /// Number of sequences (with at least one token here).
    public var sequences: Int
    /// mean(d) — the k1 estimate of KL[μ‖π] (verl `rollout_corr/kl`; can be negative).
    public var k1: Double
    /// mean(d²)/2.
    public var k2: Double
    /// mean(e^(−d) − 1 + d) (verl `k3_kl`), computed without cancellation for small d.
    public var k3: Double
    /// mean |π − μ| of the sampled tokens, in probability.
    public var meanAbsDp: Double
    /// max |π − μ|.
    public var maxAbsDp: Double
    /// max (π − μ), signed.
    public var maxDp: Double
    /// min (π − μ), signed.
    public var minDp: Double
    /// mean |log π − log μ|.
    public var meanAbsDlogp: Double
    /// max |log π − log μ|.
    public var maxAbsDlogp: Double
    /// mean(r²) − 1 with each token log-ratio clamped to ±20 (verl `chi2_token`).
    public var chi2Token: Double
    /// Sequence level: mean over sequences of (Π r_t)² − 1, summed log-ratio clamped to ±20
    /// (verl `chi2_seq`).
    public var chi2Seq: Double?
    /// exp(−mean log μ) over all tokens pooled (corpus perplexity).
    public var pplRollout: Double
    /// exp(−mean log π) over all tokens pooled.
    public var pplTrain: Double
    /// log pplTrain − log pplRollout = mean(log μ) − mean(log π): with pooled tokens this
    /// equals k1 (it is computed as mean(d)).
    public var logPplDiff: Double
    /// Sequence level, verl's convention: mean over sequences of exp(−mean_t log μ)
    /// (verl `rollout_ppl`).
    public var pplRolloutSeq: Double?
    /// Sequence level: mean over sequences of exp(−mean_t log π) (verl `training_ppl`).
    public var pplTrainSeq: Double?
    /// Sequence level: mean over sequences of (mean_t log μ − mean_t log π) (verl `log_ppl_diff`).
    public var logPplDiffSeq: Double?
    /// Number of tokens that carry full distributions.
    public var fullTokens: Int
    /// mean over positions of KL[μ‖π] = Σ_v μ_v (log μ_v − log π_v), exact over the vocabulary.
    public var klFullMean: Double?
    /// max over positions of that KL.
    public var klFullMax: Double?
    /// mean over positions of the total variation ½ Σ_v |μ_v − π_v|.
    public var tvFullMean: Double?
    /// max over positions of the total variation.
    public var tvFullMax: Double?
    /// Fraction of positions where the engines' most likely tokens differ (ties → lowest id).
    public var argmaxDisagree: Double?
    /// Token weight cap C.
    public var isTokenCap: Double
    /// mean w, w = π/μ per token (log clamped to ±20).
    public var isTokenMean: Double
    public var isTokenMax: Double
    public var isTokenMin: Double
    /// Effective sample size of the token weights, 1/mean(w̃²) with w̃ = w/mean(w), i.e.
    /// mean(w)²/mean(w²): 1 when all weights are equal, → 1/n when one dominates.
    public var ess: Double
    /// The same on weights clamped to [1/C, C] first: verl's `rollout_is_eff_sample_size`
    /// (without its +1e-8 in the denominator).
    public var essTokenClamped: Double
    /// Fraction of token weights outside [1/C, C].
    public var isTokenFracOutside: Double
    /// Sequence level: the sequence weight cap.
    public var isSeqCap: Double?
    /// Sequence level: mean of ρ = Π_t π_t/μ_t (summed log-ratio clamped to ±20), one weight
    /// per sequence.
    public var isSeqMean: Double?
    public var isSeqMax: Double?
    public var isSeqMin: Double?
    /// Sequence level: mean(ρ)²/mean(ρ²).
    public var essSeq: Double?
    /// Sequence level: the same with ρ clamped to [1/C, C].
    public var essSeqClamped: Double?
    /// Sequence level: fraction of sequences with ρ outside [1/C, C].
    public var isSeqFracOutside: Double?
    /// Sequence level: mean over sequences of Σ_t d_t, the sequence-level KL[μ‖π] estimate
    /// (Qi et al.'s 7.64 BF16 vs 0.32 FP16).
    public var seqK1: Double?
    /// Sequence level: mean over sequences (with full distributions) of Σ_t KL_t.
    public var seqKlFull: Double?
    /// Sequence level: least-squares slope of Σ_t log(π_t/μ_t) (unclamped) against the
    /// number of response tokens; nil with fewer than two distinct lengths.
    public var seqLogratioSlope: Double?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case tokens, sequences, k1, k2, k3
        case meanAbsDp = "mean_abs_dp", maxAbsDp = "max_abs_dp"
        case meanAbsDlogp = "mean_abs_dlogp", maxAbsDlogp = "max_abs_dlogp"
        case chi2Token = "chi2_token", chi2Seq = "chi2_seq"
        case pplRollout = "ppl_rollout", pplTrain = "ppl_train"
        case klFullMean = "kl_full_mean", klFullMax = "kl_full_max"
        case argmaxDisagree = "argmax_disagree", ess
        case seqLogratioSlope = "seq_logratio_slope"
        case maxDp = "max_dp", minDp = "min_dp"
        case logPplDiff = "log_ppl_diff"
        case pplRolloutSeq = "ppl_rollout_seq", pplTrainSeq = "ppl_train_seq"
        case logPplDiffSeq = "log_ppl_diff_seq"
        case fullTokens = "full_tokens"
        case tvFullMean = "tv_full_mean", tvFullMax = "tv_full_max"
        case isTokenCap = "is_token_cap", isTokenMean = "is_token_mean"
        case isTokenMax = "is_token_max", isTokenMin = "is_token_min"
        case essTokenClamped = "ess_token_clamped", isTokenFracOutside = "is_token_frac_outside"
        case isSeqCap = "is_seq_cap", isSeqMean = "is_seq_mean", isSeqMax = "is_seq_max"
        case isSeqMin = "is_seq_min", essSeq = "ess_seq", essSeqClamped = "ess_seq_clamped"
        case isSeqFracOutside = "is_seq_frac_outside"
        case seqK1 = "seq_k1", seqKlFull = "seq_kl_full"
    }

    /// The keys `mismatch --json` must carry (README, "Mismatch statistics"), in order.
    public static let requiredJSONKeys = [
        "tokens", "sequences", "k1", "k2", "k3", "mean_abs_dp", "max_abs_dp", "mean_abs_dlogp",
        "max_abs_dlogp", "chi2_token", "chi2_seq", "ppl_rollout", "ppl_train", "kl_full_mean",
        "kl_full_max", "argmax_disagree", "ess", "seq_logratio_slope",
    ]

    /// All JSON keys, in the order `json` writes them: the required ones, then the others.
    public static let jsonKeys: [String] = CodingKeys.allCases.map(\.rawValue)
}

extension MismatchStats: JSONRepresentable {
    /// Every key of `jsonKeys` in that order; absent or non-finite values are `null`.
    public var jsonObject: JSONObject {
        var o = JSONObject()
        for key in CodingKeys.allCases { o[key.rawValue] = jsonValue(key) }
        return o
    }

    public var json: JSONValue { .object(jsonObject) }

    private func jsonValue(_ key: CodingKeys) -> JSONValue {
        switch key {
        case .tokens: return .int(tokens)
        case .sequences: return .int(sequences)
        case .k1: return .number(k1)
        case .k2: return .number(k2)
        case .k3: return .number(k3)
        case .meanAbsDp: return .number(meanAbsDp)
        case .maxAbsDp: return .number(maxAbsDp)
        case .meanAbsDlogp: return .number(meanAbsDlogp)
        case .maxAbsDlogp: return .number(maxAbsDlogp)
        case .chi2Token: return .number(chi2Token)
        case .chi2Seq: return .number(chi2Seq)
        case .pplRollout: return .number(pplRollout)
        case .pplTrain: return .number(pplTrain)
        case .klFullMean: return .number(klFullMean)
        case .klFullMax: return .number(klFullMax)
        case .argmaxDisagree: return .number(argmaxDisagree)
        case .ess: return .number(ess)
        case .seqLogratioSlope: return .number(seqLogratioSlope)
        case .maxDp: return .number(maxDp)
        case .minDp: return .number(minDp)
        case .logPplDiff: return .number(logPplDiff)
        case .pplRolloutSeq: return .number(pplRolloutSeq)
        case .pplTrainSeq: return .number(pplTrainSeq)
        case .logPplDiffSeq: return .number(logPplDiffSeq)
        case .fullTokens: return .int(fullTokens)
        case .tvFullMean: return .number(tvFullMean)
        case .tvFullMax: return .number(tvFullMax)
        case .isTokenCap: return .number(isTokenCap)
        case .isTokenMean: return .number(isTokenMean)
        case .isTokenMax: return .number(isTokenMax)
        case .isTokenMin: return .number(isTokenMin)
        case .essTokenClamped: return .number(essTokenClamped)
        case .isTokenFracOutside: return .number(isTokenFracOutside)
        case .isSeqCap: return .number(isSeqCap)
        case .isSeqMean: return .number(isSeqMean)
        case .isSeqMax: return .number(isSeqMax)
        case .isSeqMin: return .number(isSeqMin)
        case .essSeq: return .number(essSeq)
        case .essSeqClamped: return .number(essSeqClamped)
        case .isSeqFracOutside: return .number(isSeqFracOutside)
        case .seqK1: return .number(seqK1)
        case .seqKlFull: return .number(seqKlFull)
        }
    }
}

/// Statistics over the tokens at one position of the response.
public struct PositionMismatchStats: Sendable, Equatable, Codable, JSONRepresentable {
    public var position: Int
    public var stats: MismatchStats

    public init(position: Int, stats: MismatchStats) {
        self.position = position
        self.stats = stats
    }

    /// `{"position": p, …the keys of MismatchStats…}`.
    public var json: JSONValue {
        var o: JSONObject = ["position": .int(position)]
        o.merge(stats.jsonObject)
        return .object(o)
    }
}

/// Figures of one sequence.
public struct SequenceMismatch: Sendable, Equatable, Codable, JSONRepresentable {
    /// Index of the sequence in the input.
    public var index: Int
    /// Number of response tokens.
    public var length: Int
    /// Σ_t log(π_t/μ_t), unclamped.
    public var logRatio: Double
    /// ρ = e^(log-ratio clamped to ±20).
    public var weight: Double
    /// max_t |log π_t − log μ_t|.
    public var maxAbsDlogp: Double
    /// Σ_t KL[μ_t‖π_t] over the full distributions, if recorded.
    public var klFullSum: Double?

    enum CodingKeys: String, CodingKey {
        case index, length, logRatio = "log_ratio", weight
        case maxAbsDlogp = "max_abs_dlogp", klFullSum = "kl_full_sum"
    }

    public var json: JSONValue {
        [
            "index": .int(index), "length": .int(length), "log_ratio": .number(logRatio),
            "weight": .number(weight), "max_abs_dlogp": .number(maxAbsDlogp),
            "kl_full_sum": .number(klFullSum),
        ]
    }
}

/// Overall, per-position and per-sequence statistics of one rollout.
public struct MismatchReport: Sendable, Equatable, Codable {
    public var overall: MismatchStats
    /// Ascending by position; only positions that hold tokens.
    public var byPosition: [PositionMismatchStats]
    /// One entry per input sequence with at least one token, in input order.
    public var bySequence: [SequenceMismatch]

    enum CodingKeys: String, CodingKey {
        case overall, byPosition = "by_position", bySequence = "by_sequence"
    }
}

// MARK: Entry points

/// Statistics over all response tokens of all sequences.
public func mismatchStats(_ sequences: [TokenLogProbs], options: MismatchOptions = .init()) throws -> MismatchStats {
    let p = try Prepared(sequences, options: options)
    return p.overall()
}

/// Statistics per position in the response (token-level figures only), ascending.
public func mismatchStatsByPosition(
    _ sequences: [TokenLogProbs], options: MismatchOptions = .init()
) throws -> [PositionMismatchStats] {
    let p = try Prepared(sequences, options: options)
    return p.byPosition()
}

/// Overall, per-position and per-sequence statistics in one pass over the input.
public func mismatchReport(_ sequences: [TokenLogProbs], options: MismatchOptions = .init()) throws -> MismatchReport {
    let p = try Prepared(sequences, options: options)
    return MismatchReport(overall: p.overall(), byPosition: p.byPosition(), bySequence: p.bySequence())
}

// MARK: Per-token quantities

/// Everything the statistics need from one token, computed once.
struct PreparedToken {
    var sequence: Int          // index among the non-empty sequences
    var position: Int
    var logMu: Double
    var logPi: Double
    var d: Double              // log μ − log π (0 when equal, including −inf = −inf)
    var dp: Double             // π − μ
    var weight: Double         // e^(clamp(−d))
    var ratioSquaredMinusOne: Double  // e^(2·clamp(−d)) − 1
    var k3: Double             // e^(−d) − 1 + d
    var full: FullComparison?
}

/// Exact comparison of the two engines' distributions at one position.
struct FullComparison {
    var kl: Double
    var tv: Double
    var argmaxDiffers: Bool
}

@inline(__always) func clampLogRatio(_ x: Double) -> Double {
    x.isNaN ? x : min(max(x, -MismatchOptions.logRatioBound), MismatchOptions.logRatioBound)
}

@inline(__always) func maxNaN(_ a: Double, _ b: Double) -> Double {
    a.isNaN || b.isNaN ? .nan : (b > a ? b : a)
}

@inline(__always) func minNaN(_ a: Double, _ b: Double) -> Double {
    a.isNaN || b.isNaN ? .nan : (b < a ? b : a)
}

/// Compares two rows of log-probabilities of length V. `scratchA`/`scratchB` hold ≥ V doubles.
func compareRows(
    _ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>,
    _ scratchA: UnsafeMutableBufferPointer<Double>, _ scratchB: UnsafeMutableBufferPointer<Double>
) -> FullComparison {
    let v = a.count
    // Argmax on the rows as given; the first strict maximum wins, so ties go to the lowest id.
    var ia = 0, ib = 0
    var ba = -Float.infinity, bb = -Float.infinity
    for i in 0..<v {
        if a[i] > ba { ba = a[i]; ia = i }
        if b[i] > bb { bb = b[i]; ib = i }
    }
    // Log-softmax in Double: shift by the row maximum, sum in token order.
    func normalise(_ row: UnsafeBufferPointer<Float>, _ e: UnsafeMutableBufferPointer<Double>) -> (shift: Double, logZ: Double, z: Double) {
        var m = -Double.infinity
        var sawNaN = false
        for i in 0..<v {
            let x = Double(row[i])
            if x.isNaN { sawNaN = true }
            if x > m { m = x }
        }
        if sawNaN { m = .nan }
        var z = 0.0
        for i in 0..<v {
            let x = expD(Double(row[i]) - m)
            e[i] = x
            z += x
        }
        return (m, logD(z), z)
    }
    let na = normalise(a, scratchA)
    let nb = normalise(b, scratchB)
    var kl = 0.0, tv = 0.0
    for i in 0..<v {
        let mu = scratchA[i] / na.z
        let pi = scratchB[i] / nb.z
        tv += (mu - pi).magnitude
        if mu == 0 {
            // 0·log(0/π) = 0; the π-mass off μ's support enters through the identity below.
            kl += pi
            continue
        }
        let lm = (Double(a[i]) - na.shift) - na.logZ
        let lp = (Double(b[i]) - nb.shift) - nb.logZ
        let delta = lm == lp ? 0 : lm - lp
        // KL = Σ μ log(μ/π) = Σ_{μ>0} μ (e^(−δ) − 1 + δ) + π(μ = 0) for normalised rows: every
        // term is ≥ 0, so there is no cancellation and identical rows give exactly 0.
        kl += mu * k3Term(delta)
    }
    if na.z.isNaN || nb.z.isNaN { kl = .nan; tv = .nan }   // a row with NaN or no finite entry
    return FullComparison(kl: kl, tv: 0.5 * tv, argmaxDiffers: ia != ib)
}

/// 1/n! for n = 0…20, computed with IEEE operations at start-up (the same bits everywhere).
private let inverseFactorials: [Double] = (0...20).map { n in
    1 / (1...max(n, 1)).reduce(1.0) { $0 * Double($1) }
}

/// e^x − 1 without cancellation near 0: Taylor series to x^18/18! for |x| ≤ 1/2 (remainder
/// below 2^-70 relative), `expD(x) − 1` beyond.
func expm1D(_ x: Double) -> Double {
    guard x.magnitude <= 0.5 else { return expD(x) - 1 }
    var p = inverseFactorials[18]
    var n = 17
    while n >= 1 { p = inverseFactorials[n].addingProduct(p, x); n -= 1 }
    return x * p
}

/// e^(−d) − 1 + d ≥ 0 without cancellation near 0: Σ_{n=2}^{N} (−d)^n/n! for |d| ≤ 1/2,
/// the formula itself beyond; +inf for infinite d. N depends on |d| only (so the result is
/// still a fixed function of d): N = 7 up to 2^-10, 10 up to 2^-5, 20 up to 1/2; the first
/// omitted term is below 2^-68 of the sum in each range. (Full-distribution KL calls this for
/// every vocabulary entry, where |d| is usually tiny.)
func k3Term(_ d: Double) -> Double {
    if d.isInfinite { return .infinity }
    let a = d.magnitude
    guard a <= 0.5 else { return (expD(-d) - 1) + d }
    let x = -d
    var n = a <= 0x1p-10 ? 7 : (a <= 0x1p-5 ? 10 : 20)
    var p = inverseFactorials[n]
    n -= 1
    while n >= 2 { p = inverseFactorials[n].addingProduct(p, x); n -= 1 }
    return (x * x) * p
}

// MARK: Aggregation

/// Per-sequence sums.
struct PreparedSequence {
    var index: Int             // index in the input
    var length: Int
    var logRatio: Double       // Σ −d, exact sum rounded once
    var sumD: Double           // Σ d (= −logRatio exactly)
    var meanLogMu: Double
    var meanLogPi: Double
    var maxAbsDlogp: Double
    var klFullSum: Double?
}

struct Prepared {
    var tokens: [PreparedToken] = []
    var sequences: [PreparedSequence] = []
    let options: MismatchOptions

    init(_ input: [TokenLogProbs], options: MismatchOptions) throws {
        for cap in [options.tokenCap, options.sequenceCap] where !(cap.isFinite && cap >= 1) {
            throw MismatchError.badCap(cap)
        }
        self.options = options
        var scratchA: [Double] = [], scratchB: [Double] = []
        for (s, seq) in input.enumerated() {
            let n = seq.rollout.count
            guard seq.train.count == n else {
                throw MismatchError.lengthMismatch(sequence: s, rollout: n, train: seq.train.count)
            }
            if let pos = seq.positions, pos.count != n || pos.contains(where: { $0 < 0 }) {
                throw MismatchError.badPositions(sequence: s)
            }
            if let f = seq.full {
                let (size, overflow) = n.multipliedReportingOverflow(by: f.vocabularySize)
                guard f.vocabularySize >= 1, !overflow, f.rollout.count == size, f.train.count == size else {
                    throw MismatchError.badFullDistributions(sequence: s)
                }
                if scratchA.count < f.vocabularySize {
                    scratchA = Array(repeating: 0, count: f.vocabularySize)
                    scratchB = scratchA
                }
            }
            if n == 0 { continue }
            let id = sequences.count
            var sumLR = ExactSum(), sumD = ExactSum(), sumMu = ExactSum(), sumPi = ExactSum()
            var sumKL = ExactSum()
            var maxAbs = -Double.infinity
            for t in 0..<n {
                let lm = Double(seq.rollout[t]), lp = Double(seq.train[t])
                let d = lm == lp ? 0 : lm - lp
                let lr = clampLogRatio(-d)
                var full: FullComparison? = nil
                if let f = seq.full {
                    let vs = f.vocabularySize
                    full = f.rollout.withUnsafeBufferPointer { ra in
                        f.train.withUnsafeBufferPointer { rb in
                            scratchA.withUnsafeMutableBufferPointer { sa in
                                scratchB.withUnsafeMutableBufferPointer { sb in
                                    compareRows(
                                        UnsafeBufferPointer(rebasing: ra[(t * vs)..<((t + 1) * vs)]),
                                        UnsafeBufferPointer(rebasing: rb[(t * vs)..<((t + 1) * vs)]), sa, sb)
                                }
                            }
                        }
                    }
                }
                if let full { sumKL.add(full.kl) }
                tokens.append(PreparedToken(
                    sequence: id, position: seq.positions?[t] ?? t, logMu: lm, logPi: lp, d: d,
                    dp: expD(lp) - expD(lm), weight: expD(lr), ratioSquaredMinusOne: expm1D(2 * lr),
                    k3: k3Term(d), full: full))
                sumLR.add(-d)
                sumD.add(d)
                sumMu.add(lm)
                sumPi.add(lp)
                maxAbs = maxNaN(maxAbs, d.magnitude)
            }
            let len = Double(n)
            sequences.append(PreparedSequence(
                index: s, length: n, logRatio: sumLR.value, sumD: sumD.value,
                meanLogMu: sumMu.value / len, meanLogPi: sumPi.value / len, maxAbsDlogp: maxAbs,
                klFullSum: seq.full == nil ? nil : sumKL.value))
        }
        if tokens.isEmpty { throw MismatchError.noTokens }
    }

    func overall() -> MismatchStats {
        var stats = tokenLevel(tokens)
        addSequenceLevel(to: &stats)
        return stats
    }

    func byPosition() -> [PositionMismatchStats] {
        var groups: [Int: [PreparedToken]] = [:]
        for t in tokens { groups[t.position, default: []].append(t) }
        return groups.keys.sorted().map { PositionMismatchStats(position: $0, stats: tokenLevel(groups[$0]!)) }
    }

    func bySequence() -> [SequenceMismatch] {
        sequences.map {
            SequenceMismatch(
                index: $0.index, length: $0.length, logRatio: $0.logRatio,
                weight: expD(clampLogRatio($0.logRatio)), maxAbsDlogp: $0.maxAbsDlogp, klFullSum: $0.klFullSum)
        }
    }

    /// Token-level statistics over `group` (non-empty); sequence-level fields left nil.
    func tokenLevel(_ group: [PreparedToken]) -> MismatchStats {
        let n = Double(group.count)
        let cap = options.tokenCap, lower = 1 / cap
        var d = ExactSum(), d2 = ExactSum(), k3 = ExactSum(), absDp = ExactSum(), absD = ExactSum()
        var chi2 = ExactSum(), logMu = ExactSum(), logPi = ExactSum()
        var w = ExactSum(), w2 = ExactSum(), wc = ExactSum(), wc2 = ExactSum()
        var kl = ExactSum(), tv = ExactSum()
        var maxAbsDp = -Double.infinity, maxDp = -Double.infinity, minDp = Double.infinity
        var maxAbsD = -Double.infinity, maxW = -Double.infinity, minW = Double.infinity
        var maxKL = -Double.infinity, maxTV = -Double.infinity
        var outside = 0, full = 0, disagree = 0
        var seqs = Set<Int>()
        for t in group {
            seqs.insert(t.sequence)
            d.add(t.d)
            d2.add(t.d * t.d)
            k3.add(t.k3)
            absDp.add(t.dp.magnitude)
            absD.add(t.d.magnitude)
            chi2.add(t.ratioSquaredMinusOne)
            logMu.add(t.logMu)
            logPi.add(t.logPi)
            w.add(t.weight)
            w2.add(t.weight * t.weight)
            let c = t.weight.isNaN ? t.weight : min(max(t.weight, lower), cap)
            wc.add(c)
            wc2.add(c * c)
            if t.weight > cap || t.weight < lower { outside += 1 }
            maxAbsDp = maxNaN(maxAbsDp, t.dp.magnitude)
            maxDp = maxNaN(maxDp, t.dp)
            minDp = minNaN(minDp, t.dp)
            maxAbsD = maxNaN(maxAbsD, t.d.magnitude)
            maxW = maxNaN(maxW, t.weight)
            minW = minNaN(minW, t.weight)
            if let f = t.full {
                full += 1
                kl.add(f.kl)
                tv.add(f.tv)
                maxKL = maxNaN(maxKL, f.kl)
                maxTV = maxNaN(maxTV, f.tv)
                if f.argmaxDiffers { disagree += 1 }
            }
        }
        let meanW = w.value / n, meanW2 = w2.value / n
        let meanWc = wc.value / n, meanWc2 = wc2.value / n
        let k1 = d.value / n
        let nf = Double(full)
        return MismatchStats(
            tokens: group.count, sequences: seqs.count,
            k1: k1, k2: d2.value / n / 2, k3: k3.value / n,
            meanAbsDp: absDp.value / n, maxAbsDp: maxAbsDp, maxDp: maxDp, minDp: minDp,
            meanAbsDlogp: absD.value / n, maxAbsDlogp: maxAbsD,
            chi2Token: chi2.value / n, chi2Seq: nil,
            pplRollout: expD(-(logMu.value / n)), pplTrain: expD(-(logPi.value / n)), logPplDiff: k1,
            pplRolloutSeq: nil, pplTrainSeq: nil, logPplDiffSeq: nil,
            fullTokens: full,
            klFullMean: full > 0 ? kl.value / nf : nil, klFullMax: full > 0 ? maxKL : nil,
            tvFullMean: full > 0 ? tv.value / nf : nil, tvFullMax: full > 0 ? maxTV : nil,
            argmaxDisagree: full > 0 ? Double(disagree) / nf : nil,
            isTokenCap: cap, isTokenMean: meanW, isTokenMax: maxW, isTokenMin: minW,
            ess: meanW * meanW / meanW2, essTokenClamped: meanWc * meanWc / meanWc2,
            isTokenFracOutside: Double(outside) / n,
            isSeqCap: nil, isSeqMean: nil, isSeqMax: nil, isSeqMin: nil, essSeq: nil, essSeqClamped: nil,
            isSeqFracOutside: nil, seqK1: nil, seqKlFull: nil, seqLogratioSlope: nil)
    }

    /// Fills the sequence-level fields from all sequences.
    func addSequenceLevel(to stats: inout MismatchStats) {
        let n = Double(sequences.count)
        let cap = options.sequenceCap, lower = 1 / cap
        var chi2 = ExactSum(), rho = ExactSum(), rho2 = ExactSum(), rhoc = ExactSum(), rhoc2 = ExactSum()
        var pplMu = ExactSum(), pplPi = ExactSum(), logPplDiff = ExactSum(), sumD = ExactSum()
        var kl = ExactSum(), lengths = ExactSum()
        var maxRho = -Double.infinity, minRho = Double.infinity
        var outside = 0, withFull = 0
        for s in sequences {
            let lr = clampLogRatio(s.logRatio)
            let r = expD(lr)
            chi2.add(expm1D(2 * lr))
            rho.add(r)
            rho2.add(r * r)
            let c = r.isNaN ? r : min(max(r, lower), cap)
            rhoc.add(c)
            rhoc2.add(c * c)
            if r > cap || r < lower { outside += 1 }
            maxRho = maxNaN(maxRho, r)
            minRho = minNaN(minRho, r)
            pplMu.add(expD(-s.meanLogMu))
            pplPi.add(expD(-s.meanLogPi))
            logPplDiff.add(s.sumD / Double(s.length))
            sumD.add(s.sumD)
            lengths.add(Double(s.length))
            if let k = s.klFullSum { kl.add(k); withFull += 1 }
        }
        let m1 = rho.value / n, m2 = rho2.value / n
        let c1 = rhoc.value / n, c2 = rhoc2.value / n
        stats.chi2Seq = chi2.value / n
        stats.isSeqCap = cap
        stats.isSeqMean = m1
        stats.isSeqMax = maxRho
        stats.isSeqMin = minRho
        stats.essSeq = m1 * m1 / m2
        stats.essSeqClamped = c1 * c1 / c2
        stats.isSeqFracOutside = Double(outside) / n
        stats.pplRolloutSeq = pplMu.value / n
        stats.pplTrainSeq = pplPi.value / n
        stats.logPplDiffSeq = logPplDiff.value / n
        stats.seqK1 = sumD.value / n
        stats.seqKlFull = withFull > 0 ? kl.value / Double(withFull) : nil
        // Least squares: slope = Σ (x − x̄) y / Σ (x − x̄)², both sums exact, so the order of
        // the sequences does not matter.
        let xbar = lengths.value / n
        if sequences.contains(where: { Double($0.length) != xbar }) {
            var sxx = ExactSum(), sxy = ExactSum()
            for s in sequences {
                let dx = Double(s.length) - xbar
                sxx.add(dx * dx)
                sxy.add(dx * s.logRatio)
            }
            stats.seqLogratioSlope = sxy.value / sxx.value
        }
    }
}

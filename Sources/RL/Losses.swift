// Advantages and the policy losses (`help algo` gives each formula), each as ∂loss/∂log π_θ per token:
// that is what the training engine's backward takes.
//
// Notation (per response i of n in a minibatch, token t of |y_i|):
//   A_i       advantage of response i
//   lp_t      log π_θ(y_t): the training engine now (the policy being updated)
//   old_t     log π_old(y_t): the training engine's recomputation before any update
//   mu_t      log μ(y_t): the rollout engine while sampling
//   r_t  = exp(lp_t − old_t)        PPO ratio (staleness: 1 on the first minibatch)
//   ρ_t  = exp(old_t − mu_t)        token mismatch ratio
//   ρ_i  = exp(Σ_t (old_t − mu_t))  sequence mismatch ratio
//   w_it                            aggregation weight (see `LossAggregation`)
//
// The loss of a minibatch is L = Σ_i Σ_t w_it · ℓ_it; the gradient handed to the backward
// is g_it = ∂L/∂lp_t. Exponents of log-ratios are clamped to ±20 (as verl does), so a
// weight is finite even when the engines disagree wildly; caps act after the clamp.

import Numerics

/// Largest |log ratio| exponentiated (e^20 ≈ 4.9e8).
public let logRatioClamp = 20.0

@inline(__always) func clampedExp(_ x: Double) -> Double {
    expD(min(max(x, -logRatioClamp), logRatioClamp))
}

// MARK: Advantages

/// Advantages of responses grouped by prompt: group g holds responses g·G ..< (g+1)·G.
///
///   group-normalised  A_i = (R_i − mean_g) / (std_g + 1e-6), std with n − 1 (verl, TRL)
///   mean-only         A_i = R_i − mean_g
///   raw               A_i = R_i
///
/// A group of one response has no peers: as verl, its mean is taken as 0 and its std as 1,
/// so A = R in every mode.
public func computeAdvantages(rewards: [Double], groupSize: Int, mode: AdvantageMode) -> [Double] {
    precondition(groupSize >= 1 && rewards.count % groupSize == 0, "rewards must fill whole groups")
    if mode == .raw || groupSize == 1 { return rewards }
    var out = [Double](repeating: 0, count: rewards.count)
    for g in stride(from: 0, to: rewards.count, by: groupSize) {
        let group = rewards[g..<(g + groupSize)]
        let mean = group.reduce(0, +) / Double(groupSize)
        var ss = 0.0
        for r in group { ss += (r - mean) * (r - mean) }
        let std = (ss / Double(groupSize - 1)).squareRoot()
        for (k, r) in group.enumerated() {
            out[g + k] = mode == .meanOnly ? r - mean : (r - mean) / (std + 1e-6)
        }
    }
    return out
}

// MARK: Losses

/// One response's inputs to the loss, log-probabilities at the sampling temperature.
public struct ResponseLogProbs: Sendable, Equatable {
    /// log π_θ(y_t), the policy being updated.
    public var logPi: [Double]
    /// log π_old(y_t), recomputed by the training engine before the first update.
    public var logOld: [Double]
    /// log μ(y_t), from the rollout engine.
    public var logMu: [Double]
    public var advantage: Double

    public init(logPi: [Double], logOld: [Double], logMu: [Double], advantage: Double) {
        precondition(logPi.count == logOld.count && logOld.count == logMu.count, "one log-probability per token in each")
        self.logPi = logPi
        self.logOld = logOld
        self.logMu = logMu
        self.advantage = advantage
    }

    public var count: Int { logPi.count }
}

/// The part of the settings the loss reads.
public struct LossConfig: Sendable, Hashable {
    public var algorithm: Algorithm
    public var clipLow: Double
    public var clipHigh: Double
    public var gspoClipLow: Double
    public var gspoClipHigh: Double
    public var tokenCap: Double
    public var sequenceCap: Double
    public var aggregation: LossAggregation
    /// L_max of the constant (Dr.GRPO) normalisation.
    public var maxResponseLength: Int
    /// Rejection, veto and batch normalisation of the weights (none by default).
    public var correction = CorrectionSettings()

    public init(algorithm: Algorithm, clipLow: Double = 0.2, clipHigh: Double = 0.2, gspoClipLow: Double = 3e-4,
                gspoClipHigh: Double = 4e-4, tokenCap: Double = 2, sequenceCap: Double = 2,
                aggregation: LossAggregation = .tokenMean, maxResponseLength: Int = 1) {
        self.algorithm = algorithm
        self.clipLow = clipLow
        self.clipHigh = clipHigh
        self.gspoClipLow = gspoClipLow
        self.gspoClipHigh = gspoClipHigh
        self.tokenCap = tokenCap
        self.sequenceCap = sequenceCap
        self.aggregation = aggregation
        self.maxResponseLength = maxResponseLength
    }

    /// The loss configuration of RL settings (with the aggregation the algorithm imposes).
    public init(_ s: RLSettings, maxResponseLength: Int) {
        self.init(algorithm: s.algorithm, clipLow: s.clipLow, clipHigh: s.clipHigh, gspoClipLow: s.gspoClipLow,
                  gspoClipHigh: s.gspoClipHigh, tokenCap: s.tokenCap, sequenceCap: s.sequenceCap,
                  aggregation: s.effectiveAggregation, maxResponseLength: maxResponseLength)
        correction = s.correction
    }
}

/// The loss of a minibatch, its gradient, and what the clips and caps did.
public struct LossResult: Sendable, Equatable {
    /// L = Σ_i Σ_t w_it ℓ_it (stop-gradient factors at their current values).
    public var loss: Double
    /// ∂L/∂log π_θ(y_t) per response and token.
    public var gradients: [[Double]]
    /// Tokens whose PPO clip (or, for GSPO, whose response's clip) zeroed the gradient.
    public var clippedTokens: Int
    /// Importance weights capped (TIS, PG-Seq-IS) or masked (MIS): tokens for token-level
    /// TIS, responses otherwise; 0 for algorithms without a weight.
    public var cappedWeights: Int
    /// How many weights there were (tokens or responses), 0 without a weight.
    public var weights: Int
    /// Tokens in the loss (those the corrections kept).
    public var tokens: Int
    /// What the corrections rejected: tokens, responses with a rejected token, responses vetoed.
    public var rejectedTokens = 0, rejectedResponses = 0, vetoedResponses = 0
}

/// The PPO clipped surrogate of one token: ℓ = −min(r·A, clip(r, 1−εl, 1+εh)·A) with
/// r = e^logRatio. Its derivative in log π_θ is −A·r where the unclipped term is the
/// minimum (ties included), 0 where the clip binds (A > 0 and r > 1+εh, or A < 0 and
/// r < 1−εl).
@inline(__always)
func ppoClip(logRatio: Double, advantage a: Double, low: Double, high: Double) -> (loss: Double, grad: Double, clipped: Bool) {
    let r = clampedExp(logRatio)
    let unclipped = r * a
    let bounded = min(max(r, 1 - low), 1 + high) * a
    if unclipped <= bounded { return (-unclipped, -a * r, false) }
    return (-bounded, 0, true)
}

/// The loss of one minibatch and its gradient with respect to each log π_θ(y_t).
///
/// Per token, with the notation at the top of this file (sg = stop-gradient, a constant):
///
///   pg         ℓ = −A_i · lp_t                                g = −A_i
///   grpo       ℓ = PPO_t = −min(r_t A_i, clip(r_t) A_i)       g = −A_i r_t, 0 where clipped
///   drgrpo     as grpo; aggregation fixed to `constant`, advantage to R − mean
///   gspo       s_i = exp(mean_t (lp_t − old_t)),
///              ℓ_i = −min(s_i A_i, clip(s_i, 1−gl, 1+gh) A_i), L = (1/n) Σ_i ℓ_i
///                                                             g = −A_i s_i / (n |y_i|), 0 where clipped
///   token-tis  ℓ = sg(min(ρ_t, C_tok)) · PPO_t                 g = min(ρ_t, C_tok) · g_PPO
///   seq-tis    ℓ = sg(min(ρ_i, C_seq)) · PPO_t                 g = min(ρ_i, C_seq) · g_PPO
///   seq-mis    ℓ = sg(ρ_i · 1[ρ_i ≤ C_seq]) · PPO_t            g = ρ_i 1[ρ_i ≤ C_seq] · g_PPO
///   pg-seq-is  ℓ = −sg(min(exp Σ_t (lp_t − mu_t), C_seq)) · A_i · lp_t
///                                                             g = −min(…, C_seq) · A_i
///
/// each g then multiplied by the aggregation weight w_it (GSPO's 1/(n |y_i|) is its own
/// seq-mean-token-mean weight). The corrections of `config.correction` (Corrections.swift)
/// come first: rejected tokens are out of the loss, its gradient and the aggregation's
/// counts (GSPO's s_i averages the kept tokens); with batch normalisation the importance
/// weights above are divided by their mean over the kept tokens (token-tis) or kept
/// responses (the sequence weights).
public func policyLoss(_ responses: [ResponseLogProbs], config c: LossConfig) -> LossResult {
    let rejection = Rejection(responses, c.correction)
    let keep = rejection.keep
    let keptLengths = keep.map { $0.filter { $0 }.count }
    // Responses in the loss: all but those the corrections rejected whole (an empty response
    // still counts, as it always has, though it adds nothing).
    let n = responses.indices.filter { responses[$0].count == 0 || keptLengths[$0] > 0 }.count
    let totalTokens = keptLengths.reduce(0, +)
    var result = LossResult(loss: 0, gradients: responses.map { [Double](repeating: 0, count: $0.count) },
                            clippedTokens: 0, cappedWeights: 0, weights: 0, tokens: totalTokens,
                            rejectedTokens: rejection.rejectedTokens, rejectedResponses: rejection.rejectedResponses,
                            vetoedResponses: rejection.vetoedResponses)
    guard n > 0, totalTokens > 0 else { return result }
    let aggregation: LossAggregation = c.algorithm == .gspo ? .seqMeanTokenMean : c.aggregation
    let weights = importanceWeights(responses, keep: keep, config: c, result: &result)
    for (i, resp) in responses.enumerated() where keptLengths[i] > 0 {
        let len = keptLengths[i]
        let w: Double
        switch aggregation {
        case .tokenMean: w = 1 / Double(totalTokens)
        case .seqMeanTokenSum: w = 1 / Double(n)
        case .seqMeanTokenMean: w = 1 / (Double(n) * Double(len))
        case .constant: w = 1 / (Double(n) * Double(max(c.maxResponseLength, 1)))
        }
        let a = resp.advantage
        let kept = (0..<resp.count).filter { keep[i][$0] }

        switch c.algorithm {
        case .pg, .pgSeqIS:
            for t in kept {
                let weight = weights?[i][t] ?? 1
                result.loss += w * (-weight * a * resp.logPi[t])
                result.gradients[i][t] = w * -weight * a
            }

        case .grpo, .drgrpo, .tokenTIS, .seqTIS, .seqMIS:
            for t in kept {
                let p = ppoClip(logRatio: resp.logPi[t] - resp.logOld[t], advantage: a, low: c.clipLow, high: c.clipHigh)
                if p.clipped { result.clippedTokens += 1 }
                let weight = weights?[i][t] ?? 1
                result.loss += w * weight * p.loss
                result.gradients[i][t] = w * weight * p.grad
            }

        case .gspo:
            var meanLog = 0.0
            for t in kept { meanLog += resp.logPi[t] - resp.logOld[t] }
            meanLog /= Double(len)
            let p = ppoClip(logRatio: meanLog, advantage: a, low: c.gspoClipLow, high: c.gspoClipHigh)
            // ℓ_i counted once: Σ_t w ℓ_i = ℓ_i / n. ∂s_i/∂lp_t = s_i / |y_i|.
            result.loss += Double(len) * w * p.loss
            if p.clipped { result.clippedTokens += len }
            for t in kept { result.gradients[i][t] = w * p.grad }
        }
    }
    return result
}

/// The algorithm's importance weight of every kept token (nil for algorithms without one),
/// counting the capped or masked ones; batch-normalised when the correction asks.
private func importanceWeights(_ responses: [ResponseLogProbs], keep: [[Bool]], config c: LossConfig,
                               result: inout LossResult) -> [[Double]]? {
    var weights = responses.map { [Double](repeating: 0, count: $0.count) }
    var sequenceLevel = true
    for (i, resp) in responses.enumerated() where keep[i].contains(true) {
        switch c.algorithm {
        case .pg, .grpo, .drgrpo, .gspo:
            return nil
        case .tokenTIS:
            sequenceLevel = false
            for t in 0..<resp.count where keep[i][t] {
                let rho = clampedExp(resp.logOld[t] - resp.logMu[t])
                weights[i][t] = min(rho, c.tokenCap)
                result.weights += 1
                if rho > c.tokenCap { result.cappedWeights += 1 }
            }
        case .seqTIS, .seqMIS, .pgSeqIS:
            // ρ_i over every token of the response (a rejection drops tokens from the loss,
            // not from the sequence's probability).
            var log = 0.0
            for t in 0..<resp.count { log += c.algorithm == .pgSeqIS ? resp.logPi[t] - resp.logMu[t] : resp.logOld[t] - resp.logMu[t] }
            let rho = clampedExp(log)
            let cap = c.sequenceCap
            let weight = c.algorithm == .seqMIS ? (rho <= cap ? rho : 0) : min(rho, cap)
            result.weights += 1
            if rho > cap { result.cappedWeights += 1 }
            for t in 0..<resp.count where keep[i][t] { weights[i][t] = weight }
        }
    }
    if c.correction.batchNormalize {
        // The mean over the kept tokens (token weights) or the kept responses (sequence weights).
        var sum = 0.0, count = 0
        for (i, row) in weights.enumerated() {
            let kept = (0..<row.count).filter { keep[i][$0] }
            if sequenceLevel {
                if let t = kept.first { sum += row[t]; count += 1 }
            } else {
                for t in kept { sum += row[t]; count += 1 }
            }
        }
        let mean = count > 0 ? sum / Double(count) : 0
        if mean > 0 { weights = weights.map { $0.map { $0 / mean } } }
    }
    return weights
}

// What each RL step records beyond reward and mismatch, to see what moves before a run
// degrades: where the mismatch sits (by the sampled token's probability), how large the
// logits and weights grow, how far the policy has moved from where the run started.

import JSON
import Mismatch
import Model
import Numerics
import Engines

/// Diagnostics of one RL step, over its sampled response tokens. With d_t = log μ_t − log π_t:
///
///     tail    tokens with μ_t < 0.01          share, mean |d_t|
///     middle  tokens with 0.01 ≤ μ_t < 0.9    share, mean |d_t|
///     top     tokens with μ_t ≥ 0.9           share, mean |d_t|
///     frac_dlogp_gt1   share of tokens with |d_t| > 1
///     logit_max_abs, logit_std   the training forward's logits (all rows of the batch)
///     weight_norm      ‖θ‖₂ of the float32 master weights before the update
///     kl_initial       KL[π_θ ‖ π_0] estimated by k3 on the sampled tokens, π_0 the policy
///                      at the run's first step, both in float32 (nil until measured)
///
/// A bucket without tokens has a mean of NaN (JSON null).
public struct StepDiagnostics: Sendable, Equatable {
    public var tailShare = 0.0, middleShare = 0.0, topShare = 0.0
    public var tailMeanAbsDlogp = Double.nan, middleMeanAbsDlogp = Double.nan, topMeanAbsDlogp = Double.nan
    public var fracAbsDlogpAbove1 = 0.0
    public var logitMaxAbs = 0.0, logitStd = 0.0
    public var weightNorm = 0.0
    public var klInitial: Double?

    public init() {}

    /// The probability bounds of the tail and top buckets.
    public static let tailBelow = 0.01, topFrom = 0.9

    /// The mismatch part over the sampled tokens (μ from the rollout, π from the training
    /// engine's recomputation).
    public init(pairs: [TokenLogProbs]) {
        var counts = [0, 0, 0], sums = [0.0, 0.0, 0.0], above1 = 0, total = 0
        for p in pairs {
            for t in 0..<p.count {
                let logMu = Double(p.rollout[t]), d = abs(logMu - Double(p.train[t]))
                let mu = expD(logMu)
                let bucket = mu < StepDiagnostics.tailBelow ? 0 : (mu < StepDiagnostics.topFrom ? 1 : 2)
                counts[bucket] += 1
                sums[bucket] += d.isFinite ? d : .infinity
                if d > 1 { above1 += 1 }
                total += 1
            }
        }
        guard total > 0 else { return }
        let n = Double(total)
        tailShare = Double(counts[0]) / n
        middleShare = Double(counts[1]) / n
        topShare = Double(counts[2]) / n
        func mean(_ i: Int) -> Double { counts[i] > 0 ? sums[i] / Double(counts[i]) : .nan }
        tailMeanAbsDlogp = mean(0)
        middleMeanAbsDlogp = mean(1)
        topMeanAbsDlogp = mean(2)
        fracAbsDlogpAbove1 = Double(above1) / n
    }

    /// `(name, value)` in a fixed order: the JSON keys and history columns.
    public var fields: [(String, Double?)] {
        [("tail_share", tailShare), ("tail_mean_abs_dlogp", tailMeanAbsDlogp),
         ("middle_share", middleShare), ("middle_mean_abs_dlogp", middleMeanAbsDlogp),
         ("top_share", topShare), ("top_mean_abs_dlogp", topMeanAbsDlogp),
         ("frac_dlogp_gt1", fracAbsDlogpAbove1), ("logit_max_abs", logitMaxAbs), ("logit_std", logitStd),
         ("weight_norm", weightNorm), ("kl_initial", klInitial)]
    }
}

/// k3 = mean(e^(−d) − 1 + d) with d = log p − log q over tokens sampled from (about) p:
/// an unbiased, non-negative estimate of KL[p ‖ q] (Schulman's k3).
func k3Estimate(logP: [[Float]], logQ: [[Float]]) -> Double {
    var total = 0.0, count = 0
    for (a, b) in zip(logP, logQ) {
        for t in 0..<min(a.count, b.count) {
            // With r = q/p = e^(−d): k3 = r − 1 − log r = e^(−d) − 1 + d.
            let d = Double(a[t]) - Double(b[t])
            total += expD(-d) - 1 + d
            count += 1
        }
    }
    return count > 0 ? total / Double(count) : .nan
}

/// The Euclidean norm of the weights, summed in Double.
func weightNorm(_ weights: ModelWeights) -> Double {
    var squares = 0.0
    for x in weights.data { squares += Double(x) * Double(x) }
    return squares.squareRoot()
}

extension Trainer {
    /// Makes the current weights π_0, the policy `kl_initial` measures the distance from
    /// (the lab does so when a run starts).
    public func resetReference() { reference = nil }

    /// log π_0 of the batch's response tokens, in float32 engines on the portable backend
    /// (the lab's own kernel and threads whatever the session's backend: the same figure on
    /// every machine, and no OpenBLAS threads left spinning beside the steps' own); π_0 is
    /// taken from the current weights on first use after `resetReference()`.
    func referenceLogProbs(_ batch: RolloutBatch, temperature: Double) throws -> [[Float]] {
        if reference == nil {
            let backend: any MatmulBackend = policy.backend is PortableBackend ? policy.backend : PortableBackend()
            reference = try Policy(master: policy.master, engines: Preset.fp32.engines(for: policy.config), backend: backend)
        }
        return try reference!.recompute(batch, temperature: temperature, keepForBackward: false).pairs.map(\.train)
    }

    /// Everything `StepDiagnostics` holds for a step whose π_old recomputation is `old`.
    func diagnostics(_ old: Recomputation, batch: RolloutBatch, temperature: Double) -> StepDiagnostics {
        var d = StepDiagnostics(pairs: old.pairs)
        d.logitMaxAbs = Double(old.forward.logitScale.maxAbs)
        d.logitStd = old.forward.logitScale.meanStd
        d.weightNorm = weightNorm(policy.master)
        if let reference = try? referenceLogProbs(batch, temperature: temperature) {
            d.klInitial = k3Estimate(logP: old.pairs.map(\.train), logQ: reference)
        }
        return d
    }
}

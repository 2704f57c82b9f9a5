// What each RL step, pretraining step and evaluation reports, and its deterministic JSON.

import JSON
import Mismatch

/// Wall-clock time of the phases of one step, in seconds. Volatile: never part of anything
/// that must replay identically (see `StepMetrics.json(timing:)`).
public struct StepTiming: Sendable, Equatable {
    /// Sampling with the rollout engine (KV-cache decoding).
    public var rollout = 0.0
    /// The training engine's recomputation of π_old (teacher-forced forward, log π at the
    /// temperature, both full distributions).
    public var recompute = 0.0
    /// Mismatch statistics and entropy over the step's tokens.
    public var stats = 0.0
    /// The diagnostics over training (`StepDiagnostics`), `kl_initial`'s float32 reference
    /// forward included.
    public var diagnostics = 0.0
    /// Minibatch forwards (π_θ for minibatches after the first) and the loss.
    public var forward = 0.0
    /// Back-propagation in the training engine's precision.
    public var backward = 0.0
    /// Unscaling, clipping, AdamW and the weight sync into both engines (re-quantization).
    public var update = 0.0
    public var total = 0.0

    public init() {}

    public var jsonObject: JSONObject {
        ["rollout": .number(rollout), "recompute": .number(recompute), "stats": .number(stats),
         "diagnostics": .number(diagnostics), "forward": .number(forward),
         "backward": .number(backward), "update": .number(update), "total": .number(total)]
    }
}

/// Where the inf/NaN that made a step skip its update appeared.
public enum SkipCause: String, Sendable, Equatable, Codable {
    /// In the forward pass (the training engine's recomputation of log π, or the rollout's
    /// log μ): no gradient could be taken.
    case forward
    /// In the gradients; the forward pass was finite.
    case gradients
}

/// Everything one RL step measured.
public struct StepMetrics: Sendable, Equatable {
    /// The step's number (1 for the first step).
    public var step: Int
    public var algorithm: Algorithm
    /// Mean reward and fraction of exactly right responses.
    public var reward: Double
    public var accuracy: Double
    /// Mean response length in tokens (<eos> included), and the fraction cut off by the limit.
    public var responseLength: Double
    public var truncated: Double
    /// Mean entropy (nats) of the training engine's next-token distribution over response
    /// positions, at the sampling temperature.
    public var entropy: Double
    /// Mismatch between the rollout engine (μ) and the training engine (π_old) on this
    /// step's samples (README, "Mismatch statistics").
    public var mismatch: MismatchStats?
    /// Loss of the first minibatch (stop-gradient factors at their values).
    public var loss: Double
    /// Global norm of the unscaled gradient before clipping, mean over applied updates;
    /// when none was applied, the norm of the first skipped one (inf/NaN: JSON null).
    public var gradNorm: Double
    /// The loss scale of the first backward pass (1 when the gradient format is not FP16).
    public var lossScale: Double
    /// Whether the update (or any of the minibatch updates) was skipped, how many were, and
    /// why the first one was.
    public var skipped: Bool
    public var updatesSkipped: Int
    public var updates: Int
    public var skipReason: String?
    /// Where the first skipped update's inf/NaN appeared; nil when none was skipped.
    public var skipCause: SkipCause? = nil

    /// Records why the step's first skipped update was skipped (later ones keep the first).
    mutating func noteSkip(_ reason: String, cause: SkipCause) {
        guard skipReason == nil else { return }
        skipReason = reason
        skipCause = cause
    }
    /// Steps in a row, this one included, that applied no update (0 when this one did).
    public var skippedInARow = 0
    /// When steps keep being skipped: why, and what would cure it.
    public var skipAdvice: String? = nil
    /// Fraction of tokens whose PPO (or GSPO) clip zeroed the gradient, first minibatch.
    public var clipFraction: Double?
    /// Fraction of importance weights capped (TIS, PG-Seq-IS) or masked (MIS), first
    /// minibatch; nil for algorithms without a weight.
    public var cappedFraction: Double?
    /// What the corrections rejected in the first minibatch (nil when none is set): the
    /// share of tokens, of responses with a rejected token, of responses vetoed.
    public var rejectedFraction: Double?
    public var rejectedSeqFraction: Double?
    public var vetoedFraction: Double?
    /// A sparse model: how often the routers of the two engines chose different experts
    /// (before any replay), and the π_old forward's load-balancing loss.
    public var routing: RoutingStats? = nil
    public var loadBalancingLoss: Double? = nil
    /// Where the mismatch sits, logit and weight sizes, distance from the run's start.
    public var diagnostics = StepDiagnostics()
    /// FP16 loss-scaler totals so far.
    public var overflows: Int
    public var underflows: Int
    public var timing: StepTiming

    /// The step as one JSON object: the keys scripts rely on first (README "--json":
    /// step, reward, accuracy, k3, mean_abs_dlogp, grad_norm, loss_scale, skipped), then the
    /// rest. Wall time only with `timing: true`: it would make transcripts differ.
    public func json(timing includeTiming: Bool = false) -> JSONObject {
        let m = mismatch
        var o: JSONObject = [
            "step": .int(step), "reward": .number(reward), "accuracy": .number(accuracy),
            "k3": .number(m?.k3), "mean_abs_dlogp": .number(m?.meanAbsDlogp), "grad_norm": .number(gradNorm),
            "loss_scale": .number(lossScale), "skipped": .bool(skipped),
        ]
        let rest: [(String, JSONValue)] = [
            ("algo", .string(algorithm.rawValue)), ("loss", .number(loss)), ("response_length", .number(responseLength)),
            ("truncated", .number(truncated)), ("entropy", .number(entropy)), ("k1", .number(m?.k1)),
            ("mean_abs_dp", .number(m?.meanAbsDp)), ("max_abs_dp", .number(m?.maxAbsDp)),
            ("max_abs_dlogp", .number(m?.maxAbsDlogp)), ("chi2_token", .number(m?.chi2Token)),
            ("chi2_seq", .number(m?.chi2Seq)), ("kl_full_mean", .number(m?.klFullMean)),
            ("kl_full_max", .number(m?.klFullMax)), ("ess", .number(m?.ess)), ("ess_seq", .number(m?.essSeq)),
            ("is_token_frac_outside", .number(m?.isTokenFracOutside)), ("is_seq_frac_outside", .number(m?.isSeqFracOutside)),
            ("clip_frac", .number(clipFraction)), ("capped_frac", .number(cappedFraction)), ("updates", .int(updates)),
            ("updates_skipped", .int(updatesSkipped)), ("skip_reason", skipReason.map { .string($0) } ?? .null),
            ("skip_cause", skipCause.map { .string($0.rawValue) } ?? .null), ("skipped_in_a_row", .int(skippedInARow)),
            ("skip_advice", skipAdvice.map { .string($0) } ?? .null), ("overflows", .int(overflows)),
            ("underflows", .int(underflows)),
        ]
        for (key, value) in rest { o.set(key, value) }
        for (key, value) in diagnostics.fields { o.set(key, .number(value)) }
        if rejectedFraction != nil {
            o.set("rs_masked_frac", .number(rejectedFraction))
            o.set("rs_seq_masked_frac", .number(rejectedSeqFraction))
            o.set("veto_frac", .number(vetoedFraction))
        }
        if let routing { o.merge(routing.json) }
        if let loadBalancingLoss { o.set("aux_loss", .number(loadBalancingLoss)) }
        if includeTiming {
            o.set("wall_time", .number(timing.total))
            o.set("timing", .object(timing.jsonObject))
        }
        return o
    }
}

/// One pretraining (supervised) step.
public struct PretrainMetrics: Sendable, Equatable {
    public var step: Int
    /// Mean cross-entropy (nats) over answer tokens.
    public var loss: Double
    /// Fraction of answer tokens the training engine ranks first (teacher-forced).
    public var tokenAccuracy: Double
    public var gradNorm: Double
    public var learningRate: Double
    public var lossScale: Double
    public var skipped: Bool
    public var wallTime: Double

    public func json(timing: Bool = false) -> JSONObject {
        var o: JSONObject = ["step": .int(step), "loss": .number(loss), "token_accuracy": .number(tokenAccuracy),
                             "grad_norm": .number(gradNorm), "lr": .number(learningRate),
                             "loss_scale": .number(lossScale), "skipped": .bool(skipped)]
        if timing { o.set("wall_time", .number(wallTime)) }
        return o
    }
}

/// Which prompts an evaluation uses.
public enum EvalSet: String, Sendable, Codable, CaseIterable {
    case sanity
    case heldOut = "heldout"
    /// The pool the sanity set is filtered from.
    case train
}

/// The result of `eval`.
public struct EvalResult: Sendable, Equatable {
    public var set: EvalSet
    public var greedy: Bool
    /// Responses scored.
    public var n: Int
    public var accuracy: Double
    public var reward: Double
    /// Mean response length in tokens, <eos> included.
    public var meanLength: Double

    /// `{"n", "accuracy", "reward", "mean_length"}` (README), then the set and mode.
    public var json: JSONObject {
        ["n": .int(n), "accuracy": .number(accuracy), "reward": .number(reward), "mean_length": .number(meanLength),
         "set": .string(set.rawValue), "greedy": .bool(greedy)]
    }
}

/// How a sanity set was built: pass rates of the candidates over k samples.
public struct SanityReport: Sendable, Equatable {
    public var candidates: Int
    public var samples: Int
    public var low: Double
    public var high: Double
    /// Prompts kept (pass rate in [low, high]).
    public var kept: Int
    /// histogram[j] = candidates solved j times out of `samples`.
    public var histogram: [Int]
    /// Mean pass rate of the kept prompts (the base level of the sanity test) and of all.
    public var keptPassRate: Double
    public var overallPassRate: Double

    public var json: JSONObject {
        ["candidates": .int(candidates), "samples": .int(samples), "low": .number(low), "high": .number(high),
         "kept": .int(kept), "kept_pass_rate": .number(keptPassRate), "overall_pass_rate": .number(overallPassRate),
         "histogram": .numbers(histogram)]
    }
}

// The settings of an RL step, with their ranges, and the names the shell uses.

import Numerics

/// The policy-gradient algorithms (`help algo` gives each formula). Each is a per-token gradient of the
/// loss with respect to log π_θ (see `Losses.swift` for the formulas as implemented).
public enum Algorithm: String, CaseIterable, Sendable, Codable, Hashable {
    case pg
    case grpo
    case drgrpo
    case gspo
    case tokenTIS = "token-tis"
    case seqTIS = "seq-tis"
    case seqMIS = "seq-mis"
    case pgSeqIS = "pg-seq-is"

    /// The name as printed: `GRPO`, `token-level TIS`…
    public var title: String {
        switch self {
        case .pg: return "PG (REINFORCE)"
        case .grpo: return "GRPO (PPO-clip)"
        case .drgrpo: return "Dr.GRPO"
        case .gspo: return "GSPO"
        case .tokenTIS: return "token-level TIS"
        case .seqTIS: return "sequence-level TIS"
        case .seqMIS: return "sequence-level MIS"
        case .pgSeqIS: return "PG-Seq-IS"
        }
    }

    /// The loss as a formula (per token t of response i; sg = stop-gradient).
    public var formula: String {
        switch self {
        case .pg: return "L = -A_i * log pi_theta(y_t)"
        case .grpo: return "L = -min(r_t*A_i, clip(r_t, 1-eps_low, 1+eps_high)*A_i),  r_t = pi_theta(y_t)/pi_old(y_t)"
        case .drgrpo: return "L = -min(r_t*A_i, clip(r_t, 1-eps_low, 1+eps_high)*A_i),  A_i = R_i - mean(R_group),  sum / (sequences * max_len)"
        case .gspo: return "L_i = -min(s_i*A_i, clip(s_i, 1-gspo_low, 1+gspo_high)*A_i),  s_i = exp(mean_t log(pi_theta(y_t)/pi_old(y_t)))"
        case .tokenTIS: return "L = sg(min(rho_t, C_token)) * PPO-clip_t,  rho_t = pi_old(y_t)/mu(y_t)"
        case .seqTIS: return "L = sg(min(rho_i, C_seq)) * PPO-clip_t,  rho_i = prod_t pi_old(y_t)/mu(y_t)"
        case .seqMIS: return "L = sg(rho_i * 1[rho_i <= C_seq]) * PPO-clip_t,  rho_i = prod_t pi_old(y_t)/mu(y_t)"
        case .pgSeqIS: return "L = -sg(min(prod_t pi_theta(y_t)/mu(y_t), C_seq)) * A_i * log pi_theta(y_t)"
        }
    }

    /// One paragraph for `help algo`.
    public var explanation: String {
        switch self {
        case .pg:
            return "REINFORCE with the advantage as baseline-corrected reward. Samples come from the rollout engine's mu but the gradient is taken of the training engine's pi, with no correction: the plain on-policy estimator, which silently becomes off-policy when the engines disagree."
        case .grpo:
            return "PPO's clipped surrogate per token with group-relative advantages. The ratio r_t compares the policy being updated with pi_old, the training engine's recomputation before the update, so it corrects for minibatch staleness but not for the rollout/training mismatch (mu is never used). With one minibatch r_t = 1 and GRPO equals PG with token-mean aggregation."
        case .drgrpo:
            return "GRPO without its two length and difficulty biases (Liu et al., 'Understanding R1-Zero-Like Training'): the advantage is R - mean of the group (no division by the standard deviation) and token losses are summed and divided by a constant, sequences x the response-length limit, instead of by each response's length. Setting it overrides the advantage and aggregation settings."
        case .gspo:
            return "Group Sequence Policy Optimization: one ratio per response, the geometric mean of the token ratios s_i = exp(mean_t log(pi_theta/pi_old)), clipped very tightly (default [1-3e-4, 1+4e-4]) and averaged over responses. Each token's gradient is -A_i * s_i / |y_i| while s_i is inside the clip range. Like GRPO it never looks at mu."
        case .tokenTIS:
            return "Truncated importance sampling per token (Yao et al.): the PPO-clip loss of each token is weighted by rho_t = pi_old/mu, the mismatch ratio between the training engine and the rollout engine, capped at C_token (default 2). The weight is a constant (stop-gradient). Corrects the mismatch token by token, with bias from the cap."
        case .seqTIS:
            return "Truncated importance sampling per sequence: every token of response i is weighted by the product of its tokens' mismatch ratios rho_i = prod_t pi_old/mu, capped at C_seq. Unbiased for the sequence-level objective below the cap; the product grows with length, so long responses hit the cap more often."
        case .seqMIS:
            return "Masked importance sampling per sequence (Liu, Li et al., 'When Speed Kills Stability'): weight rho_i when rho_i <= C_seq, and drop the response entirely (weight 0) when rho_i is above the cap. Responses the rollout engine made much more likely than the trainer would are excluded instead of clipped."
        case .pgSeqIS:
            return "Policy gradient with a sequence-level importance weight against the rollout engine: each token's REINFORCE term is weighted by min(prod_t pi_theta/mu, C_seq), taken as a constant. No PPO clipping; the weight uses the current policy, so later minibatches correct for staleness and mismatch together."
        }
    }

    /// Whether the loss uses the PPO ratio clip (and so reports a clip fraction).
    public var usesPPOClip: Bool {
        switch self {
        case .grpo, .drgrpo, .tokenTIS, .seqTIS, .seqMIS, .gspo: return true
        case .pg, .pgSeqIS: return false
        }
    }

    public static func parse(_ text: String) throws(NumericsError) -> Algorithm {
        let word = String(text.lowercased().map { $0 == "_" ? "-" : $0 })
        let aliases: [String: Algorithm] = ["reinforce": .pg, "ppo": .grpo, "dr-grpo": .drgrpo, "dr.grpo": .drgrpo,
                                            "tis": .tokenTIS, "mis": .seqMIS, "seq-is": .pgSeqIS]
        if let a = Algorithm(rawValue: word) ?? aliases[word] { return a }
        let names = Algorithm.allCases.map(\.rawValue)
        let hint = closestMatch(to: word, among: names).map { "; did you mean \($0)?" } ?? ""
        throw .invalidArgument("unknown algorithm '\(text)'\(hint) algorithms: \(names.joined(separator: " "))")
    }
}

/// How token losses of a minibatch are combined into one number (verl's `loss_agg_mode`).
public enum LossAggregation: String, CaseIterable, Sendable, Codable, Hashable {
    /// Σ_i Σ_t ℓ_it / Σ_i |y_i|: every token counts the same (verl's default, DAPO).
    case tokenMean = "token-mean"
    /// (1/n) Σ_i Σ_t ℓ_it: each response's token sum, averaged over responses.
    case seqMeanTokenSum = "seq-mean-token-sum"
    /// (1/n) Σ_i (1/|y_i|) Σ_t ℓ_it: original GRPO, GSPO.
    case seqMeanTokenMean = "seq-mean-token-mean"
    /// Σ_i Σ_t ℓ_it / (n · L_max), L_max the response-length limit: Dr.GRPO.
    case constant = "constant"

    public static func parse(_ text: String) throws(NumericsError) -> LossAggregation {
        if let a = LossAggregation(rawValue: text.lowercased()) { return a }
        if text.lowercased() == "drgrpo" || text.lowercased() == "seq-mean-token-sum-norm" { return .constant }
        let names = LossAggregation.allCases.map(\.rawValue)
        let hint = closestMatch(to: text.lowercased(), among: names).map { "; did you mean \($0)?" } ?? ""
        throw .invalidArgument("unknown loss aggregation '\(text)'\(hint) choices: \(names.joined(separator: " "))")
    }
}

/// How rewards become advantages within a group (the samples of one prompt).
public enum AdvantageMode: String, CaseIterable, Sendable, Codable, Hashable {
    /// (R − mean) / (std + 1e-6), std with Bessel's correction (n − 1), as verl and TRL.
    case groupNormalised = "group"
    /// R − mean (Dr.GRPO; the FP16 paper's sanity runs).
    case meanOnly = "mean"
    /// R itself (no baseline).
    case raw = "raw"

    public static func parse(_ text: String) throws(NumericsError) -> AdvantageMode {
        switch text.lowercased() {
        case "group", "group-normalised", "group-normalized", "normalised", "normalized", "std": return .groupNormalised
        case "mean", "mean-only": return .meanOnly
        case "raw", "none": return .raw
        default:
            throw .invalidArgument("unknown advantage '\(text)' choices: \(AdvantageMode.allCases.map(\.rawValue).joined(separator: " "))")
        }
    }
}

/// Settings of the FP16 loss scaler.
public struct LossScalerSettings: Sendable, Hashable, Codable {
    /// Starting scale (2^16, as Qi et al.).
    public var initialScale: Double = 65536
    /// Clean updates after which the scale doubles (verl's patch uses 400; Megatron 1000).
    public var growthInterval: Int = 400
    /// A fixed scale: never grows or backs off (steps with inf/NaN are still skipped).
    public var isStatic: Bool = false
    /// Lower bound of the scale when backing off.
    public var minScale: Double = 1

    public init(initialScale: Double = 65536, growthInterval: Int = 400, isStatic: Bool = false, minScale: Double = 1) {
        self.initialScale = initialScale
        self.growthInterval = growthInterval
        self.isStatic = isStatic
        self.minScale = minScale
    }
}

/// Routing replay for a sparse model (verl `actor.router_replay.mode`: disabled, R2, R3).
public enum RoutingReplay: String, Sendable, Hashable, Codable, CaseIterable {
    /// Each forward routes with its own router.
    case off
    /// Later minibatches replay the experts of the training engine's π_old forward.
    case r2
    /// Every training forward replays the experts the rollout engine chose ("rollout
    /// routing replay"); the gate weights still come from the training router.
    case r3
}

/// The settings that only a sparse model uses.
public struct MixtureSettings: Sendable, Hashable, Codable {
    public var routingReplay: RoutingReplay = .off
    /// Weight of Mixtral's load-balancing loss in every training loss (its
    /// `router_aux_loss_coef`, 0.001).
    public var loadBalancing: Double = 0.001

    public init() {}
}

/// Everything that decides an RL step. Value type; `validate()` names the first bad value.
public struct RLSettings: Sendable, Hashable, Codable {
    public var algorithm: Algorithm = .grpo
    /// Distinct prompts per step (64 × 8 as Qi et al.'s sanity runs).
    public var promptsPerStep: Int = 64
    /// Responses sampled per prompt (the group).
    public var samplesPerPrompt: Int = 8
    /// AdamW learning rate (constant). Qi et al. use 1e-6 on 1.5B–8B models; the lab's
    /// 190 K-parameter model, pretrained at 2e-3, needs a larger one: 3e-4 takes the base
    /// model's sanity set from ≈0.47 to 0.95 in ≈250 steps, 1e-3 is unstable.
    public var learningRate: Double = 3e-4
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var adamEpsilon: Double = 1e-8
    public var weightDecay: Double = 0
    /// Global gradient-norm clip (0 = no clipping).
    public var gradClip: Double = 1
    /// Sampling temperature of the rollout; log π is recomputed at the same temperature.
    public var temperature: Double = 1
    public var topP: Double = 1
    /// Response-length limit; nil = the task's default (longest answer + 4).
    public var maxResponseLength: Int? = nil
    /// Optimizer updates per rollout batch (PPO-style): the batch split in this many parts.
    public var minibatches: Int = 1
    /// PPO clip range [1 − clipLow, 1 + clipHigh].
    public var clipLow: Double = 0.2
    public var clipHigh: Double = 0.2
    /// GSPO's sequence-ratio clip range [1 − gspoClipLow, 1 + gspoClipHigh].
    public var gspoClipLow: Double = 3e-4
    public var gspoClipHigh: Double = 4e-4
    /// Cap C of token-level importance weights (TIS).
    public var tokenCap: Double = 2
    /// Cap C of sequence-level importance weights (sequence TIS, MIS, PG-Seq-IS).
    public var sequenceCap: Double = 2
    public var aggregation: LossAggregation = .tokenMean
    public var advantage: AdvantageMode = .groupNormalised
    /// FP16 loss scaling (used only when the training engine's gradient format is FP16).
    public var lossScaler = LossScalerSettings()
    /// Rejection, veto and batch normalisation beside the algorithm's weight; stored only
    /// when not the default, so older checkpoints (without it) read as before.
    private var corrections: CorrectionSettings?
    /// A sparse model's settings; stored only when not the default, as `corrections`.
    private var mixture: MixtureSettings?

    public init() {}

    /// Routing replay and the load-balancing loss of a sparse model.
    public var moe: MixtureSettings {
        get { mixture ?? MixtureSettings() }
        set { mixture = newValue == MixtureSettings() ? nil : newValue }
    }

    /// The corrections beside the algorithm's own weight (Corrections.swift).
    public var correction: CorrectionSettings {
        get { corrections ?? CorrectionSettings() }
        set { corrections = newValue == CorrectionSettings() ? nil : newValue }
    }

    /// The aggregation in force: Dr.GRPO and GSPO fix their own.
    public var effectiveAggregation: LossAggregation {
        switch algorithm {
        case .drgrpo: return .constant
        case .gspo: return .seqMeanTokenMean
        default: return aggregation
        }
    }

    /// The advantage in force: Dr.GRPO fixes R − mean.
    public var effectiveAdvantage: AdvantageMode { algorithm == .drgrpo ? .meanOnly : advantage }

    /// The response-length limit for a task.
    public func maxResponse(for task: TaskSpec) -> Int { maxResponseLength ?? task.defaultMaxResponse }

    /// Checks every value; the message names the setting, the value and the range.
    public func validate() throws(NumericsError) {
        func need(_ ok: Bool, _ message: String) throws(NumericsError) { if !ok { throw .invalidArgument(message) } }
        func finite(_ x: Double) -> Bool { x.isFinite }
        try need(promptsPerStep >= 1 && promptsPerStep <= 4096, "prompts must be between 1 and 4096 (got \(promptsPerStep))")
        try need(samplesPerPrompt >= 1 && samplesPerPrompt <= 1024, "samples must be between 1 and 1024 (got \(samplesPerPrompt))")
        try need(finite(learningRate) && learningRate > 0 && learningRate <= 1, "lr must be in (0, 1] (got \(learningRate))")
        try need(finite(beta1) && beta1 >= 0 && beta1 < 1, "beta1 must be in [0, 1) (got \(beta1))")
        try need(finite(beta2) && beta2 >= 0 && beta2 < 1, "beta2 must be in [0, 1) (got \(beta2))")
        try need(finite(adamEpsilon) && adamEpsilon > 0, "adam_eps must be positive (got \(adamEpsilon))")
        try need(finite(weightDecay) && weightDecay >= 0 && weightDecay < 1, "weight_decay must be in [0, 1) (got \(weightDecay))")
        try need(finite(gradClip) && gradClip >= 0, "grad_clip must be 0 (off) or positive (got \(gradClip))")
        try need(finite(temperature) && temperature >= 0.05 && temperature <= 10, "temperature must be between 0.05 and 10 (got \(temperature))")
        try need(finite(topP) && topP > 0 && topP <= 1, "top_p must be in (0, 1] (got \(topP))")
        if let m = maxResponseLength { try need(m >= 1 && m <= 8192, "max_len must be between 1 and 8192 (got \(m))") }
        try correction.validate()
        try need(finite(moe.loadBalancing) && moe.loadBalancing >= 0 && moe.loadBalancing <= 100,
                 "aux_loss must be between 0 and 100 (got \(moe.loadBalancing))")
        try need(minibatches >= 1, "minibatches must be at least 1 (got \(minibatches))")
        try need(minibatches <= promptsPerStep * samplesPerPrompt,
                 "minibatches (\(minibatches)) cannot exceed the responses per step (\(promptsPerStep * samplesPerPrompt))")
        try need(finite(clipLow) && clipLow >= 0 && clipLow < 1, "clip_low must be in [0, 1) (got \(clipLow))")
        try need(finite(clipHigh) && clipHigh >= 0, "clip_high must be 0 or positive (got \(clipHigh))")
        try need(finite(gspoClipLow) && gspoClipLow >= 0 && gspoClipLow < 1, "gspo_clip_low must be in [0, 1) (got \(gspoClipLow))")
        try need(finite(gspoClipHigh) && gspoClipHigh >= 0, "gspo_clip_high must be 0 or positive (got \(gspoClipHigh))")
        try need(finite(tokenCap) && tokenCap >= 1, "token_cap C must be at least 1 (got \(tokenCap))")
        try need(finite(sequenceCap) && sequenceCap >= 1, "seq_cap C must be at least 1 (got \(sequenceCap))")
        let s = lossScaler
        try need(finite(s.initialScale) && s.initialScale >= 1 && s.initialScale <= 0x1p100,
                 "loss_scale must be between 1 and 2^100 (got \(s.initialScale))")
        try need(s.growthInterval >= 1, "scale_growth_interval must be at least 1 (got \(s.growthInterval))")
        try need(finite(s.minScale) && s.minScale > 0 && s.minScale <= s.initialScale,
                 "min_loss_scale must be positive and at most loss_scale (got \(s.minScale))")
    }
}

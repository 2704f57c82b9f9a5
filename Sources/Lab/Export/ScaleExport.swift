// `export verl` and `export slime`: the lab's current recipe as the configuration of a real
// framework, for the run at scale. Key names are taken from the frameworks' own sources, at
// the versions named in `ScaleFramework.checked` (and the README); a lab setting with no
// counterpart gets a line that says so rather than a guess.

import Engines
import RL

/// A framework the lab's recipe can be exported to.
public enum ScaleFramework: String, Sendable, CaseIterable {
    case verl, slime

    /// The version whose sources the keys were checked against.
    public var checked: String {
        switch self {
        case .verl: return "volcengine/verl 0.8.0.dev (v0.7.0-125-gb178a3cd5, 2026-01-29)"
        case .slime: return "THUDM/slime v0.3.1-38-g624b824a8 (2026-08-21)"
        }
    }
}

/// What an export is made from: both engines' profiles, the preset's name, the RL settings.
public struct ScaleRecipe: Sendable {
    public var rollout: PrecisionProfile
    public var training: PrecisionProfile
    public var preset: String?
    public var settings: RLSettings
    /// The longest response, in tokens (`max_len`, or the task's default).
    public var maxResponse: Int

    public init(rollout: PrecisionProfile, training: PrecisionProfile, preset: String?, settings: RLSettings, maxResponse: Int) {
        self.rollout = rollout
        self.training = training
        self.preset = preset
        self.settings = settings
        self.maxResponse = maxResponse
    }
}

/// How an engine computes, as frameworks name it.
enum EnginePrecision: Equatable {
    /// Products and activations in one torch dtype (`float32`, `bfloat16`, `float16`).
    case dtype(String)
    /// FP8 E4M3 products around a BF16 model; `mx`: MXFP8 blocks of 32 with E8M0 scales.
    case fp8(mx: Bool)
    /// Anything else (another eXmY, a mixed hand-made profile): no framework has it.
    case other(String)

    init(_ profile: PrecisionProfile) {
        let operand = profile.fprop.input.format
        if operand.exponentBits + operand.mantissaBits + 1 == 8 {
            self = .fp8(mx: profile.fprop.input.powerOfTwoScales || profile.fprop.input.formula == .mx)
            return
        }
        switch profile.activation.name {
        case "fp32": self = .dtype("float32")
        case "bf16": self = .dtype("bfloat16")
        case "fp16": self = .dtype("float16")
        default: self = .other("activations in \(profile.activation.name)")
        }
    }
}

/// The lines of an export: settings (`key=value` for verl, flags for slime) and `#` notes.
public struct ScaleExport: Sendable, Equatable {
    public var framework: ScaleFramework
    /// Every line in order: settings, and comments starting with `#`.
    public var lines: [String]

    /// The setting lines only (what goes on the command line).
    public var settings: [String] { lines.filter { !$0.hasPrefix("#") } }
    /// The lines naming a lab setting that the framework has no counterpart for.
    public var missing: [String] { lines.filter { $0.hasPrefix(ScaleExport.missingPrefix) } }

    static let missingPrefix = "# no counterpart: "

    public var text: String { lines.joined(separator: "\n") }

    public init(_ framework: ScaleFramework, _ recipe: ScaleRecipe) {
        self.framework = framework
        var b = Builder(framework: framework)
        let s = recipe.settings
        b.note("\(framework.rawValue) \(framework == .verl ? "overrides for python3 -m verl.trainer.main_ppo" : "flags for train.py"), checked against \(framework.checked)")
        b.note("the lab's recipe: preset \(recipe.preset ?? "custom"), algo \(s.algorithm.rawValue), \(s.promptsPerStep) prompts x \(s.samplesPerPrompt) samples; add the model, data and cluster")
        switch framework {
        case .verl: verl(&b, recipe)
        case .slime: slime(&b, recipe)
        }
        b.missing("the engine switches (split_k, chunked_softmax, fused_norm, fused_silu, logits_fp32)",
                  "they are the kernels the inference and training engines choose, not settings")
        lines = b.lines
    }
}

/// Collects lines in the framework's syntax.
private struct Builder {
    let framework: ScaleFramework
    var lines: [String] = []

    mutating func set(_ key: String, _ value: String) {
        lines.append(framework == .verl ? "\(key)=\(value)" : "\(key) \(value)")
    }
    mutating func flag(_ name: String) { lines.append(name) }
    mutating func note(_ text: String) { lines.append("# " + text) }
    mutating func missing(_ what: String, _ why: String) { lines.append(ScaleExport.missingPrefix + what + ": " + why) }
}


// MARK: - verl

private func verl(_ b: inout Builder, _ recipe: ScaleRecipe) {
    let s = recipe.settings
    let rollout = EnginePrecision(recipe.rollout), training = EnginePrecision(recipe.training)
    b.note("precision")
    switch rollout {
    case .dtype(let name): b.set("actor_rollout_ref.rollout.dtype", name)
    case .fp8(mx: false):
        b.set("actor_rollout_ref.rollout.dtype", "bfloat16")
        b.set("actor_rollout_ref.rollout.quantization", "fp8")
        b.note("FP8 rollout: verl quantizes each weight sync to E4M3 in 128x128 blocks and vLLM quantizes activations per 1x128 group, the lab's recipe with G = 128 (the lab's G is hidden/4: 16 on its default model)")
    case .fp8(mx: true): b.missing("MXFP8 rollout", "rollout.quantization takes fp8 or torchao, not MX blocks of 32")
    case .other(let what): b.missing("rollout \(what)", "rollout.dtype is a torch dtype")
    }
    switch training {
    case .dtype("float32"):
        b.missing("training in float32", "fsdp_config.dtype is bfloat16 or float16 (mixed precision); the master weights are float32 either way")
    case .dtype(let name): b.set("actor_rollout_ref.actor.fsdp_config.dtype", name)
    case .fp8: b.missing("FP8 training products", "verl's FSDP actor computes in bfloat16 or float16")
    case .other(let what): b.missing("training \(what)", "fsdp_config.dtype is bfloat16 or float16")
    }
    if recipe.training.gradient.name == "fp16" {
        let l = s.lossScaler
        if !l.isStatic && l.initialScale == 65536 && l.growthInterval == 400 {
            b.note("FP16 loss scaling: fsdp_config.dtype=float16 makes verl's actor use torch's ShardedGradScaler(growth_interval=400): from 2^16, x2 after 400 clean steps, x0.5 and the step skipped on inf/NaN, as the lab's dynamic scale")
        } else {
            b.missing("loss_scale \(l.isStatic ? numberText(l.initialScale) + " (static)" : "dynamic from \(numberText(l.initialScale)), growth every \(l.growthInterval)")",
                      "verl's ShardedGradScaler is fixed at 2^16 and growth_interval=400")
        }
    }
    b.set("actor_rollout_ref.rollout.calculate_log_probs", "True")
    b.note("rollout log-probabilities: the mismatch metrics (rollout_corr/...) and any correction need them")

    b.note("algorithm")
    b.set("algorithm.adv_estimator", "grpo")
    switch s.effectiveAdvantage {
    case .groupNormalised: b.set("algorithm.norm_adv_by_std_in_grpo", "True")
    case .meanOnly: b.set("algorithm.norm_adv_by_std_in_grpo", "False")
    case .raw: b.missing("advantage raw", "verl's GRPO advantage is always centred on the group mean")
    }
    let c = "algorithm.rollout_correction."
    switch s.algorithm {
    case .pg:
        b.set(c + "bypass_mode", "True")
        b.set(c + "loss_type", "reinforce")
        b.set(c + "rollout_is", "null")
        b.note("pg: REINFORCE on the rollout's samples, -A * log pi, no ratio and no clip")
    case .pgSeqIS:
        b.set(c + "bypass_mode", "True")
        b.set(c + "loss_type", "reinforce")
        b.set(c + "rollout_is", "sequence")
        b.set(c + "rollout_is_threshold", numberText(s.sequenceCap))
        b.note("pg-seq-is: RolloutCorrectionConfig.bypass_pg_is: -min(prod pi_theta/mu, C) * A * log pi")
    default:
        b.set("actor_rollout_ref.actor.policy_loss.loss_mode", s.algorithm == .gspo ? "gspo" : "vanilla")
        b.set(c + "bypass_mode", "False")
        switch s.algorithm {
        case .tokenTIS:
            b.set(c + "rollout_is", "token")
            b.set(c + "rollout_is_threshold", numberText(s.tokenCap))
        case .seqTIS:
            b.set(c + "rollout_is", "sequence")
            b.set(c + "rollout_is_threshold", numberText(s.sequenceCap))
        case .seqMIS:
            b.set(c + "rollout_is", "sequence")
            b.set(c + "rollout_is_threshold", numberText(s.sequenceCap))
            b.set(c + "rollout_rs", "seq_sum_k1")
            b.set(c + "rollout_rs_threshold", "\(numberText(1 / s.sequenceCap))_485165195.4")
            b.note("seq-mis: seq_sum_k1 keeps 1/upper <= rho <= 1/lower (its statistic is -log rho, rho = pi_old/mu): lower 1/C keeps rho <= C and upper e^20 drops no small rho, as the lab's mask 1[rho <= C]")
        default:
            b.set(c + "rollout_is", "null")
        }
        if s.algorithm != .seqMIS { b.set(c + "rollout_rs", "null") }
        let (low, high) = s.algorithm == .gspo ? (s.gspoClipLow, s.gspoClipHigh) : (s.clipLow, s.clipHigh)
        b.set("actor_rollout_ref.actor.clip_ratio_low", numberText(low))
        b.set("actor_rollout_ref.actor.clip_ratio_high", numberText(high))
    }
    switch s.effectiveAggregation {
    case .constant:
        b.set("actor_rollout_ref.actor.loss_agg_mode", "seq-mean-token-sum-norm")
        b.set("actor_rollout_ref.actor.loss_scale_factor", String(recipe.maxResponse))
    case let mode: b.set("actor_rollout_ref.actor.loss_agg_mode", mode.rawValue)
    }
    b.set("actor_rollout_ref.actor.use_kl_loss", "False")
    b.set("algorithm.use_kl_in_reward", "False")
    b.set("actor_rollout_ref.actor.entropy_coeff", "0")

    b.note("batch, sampling, optimizer")
    b.set("data.train_batch_size", String(s.promptsPerStep))
    b.set("actor_rollout_ref.rollout.n", String(s.samplesPerPrompt))
    b.set("actor_rollout_ref.actor.ppo_mini_batch_size", String(max(1, s.promptsPerStep / s.minibatches)))
    b.set("actor_rollout_ref.actor.ppo_epochs", "1")
    b.set("data.max_response_length", String(recipe.maxResponse))
    b.set("actor_rollout_ref.rollout.temperature", numberText(s.temperature))
    b.set("actor_rollout_ref.rollout.top_p", numberText(s.topP))
    b.set("actor_rollout_ref.actor.optim.lr", numberText(s.learningRate))
    b.set("actor_rollout_ref.actor.optim.weight_decay", numberText(s.weightDecay))
    b.set("actor_rollout_ref.actor.optim.betas", "[\(numberText(s.beta1)),\(numberText(s.beta2))]")
    b.set("actor_rollout_ref.actor.grad_clip", numberText(s.gradClip))
    b.missing("adam_eps \(numberText(s.adamEpsilon))", "verl's optim config has no eps (torch.optim.AdamW's default is 1e-08)")
}

// MARK: - slime

private func slime(_ b: inout Builder, _ recipe: ScaleRecipe) {
    let s = recipe.settings
    let rollout = EnginePrecision(recipe.rollout), training = EnginePrecision(recipe.training)
    b.note("precision")
    switch rollout {
    case .dtype(let name): b.set("--sglang-dtype", name)
    case .fp8(mx: false):
        b.set("--hf-checkpoint", "/path/to/model-fp8-hf")
        b.note("FP8 rollout: SGLang serves an FP8 checkpoint made by tools/convert_hf_to_fp8.py (E4M3, 128x128 weight blocks); slime quantizes each weight update by its quantization_config, and training stays BF16")
    case .fp8(mx: true): b.missing("MXFP8 rollout", "slime's FP8 rollout is block-scaled E4M3, not MX blocks of 32")
    case .other(let what): b.missing("rollout \(what)", "--sglang-dtype is a torch dtype")
    }
    switch training {
    case .dtype("float32"): b.note("training in float32: neither --bf16 nor --fp16")
    case .dtype("bfloat16"): b.flag("--bf16")
    case .dtype("float16"): b.flag("--fp16")
    case .dtype(let name): b.missing("training in \(name)", "Megatron trains in float32, bf16 or fp16")
    case .fp8(mx: false):
        b.flag("--bf16")
        b.set("--fp8-format", "e4m3")
        b.set("--fp8-recipe", "blockwise")
    case .fp8(mx: true): b.missing("MXFP8 training", "slime's FP8 training recipe is blockwise")
    case .other(let what): b.missing("training \(what)", "Megatron trains in float32, bf16 or fp16")
    }
    if recipe.training.gradient.name == "fp16" {
        let l = s.lossScaler
        if l.isStatic {
            b.set("--loss-scale", numberText(l.initialScale))
        } else {
            b.set("--initial-loss-scale", numberText(l.initialScale))
            b.set("--min-loss-scale", numberText(l.minScale))
            b.set("--loss-scale-window", String(l.growthInterval))
            b.set("--hysteresis", "1")
            b.note("FP16 loss scaling: Megatron's dynamic scaler, x2 after --loss-scale-window clean steps, x0.5 at the first overflow (--hysteresis 1), as the lab's")
        }
    }

    b.note("algorithm")
    let mis = "examples.train_infer_mismatch_helper.mis.compute_mis_weights_with_cp"
    switch s.algorithm {
    case .pg, .pgSeqIS:
        b.missing("algo \(s.algorithm.rawValue)", "slime's policy losses are PPO-clip or GSPO; there is no plain REINFORCE loss")
        b.set("--advantage-estimator", "grpo")
    case .gspo: b.set("--advantage-estimator", "gspo")
    default: b.set("--advantage-estimator", "grpo")
    }
    switch s.algorithm {
    case .tokenTIS:
        b.flag("--use-tis")
        b.set("--tis-clip", numberText(s.tokenCap))
        b.note("mismatch metrics: --get-mismatch-metrics needs --custom-tis-function-path \(mis)")
    case .seqTIS, .seqMIS:
        b.flag("--use-tis")
        b.set("--custom-config-path", "mis.yaml")
        b.set("--custom-tis-function-path", mis)
        b.flag("--get-mismatch-metrics")
        b.note("mis.yaml: use_tis: true, use_rs: false, tis_level: sequence, tis_mode: \(s.algorithm == .seqTIS ? "truncate" : "mask"), tis_lower_bound: 0.0, tis_upper_bound: \(numberText(s.sequenceCap)), tis_batch_normalize: false")
    default:
        b.flag("--get-mismatch-metrics")
        b.set("--custom-tis-function-path", mis)
        b.note("no correction: the function only reports the mismatch metrics while --use-tis is off")
    }
    if s.algorithm != .pg && s.algorithm != .pgSeqIS {
        let (low, high) = s.algorithm == .gspo ? (s.gspoClipLow, s.gspoClipHigh) : (s.clipLow, s.clipHigh)
        b.set("--eps-clip", numberText(low))
        b.set("--eps-clip-high", numberText(high))
    }
    switch s.effectiveAdvantage {
    case .groupNormalised: break
    case .meanOnly: b.flag("--disable-grpo-std-normalization")
    case .raw: b.missing("advantage raw", "slime's GRPO advantage is always centred on the group mean")
    }
    switch s.effectiveAggregation {
    case .tokenMean: b.flag("--calculate-per-token-loss")
    case .seqMeanTokenMean: b.note("loss: slime's default, the mean over samples of each sample's token mean")
    case let mode: b.missing("loss_agg \(mode.rawValue)", "slime reduces per token (--calculate-per-token-loss) or per sample; another needs --custom-pg-loss-reducer-function-path")
    }

    b.note("batch, sampling, optimizer")
    b.set("--rollout-batch-size", String(s.promptsPerStep))
    b.set("--n-samples-per-prompt", String(s.samplesPerPrompt))
    b.set("--global-batch-size", String(max(1, s.promptsPerStep * s.samplesPerPrompt / s.minibatches)))
    b.set("--rollout-max-response-len", String(recipe.maxResponse))
    b.set("--rollout-temperature", numberText(s.temperature))
    b.set("--rollout-top-p", numberText(s.topP))
    b.set("--lr", numberText(s.learningRate))
    b.set("--weight-decay", numberText(s.weightDecay))
    b.set("--adam-beta1", numberText(s.beta1))
    b.set("--adam-beta2", numberText(s.beta2))
    b.set("--adam-eps", numberText(s.adamEpsilon))
    b.set("--clip-grad", numberText(s.gradClip))
}

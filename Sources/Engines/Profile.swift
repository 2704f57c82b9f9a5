// Precision profiles: where each engine rounds, to what, and how it is implemented.

import Model
import Numerics

/// How one kind of matrix product quantizes its activation-side operand and accumulates.
/// The weight-side operand is the engine's quantized weights (`PrecisionProfile.weights`).
public struct GemmSpec: Sendable, Hashable {
    /// The activation (or gradient) operand's quantization; its scaling runs along K.
    public var input: Quantization
    public var accumulation: Accumulation

    public init(input: Quantization, accumulation: Accumulation = .fp32) {
        self.input = input
        self.accumulation = accumulation
    }
}

/// How the scale of an operand quantized per product (activations, gradients) is chosen.
/// Weights are quantized once per sync from their own amax.
public enum ScaleRule: Sendable, Hashable, CustomStringConvertible {
    /// From the operand's own amax now (per tensor, group or block): DeepSeek-V3, Jet-RL,
    /// TransformerEngine's current scaling and block scaling.
    case current
    /// TransformerEngine's `DelayedScaling`, per tensor: the scale comes from the largest amax
    /// of the last `history` uses of this operand (each product call is one use), times
    /// 2^`margin`; this use's amax joins the history afterwards. Before the first use the
    /// history is empty and the scale is 1 (TransformerEngine's initial state). An outlier
    /// beyond the history's range overflows: clamped with saturation, ±inf/NaN without,
    /// counted either way.
    case delayed(history: Int, margin: Int)

    /// TransformerEngine's defaults: a window of 1024, margin 0.
    public static let delayedDefault = ScaleRule.delayed(history: 1024, margin: 0)

    public var description: String {
        switch self {
        case .current: return "current"
        case .delayed(let h, let m): return "delayed/\(h)/\(m)"
        }
    }

    /// Parses `current`, `delayed` (window 1024, margin 0), `delayed/H` or `delayed/H/M`.
    public static func parse(_ text: String) throws(NumericsError) -> ScaleRule {
        let t = text.lowercased()
        if t == "current" { return .current }
        let parts = t.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if parts.first == "delayed", parts.count <= 3 {
            let numbers = parts.dropFirst().map { Int($0) }
            if numbers.allSatisfy({ $0 != nil }) {
                let h = numbers.count > 0 ? numbers[0]! : 1024
                let m = numbers.count > 1 ? numbers[1]! : 0
                guard (1...1_000_000).contains(h) else {
                    throw .invalidArgument("scale_rule=\(text): the history window must be 1…1000000 uses")
                }
                guard (0...64).contains(m) else {
                    throw .invalidArgument("scale_rule=\(text): the margin must be 0…64 (the scale is divided by 2^margin)")
                }
                return .delayed(history: h, margin: m)
            }
        }
        throw .invalidArgument("unknown scale rule '\(text)'; accepted: current, delayed, delayed/HISTORY, delayed/HISTORY/MARGIN (e.g. delayed/16/1)")
    }
}

/// The implementation differences between real engines that produce a mismatch even at
/// equal precision. Each can be switched on or off alone.
public struct MismatchSources: Sendable, Hashable {
    /// Split-K matrix products: K cut into this many ranges summed at the end (1 = off).
    public var splitK: Int
    /// Flash-decoding attention: keys in chunks of this length merged by log-sum-exp
    /// (0 = off: one pass over the whole row).
    public var softmaxChunk: Int
    /// Residual add + RMSNorm in one kernel (one rounding, statistics of the unrounded sum).
    public var fusedResidualNorm: Bool
    /// silu(gate)·up in one kernel (one rounding instead of two).
    public var fusedSiluMul: Bool
    /// Logits kept in float32 (the LM head's output not rounded to the activation format).
    public var logitsFP32: Bool
    /// A sparse MLP's router in float32 (weights, product and logits; Megatron's
    /// `moe_router_dtype=fp32`) instead of the activation format (Hugging Face's and vLLM's
    /// gate). It never takes FP8: DeepSeek-V3 keeps its gating in BF16 or FP32.
    public var routerFP32: Bool
    /// LoRA adapters merged into the weights, W + (α/r)·B·A in float32 rounded to the weight
    /// format at each sync (PEFT's `merge_and_unload` before a weight sync), instead of
    /// computed beside them. A rollout engine's choice: training computes the adapters apart,
    /// since only they train.
    public var loraMerged: Bool

    public init(splitK: Int = 1, softmaxChunk: Int = 0, fusedResidualNorm: Bool = false,
                fusedSiluMul: Bool = false, logitsFP32: Bool = false, routerFP32: Bool = false, loraMerged: Bool = false) {
        self.splitK = splitK
        self.softmaxChunk = softmaxChunk
        self.fusedResidualNorm = fusedResidualNorm
        self.fusedSiluMul = fusedSiluMul
        self.logitsFP32 = logitsFP32
        self.routerFP32 = routerFP32
        self.loraMerged = loraMerged
    }

    /// Every source off.
    public static let none = MismatchSources()
    /// What an inference engine does (vLLM-like): split-K products, flash-decoding
    /// attention, fused residual+norm and SiLU·mul kernels, logits in the activation format.
    public static let inference = MismatchSources(splitK: 4, softmaxChunk: 16, fusedResidualNorm: true,
                                                  fusedSiluMul: true, logitsFP32: false)
    /// What a training engine does (FSDP/Hugging Face-like): plain products, one-pass
    /// attention, separate kernels, and logits in float32 for the loss.
    public static let training = MismatchSources(logitsFP32: true)
    /// Jet-RL's condition in full: the kernels that produce each quantized operand are the
    /// same in both engines (residual+norm and SiLU·mul fused, logits in float32 in both),
    /// so the rollout's quantization points are the training forward's; the reduction
    /// orders (split-K products, chunked softmax) still differ.
    public static let jetRLInference = MismatchSources(splitK: 4, softmaxChunk: 16, fusedResidualNorm: true,
                                                       fusedSiluMul: true, logitsFP32: true)
    public static let jetRLTraining = MismatchSources(fusedResidualNorm: true, fusedSiluMul: true, logitsFP32: true)

    /// The switches by name, for `engine rollout|train NAME=on|off`.
    public static let names = ["split_k", "chunked_softmax", "fused_norm", "fused_silu", "logits_fp32", "router_fp32", "lora_merged"]

    /// Sets one switch: `on`, `off`, or a number for split_k (pieces) and chunked_softmax
    /// (chunk length).
    public mutating func set(_ name: String, _ value: String) throws(NumericsError) {
        let v = value.lowercased()
        func flag() throws(NumericsError) -> Bool {
            switch v {
            case "on", "true", "1", "yes": return true
            case "off", "false", "0", "no": return false
            default: throw .invalidArgument("\(name)=\(value): expected on or off")
            }
        }
        switch name {
        case "split_k":
            if let n = Int(v), n >= 1, n <= 64 { splitK = n } else { splitK = try flag() ? 4 : 1 }
        case "chunked_softmax":
            if let n = Int(v), n >= 2, n <= 4096 { softmaxChunk = n } else { softmaxChunk = try flag() ? 16 : 0 }
        case "fused_norm": fusedResidualNorm = try flag()
        case "fused_silu": fusedSiluMul = try flag()
        case "logits_fp32": logitsFP32 = try flag()
        case "router_fp32": routerFP32 = try flag()
        case "lora_merged": loraMerged = try flag()
        default:
            let hint = closestMatch(to: name, among: MismatchSources.names).map { "; did you mean \($0)?" } ?? ""
            throw .invalidArgument("unknown mismatch source '\(name)'\(hint) sources: \(MismatchSources.names.joined(separator: " "))")
        }
    }

    /// Each switch's state for display, in `names` order.
    public var states: [(String, String)] {
        [("split_k", splitK > 1 ? "on (\(splitK))" : "off"),
         ("chunked_softmax", softmaxChunk > 0 ? "on (\(softmaxChunk))" : "off"),
         ("fused_norm", fusedResidualNorm ? "on" : "off"),
         ("fused_silu", fusedSiluMul ? "on" : "off"),
         ("logits_fp32", logitsFP32 ? "on" : "off"),
         ("router_fp32", routerFP32 ? "on" : "off"),
         ("lora_merged", loraMerged ? "on" : "off")]
    }
}

/// Everything that decides how one engine computes: formats, quantization and recipes, and
/// implementation switches. Pure data.
public struct PrecisionProfile: Sendable, Hashable {
    /// Linear-layer weights as the engine holds them (e.g. BF16, or E4M3 per B×B block).
    public var weights: Quantization
    /// Embedding and norm weights, and biases (never FP8: they are not matrix-product operands).
    public var otherWeights: NumberFormat
    /// Stored activations: residual stream, norm outputs, q/k/v, MLP intermediates.
    public var activation: NumberFormat
    /// Forward products (FProp): `input` is the activation operand x.
    public var fprop: GemmSpec
    /// Backward products (training only). DGrad, dx = dy·W: `input` is the output gradient
    /// dy (along the output features), the other operand the engine's weights quantized
    /// along the output axis. WGrad, dW = dyᵀ·x: `input` is dy along the token axis.
    public var dgrad: GemmSpec
    public var wgrad: GemmSpec
    /// WGrad's other operand: the saved activation x re-quantized along the token axis.
    public var wgradActivation: Quantization
    /// How the scales of the operands quantized per product (x, dy) are chosen.
    public var scaleRule: ScaleRule
    /// Whether the LM head's products follow the recipe of the other linear layers (true) or
    /// stay plain: weights, x and dy in the activation format, float32 accumulation — as
    /// DeepSeek-V3's FP8 training and vLLM's FP8 serving keep the output head in BF16.
    public var quantizedHead: Bool
    /// Gradients flowing between operators (training only).
    public var gradient: NumberFormat
    /// Keys and values entering attention: the rollout's KV cache, and the same rounding of
    /// k and v in the training forward (8-bit formats are written clamped, scale 1, as vLLM's
    /// FP8 KV cache).
    public var kvCache: NumberFormat
    /// Softmax inputs and statistics are float32; this is the format of the probabilities
    /// fed to the P·V product.
    public var probabilities: NumberFormat
    public var sources: MismatchSources

    public init(weights: Quantization, otherWeights: NumberFormat, activation: NumberFormat, fprop: GemmSpec,
                dgrad: GemmSpec, wgrad: GemmSpec, wgradActivation: Quantization, scaleRule: ScaleRule = .current,
                quantizedHead: Bool = true, gradient: NumberFormat, kvCache: NumberFormat, probabilities: NumberFormat,
                sources: MismatchSources) {
        self.weights = weights
        self.otherWeights = otherWeights
        self.activation = activation
        self.fprop = fprop
        self.dgrad = dgrad
        self.wgrad = wgrad
        self.wgradActivation = wgradActivation
        self.scaleRule = scaleRule
        self.quantizedHead = quantizedHead
        self.gradient = gradient
        self.kvCache = kvCache
        self.probabilities = probabilities
        self.sources = sources
    }

    /// A profile with one format everywhere (FP32, BF16, FP16): weights and activations
    /// stored in it, products accumulating in float32 with their output rounded to it, norms
    /// and softmax computed in float32 inside and rounded on the way out — what frameworks
    /// do in that precision.
    public static func uniform(_ f: NumberFormat, sources: MismatchSources) -> PrecisionProfile {
        let q = Quantization(format: f)
        return PrecisionProfile(weights: q, otherWeights: f, activation: f, fprop: GemmSpec(input: q),
                                dgrad: GemmSpec(input: q), wgrad: GemmSpec(input: q), wgradActivation: q, gradient: f, kvCache: f,
                                probabilities: f, sources: sources)
    }

    /// FP8 matrix products (E4M3, activations per 1×G group along K, weights per B×B block,
    /// limited accumulation with promotion) around a BF16 model: DeepSeek-V3 / Jet-RL. The LM
    /// head stays BF16 (DeepSeek-V3, vLLM); `quantizedHead` puts it in FP8 too.
    /// Backward products quantize gradients per 1×G (DGrad) and both operands along the
    /// token axis, G×1 (WGrad); gradients between operators stay BF16. `backward` is the
    /// gradient operands' format: E4M3 (Jet-RL, DeepSeek-V3) or E5M2 (TransformerEngine's
    /// HYBRID format: E4M3 forward, E5M2 backward).
    public static func fp8(group: Int, block: Int, sources: MismatchSources,
                           accumulation: Accumulation = .hopperFP8, backward: NumberFormat = .e4m3) -> PrecisionProfile {
        let act = Quantization(format: .e4m3, saturate: true, granularity: .rowGroups(group))
        let w = Quantization(format: .e4m3, saturate: true, granularity: .blocks(block, block))
        let grad = Quantization(format: backward, saturate: true, granularity: .rowGroups(group))
        let gradT = Quantization(format: backward, saturate: true, granularity: .columnGroups(group))
        let actT = Quantization(format: .e4m3, saturate: true, granularity: .columnGroups(group))
        return PrecisionProfile(weights: w, otherWeights: .bf16, activation: .bf16,
                                fprop: GemmSpec(input: act, accumulation: accumulation),
                                dgrad: GemmSpec(input: grad, accumulation: accumulation),
                                wgrad: GemmSpec(input: gradT, accumulation: accumulation),
                                wgradActivation: actT, quantizedHead: false,
                                gradient: .bf16, kvCache: .bf16, probabilities: .bf16, sources: sources)
    }

    /// MXFP8 (OCP Microscaling): E4M3 elements in blocks of 32 along K for every operand —
    /// activations 1×32, weights 1×32 along their input features (re-quantized 32×1 along the
    /// output features for DGrad), WGrad operands 32×1 along the tokens — each block with a
    /// power-of-two (E8M0) scale from the MX rule, float32 accumulation (scales are applied
    /// every 32 elements of K anyway). Gradients between operators stay BF16.
    public static func mxfp8(sources: MismatchSources, block: Int = 32) -> PrecisionProfile {
        func q(_ g: ScaleGranularity) -> Quantization {
            Quantization(format: .e4m3, saturate: true, granularity: g, formula: .mx)
        }
        return PrecisionProfile(weights: q(.rowGroups(block)), otherWeights: .bf16, activation: .bf16,
                                fprop: GemmSpec(input: q(.rowGroups(block))),
                                dgrad: GemmSpec(input: q(.rowGroups(block))),
                                wgrad: GemmSpec(input: q(.columnGroups(block))),
                                wgradActivation: q(.columnGroups(block)), quantizedHead: false,
                                gradient: .bf16, kvCache: .bf16, probabilities: .bf16, sources: sources)
    }



    /// The profile one linear layer's products follow: this one; for a plain LM head, its
    /// activation format throughout (unscaled, float32 accumulation, current scaling); for a
    /// router, the same plain recipe in the activation format or, with `router_fp32`, float32.
    public func forSite(_ kind: LinearKind) -> PrecisionProfile {
        guard (kind == .lmHead && !quantizedHead) || kind == .router else { return self }
        return plain(kind == .router && sources.routerFP32 ? .fp32 : activation)
    }

    /// The profile of one site's products: `forSite(kind)` for a layer's weight; for a LoRA
    /// adapter's factors the plain recipe in the activation format (adapters stay in the
    /// activation format under FP8 flows, as QLoRA keeps them in BF16).
    public func forSite(_ site: LinearSite) -> PrecisionProfile {
        site.part == .weight ? forSite(site.kind) : plain(activation)
    }

    /// This profile with every operand of the products in `format`: unscaled, float32
    /// accumulation, current scaling, gradients in the gradient format.
    private func plain(_ format: NumberFormat) -> PrecisionProfile {
        var p = self
        let plain = Quantization(format: format)
        p.weights = plain
        p.fprop = GemmSpec(input: plain)
        p.dgrad = GemmSpec(input: Quantization(format: gradient))
        p.wgrad = GemmSpec(input: Quantization(format: gradient))
        p.wgradActivation = plain
        p.scaleRule = .current
        p.activation = format
        return p
    }

    /// A short name of the formats, for the prompt: `bf16`, `fp16`, `e4m3`…
    public var shortName: String {
        weights.format == activation ? activation.name : "\(weights.format.name)/\(activation.name)"
    }
}

/// The precision of both engines.
public struct EnginePair: Sendable, Hashable {
    public var rollout: PrecisionProfile
    public var training: PrecisionProfile

    public init(rollout: PrecisionProfile, training: PrecisionProfile) {
        self.rollout = rollout
        self.training = training
    }
}

/// The named presets of `precision preset NAME`.
public enum Preset: String, CaseIterable, Sendable {
    case fp32, bf16, fp16
    case fp8Rollout = "fp8-rollout"
    case fp8Unified = "fp8-unified"
    case mxfp8Rollout = "mxfp8-rollout"
    case mxfp8Unified = "mxfp8-unified"
    case jetRL = "jet-rl"
    case identical

    /// The FP8 group and block size for a model of hidden size C: C/4 clamped to 16…128
    /// (DeepSeek-V3 and Jet-RL use 128 on models 32× wider than the lab's default).
    public static func fp8Tile(hiddenSize c: Int) -> Int { min(128, max(16, c / 4)) }

    /// The engines of this preset for a model: the FP8 tile is `fp8Tile(hiddenSize:)`, or the
    /// largest power of two that fits every weight dimension if that is smaller.
    public func engines(for config: LlamaConfig) -> EnginePair {
        let smallest = min(config.hiddenSize, config.qDim, config.kvDim, config.intermediateSize, config.vocabSize)
        var fit = 1
        while fit * 2 <= smallest { fit *= 2 }
        return engines(hiddenSize: config.hiddenSize, tile: min(Preset.fp8Tile(hiddenSize: config.hiddenSize), fit))
    }

    public func engines(hiddenSize: Int, tile: Int? = nil) -> EnginePair {
        let tile = tile ?? Preset.fp8Tile(hiddenSize: hiddenSize)
        switch self {
        case .fp32: return EnginePair(rollout: .uniform(.fp32, sources: .inference), training: .uniform(.fp32, sources: .training))
        case .bf16: return EnginePair(rollout: .uniform(.bf16, sources: .inference), training: .uniform(.bf16, sources: .training))
        case .fp16: return EnginePair(rollout: .uniform(.fp16, sources: .inference), training: .uniform(.fp16, sources: .training))
        case .fp8Rollout:
            return EnginePair(rollout: .fp8(group: tile, block: tile, sources: .inference),
                              training: .uniform(.bf16, sources: .training))
        case .fp8Unified:
            return EnginePair(rollout: .fp8(group: tile, block: tile, sources: .inference),
                              training: .fp8(group: tile, block: tile, sources: .training))
        case .mxfp8Rollout:
            return EnginePair(rollout: .mxfp8(sources: .inference), training: .uniform(.bf16, sources: .training))
        case .mxfp8Unified:
            return EnginePair(rollout: .mxfp8(sources: .inference), training: .mxfp8(sources: .training))
        case .jetRL:
            return EnginePair(rollout: .fp8(group: tile, block: tile, sources: .jetRLInference),
                              training: .fp8(group: tile, block: tile, sources: .jetRLTraining))
        case .identical:
            return EnginePair(rollout: .uniform(.bf16, sources: .none), training: .uniform(.bf16, sources: .none))
        }
    }

    public var summary: String {
        switch self {
        case .fp32: return "FP32 everywhere; only implementation differences remain"
        case .bf16: return "BF16 weights, activations and products in both engines (the common setup)"
        case .fp16: return "FP16 in both engines: 8x finer rounding than BF16 (Qi et al.)"
        case .fp8Rollout: return "BF16 training, FP8 E4M3 rollout: off-policy by construction"
        case .fp8Unified: return "one FP8 flow for rollout and training forward and backward (Jet-RL)"
        case .mxfp8Rollout: return "BF16 training, MXFP8 rollout (E4M3 in blocks of 32, power-of-two scales)"
        case .mxfp8Unified: return "one MXFP8 flow for rollout and training forward and backward"
        case .jetRL: return "fp8-unified with every quantized operand made by the same kernels in both engines (fused norm and SiLU, fp32 logits); split-K and chunked softmax stay"
        case .identical: return "BF16 in both engines, every mismatch source off: the control experiment"
        }
    }

    public static func parse(_ text: String) throws(NumericsError) -> Preset {
        if let p = Preset(rawValue: text.lowercased()) { return p }
        let names = Preset.allCases.map(\.rawValue)
        let hint = closestMatch(to: text.lowercased(), among: names).map { "; did you mean \($0)?" } ?? ""
        throw .invalidArgument("unknown preset '\(text)'\(hint) presets: \(names.joined(separator: " "))")
    }
}

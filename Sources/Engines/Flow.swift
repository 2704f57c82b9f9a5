// The precision flow of an engine: every matrix product and cast of one forward (and the
// training backward), with the format and scaling of each operand — and Jet-RL's on-policy
// condition, that the rollout's flow is contained in the training forward's.

import Model
import Numerics

/// One matrix product or cast of an engine's computation.
public struct FlowStep: Sendable, Hashable {
    public enum Kind: String, Sendable {
        case gemm, cast
    }

    /// One operand of a GEMM: its name ("x", "W", "dy") and its quantization.
    public struct Operand: Sendable, Hashable {
        public var name: String
        public var rule: String
    }

    public var kind: Kind
    /// What it is, e.g. "FProp q k v o gate up down", "KV cache".
    public var name: String
    /// A GEMM's operands; empty for a cast.
    public var operands: [Operand] = []
    /// A GEMM's accumulation; empty for a cast.
    public var accumulation: String = ""
    /// The output format (or, for a cast, the format values are stored in).
    public var output: String
    /// Whether an implementation switch, not the precision profile, decides the output
    /// format (the LM head's, by `logits_fp32`): containment then ignores the output.
    public var outputSetBySwitch = false

    static func cast(_ name: String, _ format: String) -> FlowStep {
        FlowStep(kind: .cast, name: name, output: format)
    }

    static func gemm(_ name: String, _ operands: [(String, String)], _ accumulation: Accumulation, _ output: String) -> FlowStep {
        FlowStep(kind: .gemm, name: name, operands: operands.map { Operand(name: $0.0, rule: $0.1) },
                 accumulation: accumulation.description, output: output)
    }

    /// The operands in one line: `x e4m3 1x16 amax/max sat · W e4m3 16x16 amax/max sat`.
    public var operandText: String { operands.map { "\($0.name) \($0.rule)" }.joined(separator: " · ") }
}

extension PrecisionProfile {
    private func perProduct(_ q: Quantization) -> String {
        if case .delayed = scaleRule, q.granularity == .tensor { return "\(q) \(scaleRule)" }
        return q.description
    }

    /// The forward's products and casts in the order a token meets them. Implementation
    /// switches (mismatch sources) are not part of the flow, except where they decide a
    /// format: the logits' (`logits_fp32`).
    public var forwardFlow: [FlowStep] { forwardFlow(for: nil) }

    /// The same for a given model: with sparse MLPs, the router's product (its own recipe,
    /// `router_fp32` deciding its format) and the float32 softmax and top-k that choose each
    /// token's experts; with LoRA adapters, their two products in the activation format, or
    /// their merging into the weights (`lora_merged`); with attention biases or per-head q/k
    /// norms, their steps in the activation format.
    public func forwardFlow(for model: LlamaConfig?) -> [FlowStep] {
        let sparse = model?.isMixtureOfExperts ?? false
        var adapters: [FlowStep] = []
        if let lora = model?.lora {
            let plain = Quantization(format: activation).description
            var step = FlowStep.gemm("FProp LoRA x·Aᵀ·Bᵀ (\(lora.targets.map { LoRASpec.moduleName($0)! }.joined(separator: " ")))",
                                     [("x", plain), ("A, B", plain)], .fp32,
                                     sources.loraMerged ? "merged into W at each sync (lora_merged)" : activation.name)
            step.outputSetBySwitch = true
            adapters = [step]
        }
        let router = forSite(.router)
        var routerProduct = FlowStep.gemm("FProp router (sparse MLP)", [("x", router.perProduct(router.fprop.input)),
                                                                       ("W", router.weights.description)],
                                          router.fprop.accumulation,
                                          sources.routerFP32 ? "fp32 (router_fp32)" : outputFormat(of: .router).name)
        routerProduct.outputSetBySwitch = true
        let routing: [FlowStep] = sparse
            ? [routerProduct, .cast("router softmax, top-k choice and expert weights", "fp32")] : []
        var logits = FlowStep.gemm("FProp lm_head", [("x", head.perProduct(head.fprop.input)), ("W", head.weights.description)],
                                   head.fprop.accumulation, sources.logitsFP32 ? "\(outputFormat(of: .lmHead).name) (logits_fp32)" : outputFormat(of: .lmHead).name)
        logits.outputSetBySwitch = true
        // The attention's biases and per-head norms (Qwen2, Qwen3, `attention_bias`): each a
        // step of its own after the projections, rounded to the activation format.
        var attention: [FlowStep] = []
        if let model, model.qkvBias {
            attention.append(.cast("bias added to q k v\(model.outputBias ? " o" : "") (bias in \(otherWeights.name))", activation.name))
        }
        if let model, model.qkNorm { attention.append(.cast("per-head RMSNorm of q and k, before RoPE", activation.name)) }
        return [
            .cast("embedding and norm weights", otherWeights.name),
            .cast("linear weights (at each sync)", weights.description),
            .cast("residual stream, norm outputs, RoPE, MLP", activation.name),
        ] + attention + [
            .gemm(sparse ? "FProp q k v o, experts' gate up down" : "FProp q k v o gate up down",
                  [("x", perProduct(fprop.input)), ("W", weights.description)], fprop.accumulation, activation.name),
        ] + adapters + routing + [
            .cast("keys and values (KV cache)", kvCache.name),
            .cast("attention probabilities (softmax in fp32)", probabilities.name),
            logits,
        ]
    }

    private var head: PrecisionProfile { forSite(.lmHead) }

    /// The training backward's products and casts (a training profile).
    public var backwardFlow: [FlowStep] {
        func products(_ p: PrecisionProfile, _ suffix: String) -> [FlowStep] {
            var dgradW = p.weights
            dgradW.granularity = p.weights.granularity.transposed
            return [
                .gemm("DGrad dx = dy·W" + suffix, [("dy", p.perProduct(p.dgrad.input)), ("W", dgradW.description)],
                      p.dgrad.accumulation, p.gradient.name),
                .gemm("WGrad dW = dyᵀ·x" + suffix, [("dy", p.perProduct(p.wgrad.input)), ("x", p.perProduct(p.wgradActivation))],
                      p.wgrad.accumulation, "fp32 (into the master gradient)"),
            ]
        }
        let plainHead = head != self
        return products(self, plainHead ? " (not lm_head)" : "") + (plainHead ? products(head, " (lm_head)") : [])
            + [.cast("gradients between operators", gradient.name)]
    }
}

extension EnginePair {
    /// The rollout steps whose precision the training forward does not repeat exactly: empty
    /// when the rollout's flow is contained in the training forward's — Jet-RL's on-policy
    /// condition. The logits' format is left to `implementationDifferences` (it is the
    /// `logits_fp32` switch).
    public var flowDifferences: [(rollout: FlowStep, train: FlowStep)] { flowDifferences(for: nil) }

    /// The same for a given model (a router's or adapters' step included; the router's
    /// format, set by `router_fp32`, and the adapters' merging, by `lora_merged`, are
    /// implementation differences as the logits' format is).
    public func flowDifferences(for model: LlamaConfig?) -> [(rollout: FlowStep, train: FlowStep)] {
        var out: [(FlowStep, FlowStep)] = []
        for (r, t) in zip(rollout.forwardFlow(for: model), training.forwardFlow(for: model)) {
            var (a, b) = (r, t)
            if a.outputSetBySwitch { a.output = ""; b.output = "" }
            if a != b { out.append((r, t)) }
        }
        return out
    }

    /// Why equal formats may still not give equal numbers: per-tensor scales are computed
    /// over whatever rows are in one product — a decode step's batch in the rollout, the
    /// whole packed batch in training — and delayed scaling's histories advance with each
    /// engine's own products. Empty when every per-product operand is scaled per token
    /// group or not at all (batch-invariant).
    public var flowCaveats: [String] {
        var out: [String] = []
        // Only where both engines quantize x the same way: otherwise the formats differ
        // already, and the flow says so.
        if rollout.fprop.input == training.fprop.input, rollout.fprop.input.granularity == .tensor {
            out.append("both engines scale FProp's x per tensor: the scale depends on which rows share a product (one decode step in the rollout, the whole packed batch in training), so equal formats still give different scales")
        }
        if case .delayed = rollout.scaleRule, case .delayed = training.scaleRule {
            out.append("both engines use delayed scaling: each engine's amax histories advance with its own products, so their scales differ")
        }
        return out
    }

    /// The implementation switches (mismatch sources) that differ between the engines: not a
    /// difference of precision, but of arithmetic order or kernel fusion.
    public var implementationDifferences: [String] {
        zip(rollout.sources.states, training.sources.states).filter { $0.0.1 != $0.1.1 }.map { $0.0.0 }
    }
}

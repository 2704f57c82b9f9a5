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

    public var kind: Kind
    /// What it is, e.g. "FProp q k v o gate up down", "KV cache".
    public var name: String
    /// A GEMM's operands ("x", "W", "dy") with their quantization; empty for a cast.
    public var operands: [(name: String, rule: String)]
    /// A GEMM's accumulation; empty for a cast.
    public var accumulation: String
    /// The output format (or, for a cast, the format values are stored in).
    public var output: String

    public static func == (a: FlowStep, b: FlowStep) -> Bool {
        a.kind == b.kind && a.name == b.name && a.accumulation == b.accumulation && a.output == b.output
            && a.operands.map(\.name) == b.operands.map(\.name) && a.operands.map(\.rule) == b.operands.map(\.rule)
    }

    public func hash(into h: inout Hasher) {
        h.combine(kind)
        h.combine(name)
        h.combine(accumulation)
        h.combine(output)
        for o in operands { h.combine(o.name); h.combine(o.rule) }
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
    public var forwardFlow: [FlowStep] {
        [
            FlowStep(kind: .cast, name: "embedding and norm weights", operands: [], accumulation: "", output: otherWeights.name),
            FlowStep(kind: .cast, name: "linear weights (at each sync)", operands: [], accumulation: "", output: weights.description),
            FlowStep(kind: .cast, name: "residual stream, norm outputs, RoPE, MLP", operands: [], accumulation: "", output: activation.name),
            FlowStep(kind: .gemm, name: "FProp q k v o gate up down",
                     operands: [("x", perProduct(fprop.input)), ("W", weights.description)],
                     accumulation: fprop.accumulation.description, output: activation.name),
            FlowStep(kind: .cast, name: "keys and values (KV cache)", operands: [], accumulation: "", output: kvCache.name),
            FlowStep(kind: .cast, name: "attention probabilities (softmax in fp32)", operands: [], accumulation: "", output: probabilities.name),
            FlowStep(kind: .gemm, name: "FProp lm_head",
                     operands: [("x", head.perProduct(head.fprop.input)), ("W", head.weights.description)],
                     accumulation: head.fprop.accumulation.description,
                     output: sources.logitsFP32 ? "fp32 (logits_fp32)" : activation.name),
        ]
    }

    private var head: PrecisionProfile { forSite(.lmHead) }

    /// The training backward's products and casts (a training profile).
    public var backwardFlow: [FlowStep] {
        func products(_ p: PrecisionProfile, _ suffix: String) -> [FlowStep] {
            var dgradW = p.weights
            dgradW.granularity = p.weights.granularity.transposed
            return [
                FlowStep(kind: .gemm, name: "DGrad dx = dy·W" + suffix,
                         operands: [("dy", p.perProduct(p.dgrad.input)), ("W", dgradW.description)],
                         accumulation: p.dgrad.accumulation.description, output: p.gradient.name),
                FlowStep(kind: .gemm, name: "WGrad dW = dyᵀ·x" + suffix,
                         operands: [("dy", p.perProduct(p.wgrad.input)), ("x", p.perProduct(p.wgradActivation))],
                         accumulation: p.wgrad.accumulation.description, output: "fp32 (into the master gradient)"),
            ]
        }
        let plainHead = head != self
        return products(self, plainHead ? " (not lm_head)" : "") + (plainHead ? products(head, " (lm_head)") : [])
            + [FlowStep(kind: .cast, name: "gradients between operators", operands: [], accumulation: "", output: gradient.name)]
    }
}

extension EnginePair {
    /// The rollout steps whose precision the training forward does not repeat exactly: empty
    /// when the rollout's flow is contained in the training forward's — Jet-RL's on-policy
    /// condition. The logits' format is left to `implementationDifferences` (it is the
    /// `logits_fp32` switch).
    public var flowDifferences: [(rollout: FlowStep, train: FlowStep)] {
        var out: [(FlowStep, FlowStep)] = []
        for (r, t) in zip(rollout.forwardFlow, training.forwardFlow) {
            var (a, b) = (r, t)
            if a.name == "FProp lm_head" { a.output = ""; b.output = "" }
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

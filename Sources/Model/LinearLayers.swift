// The model's linear layers and norms as the decoder block calls them: each product through
// the engine's `LinearKernel`, a family's bias added and rounded, a LoRA adapter computed
// beside its weight; RMSNorm over the hidden state or over each head; each backward beside
// its forward. Transformer.swift holds the block that strings them together.

import Numerics

/// Which linear layer a matrix product belongs to.
public enum LinearKind: String, Sendable, Hashable, CaseIterable, Codable {
    case q, k, v, o, gate, up, down, router, lmHead = "lm_head"
}

/// One linear layer of the model: its kind, decoder layer (−1 for the LM head) and, for the
/// projections of a sparse MLP, its expert (−1 otherwise); `part` says whether a product
/// uses the layer's weight or one factor of its LoRA adapter.
public struct LinearSite: Sendable, Hashable, CustomStringConvertible {
    public let kind: LinearKind
    public let layer: Int
    public let expert: Int
    public let part: LinearPart

    public init(_ kind: LinearKind, layer: Int, expert: Int = -1, part: LinearPart = .weight) {
        self.kind = kind
        self.layer = layer
        self.expert = expert
        self.part = part
    }

    /// The same layer's tensor `part`.
    public func with(_ part: LinearPart) -> LinearSite { LinearSite(kind, layer: layer, expert: expert, part: part) }

    /// The weight tensor of this layer in `weights` (or its adapter factor's).
    public func slot(in weights: ModelWeights) -> TensorSlot {
        if part != .weight {
            let pair = weights.adapter(self)!
            return part == .loraA ? pair.a : pair.b
        }
        if kind == .lmHead { return weights.lmHead }
        let l = weights.layer(layer)
        let mlp = l.experts[max(expert, 0)]
        switch kind {
        case .q: return l.q
        case .k: return l.k
        case .v: return l.v
        case .o: return l.o
        case .gate: return mlp.gate
        case .up: return mlp.up
        case .down: return mlp.down
        case .router: return l.router!
        case .lmHead: return weights.lmHead
        }
    }

    /// Every linear layer of a model, the LM head first, then each layer's in storage order,
    /// then the adapters' factors (A, B per adapted site).
    public static func all(_ config: LlamaConfig) -> [LinearSite] {
        var sites = [LinearSite(.lmHead, layer: -1)]
        for l in 0..<config.numHiddenLayers {
            sites += [.q, .k, .v, .o].map { LinearSite($0, layer: l) }
            if config.isMixtureOfExperts {
                sites.append(LinearSite(.router, layer: l))
                for e in 0..<config.numLocalExperts {
                    sites += [.gate, .up, .down].map { LinearSite($0, layer: l, expert: e) }
                }
            } else {
                sites += [.gate, .up, .down].map { LinearSite($0, layer: l) }
            }
        }
        if let lora = config.lora {
            for l in 0..<config.numHiddenLayers {
                for kind in lora.targets { sites += [LinearSite(kind, layer: l, part: .loraA), LinearSite(kind, layer: l, part: .loraB)] }
            }
        }
        return sites
    }

    /// `lm_head`, `layer 0 q`, `layer 1 expert 3 gate`, `layer 0 q lora_A`.
    public var description: String {
        if kind == .lmHead { return "lm_head" }
        let base = expert >= 0 ? "layer \(layer) expert \(expert) \(kind)" : "layer \(layer) \(kind)"
        return part == .weight ? base : "\(base) \(part.rawValue)"
    }
}

/// The matrix products of the model, in an engine's precision: the engine owns the
/// (quantized) weights and decides each product's recipe and the rounding of its output.
public protocol LinearKernel {
    /// y (rows, out) = x (rows, in) · Wᵀ.
    func forward(_ site: LinearSite, x: UnsafePointer<Float>, rows: Int, y: UnsafeMutablePointer<Float>)
    /// dx (rows, in) = dy · W (when dx is given) and dW (out, in) += dyᵀ · x, in float32
    /// (when dW is given: a frozen weight has no gradient to compute).
    func backward(_ site: LinearSite, dy: UnsafePointer<Float>, x: UnsafePointer<Float>, rows: Int,
                  dx: UnsafeMutablePointer<Float>?, dW: UnsafeMutablePointer<Float>?)
    /// Runs `body`, whose products may read `input` several times (q, k and v read the same
    /// activations): a kernel may prepare it once for all of them. The results are the same.
    func sharingInput<R>(_ input: [Float], _ body: () -> R) -> R
}

extension LinearKernel {
    public func sharingInput<R>(_ input: [Float], _ body: () -> R) -> R { body() }
}

extension Transformer {
    /// RMSNorm of `rows` rows of `width` (the hidden size unless given) with the weights of
    /// `slot`, rounded per the plan (`fusedResidualNorm`: once, else twice).
    func rmsnorm(_ x: [Float], _ weights: ModelWeights, _ slot: TensorSlot, rows n: Int, width: Int? = nil,
                 rstd: inout [Float], plan: ForwardPlan) -> [Float] {
        let c = width ?? config.hiddenSize
        var rowStd: [Float] = []
        let out = written(n * c) { out in
            rowStd = written(n) { r in
                weights.data.withUnsafeBufferPointer { w in
                    rmsnormForward(x, w.baseAddress! + slot.offset, out, r, rows: n, width: c, eps: config.rmsNormEps,
                                   round: plan.activation, fused: plan.fusedResidualNorm)
                }
            }
        }
        rstd = rowStd
        return out
    }

    /// RMSNorm of each head (rows = N·heads, each D wide) with the D weights of `slot`: Qwen3's
    /// q and k norms, rounded as the other norms are.
    func headNorm(_ x: [Float], _ weights: ModelWeights, _ slot: TensorSlot, rows: Int, rstd: inout [Float],
                  plan: ForwardPlan) -> [Float] {
        rmsnorm(x, weights, slot, rows: rows, width: config.headDim, rstd: &rstd, plan: plan)
    }

    /// Backward of `headNorm`: ∂loss/∂x into `dx` (overwritten), the norm weights' gradient
    /// added into `grads`.
    func headNormBackward(_ dout: [Float], _ x: [Float], _ slot: TensorSlot, _ rstd: [Float], rows: Int,
                          weights: ModelWeights, grads: inout ModelWeights, into dx: inout [Float]) {
        normBackward(dout, x, slot, rstd, rows: rows, width: config.headDim, weights: weights, grads: &grads, into: &dx)
    }

    /// The bias of a linear layer (an attention projection of a family that has one); nil
    /// for every other site and for an adapter's factors.
    func bias(of site: LinearSite, in weights: ModelWeights) -> TensorSlot? {
        guard site.part == .weight, site.layer >= 0, config.qkvBias || config.outputBias else { return nil }
        switch site.kind {
        case .q, .k, .v, .o: return weights.layer(site.layer).bias(site.kind)
        default: return nil
        }
    }

    /// y (rows, out) = x · Wᵀ through the engine's kernel.
    func linear(_ kernel: some LinearKernel, _ site: LinearSite, _ x: [Float], rows: Int, out: Int) -> [Float] {
        written(rows * out) { y in
            x.withUnsafeBufferPointer { xp in kernel.forward(site, x: xp.baseAddress!, rows: rows, y: y) }
        }
    }

    /// A linear layer, its bias added when it has one, with its LoRA adapter computed beside
    /// the weight (unless the kernel's weights have it merged), rounded as a framework's
    /// autocast does:
    ///
    ///     z = round(round(x·Wᵀ) + b)   (z = round(x·Wᵀ), the kernel's output, without a bias)
    ///     t = round(x·Aᵀ);  u = round(t·Bᵀ);  y = round(z + round((α/r)·u))
    ///
    /// The bias is kept in the other weights' format and added in float32 to the product as
    /// the kernel stored it, then the sum rounded to the activation format (a separate
    /// bias-add, as PyTorch's autocast does it: `Linear`'s bias joins the product's output).
    /// Returns y and t (nil without an adapter), which the backward needs.
    func adaptedLinear(_ kernel: some LinearKernel, _ site: LinearSite, _ x: [Float], rows: Int, out: Int,
                       weights: ModelWeights, plan: ForwardPlan) -> (y: [Float], t: [Float]?) {
        var y = linear(kernel, site, x, rows: rows, out: out)
        if let b = bias(of: site, in: weights) {
            weights.data.withUnsafeBufferPointer { w in
                let bias = w.baseAddress! + b.offset
                for r in 0..<rows { for j in 0..<out { y[r * out + j] += bias[j] } }
            }
            roundInPlace(plan.activation, &y)
        }
        guard let lora = config.lora, lora.adapts(site), !plan.loraMerged else { return (y, nil) }
        let t = linear(kernel, site.with(.loraA), x, rows: rows, out: lora.rank)
        var u = linear(kernel, site.with(.loraB), t, rows: rows, out: out)
        let scale = lora.scaling
        for i in 0..<u.count { u[i] *= scale }
        roundInPlace(plan.activation, &u)
        for i in 0..<y.count { y[i] += u[i] }
        roundInPlace(plan.activation, &y)
        return (y, t)
    }

    /// Backward of `adaptedLinear` (or of a plain linear layer, `t` nil): dx = dy·W +
    /// (α/r)·(dy·B)·A into `dx` (rounded as the gradient between operators), the adapter's
    /// gradients dB += (α/r)·dyᵀ·t and dA += (α/r)·(dy·B)ᵀ·x, and dW += dyᵀ·x and, with a
    /// bias, db += Σ_rows dy (float32, rows in order) unless the weights are frozen (a model
    /// with adapters).
    func adaptedLinearBackward(_ kernel: some LinearKernel, _ site: LinearSite, dy: [Float], x: [Float], t: [Float]?,
                               rows n: Int, dx: inout [Float], weights: ModelWeights, grads: inout ModelWeights,
                               gradientRounding: Rounder?) {
        let frozen = config.lora != nil
        let slot = site.slot(in: weights)
        grads.data.withUnsafeMutableBufferPointer { g in
            kernel.backward(site, dy: dy, x: x, rows: n, dx: &dx, dW: frozen ? nil : g.baseAddress! + slot.offset)
        }
        // Forward was `y[r][j] += bias[j]` for every row r, so the bias gathers every row's dy.
        if !frozen, let b = bias(of: site, in: weights) {
            grads.data.withUnsafeMutableBufferPointer { g in
                let db = g.baseAddress! + b.offset
                for r in 0..<n { for j in 0..<b.count { db[j] += dy[r * b.count + j] } }
            }
        }
        guard let t, let lora = config.lora, let (a, b) = weights.adapter(site) else { return }
        var du = dy
        let scale = lora.scaling
        for i in 0..<du.count { du[i] *= scale }
        roundInPlace(gradientRounding, &du)
        var dt = [Float](repeating: 0, count: n * lora.rank)
        var dxA = [Float](repeating: 0, count: dx.count)
        grads.data.withUnsafeMutableBufferPointer { g in
            kernel.backward(site.with(.loraB), dy: du, x: t, rows: n, dx: &dt, dW: g.baseAddress! + b.offset)
        }
        roundInPlace(gradientRounding, &dt)
        grads.data.withUnsafeMutableBufferPointer { g in
            kernel.backward(site.with(.loraA), dy: dt, x: x, rows: n, dx: &dxA, dW: g.baseAddress! + a.offset)
        }
        for i in 0..<dx.count { dx[i] += dxA[i] }
        roundInPlace(gradientRounding, &dx)
    }

    /// Backward of several linear layers that read the same input x (q, k, v; gate, up):
    /// their weight gradients, and the sum of their input gradients, added in the order given
    /// and then rounded by `roundingSum` (in the last addition's pass).
    func linearsBackward(_ layers: [(LinearKind, [Float])], layer l: Int, expert: Int = -1, x: [Float], rows n: Int,
                         weights: ModelWeights, kernel: some LinearKernel, grads: inout ModelWeights,
                         adapterInputs: [LinearKind: [Float]] = [:], gradientRounding: Rounder? = nil,
                         roundingSum: Rounder? = nil) -> [Float] {
        let c = config.hiddenSize
        // Each product writes its whole output: the first into the sum, the others into `part`.
        var sum = toBeWritten(n * c), part = layers.count > 1 ? toBeWritten(n * c) : []
        kernel.sharingInput(x) {
        for (i, (kind, dy)) in layers.enumerated() {
            let site = LinearSite(kind, layer: l, expert: expert)
            if i == 0 {
                adaptedLinearBackward(kernel, site, dy: dy, x: x, t: adapterInputs[kind], rows: n, dx: &sum, weights: weights,
                                      grads: &grads, gradientRounding: gradientRounding)
            } else {
                adaptedLinearBackward(kernel, site, dy: dy, x: x, t: adapterInputs[kind], rows: n, dx: &part, weights: weights,
                                      grads: &grads, gradientRounding: gradientRounding)
                addInPlace(&sum, part, rounding: i == layers.count - 1 ? roundingSum : nil)
            }
        }
        }
        if layers.count == 1 { roundInPlace(roundingSum, &sum) }
        return sum
    }

    /// Backward of `rmsnorm`: ∂loss/∂x into `dx` (overwritten), the norm weights' gradient
    /// added into `grads`.
    func normBackward(_ dout: [Float], _ x: [Float], _ slot: TensorSlot, _ rstd: [Float], rows n: Int, width: Int? = nil,
                      weights: ModelWeights, grads: inout ModelWeights, into dx: inout [Float]) {
        let c = width ?? config.hiddenSize
        weights.data.withUnsafeBufferPointer { w in
            grads.data.withUnsafeMutableBufferPointer { g in
                rmsnormBackward(dout, x, w.baseAddress! + slot.offset, rstd, &dx, g.baseAddress! + slot.offset, rows: n, width: c)
            }
        }
    }
}

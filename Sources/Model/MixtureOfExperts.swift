// The sparse mixture-of-experts MLP (Mixtral's `block_sparse_moe`): a router scores the E
// experts of each token, the K most probable run, and their outputs are summed with the
// router's probabilities as weights. Forward and backward side by side, as for the dense
// layers (Layers.swift); the decoder block calls them in place of the dense MLP.
//
// N = rows, C = hidden, F = an expert's width, E = experts, K = experts per token,
// n_e = the rows routed to expert e.

import Numerics

/// The experts each row went to in each layer: per layer N·K expert indices, each row's K
/// by decreasing router probability (ties to the lower index). A replayed routing may hold
/// −1 for a row: that row routes itself.
public struct Routing: Sendable, Hashable {
    public let topK: Int
    public var experts: [[Int32]]

    public init(topK: Int, experts: [[Int32]]) {
        self.topK = topK
        self.experts = experts
    }

    /// The number of rows.
    public var rows: Int { (experts.first?.count ?? 0) / max(topK, 1) }

    /// Row r's experts in layer l.
    public func choice(layer l: Int, row r: Int) -> ArraySlice<Int32> { experts[l][(r * topK)..<((r + 1) * topK)] }

    /// Rows `range` of every layer.
    public func rows(_ range: Range<Int>) -> Routing {
        Routing(topK: topK, experts: experts.map { Array($0[(range.lowerBound * topK)..<(range.upperBound * topK)]) })
    }

    /// Whether row r of layer l chose the same set of experts in both routings.
    public func sameSet(as other: Routing, layer l: Int, row r: Int, otherRow: Int) -> Bool {
        Set(choice(layer: l, row: r)) == Set(other.choice(layer: l, row: otherRow))
    }
}

/// How one layer's router spread the tokens: the (row, slot) assignments each expert
/// received, and the sum over rows of each expert's router probability (the two factors of
/// the load-balancing loss).
public struct ExpertLoad: Sendable, Hashable {
    public var assignments: [Int]
    public var probabilitySums: [Double]
    public var rows: Int
}

/// One expert's share of a sparse layer's forward, kept for its backward.
struct ExpertRows {
    var rows: [Int32] = []      // the rows routed to this expert, ascending
    var slots: [Int32] = []     // for each, which of the row's K choices it is
    var x: [Float] = []         // (n_e, C) their norm2 rows
    var gate: [Float] = []      // (n_e, F)
    var up: [Float] = []
    var act: [Float] = []       // silu(gate)·up
    var out: [Float] = []       // (n_e, C) the expert's output before its weight
}

/// What a sparse layer's forward keeps: the router's probabilities, the choices and their
/// weights, and every expert's rows.
struct SparseMLPCache {
    var probabilities: [Float] = []   // (N, E) softmax of the router logits, float32
    var selected: [Int32] = []        // (N, K) the experts used
    var routerChoice: [Int32] = []    // (N, K) the router's own top K (= selected unless replayed)
    var weights: [Float] = []         // (N, K) as applied, float32
    var experts: [ExpertRows] = []
    var load: ExpertLoad
}

extension Transformer {
    /// The sparse MLP over `n` rows of its input `x` (N, C), the post-attention norm:
    ///
    ///     p      = softmax(x·Wrᵀ)                        float32, over the E experts
    ///     S      = the K largest p (replayed: the given experts)
    ///     w_j    = p_j / Σ_S p (normTopKProb) or p_j,     float32 (as transformers and vLLM keep them)
    ///     expert = (silu(x·W1ᵀ) ⊙ x·W3ᵀ)·W2ᵀ               the dense MLP's arithmetic, on its rows
    ///     y      = Σ_j w_j·expert_j(x), each term and each partial sum rounded, j in S's order
    ///
    /// The router's product is the kernel's (its precision is the engine's `router` site).
    /// `replay` (N·K, −1 for rows that route themselves) fixes the experts; the weights still
    /// come from this router, so it keeps its gradient (routing replay, R3/R2).
    func sparseMLPForward(_ l: Int, x: [Float], rows n: Int, weights: ModelWeights, kernel: some LinearKernel,
                          plan: ForwardPlan, replay: ArraySlice<Int32>?) -> (out: [Float], cache: SparseMLPCache) {
        let c = config.hiddenSize, f = config.intermediateSize
        let e = config.numLocalExperts, k = config.numExpertsPerTok
        var logits = linear(kernel, LinearSite(.router, layer: l), x, rows: n, out: e)
        var cache = SparseMLPCache(load: ExpertLoad(assignments: Array(repeating: 0, count: e),
                                                    probabilitySums: Array(repeating: 0, count: e), rows: n))
        routerSoftmax(&logits, rows: n, experts: e)
        cache.probabilities = logits
        cache.selected = [Int32](repeating: 0, count: n * k)
        cache.routerChoice = [Int32](repeating: 0, count: n * k)
        cache.weights = [Float](repeating: 0, count: n * k)
        for r in 0..<n {
            let p = cache.probabilities[(r * e)..<((r + 1) * e)]
            topK(p, k, into: &cache.routerChoice, at: r * k)
            let given = replay.map { $0[($0.startIndex + r * k)..<($0.startIndex + (r + 1) * k)] }
            for j in 0..<k { cache.selected[r * k + j] = cache.routerChoice[r * k + j] }
            if let given, given.allSatisfy({ $0 >= 0 && Int($0) < e }) {
                for (j, expert) in given.enumerated() { cache.selected[r * k + j] = expert }
            }
            var total: Float = 0
            for j in 0..<k { total += p[p.startIndex + Int(cache.selected[r * k + j])] }
            for j in 0..<k {
                let pj = p[p.startIndex + Int(cache.selected[r * k + j])]
                cache.weights[r * k + j] = config.normTopKProb ? pj / total : pj
            }
            for j in 0..<e { cache.load.probabilitySums[j] += Double(p[p.startIndex + j]) }
        }
        // Each expert's rows, in row order.
        cache.experts = Array(repeating: ExpertRows(), count: e)
        for r in 0..<n {
            for j in 0..<k {
                let expert = Int(cache.selected[r * k + j])
                cache.experts[expert].rows.append(Int32(r))
                cache.experts[expert].slots.append(Int32(j))
                cache.load.assignments[expert] += 1
            }
        }
        // Every expert over its rows; then each row's terms summed in its choices' order.
        var terms = [Float](repeating: 0, count: n * k * c)   // (N, K, C) w_j · expert_j
        for expert in 0..<e {
            var part = cache.experts[expert]
            let m = part.rows.count
            guard m > 0 else { continue }
            part.x = [Float](repeating: 0, count: m * c)
            for (i, r) in part.rows.enumerated() {
                for j in 0..<c { part.x[i * c + j] = x[Int(r) * c + j] }
            }
            part.gate = linear(kernel, LinearSite(.gate, layer: l, expert: expert), part.x, rows: m, out: f)
            part.up = linear(kernel, LinearSite(.up, layer: l, expert: expert), part.x, rows: m, out: f)
            part.act = [Float](repeating: 0, count: m * f)
            swigluForward(part.gate, part.up, &part.act, count: m * f, round: plan.activation, fused: plan.fusedSiluMul)
            part.out = linear(kernel, LinearSite(.down, layer: l, expert: expert), part.act, rows: m, out: c)
            for (i, r) in part.rows.enumerated() {
                let slot = Int(r) * k + Int(part.slots[i])
                let w = cache.weights[slot]
                for j in 0..<c { terms[slot * c + j] = w * part.out[i * c + j] }
            }
            cache.experts[expert] = part
        }
        roundInPlace(plan.activation, &terms)
        var out = [Float](repeating: 0, count: n * c)
        for r in 0..<n {
            for j in 0..<k {
                let t = (r * k + j) * c
                for i in 0..<c { out[r * c + i] += terms[t + i] }
                out.withUnsafeMutableBufferPointer { roundInPlace(plan.activation, $0.baseAddress! + r * c, c) }
            }
        }
        return (out, cache)
    }

    /// Backward of `sparseMLPForward` (roundings as the identity): `dy` (N, C) is ∂loss/∂y.
    /// Expert weights' gradients go through the kernel into `grads`; returns ∂loss/∂x (N, C)
    /// through the experts and the router. `auxGradient` (E) is ∂(coefficient·aux)/∂p for every
    /// row, the load-balancing loss's gradient (zeros without it).
    func sparseMLPBackward(_ l: Int, dy: [Float], x: [Float], cache: SparseMLPCache, rows n: Int, weights: ModelWeights,
                           kernel: some LinearKernel, grads: inout ModelWeights, gradientRounding: Rounder?,
                           auxGradient: [Float]) -> [Float] {
        let c = config.hiddenSize, f = config.intermediateSize
        let e = config.numLocalExperts, k = config.numExpertsPerTok
        let slots = weights.layer(l)
        var dx = [Float](repeating: 0, count: n * c)
        var dw = [Float](repeating: 0, count: n * k)   // ∂loss/∂w_j
        for expert in 0..<e {
            let part = cache.experts[expert]
            let m = part.rows.count
            guard m > 0 else { continue }
            // ∂loss/∂expert output = w_j · dy; ∂loss/∂w_j = dy · expert output.
            var dout = [Float](repeating: 0, count: m * c)
            for (i, r) in part.rows.enumerated() {
                let slot = Int(r) * k + Int(part.slots[i])
                let w = cache.weights[slot]
                var dot: Float = 0
                for j in 0..<c {
                    let g = dy[Int(r) * c + j]
                    dout[i * c + j] = w * g
                    dot += g * part.out[i * c + j]
                }
                dw[slot] = dot
            }
            roundInPlace(gradientRounding, &dout)
            let mlp = slots.experts[expert]
            var dact = [Float](repeating: 0, count: m * f)
            grads.data.withUnsafeMutableBufferPointer { g in
                kernel.backward(LinearSite(.down, layer: l, expert: expert), dy: dout, x: part.act, rows: m, dx: &dact,
                                dW: g.baseAddress! + mlp.down.offset)
            }
            var dgate = toBeWritten(m * f), dup = toBeWritten(m * f)
            // dact rounded, then dgate and dup, inside the element-wise pass.
            swigluBackward(&dact, part.gate, part.up, &dgate, &dup, count: m * f, rounding: gradientRounding)
            let dxe = linearsBackward([(.gate, dgate), (.up, dup)], layer: l, expert: expert, x: part.x, rows: m,
                                      weights: weights, kernel: kernel, grads: &grads)
            for (i, r) in part.rows.enumerated() {
                for j in 0..<c { dx[Int(r) * c + j] += dxe[i * c + j] }
            }
        }
        // Through the weights to the probabilities, then the softmax to the router logits.
        var dlogits = [Float](repeating: 0, count: n * e)
        for r in 0..<n {
            let p = (r * e)
            var dp = auxGradient
            let chosen = (0..<k).map { Int(cache.selected[r * k + $0]) }
            if config.normTopKProb {
                // w_i = p_i / S: ∂w_i/∂p_m = (δ_im − w_i)/S for m in S.
                var total: Float = 0
                for m in chosen { total += cache.probabilities[p + m] }
                var dot: Float = 0
                for j in 0..<k { dot += dw[r * k + j] * cache.probabilities[p + chosen[j]] / total }
                for j in 0..<k { dp[chosen[j]] += (dw[r * k + j] - dot) / total }
            } else {
                for j in 0..<k { dp[chosen[j]] += dw[r * k + j] }
            }
            var dot: Float = 0
            for m in 0..<e { dot += cache.probabilities[p + m] * dp[m] }
            for m in 0..<e { dlogits[p + m] = cache.probabilities[p + m] * (dp[m] - dot) }
        }
        roundInPlace(gradientRounding, &dlogits)
        var drouter = [Float](repeating: 0, count: n * c)
        grads.data.withUnsafeMutableBufferPointer { g in
            kernel.backward(LinearSite(.router, layer: l), dy: dlogits, x: x, rows: n, dx: &drouter,
                            dW: g.baseAddress! + slots.router!.offset)
        }
        for i in 0..<(n * c) { dx[i] += drouter[i] }
        return dx
    }

    /// Mixtral's load-balancing loss over every sparse layer of a forward (transformers'
    /// `load_balancing_loss_func`, all layers' rows taken together, M = L·N of them):
    /// aux = E · Σ_e (a_e / M) · (P_e / M), with a_e the (row, choice) assignments to expert e
    /// and P_e the sum of its router probabilities. Its gradient reaches the router through
    /// the probabilities only: ∂aux/∂p_e = E·a_e/M² at every row.
    public static func loadBalancingLoss(_ loads: [ExpertLoad]) -> (loss: Double, gradient: [Float]) {
        guard let first = loads.first else { return (0, []) }
        let e = first.assignments.count
        let m = Double(loads.reduce(0) { $0 + $1.rows })
        guard m > 0, e > 0 else { return (0, Array(repeating: 0, count: e)) }
        var assignments = [Double](repeating: 0, count: e), sums = [Double](repeating: 0, count: e)
        for load in loads {
            for j in 0..<e {
                assignments[j] += Double(load.assignments[j])
                sums[j] += load.probabilitySums[j]
            }
        }
        var loss = 0.0
        for j in 0..<e { loss += assignments[j] / m * (sums[j] / m) }
        return (Double(e) * loss, assignments.map { Float(Double(e) * $0 / (m * m)) })
    }
}

/// Softmax of each row of (N, E) logits, in place, in float32: e^(z − max) / Σ.
func routerSoftmax(_ z: inout [Float], rows n: Int, experts e: Int) {
    z.withUnsafeMutableBufferPointer { p in
        for r in 0..<n {
            let row = p.baseAddress! + r * e
            var m = -Float.infinity
            for j in 0..<e { m = max(m, row[j]) }
            for j in 0..<e { row[j] -= m }
            expInPlace(row, e)
            var s: Float = 0
            for j in 0..<e { s += row[j] }
            for j in 0..<e { row[j] /= s }
        }
    }
}

/// The indices of the k largest values, largest first, ties to the lower index (a NaN is
/// never chosen over a number), written at `into[at...]`.
func topK(_ values: ArraySlice<Float>, _ k: Int, into out: inout [Int32], at start: Int) {
    var taken = [Bool](repeating: false, count: values.count)
    for j in 0..<k {
        var best = -1
        for i in 0..<values.count where !taken[i] {
            let v = values[values.startIndex + i]
            if best < 0 { best = i; continue }
            let b = values[values.startIndex + best]
            if v > b || (b.isNaN && !v.isNaN) { best = i }
        }
        taken[best] = true
        out[start + j] = Int32(best)
    }
}

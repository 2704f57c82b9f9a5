// The Llama-style decoder: teacher-forced forward over packed sequences with its backward,
// and the one-position decode step over a KV cache (Decode.swift). Both run the one decoder
// block below (`layerForward`, then `headForward`); they differ only in where attention
// finds its keys and values. So equal precision and implementation settings give equal
// bits by construction.
//
// N = packed rows (all tokens of all sequences), C = hidden, F = intermediate, V = vocabulary,
// H = heads, Hkv = key/value heads, D = head dim, Q = H·D, KV = Hkv·D.

import Numerics

/// Every rounding the model does outside its matrix products, and how the non-matrix
/// kernels are organised: the one carrier of an engine's precision decisions into the model
/// (the products' own rules travel inside the `LinearKernel`). Built from a precision
/// profile by `PrecisionProfile.forwardPlan` (Engines).
public struct ForwardPlan: Sendable {
    /// Rounding of every stored activation (residual stream, norm outputs, q/k/v, attention
    /// output, MLP intermediates); nil keeps float32.
    public var activation: Rounder?
    /// Rounding of attention probabilities before the P·V product.
    public var probabilities: Rounder?
    /// Rounding of keys and values entering attention: what the decoder writes to its KV
    /// cache, and the same rounding in the teacher-forced forward.
    public var kvCache: Rounder?
    /// Residual add and RMSNorm in one kernel: statistics from the unrounded sum and one
    /// rounding of the output, instead of two.
    public var fusedResidualNorm: Bool
    /// silu(gate)·up in one kernel (one rounding) instead of two.
    public var fusedSiluMul: Bool
    /// Attention softmax organisation.
    public var softmax: SoftmaxLayout
    /// Rounding of the LM head's output before the log-softmax (nil: kept as the kernel
    /// left it).
    public var logits: Rounder?
    /// Rounding of the gradient flowing between operators in the backward (nil: float32).
    public var gradient: Rounder?
    /// The kernel's weights already hold each adapter's (α/r)·B·A (merged LoRA): no adapter
    /// products beside them.
    public var loraMerged: Bool

    public init(activation: Rounder? = nil, probabilities: Rounder? = nil, kvCache: Rounder? = nil,
                fusedResidualNorm: Bool = false, fusedSiluMul: Bool = false, softmax: SoftmaxLayout = .wholeRow,
                logits: Rounder? = nil, gradient: Rounder? = nil, loraMerged: Bool = false) {
        self.loraMerged = loraMerged
        self.activation = activation
        self.probabilities = probabilities
        self.kvCache = kvCache
        self.logits = logits
        self.gradient = gradient
        self.fusedResidualNorm = fusedResidualNorm
        self.fusedSiluMul = fusedSiluMul
        self.softmax = softmax
    }

    /// Everything in float32, every kernel unfused, whole-row softmax.
    public static let fp32 = ForwardPlan()
}

/// Packed sequences: row r holds token `tokens[r]` at `positions[r]` of sequence s, whose
/// rows are starts[s]..<starts[s+1].
public struct PackedBatch: Sendable {
    public var tokens: [Int32]
    public var positions: [Int32]
    public var starts: [Int]

    public init(sequences: [[Int32]]) {
        var t: [Int32] = [], p: [Int32] = [], s = [0]
        for seq in sequences {
            t += seq
            p += (0..<seq.count).map { Int32($0) }
            s.append(t.count)
        }
        tokens = t
        positions = p
        starts = s
    }

    public var rows: Int { tokens.count }
    public var sequenceCount: Int { starts.count - 1 }

    /// The row whose next-token distribution predicts token j of the continuation of
    /// sequence s after its first `promptLength` tokens: the row just before that token.
    public func row(predicting j: Int, of s: Int, after promptLength: Int) -> Int {
        starts[s] + promptLength - 1 + j
    }
}

/// What the forward pass keeps for the backward pass, per layer.
public struct LayerCache {
    var input: [Float]      // (N, C) residual stream entering the layer
    var norm1: [Float]      // (N, C)
    var rstd1: [Float]      // (N)
    var q: [Float]          // (N, Q) after RoPE
    var k: [Float]          // (N, KV) after RoPE
    var v: [Float]          // (N, KV)
    var attn: [Float]       // (N, Q) attention output
    var probs: [Float]      // per row r at position t: H·(t+1) probabilities
    var mid: [Float]        // (N, C) residual after attention (the norm2 input)
    var norm2: [Float]      // (N, C)
    var rstd2: [Float]      // (N)
    var gate: [Float]       // (N, F)
    var up: [Float]         // (N, F)
    var act: [Float]        // (N, F) silu(gate)·up
    var sparse: SparseMLPCache? = nil   // a sparse MLP's routing and experts (gate, up, act unused)
    var adapterInputs: [LinearKind: [Float]] = [:]   // (N, r) x·Aᵀ of each adapted layer
    var qkNorm: QKNormCache? = nil   // Qwen3's per-head norms of q and k (nil without them)
}

/// What the per-head q and k norms keep for the backward: their inputs (the projections,
/// biases added) and 1/rms of each head of each row.
struct QKNormCache {
    var q: [Float]          // (N, Q) before the norm
    var k: [Float]          // (N, KV)
    var rstdQ: [Float]      // (N·H)
    var rstdK: [Float]      // (N·Hkv)
}

/// The result of a teacher-forced forward pass.
public struct ForwardResult {
    /// Log-softmax of the logits at every row (N, V), float32.
    public var logProbs: [Float]
    /// The size of the logits (after their rounding): the largest |logit| over all rows, and
    /// the mean over rows of each row's standard deviation. A format's absolute rounding
    /// error of a logit grows with its size.
    public var logitScale: (maxAbs: Float, meanStd: Double)
    /// Hidden state after each layer (L+1 entries of (N, C): the embedding output first),
    /// kept for traces.
    public var hiddenStates: [[Float]]
    var layers: [LayerCache]
    var finalInput: [Float]   // (N, C)
    var finalNorm: [Float]    // (N, C)
    var finalRstd: [Float]    // (N)
    var probOffsets: [Int]    // start of each row's probabilities in LayerCache.probs
    /// True for a forward made with `keepForBackward` false: no backward can use it.
    public var keepsNothingForBackward = false
    /// A sparse model's routing: each row's experts in each layer (nil for a dense model).
    public var routing: Routing? = nil
    /// The routers' own choices: `routing` unless a replayed routing overrode them.
    public var routerChoice: Routing? = nil
    /// A sparse model's expert loads per layer, and Mixtral's load-balancing loss over them.
    public var expertLoads: [ExpertLoad] = []
    public var loadBalancingLoss: Double { Transformer.loadBalancingLoss(expertLoads).loss }
}

/// A Llama-style decoder with given weights (non-matrix parameters: embedding, norms) and a
/// linear kernel for its matrix products.
public struct Transformer {
    public let config: LlamaConfig
    public let rotary: RotaryTable

    public init(config: LlamaConfig) {
        self.config = config
        self.rotary = RotaryTable(headDim: config.headDim, theta: config.ropeTheta, maxPositions: config.maxPositionEmbeddings)
    }

    // MARK: The decoder block, forward

    /// One decoder layer over `n` rows, shared by both engines:
    ///
    ///     n1 = RMSNorm(x);  q, k, v = RoPE(n1·Wqᵀ), RoPE(n1·Wkᵀ), n1·Wvᵀ   (k, v in the KV format)
    ///     h  = x + attention(q, k, v)·Woᵀ
    ///     n2 = RMSNorm(h);  x' = h + (silu(n2·Wgᵀ) ⊙ n2·Wuᵀ)·Wdᵀ
    ///
    /// with every stored activation rounded as `plan` says. A projection with a bias adds it
    /// (`adaptedLinear`); with per-head norms (Qwen3) q and k are RMSNorm(n1·Wqᵀ + b_q) per
    /// head before RoPE. Where keys and values come from
    /// is the one thing the engines do differently, so it is the caller's: `attend` gets the
    /// rows' q (N, Q), k and v (N, KV) and fills the attention output (N, Q) and, for the
    /// backward, the probabilities (the teacher-forced forward attends over the packed batch;
    /// the decode step writes k and v into its cache and attends over the cache).
    ///
    /// In a sparse model the MLP is `sparseMLPForward` (MixtureOfExperts.swift); `replay`
    /// (N·K) fixes its experts.
    ///
    /// `x` is the residual stream (rounded), `pending` the unrounded sum a fused
    /// residual+norm reads instead (nil when unfused); both are updated to the layer's
    /// output. Returns what the backward needs.
    func layerForward(_ l: Int, x: inout [Float], pending: inout [Float]?, positions: [Int32], weights: ModelWeights,
                      kernel: some LinearKernel, plan: ForwardPlan, replay: ArraySlice<Int32>? = nil,
                      attend: (_ q: [Float], _ k: [Float], _ v: [Float], _ attn: inout [Float], _ probs: inout [Float]) -> Void)
        -> LayerCache {
        let n = positions.count, c = config.hiddenSize, f = config.intermediateSize
        let kvDim = config.kvDim, h = config.numAttentionHeads, hkv = config.numKeyValueHeads, d = config.headDim
        let qDim = config.qDim
        let slots = weights.layer(l)
        // With a fused residual+norm the norm reads (and the backward differentiates
        // through) the unrounded sum.
        var cache = LayerCache(input: pending ?? x, norm1: [], rstd1: [], q: [], k: [], v: [], attn: [], probs: [],
                               mid: [], norm2: [], rstd2: [], gate: [], up: [], act: [])
        // A linear layer of this block, with its adapter when it has one (x·Aᵀ kept for the backward).
        var adapterInputs: [LinearKind: [Float]] = [:]
        func project(_ kind: LinearKind, _ input: [Float], out: Int) -> [Float] {
            let (y, t) = adaptedLinear(kernel, LinearSite(kind, layer: l), input, rows: n, out: out, weights: weights, plan: plan)
            if let t { adapterInputs[kind] = t }
            return y
        }
        cache.norm1 = rmsnorm(cache.input, weights, slots.inputNorm, rows: n, rstd: &cache.rstd1, plan: plan)
        kernel.sharingInput(cache.norm1) {
            cache.q = project(.q, cache.norm1, out: qDim)
            cache.k = project(.k, cache.norm1, out: kvDim)
            cache.v = project(.v, cache.norm1, out: kvDim)
        }
        if let qNorm = slots.qNorm, let kNorm = slots.kNorm {
            var norms = QKNormCache(q: cache.q, k: cache.k, rstdQ: [], rstdK: [])
            cache.q = headNorm(norms.q, weights, qNorm, rows: n * h, rstd: &norms.rstdQ, plan: plan)
            cache.k = headNorm(norms.k, weights, kNorm, rows: n * hkv, rstd: &norms.rstdK, plan: plan)
            cache.qkNorm = norms
        }
        positions.withUnsafeBufferPointer { pos in
            ropeForward(&cache.q, positions: pos.baseAddress!, rows: n, heads: h, headDim: d, table: rotary, round: plan.activation)
            ropeForward(&cache.k, positions: pos.baseAddress!, rows: n, heads: hkv, headDim: d, table: rotary, round: plan.activation)
        }
        // Keys and values in the KV format, as the decoder stores them in its cache (a
        // no-op when that is the activation format); the backward passes straight through.
        roundInPlace(plan.kvCache, &cache.k)
        roundInPlace(plan.kvCache, &cache.v)
        cache.attn = [Float](repeating: 0, count: n * qDim)
        attend(cache.q, cache.k, cache.v, &cache.attn, &cache.probs)
        let o = project(.o, cache.attn, out: c)
        let afterAttention = residualSum(x, o, rounding: plan.activation)
        x = afterAttention.rounded
        cache.mid = plan.fusedResidualNorm ? afterAttention.sum : x
        cache.norm2 = rmsnorm(cache.mid, weights, slots.postNorm, rows: n, rstd: &cache.rstd2, plan: plan)
        let down: [Float]
        if config.isMixtureOfExperts {
            let sparse = sparseMLPForward(l, x: cache.norm2, rows: n, weights: weights, kernel: kernel, plan: plan,
                                          replay: replay)
            down = sparse.out
            cache.sparse = sparse.cache
        } else {
            kernel.sharingInput(cache.norm2) {
                cache.gate = project(.gate, cache.norm2, out: f)
                cache.up = project(.up, cache.norm2, out: f)
            }
            cache.act = written(n * f) { act in
                swigluForward(cache.gate, cache.up, act, count: n * f, round: plan.activation, fused: plan.fusedSiluMul)
            }
            down = project(.down, cache.act, out: c)
        }
        let afterMLP = residualSum(x, down, rounding: plan.activation)
        x = afterMLP.rounded
        pending = plan.fusedResidualNorm ? afterMLP.sum : nil
        cache.adapterInputs = adapterInputs
        return cache
    }

    /// The final norm, the LM head and the log-softmax over the vocabulary (N, V), after
    /// the last layer, the logits rounded as `plan.logits` says. Shared by both engines.
    func headForward(x: [Float], pending: [Float]?, rows n: Int, weights: ModelWeights, kernel: some LinearKernel,
                     plan: ForwardPlan)
        -> (finalInput: [Float], finalNorm: [Float], finalRstd: [Float], logProbs: [Float], logitScale: (maxAbs: Float, meanStd: Double)) {
        let v = config.vocabSize
        let finalInput = pending ?? x
        var finalRstd: [Float] = []
        let finalNorm = rmsnorm(finalInput, weights, weights.finalNorm, rows: n, rstd: &finalRstd, plan: plan)
        var logits = linear(kernel, LinearSite(.lmHead, layer: -1), finalNorm, rows: n, out: v)
        roundInPlace(plan.logits, &logits)
        let scale = logitScale(logits, rows: n, vocab: v)
        // The log-probabilities replace the logits in their buffer (rows × vocabulary: for a
        // large vocabulary the largest buffer of the step, not allocated twice).
        logits.withUnsafeMutableBufferPointer { z in
            logSoftmaxForward(z.baseAddress!, z.baseAddress!, rows: n, vocab: v)
        }
        return (finalInput, finalNorm, finalRstd, logits, scale)
    }

    /// The largest |logit| and the mean over rows of the rows' standard deviations (Double
    /// sums). Each row's figures are its own, so rows are cut between threads, and the
    /// deviations are added in row order after.
    func logitScale(_ logits: [Float], rows n: Int, vocab v: Int) -> (maxAbs: Float, meanStd: Double) {
        var rowMax = [Float](repeating: 0, count: n), rowStd = [Double](repeating: 0, count: n)
        logits.withUnsafeBufferPointer { z in
            rowMax.withUnsafeMutableBufferPointer { mx in
                rowStd.withUnsafeMutableBufferPointer { sd in
                    let buffers = UncheckedSendable((z, mx, sd))
                    forEachRange(n, minimumCost: 1 << 18, cost: { _ in v }) { range in
                        let (z, mx, sd) = buffers.value
                        for r in range {
                            var maxAbs: Float = 0, sum = 0.0, squares = 0.0
                            for j in 0..<v {
                                let x = z[r * v + j]
                                maxAbs = max(maxAbs, abs(x))
                                sum += Double(x)
                                squares += Double(x) * Double(x)
                            }
                            let mean = sum / Double(v)
                            mx[r] = maxAbs
                            sd[r] = (max(0, squares / Double(v) - mean * mean)).squareRoot()
                        }
                    }
                }
            }
        }
        var maxAbs: Float = 0, stds = 0.0
        for r in 0..<n {
            maxAbs = max(maxAbs, rowMax[r])
            stds += rowStd[r]
        }
        return (maxAbs, n > 0 ? stds / Double(n) : 0)
    }

    // MARK: The decoder block, backward

    /// Backward of `layerForward` over the packed batch: `dx` holds ∂loss/∂x' (N, C) and
    /// becomes ∂loss/∂x; parameter gradients are added into `grads` (matrix gradients
    /// through the kernel). `gradientRounding` rounds the gradient flowing between operators.
    func layerBackward(_ l: Int, dx: inout [Float], cache: LayerCache, batch: PackedBatch, probOffsets: [Int],
                       weights: ModelWeights, kernel: some LinearKernel, grads: inout ModelWeights,
                       gradientRounding: Rounder?, auxGradient: [Float]) {
        let n = batch.rows, c = config.hiddenSize, f = config.intermediateSize
        let kvDim = config.kvDim, h = config.numAttentionHeads, hkv = config.numKeyValueHeads, d = config.headDim
        let qDim = config.qDim
        let slots = weights.layer(l)
        var dn2: [Float]
        if let sparse = cache.sparse {
            dn2 = sparseMLPBackward(l, dy: dx, x: cache.norm2, cache: sparse, rows: n, weights: weights, kernel: kernel,
                                    grads: &grads, gradientRounding: gradientRounding, auxGradient: auxGradient)
            roundInPlace(gradientRounding, &dn2)
        } else {
            // MLP: x_out = mid + down(act); act = silu(gate)·up; gate, up = linear(norm2).
            var dact = toBeWritten(n * f)
            adaptedLinearBackward(kernel, LinearSite(.down, layer: l), dy: dx, x: cache.act, t: cache.adapterInputs[.down], rows: n,
                                  dx: &dact, weights: weights, grads: &grads, gradientRounding: gradientRounding)
            var dgate = toBeWritten(n * f), dup = toBeWritten(n * f)
            // dact rounded, then dgate and dup, inside the element-wise pass.
            swigluBackward(&dact, cache.gate, cache.up, &dgate, &dup, count: n * f, rounding: gradientRounding)
            dn2 = linearsBackward([(.gate, dgate), (.up, dup)], layer: l, x: cache.norm2, rows: n, weights: weights,
                                  kernel: kernel, grads: &grads, adapterInputs: cache.adapterInputs, gradientRounding: gradientRounding,
                                  roundingSum: gradientRounding)
        }
        var tmp = toBeWritten(n * c)
        normBackward(dn2, cache.mid, slots.postNorm, cache.rstd2, rows: n, weights: weights, grads: &grads, into: &tmp)
        addInPlace(&dx, tmp, rounding: gradientRounding)
        // Attention: mid = input + o(attn).
        var dattn = toBeWritten(n * qDim)
        adaptedLinearBackward(kernel, LinearSite(.o, layer: l), dy: dx, x: cache.attn, t: cache.adapterInputs[.o], rows: n,
                              dx: &dattn, weights: weights, grads: &grads, gradientRounding: gradientRounding)
        roundInPlace(gradientRounding, &dattn)
        // dq is written row by row; the keys' and values' gradients add up over rows.
        var dq = toBeWritten(n * qDim)
        var dk = [Float](repeating: 0, count: n * kvDim), dv = dk
        attentionBackward(batch, cache, dattn: dattn, probOffsets: probOffsets, dq: &dq, dk: &dk, dv: &dv)
        batch.positions.withUnsafeBufferPointer { pos in
            ropeBackward(&dq, positions: pos.baseAddress!, rows: n, heads: h, headDim: d, table: rotary)
            ropeBackward(&dk, positions: pos.baseAddress!, rows: n, heads: hkv, headDim: d, table: rotary)
        }
        roundInPlace(gradientRounding, &dq)
        roundInPlace(gradientRounding, &dk)
        roundInPlace(gradientRounding, &dv)
        // Per-head norms: forward was `q = RMSNorm_head(q_proj)` (k alike), before RoPE.
        if let norms = cache.qkNorm, let qNorm = slots.qNorm, let kNorm = slots.kNorm {
            var dqIn = toBeWritten(n * qDim), dkIn = toBeWritten(n * kvDim)
            headNormBackward(dq, norms.q, qNorm, norms.rstdQ, rows: n * h, weights: weights, grads: &grads, into: &dqIn)
            headNormBackward(dk, norms.k, kNorm, norms.rstdK, rows: n * hkv, weights: weights, grads: &grads, into: &dkIn)
            dq = dqIn
            dk = dkIn
            roundInPlace(gradientRounding, &dq)
            roundInPlace(gradientRounding, &dk)
        }
        let dn1 = linearsBackward([(.q, dq), (.k, dk), (.v, dv)], layer: l, x: cache.norm1, rows: n, weights: weights,
                                  kernel: kernel, grads: &grads, adapterInputs: cache.adapterInputs, gradientRounding: gradientRounding,
                                  roundingSum: gradientRounding)
        normBackward(dn1, cache.input, slots.inputNorm, cache.rstd1, rows: n, weights: weights, grads: &grads, into: &tmp)
        addInPlace(&dx, tmp, rounding: gradientRounding)
    }

    // MARK: Teacher-forced forward

    /// Runs every row of the batch, each attending over the rows of its sequence up to
    /// itself, rounding as `plan` says. With `keepForBackward` false nothing the backward
    /// needs is kept (no attention probabilities, no per-layer caches): the same log-softmax
    /// and hidden states, for a forward that no backward follows (π_old with several
    /// minibatches, reference models, evaluation, traces).
    ///
    /// In a sparse model `replay` (as many rows as the batch) fixes each row's experts
    /// (routing replay); the result's `routing` says which experts every row used.
    public func forward(_ batch: PackedBatch, weights: ModelWeights, kernel: some LinearKernel, plan: ForwardPlan,
                        keepForBackward: Bool = true, replay: Routing? = nil) -> ForwardResult {
        precondition(replay == nil || replay!.rows == batch.rows, "a replayed routing of \(replay!.rows) rows for \(batch.rows)")
        let n = batch.rows, h = config.numAttentionHeads
        var x = embed(batch.tokens, weights: weights, round: plan.activation)   // (N, C) residual stream
        var hidden: [[Float]] = [x]
        // Probability offsets: row r at position t holds H·(t+1) values.
        var probOffsets = [Int](repeating: 0, count: n + 1)
        for r in 0..<n { probOffsets[r + 1] = probOffsets[r] + h * (Int(batch.positions[r]) + 1) }
        var layers: [LayerCache] = []
        var pending: [Float]? = nil
        var routing = config.isMixtureOfExperts ? Routing(topK: config.numExpertsPerTok, experts: []) : nil
        var routerChoice = routing
        var loads: [ExpertLoad] = []
        for l in 0..<config.numHiddenLayers {
            let cache = layerForward(l, x: &x, pending: &pending, positions: batch.positions, weights: weights,
                                     kernel: kernel, plan: plan, replay: replay.map { $0.experts[l][...] }) { q, k, v, attn, probs in
                if keepForBackward { probs = [Float](repeating: 0, count: probOffsets[n]) }
                attentionForward(batch, q: q, k: k, v: v, attn: &attn, probs: &probs, keepProbs: keepForBackward,
                                 probOffsets: probOffsets, plan: plan)
            }
            hidden.append(x)
            if let sparse = cache.sparse {
                routing?.experts.append(sparse.selected)
                routerChoice?.experts.append(sparse.routerChoice)
                loads.append(sparse.load)
            }
            if keepForBackward { layers.append(cache) }
        }
        let head = headForward(x: x, pending: pending, rows: n, weights: weights, kernel: kernel, plan: plan)
        return ForwardResult(logProbs: head.logProbs, logitScale: head.logitScale, hiddenStates: hidden, layers: layers, finalInput: head.finalInput,
                             finalNorm: head.finalNorm, finalRstd: head.finalRstd, probOffsets: probOffsets,
                             keepsNothingForBackward: !keepForBackward, routing: routing, routerChoice: routerChoice,
                             expertLoads: loads)
    }

    /// The embedding rows of the tokens (N, C), rounded.
    func embed(_ tokens: [Int32], weights: ModelWeights, round: Rounder?) -> [Float] {
        let c = config.hiddenSize
        var x = [Float](repeating: 0, count: tokens.count * c)
        weights.data.withUnsafeBufferPointer { w in
            x.withUnsafeMutableBufferPointer { xp in
                let emb = w.baseAddress! + weights.embedding.offset
                for (r, t) in tokens.enumerated() { (xp.baseAddress! + r * c).update(from: emb + Int(t) * c, count: c) }
            }
        }
        roundInPlace(round, &x)
        return x
    }

    // MARK: Backward

    /// Back-propagates `dLogProb` (∂loss/∂log p of each row's target token; N values) through
    /// the forward pass, accumulating parameter gradients into `grads` (same layout as the
    /// weights; matrix gradients through the kernel). `plan.gradient` rounds the gradient
    /// flowing between operators (nil keeps float32). In a sparse model
    /// `loadBalancingWeight` times the forward's load-balancing loss joins the loss.
    public func backward(_ batch: PackedBatch, targets: [Int32], dLogProb: [Float], forward fw: ForwardResult,
                         weights: ModelWeights, kernel: some LinearKernel, plan: ForwardPlan, grads: inout ModelWeights,
                         loadBalancingWeight: Float = 0) {
        precondition(!fw.keepsNothingForBackward, "backward of a forward that kept nothing for it")
        let gradientRounding = plan.gradient
        let n = batch.rows, c = config.hiddenSize, v = config.vocabSize
        var dlogits = [Float](repeating: 0, count: n * v)
        targets.withUnsafeBufferPointer { t in
            logSoftmaxBackward(fw.logProbs, targets: t.baseAddress!, grad: dLogProb, &dlogits, rows: n, vocab: v)
        }
        roundInPlace(gradientRounding, &dlogits)
        var dnorm = [Float](repeating: 0, count: n * c)
        grads.data.withUnsafeMutableBufferPointer { g in
            kernel.backward(LinearSite(.lmHead, layer: -1), dy: dlogits, x: fw.finalNorm, rows: n,
                            dx: &dnorm, dW: config.lora != nil ? nil : g.baseAddress! + weights.lmHead.offset)
        }
        roundInPlace(gradientRounding, &dnorm)
        var dx = [Float](repeating: 0, count: n * c)  // gradient of the residual stream
        normBackward(dnorm, fw.finalInput, weights.finalNorm, fw.finalRstd, rows: n, weights: weights, grads: &grads, into: &dx)
        roundInPlace(gradientRounding, &dx)
        let auxGradient = Transformer.loadBalancingLoss(fw.expertLoads).gradient.map { $0 * loadBalancingWeight }
        for l in stride(from: config.numHiddenLayers - 1, through: 0, by: -1) {
            layerBackward(l, dx: &dx, cache: fw.layers[l], batch: batch, probOffsets: fw.probOffsets, weights: weights,
                          kernel: kernel, grads: &grads, gradientRounding: gradientRounding, auxGradient: auxGradient)
        }
        // With adapters the model itself is frozen: no gradient for it (the norms' were
        // accumulated on the way and are cleared; the embedding's is never formed).
        if config.lora != nil {
            let frozen = grads.trainableRange.lowerBound
            grads.data.withUnsafeMutableBufferPointer { g in g.baseAddress!.update(repeating: 0, count: frozen) }
            return
        }
        // Embedding: scatter-add the residual gradient into the token rows.
        grads.data.withUnsafeMutableBufferPointer { g in
            let emb = g.baseAddress! + weights.embedding.offset
            for r in 0..<n {
                let row = emb + Int(batch.tokens[r]) * c
                for j in 0..<c { row[j] += dx[r * c + j] }
            }
        }
    }
}

@inline(__always)
func roundInPlace(_ r: Rounder?, _ x: inout [Float]) {
    guard let r else { return }
    let n = x.count
    x.withUnsafeMutableBufferPointer { p in r.round(p.baseAddress!, into: p.baseAddress!, count: n) }
}

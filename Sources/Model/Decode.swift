// One decoding step over a KV cache: the rollout engine's forward.

import Numerics

/// Keys and values of every layer for a set of sequence slots, up to a maximum length.
public struct KVCache {
    public let slots: Int
    public let capacity: Int
    let kvDim: Int
    var keys: [[Float]]     // per layer (slots, capacity, KV)
    var values: [[Float]]

    public init(config: LlamaConfig, slots: Int, capacity: Int) {
        self.slots = slots
        self.capacity = capacity
        kvDim = config.kvDim
        let size = slots * capacity * config.kvDim
        keys = [[Float]](repeating: [Float](repeating: 0, count: size), count: config.numHiddenLayers)
        values = keys
    }
}

/// One row of a decoding step: sequence slot, the token at `position`.
public struct DecodeRow: Sendable {
    public var slot: Int
    public var token: Int32
    public var position: Int32

    public init(slot: Int, token: Int32, position: Int32) {
        self.slot = slot
        self.token = token
        self.position = position
    }
}

extension Transformer {
    /// Runs one position for each row: writes its key and value into the cache and returns
    /// the log-softmax over the vocabulary for the next token (R, V). Every operation is the
    /// teacher-forced forward's, row by row, so with the same plan the result is the same.
    /// `hidden`, if given, receives the hidden state after each layer (L+1 arrays of (R, C)).
    public func decodeStep(_ rows: [DecodeRow], cache: inout KVCache, weights: ModelWeights, kernel: some LinearKernel,
                           plan: ForwardPlan, logitsRounding: Rounder? = nil, hidden: UnsafeMutablePointer<[[Float]]>? = nil) -> [Float] {
        let n = rows.count, c = config.hiddenSize, f = config.intermediateSize, v = config.vocabSize
        let kvDim = config.kvDim, h = config.numAttentionHeads, hkv = config.numKeyValueHeads, d = config.headDim
        let positions = rows.map(\.position)
        var x = embed(rows.map(\.token), weights: weights, round: plan.activation)
        var states: [[Float]] = [x]
        var pending: [Float]? = nil
        var rstd: [Float] = []
        let longest = Int(positions.max() ?? 0) + 1
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * longest + d + 16)
        defer { scratch.deallocate() }
        for l in 0..<config.numHiddenLayers {
            let slots = weights.layer(l)
            let norm1 = rmsnorm(pending ?? x, weights, slots.inputNorm, rows: n, rstd: &rstd, plan: plan)
            var q = linear(kernel, LinearSite(.q, layer: l), norm1, rows: n, out: c)
            var k = linear(kernel, LinearSite(.k, layer: l), norm1, rows: n, out: kvDim)
            var val = linear(kernel, LinearSite(.v, layer: l), norm1, rows: n, out: kvDim)
            positions.withUnsafeBufferPointer { pos in
                ropeForward(&q, positions: pos.baseAddress!, rows: n, heads: h, headDim: d, table: rotary, round: plan.activation)
                ropeForward(&k, positions: pos.baseAddress!, rows: n, heads: hkv, headDim: d, table: rotary, round: plan.activation)
            }
            roundInPlace(plan.kvCache, &k)
            roundInPlace(plan.kvCache, &val)
            for (r, row) in rows.enumerated() {
                let base = (row.slot * cache.capacity + Int(row.position)) * kvDim
                for i in 0..<kvDim {
                    cache.keys[l][base + i] = k[r * kvDim + i]
                    cache.values[l][base + i] = val[r * kvDim + i]
                }
            }
            var attn = [Float](repeating: 0, count: n * c)
            cache.keys[l].withUnsafeBufferPointer { kp in
                cache.values[l].withUnsafeBufferPointer { vp in
                    q.withUnsafeBufferPointer { qp in
                        attn.withUnsafeMutableBufferPointer { out in
                            for (r, row) in rows.enumerated() {
                                let base = row.slot * cache.capacity * kvDim
                                attendRow(q: qp.baseAddress! + r * c, keys: kp.baseAddress! + base, values: vp.baseAddress! + base,
                                          count: Int(row.position) + 1, heads: h, kvHeads: hkv, headDim: d, layout: plan.softmax,
                                          probabilityRounding: plan.probabilities, outputRounding: plan.activation,
                                          out: out.baseAddress! + r * c, probs: nil, scratch: scratch)
                            }
                        }
                    }
                }
            }
            let o = linear(kernel, LinearSite(.o, layer: l), attn, rows: n, out: c)
            var sum = [Float](repeating: 0, count: n * c)
            for i in 0..<(n * c) { sum[i] = x[i] + o[i] }
            x = sum
            roundInPlace(plan.activation, &x)
            let norm2 = rmsnorm(plan.fusedResidualNorm ? sum : x, weights, slots.postNorm, rows: n, rstd: &rstd, plan: plan)
            let gate = linear(kernel, LinearSite(.gate, layer: l), norm2, rows: n, out: f)
            let up = linear(kernel, LinearSite(.up, layer: l), norm2, rows: n, out: f)
            var act = [Float](repeating: 0, count: n * f)
            swigluForward(gate, up, &act, count: n * f, round: plan.activation, fused: plan.fusedSiluMul)
            let down = linear(kernel, LinearSite(.down, layer: l), act, rows: n, out: c)
            for i in 0..<(n * c) { sum[i] = x[i] + down[i] }
            x = sum
            roundInPlace(plan.activation, &x)
            pending = plan.fusedResidualNorm ? sum : nil
            states.append(x)
        }
        let finalNorm = rmsnorm(pending ?? x, weights, weights.finalNorm, rows: n, rstd: &rstd, plan: plan)
        var logits = linear(kernel, LinearSite(.lmHead, layer: -1), finalNorm, rows: n, out: v)
        roundInPlace(logitsRounding, &logits)
        var logProbs = [Float](repeating: 0, count: n * v)
        logSoftmaxForward(logits, &logProbs, rows: n, vocab: v)
        hidden?.pointee = states
        return logProbs
    }
}

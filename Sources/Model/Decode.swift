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
    /// the log-softmax over the vocabulary for the next token (R, V). It runs the decoder
    /// block of the teacher-forced forward (`layerForward`, `headForward`), attending over
    /// the cache instead of the packed batch, so with the same plan the result is the same.
    /// `hidden`, if given, receives the hidden state after each layer (L+1 arrays of (R, C)).
    /// Rows may hold several positions of one slot (a prefill): every row's key and value
    /// goes into the cache before any row attends, and each attends over its own positions
    /// 0...position. With `logProbs` false the step only fills the cache (no LM head) and
    /// returns an empty array. In a sparse model `routing`, if given, receives the experts
    /// each row went to in each layer.
    public func decodeStep(_ rows: [DecodeRow], cache: inout KVCache, weights: ModelWeights, kernel: some LinearKernel,
                           plan: ForwardPlan, hidden: UnsafeMutablePointer<[[Float]]>? = nil,
                           routing: UnsafeMutablePointer<Routing>? = nil, logProbs: Bool = true) -> [Float] {
        let n = rows.count, qDim = config.qDim, kvDim = config.kvDim
        let h = config.numAttentionHeads, hkv = config.numKeyValueHeads, d = config.headDim
        let positions = rows.map(\.position)
        var x = embed(rows.map(\.token), weights: weights, round: plan.activation)
        var states: [[Float]] = [x]
        var pending: [Float]? = nil
        let longest = Int(positions.max() ?? 0) + 1
        var used = Routing(topK: config.numExpertsPerTok, experts: [])
        for l in 0..<config.numHiddenLayers {
            let layer = layerForward(l, x: &x, pending: &pending, positions: positions, weights: weights, kernel: kernel,
                             plan: plan) { q, k, v, attn, _ in
                // Each row's key and value go into its slot at its position; it then attends
                // over positions 0...position of its slot.
                let capacity = cache.capacity
                cache.keys[l].withUnsafeMutableBufferPointer { kc in
                    cache.values[l].withUnsafeMutableBufferPointer { vc in
                        for (r, row) in rows.enumerated() {
                            let base = (row.slot * capacity + Int(row.position)) * kvDim
                            for i in 0..<kvDim {
                                kc[base + i] = k[r * kvDim + i]
                                vc[base + i] = v[r * kvDim + i]
                            }
                        }
                    }
                }
                cache.keys[l].withUnsafeBufferPointer { kp in
                    cache.values[l].withUnsafeBufferPointer { vp in
                        q.withUnsafeBufferPointer { qp in
                            attn.withUnsafeMutableBufferPointer { out in
                                // Rows are independent: each thread takes a run of them.
                                let capacity = cache.capacity
                                forEachRange(n, minimumCost: Transformer.parallelAttentionCost,
                                             cost: { (Int(rows[$0].position) + 1) * qDim }) { range in
                                    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * longest + d + 16)
                                    defer { scratch.deallocate() }
                                    for r in range {
                                        let row = rows[r]
                                        let base = row.slot * capacity * kvDim
                                        attendRow(q: qp.baseAddress! + r * qDim, keys: .rows(kp.baseAddress! + base), values: vp.baseAddress! + base,
                                                  count: Int(row.position) + 1, heads: h, kvHeads: hkv, headDim: d, layout: plan.softmax,
                                                  probabilityRounding: plan.probabilities, outputRounding: plan.activation,
                                                  out: out.baseAddress! + r * qDim, probs: nil, scratch: scratch)
                                    }
                                }
                            }
                        }
                    }
                }
            }
            states.append(x)
            if let sparse = layer.sparse { used.experts.append(sparse.selected) }
        }
        hidden?.pointee = states
        routing?.pointee = used
        guard logProbs else { return [] }
        return headForward(x: x, pending: pending, rows: n, weights: weights, kernel: kernel, plan: plan).logProbs
    }
}

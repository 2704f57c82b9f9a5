// Up to four consecutive query rows of one sequence at a time, for the training forward and
// backward: the bits of `attendRow` (whole-row softmax) and `attendRowBackward` row by row,
// with the rows' chains of multiply-adds side by side. A row's chains are short (a head's 64
// elements, a sequence's few dozen keys) and each step waits on the last; four rows' chains
// together keep the processor's multiply-add units busy. Below, attention over a packed
// batch of sequences, cut between threads by whole sequences.

import Numerics

/// The greatest number of rows `attendRows` and `attendRowsBackward` take at once.
let attentionRowGroup = 4

/// For rows r in 0..<rows (rows 1…4): out[r·outStride + j] = Σ_i x[r·xStride + i]·columns[i·stride + j]
/// for j < count(r), each one chain of fused multiply-adds from +0 in increasing i: `columnDots`
/// row by row. Sixteen keys a block, the rows' chains side by side; the blocks run to the last
/// row's count (counts grow with r), and lanes past a row's own count are dropped.
@inline(__always)
func columnDotsOfRows(_ x: UnsafePointer<Float>, xStride: Int, rows: Int, count: (Int) -> Int,
                      _ columns: UnsafePointer<Float>, stride: Int, length d: Int,
                      into out: UnsafeMutablePointer<Float>, outStride: Int) {
    typealias V = SIMD16<Float>
    @inline(__always) func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) func store(_ a: V, row r: Int, at j: Int) {
        let n = count(r), o = out + r * outStride
        if j + 16 <= n {
            UnsafeMutableRawPointer(o + j).storeBytes(of: a, as: V.self)
        } else if j < n {
            withUnsafeBytes(of: a) { UnsafeMutableRawPointer(o + j).copyMemory(from: $0.baseAddress!, byteCount: (n - j) * 4) }
        }
    }
    // `rows` is a literal in each inlined copy: no tests inside the chains' loop.
    @inline(__always) func blocks(_ rows: Int) {
        var j = 0
        while j < count(rows - 1) {
            var a0 = V(repeating: 0), a1 = V(repeating: 0), a2 = V(repeating: 0), a3 = V(repeating: 0)
            for i in 0..<d {
                let c = load(columns + i * stride + j)
                a0 = a0.addingProduct(V(repeating: x[i]), c)
                if rows > 1 { a1 = a1.addingProduct(V(repeating: x[xStride + i]), c) }
                if rows > 2 { a2 = a2.addingProduct(V(repeating: x[2 * xStride + i]), c) }
                if rows > 3 { a3 = a3.addingProduct(V(repeating: x[3 * xStride + i]), c) }
            }
            store(a0, row: 0, at: j)
            if rows > 1 { store(a1, row: 1, at: j) }
            if rows > 2 { store(a2, row: 2, at: j) }
            if rows > 3 { store(a3, row: 3, at: j) }
            j += 16
        }
    }
    switch rows {
    case 4: blocks(4)
    case 3: blocks(3)
    case 2: blocks(2)
    default: blocks(1)
    }
}

/// For rows r in 0..<rows (1…4): out[r·outStride + i] = Σ_j w[r·wStride + j]·values[j·stride + i]
/// for i < d (a multiple of 16 is fastest), j < count(r), each one chain of fused multiply-adds
/// from +0 in increasing j: `weightedRows` row by row. Counts grow with r: the keys all rows
/// have run side by side, then each row goes on alone to its own count.
@inline(__always)
func weightedRowsOfRows(_ w: UnsafePointer<Float>, wStride: Int, rows: Int, count: (Int) -> Int,
                        _ values: UnsafePointer<Float>, stride: Int, length d: Int,
                        into out: UnsafeMutablePointer<Float>, outStride: Int) {
    typealias V = SIMD16<Float>
    @inline(__always) func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) func slices(_ rows: Int) {
        let shared = count(0)
        var i = 0
        while i + 16 <= d {
            var a = (V(repeating: 0), V(repeating: 0), V(repeating: 0), V(repeating: 0))
            for j in 0..<shared {
                let v = load(values + j * stride + i)
                a.0 = a.0.addingProduct(V(repeating: w[j]), v)
                if rows > 1 { a.1 = a.1.addingProduct(V(repeating: w[wStride + j]), v) }
                if rows > 2 { a.2 = a.2.addingProduct(V(repeating: w[2 * wStride + j]), v) }
                if rows > 3 { a.3 = a.3.addingProduct(V(repeating: w[3 * wStride + j]), v) }
            }
            withUnsafeMutableBytes(of: &a) { sums in
                let sums = sums.baseAddress!.assumingMemoryBound(to: V.self)
                for r in 0..<rows {
                    var s = sums[r]
                    for j in shared..<count(r) { s = s.addingProduct(V(repeating: w[r * wStride + j]), load(values + j * stride + i)) }
                    UnsafeMutableRawPointer(out + r * outStride + i).storeBytes(of: s, as: V.self)
                }
            }
            i += 16
        }
        for r in 0..<rows {
            for e in i..<d {
                var s: Float = 0
                for j in 0..<count(r) { s = s.addingProduct(w[r * wStride + j], values[j * stride + e]) }
                out[r * outStride + e] = s
            }
        }
    }
    switch rows {
    case 4: slices(4)
    case 3: slices(3)
    case 2: slices(2)
    default: slices(1)
    }
}

/// `attendRow` with a whole-row softmax for `rows` (1…4) consecutive query rows of one
/// sequence, the first with `firstCount` keys (row r has firstCount + r): the same bits, row by
/// row. The keys only by columns, laid out as `Keys.columns` describes (`keyColumns`, its
/// stride `keyColumnStride`). q and out hold the rows H·D apart; `probs(r)` is where row r
/// keeps its probabilities (H·count each), if anywhere. `scratch` holds at least
/// rows·(2·(firstCount + rows) + D + 1) floats.
public func attendRows(q: UnsafePointer<Float>, values: UnsafePointer<Float>,
                       firstCount l0: Int, rows: Int, heads: Int, kvHeads: Int, headDim d: Int,
                       probabilityRounding: Rounder?, outputRounding: Rounder?, out: UnsafeMutablePointer<Float>,
                       probs: (Int) -> UnsafeMutablePointer<Float>?, scratch: UnsafeMutablePointer<Float>,
                       keyColumns: UnsafePointer<Float>, keyColumnStride: Int) {
    precondition((1...attentionRowGroup).contains(rows))
    let kvDim = kvHeads * d, qDim = heads * d, group = heads / kvHeads
    let longest = l0 + rows - 1
    let s = scratch, e = scratch + rows * longest, o = scratch + 2 * rows * longest, sums = o + rows * d
    let count = { (r: Int) in l0 + r }
    for h in 0..<heads {
        let g = h / group
        columnDotsOfRows(q + h * d, xStride: qDim, rows: rows, count: count, keyColumns + g * d * keyColumnStride,
                         stride: keyColumnStride, length: d, into: s, outStride: longest)
        for r in 0..<rows {
            sums[r] = exponentials(s + r * longest, count: count(r), headDim: d, into: e + r * longest,
                                   keep: probs(r).map { $0 + h * count(r) }, rounding: probabilityRounding)
        }
        weightedRowsOfRows(e, wStride: longest, rows: rows, count: count, values + g * d, stride: kvDim, length: d,
                           into: o, outStride: d)
        for r in 0..<rows {
            normalized(o + r * d, total: sums[r], headDim: d, into: out + r * qDim + h * d,
                       probs: probs(r).map { $0 + h * count(r) }, count: count(r))
        }
    }
    for r in 0..<rows { roundInPlace(outputRounding, out + r * qDim, qDim) }
}

/// A whole row's exponentials, as `attendRow` makes them: the scores (L of them, in `s`) scaled
/// by 1/√D, e_j = e^(s_j − max s), their sum in increasing j (returned); e kept unrounded in
/// `keep` when given, then rounded by `rounding`.
@inline(__always)
func exponentials(_ s: UnsafeMutablePointer<Float>, count l: Int, headDim d: Int, into e: UnsafeMutablePointer<Float>,
                  keep: UnsafeMutablePointer<Float>?, rounding: Rounder?) -> Float {
    let scale = 1 / Float(d).squareRoot()
    for j in 0..<l { s[j] *= scale }
    let lc = shiftedExponentials(s, count: l, into: e).sum
    if let keep { keep.update(from: e, count: l) }
    roundInPlace(rounding, e, l)
    return lc
}

/// A whole row's output and probabilities, as `attendRow` finishes them: out = (0 + 1·o)/total
/// with total = 0 + 1·Σe (its one chunk's merge), and the kept e_j divided by the total.
@inline(__always)
func normalized(_ o: UnsafePointer<Float>, total lc: Float, headDim d: Int, into out: UnsafeMutablePointer<Float>,
                probs: UnsafeMutablePointer<Float>?, count l: Int) {
    let total = Float(0).addingProduct(1, lc)
    for i in 0..<d { out[i] = Float(0).addingProduct(1, o[i]) / total }
    if let probs { for j in 0..<l { probs[j] /= total } }
}

/// `attendRowBackward` for `rows` (1…4) consecutive query rows of one sequence, the first
/// with `firstCount` keys, the values given by columns: the same bits, row by row. dout, q and
/// dq hold the rows H·D apart; `probs(r)` is row r's kept probabilities (H·count). The keys'
/// and values' gradients take their additions in attendRowBackward's order (row by row, head
/// by head), so they too have its bits. `scratch` holds at least rows·H·(firstCount + rows)
/// floats.
public func attendRowsBackward(dout: UnsafePointer<Float>, q: UnsafePointer<Float>, keys: UnsafePointer<Float>,
                               probs: (Int) -> UnsafePointer<Float>, firstCount l0: Int, rows: Int,
                               heads: Int, kvHeads: Int, headDim d: Int, dq: UnsafeMutablePointer<Float>,
                               dkeys: UnsafeMutablePointer<Float>, dvalues: UnsafeMutablePointer<Float>,
                               scratch: UnsafeMutablePointer<Float>, valueColumns: UnsafePointer<Float>, valueColumnStride: Int) {
    precondition((1...attentionRowGroup).contains(rows))
    let kvDim = kvHeads * d, qDim = heads * d, group = heads / kvHeads
    let scale = 1 / Float(d).squareRoot()
    let longest = l0 + rows - 1
    let count = { (r: Int) in l0 + r }
    // dp, then ds over it, of row r and head h at ds[(r·H + h)·longest + j].
    let ds = scratch
    for h in 0..<heads {
        let g = h / group
        columnDotsOfRows(dout + h * d, xStride: qDim, rows: rows, count: count, valueColumns + g * d * valueColumnStride,
                         stride: valueColumnStride, length: d, into: ds + h * longest, outStride: heads * longest)
        for r in 0..<rows {
            let l = count(r), ph = probs(r) + h * l, dp = ds + (r * heads + h) * longest
            var weighted: Float = 0
            for j in 0..<l { weighted = weighted.addingProduct(ph[j], dp[j]) }
            for j in 0..<l { dp[j] = ph[j] * (dp[j] - weighted) * scale }
        }
        weightedRowsOfRows(ds + h * longest, wStride: heads * longest, rows: rows, count: count, keys + g * d, stride: kvDim,
                           length: d, into: dq + h * d, outStride: qDim)
    }
    for r in 0..<rows {
        let l = count(r)
        for h in 0..<heads {
            let kvOffset = (h / group) * d, ph = probs(r) + h * l, dsh = ds + (r * heads + h) * longest
            let g = dout + r * qDim + h * d, qh = q + r * qDim + h * d
            for j in 0..<l { addScaled(ph[j], g, to: dvalues + j * kvDim + kvOffset, length: d) }
            for j in 0..<l { addScaled(dsh[j], qh, to: dkeys + j * kvDim + kvOffset, length: d) }
        }
    }
}

// MARK: Over the packed batch

extension Transformer {
    /// Attention over the packed batch: row r of sequence s attends over the rows
    /// starts[s]...r; its probabilities are kept at probOffsets[r] for the backward.
    func attentionForward(_ batch: PackedBatch, q: [Float], k: [Float], v: [Float], attn: inout [Float],
                          probs: inout [Float], keepProbs: Bool, probOffsets: [Int], plan: ForwardPlan) {
        let qDim = config.qDim, kvDim = config.kvDim, d = config.headDim
        let h = config.numAttentionHeads, hkv = config.numKeyValueHeads
        let longest = (0..<batch.sequenceCount).map { batch.starts[$0 + 1] - batch.starts[$0] }.max() ?? 0
        q.withUnsafeBufferPointer { q in
            k.withUnsafeBufferPointer { k in
                v.withUnsafeBufferPointer { v in
                    attn.withUnsafeMutableBufferPointer { out in
                        probs.withUnsafeMutableBufferPointer { probs in
                            let kept = keepProbs ? probs.baseAddress : nil
                            // Sequences are independent: each thread takes whole sequences.
                            forEachRange(batch.sequenceCount, minimumCost: Transformer.parallelAttentionCost,
                                         cost: { attentionCost(batch, $0) }) { sequences in
                                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: attentionRowGroup * (2 * longest + d + 1) + 16)
                                defer { scratch.deallocate() }
                                // The sequence's keys by columns, for sixteen scores at a time.
                                let (columns, stride) = columnsRoom(longest: longest, width: kvDim)
                                defer { columns.deallocate() }
                                for s in sequences {
                                    let start = batch.starts[s], n = batch.starts[s + 1] - start
                                    let keys = k.baseAddress! + start * kvDim
                                    byColumns(keys, rows: n, width: kvDim, into: columns, stride: stride)
                                    if plan.softmax == .wholeRow {
                                        // Rows in groups, each group's chains side by side: the same bits.
                                        var r = start
                                        while r < start + n {
                                            let rows = min(attentionRowGroup, start + n - r)
                                            attendRows(q: q.baseAddress! + r * qDim, values: v.baseAddress! + start * kvDim,
                                                       firstCount: r - start + 1, rows: rows, heads: h, kvHeads: hkv, headDim: d,
                                                       probabilityRounding: plan.probabilities, outputRounding: plan.activation,
                                                       out: out.baseAddress! + r * qDim, probs: { [r] i in kept.map { $0 + probOffsets[r + i] } },
                                                       scratch: scratch, keyColumns: columns, keyColumnStride: stride)
                                            r += rows
                                        }
                                        continue
                                    }
                                    for r in start..<batch.starts[s + 1] {
                                        attendRow(q: q.baseAddress! + r * qDim, keys: .columns(columns, stride: stride),
                                                  values: v.baseAddress! + start * kvDim, count: r - start + 1, heads: h, kvHeads: hkv,
                                                  headDim: d, layout: plan.softmax, probabilityRounding: plan.probabilities,
                                                  outputRounding: plan.activation, out: out.baseAddress! + r * qDim,
                                                  probs: kept.map { $0 + probOffsets[r] }, scratch: scratch)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Below this many multiply-adds (rows × keys × heads × head size, summed) attention runs
    /// on one thread: waking a second costs more than it saves.
    static let parallelAttentionCost = 1 << 16

    /// Sequence s's attention work: its rows' key counts times the heads' widths.
    func attentionCost(_ batch: PackedBatch, _ s: Int) -> Int {
        let n = batch.starts[s + 1] - batch.starts[s]
        return n * (n + 1) / 2 * config.qDim
    }

    /// Backward of `attentionForward` from the kept probabilities: dq written, the keys' and
    /// values' gradients added into dk and dv (zeroed by the caller).
    func attentionBackward(_ batch: PackedBatch, _ cache: LayerCache, dattn: [Float], probOffsets: [Int],
                           dq: inout [Float], dk: inout [Float], dv: inout [Float]) {
        let qDim = config.qDim, kvDim = config.kvDim, d = config.headDim
        let h = config.numAttentionHeads, hkv = config.numKeyValueHeads
        let longest = (0..<batch.sequenceCount).map { batch.starts[$0 + 1] - batch.starts[$0] }.max() ?? 0
        cache.q.withUnsafeBufferPointer { q in
            cache.k.withUnsafeBufferPointer { k in
                cache.v.withUnsafeBufferPointer { v in
                    cache.probs.withUnsafeBufferPointer { probs in
                        dattn.withUnsafeBufferPointer { g in
                            dq.withUnsafeMutableBufferPointer { dqp in
                                dk.withUnsafeMutableBufferPointer { dkp in
                                    dv.withUnsafeMutableBufferPointer { dvp in
                                        // Each sequence's rows add into its own keys' gradients only:
                                        // whole sequences per thread, each in the same row order.
                                        forEachRange(batch.sequenceCount, minimumCost: Transformer.parallelAttentionCost,
                                                     cost: { attentionCost(batch, $0) }) { sequences in
                                            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: attentionRowGroup * h * longest + 16)
                                            defer { scratch.deallocate() }
                                            let (columns, stride) = columnsRoom(longest: longest, width: kvDim)
                                            defer { columns.deallocate() }
                                            for s in sequences {
                                                let start = batch.starts[s], n = batch.starts[s + 1] - start
                                                byColumns(v.baseAddress! + start * kvDim, rows: n, width: kvDim, into: columns, stride: stride)
                                                // Rows in groups, each group's chains side by side: the same bits.
                                                var r = start
                                                while r < start + n {
                                                    let rows = min(attentionRowGroup, start + n - r)
                                                    attendRowsBackward(dout: g.baseAddress! + r * qDim, q: q.baseAddress! + r * qDim,
                                                                       keys: k.baseAddress! + start * kvDim,
                                                                       probs: { [r] i in probs.baseAddress! + probOffsets[r + i] },
                                                                       firstCount: r - start + 1, rows: rows, heads: h, kvHeads: hkv, headDim: d,
                                                                       dq: dqp.baseAddress! + r * qDim, dkeys: dkp.baseAddress! + start * kvDim,
                                                                       dvalues: dvp.baseAddress! + start * kvDim, scratch: scratch,
                                                                       valueColumns: columns, valueColumnStride: stride)
                                                    r += rows
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

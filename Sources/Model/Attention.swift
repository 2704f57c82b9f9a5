// Causal multi-head attention for one query row, as FlashAttention computes it, with its
// backward. Both engines call `attendRow`, the training engine over a sequence's packed keys
// and the rollout engine over its KV cache, so equal settings give equal bits.
//
// H = heads, Hkv = key/value heads (head h reads key/value head h / (H/Hkv)), D = head dim,
// L = number of keys (positions 0…t).

import Numerics

/// How a query row's softmax over its keys is organised.
public enum SoftmaxLayout: Hashable, Sendable {
    /// One pass over the whole row (FlashAttention-2 style, training).
    case wholeRow
    /// Keys split into chunks of this length, each with its own max and sum, merged with
    /// log-sum-exp weights at the end (flash-decoding, inference).
    case chunked(Int)
}

/// Where one sequence's keys (L of them, Hkv·D elements each) lie.
public enum Keys {
    /// (L, Hkv·D) row-major: key j at [j·Hkv·D].
    case rows(UnsafePointer<Float>)
    /// By columns, key/value head by head: element i of key j of head g at
    /// [(g·D + i)·stride + j], the stride a multiple of 16 and at least L (`columnDots`
    /// reads whole blocks of sixteen keys).
    case columns(UnsafePointer<Float>, stride: Int)
}

/// out (H·D) = softmax(q·Kᵀ/√D) · V for one query row, per head.
///
/// Concretely, per head and chunk c of keys: m_c = max_j s_j; e_j = e^(s_j − m_c); l_c = Σ e_j;
/// o_c = Σ_j round(e_j) · v_j (the probabilities are rounded to the activation format before
/// the second product, as FlashAttention does); then with M = max m_c,
/// out = round(Σ_c e^(m_c − M) o_c / Σ_c e^(m_c − M) l_c). A whole row is one chunk.
/// If `probs` is given (L per head, H·L), the normalised probabilities p_j are saved there.
/// Keys by rows or by columns give the same bits (by columns, sixteen scores at a time).
public func attendRow(q: UnsafePointer<Float>,            // (H, D)
                      keys: Keys,                         // L keys of Hkv·D
                      values: UnsafePointer<Float>,       // (L, Hkv·D)
                      count l: Int, heads: Int, kvHeads: Int, headDim d: Int,
                      layout: SoftmaxLayout, probabilityRounding: Rounder?, outputRounding: Rounder?,
                      out: UnsafeMutablePointer<Float>,   // (H, D)
                      probs: UnsafeMutablePointer<Float>?,// (H, L) or nil
                      scratch: UnsafeMutablePointer<Float>) { // ≥ 2·L + D floats
    let kvDim = kvHeads * d
    let group = heads / kvHeads
    let scale = 1 / Float(d).squareRoot()
    let chunk: Int
    switch layout {
    case .wholeRow: chunk = l
    case .chunked(let c): chunk = max(1, c)
    }
    let s = scratch, e = scratch + l, o = scratch + 2 * l
    for h in 0..<heads {
        let qh = q + h * d
        let kvOffset = (h / group) * d
        switch keys {
        case .rows(let rows): rowDots(qh, rows + kvOffset, stride: kvDim, count: l, length: d, into: s)
        case .columns(let columns, let stride):
            columnDots(qh, columns + (h / group) * d * stride, stride: stride, count: l, length: d, into: s)
        }
        for j in 0..<l { s[j] *= scale }
        let oh = out + h * d
        for i in 0..<d { oh[i] = 0 }
        var total: Float = 0
        var globalMax = -Float.infinity
        // Chunk maxima first, so the merge weights are known (a fixed, documented order).
        var c0 = 0
        while c0 < l {
            let c1 = min(l, c0 + chunk)
            var m = -Float.infinity
            for j in c0..<c1 { m = max(m, s[j]) }
            globalMax = max(globalMax, m)
            c0 = c1
        }
        c0 = 0
        while c0 < l {
            let c1 = min(l, c0 + chunk)
            let (m, lc) = shiftedExponentials(s + c0, count: c1 - c0, into: e + c0)
            // A whole row's e_j are the backward's e^(s_j − M) already: kept before rounding.
            if let probs, chunk >= l { (probs + h * l).update(from: e, count: l) }
            roundInPlace(probabilityRounding, e + c0, c1 - c0)
            weightedRows(e + c0, values + c0 * kvDim + kvOffset, stride: kvDim, count: c1 - c0, length: d, into: o)
            let weight = chunk >= l ? 1 : expF(m - globalMax)
            for i in 0..<d { oh[i] = oh[i].addingProduct(weight, o[i]) }
            total = total.addingProduct(weight, lc)
            c0 = c1
        }
        for i in 0..<d { oh[i] /= total }
        if let probs {
            // p_j = e^(s_j − M) / total, in float32 (unrounded), for the backward pass.
            let ph = probs + h * l
            if chunk < l {
                for j in 0..<l { ph[j] = s[j] - globalMax }
                expInPlace(ph, l)
            }
            for j in 0..<l { ph[j] /= total }
        }
    }
    roundInPlace(outputRounding, out, heads * d)
}

/// Backward of `attendRow` (roundings as identity), with out = Σ_j p_j v_j, p = softmax(s),
/// s_j = q·k_j/√D: dv_j += p_j·dout; dp_j = dout·v_j; ds_j = p_j (dp_j − Σ_k p_k dp_k);
/// dq = Σ_j ds_j k_j/√D; dk_j += ds_j q/√D. Key and value gradients accumulate (several
/// query rows and heads read the same key). The reference for `attendRowsBackward`.
public func attendRowBackward(dout: UnsafePointer<Float>,          // (H, D)
                              q: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                              probs: UnsafePointer<Float>,          // (H, L)
                              count l: Int, heads: Int, kvHeads: Int, headDim d: Int,
                              dq: UnsafeMutablePointer<Float>,      // (H, D), overwritten
                              dkeys: UnsafeMutablePointer<Float>,   // (L, Hkv·D), accumulated
                              dvalues: UnsafeMutablePointer<Float>, // (L, Hkv·D), accumulated
                              scratch: UnsafeMutablePointer<Float>) { // ≥ L floats
    let kvDim = kvHeads * d
    let group = heads / kvHeads
    let scale = 1 / Float(d).squareRoot()
    let dp = scratch
    for h in 0..<heads {
        let kvOffset = (h / group) * d
        let ph = probs + h * l, g = dout + h * d, qh = q + h * d, dqh = dq + h * d
        rowDots(g, values + kvOffset, stride: kvDim, count: l, length: d, into: dp)
        var weighted: Float = 0
        for j in 0..<l {
            let dvj = dvalues + j * kvDim + kvOffset
            addScaled(ph[j], g, to: dvj, length: d)
            weighted = weighted.addingProduct(ph[j], dp[j])
        }
        // ds_j over dp_j's room; dq = Σ_j ds_j k_j as one chain per element in increasing j.
        for j in 0..<l { dp[j] = ph[j] * (dp[j] - weighted) * scale }
        weightedRows(dp, keys + kvOffset, stride: kvDim, count: l, length: d, into: dqh)
        for j in 0..<l { addScaled(dp[j], qh, to: dkeys + j * kvDim + kvOffset, length: d) }
    }
}

/// out[j] = Σ_i x[i]·rows[j·stride + i], each one chain of fused multiply-adds from +0 in
/// increasing i (exactly the plain loop's bits). Eight rows' chains run side by side, so the
/// processor overlaps their latencies instead of waiting on one chain at a time.
@inline(__always)
func rowDots(_ x: UnsafePointer<Float>, _ rows: UnsafePointer<Float>, stride: Int, count: Int, length d: Int,
             into out: UnsafeMutablePointer<Float>) {
    var j = 0
    while j + 8 <= count {
        let r = rows + j * stride
        var a0: Float = 0, a1: Float = 0, a2: Float = 0, a3: Float = 0
        var a4: Float = 0, a5: Float = 0, a6: Float = 0, a7: Float = 0
        for i in 0..<d {
            let xi = x[i]
            a0 = a0.addingProduct(xi, r[i])
            a1 = a1.addingProduct(xi, r[stride + i])
            a2 = a2.addingProduct(xi, r[2 * stride + i])
            a3 = a3.addingProduct(xi, r[3 * stride + i])
            a4 = a4.addingProduct(xi, r[4 * stride + i])
            a5 = a5.addingProduct(xi, r[5 * stride + i])
            a6 = a6.addingProduct(xi, r[6 * stride + i])
            a7 = a7.addingProduct(xi, r[7 * stride + i])
        }
        out[j] = a0; out[j + 1] = a1; out[j + 2] = a2; out[j + 3] = a3
        out[j + 4] = a4; out[j + 5] = a5; out[j + 6] = a6; out[j + 7] = a7
        j += 8
    }
    while j < count {
        let r = rows + j * stride
        var a: Float = 0
        for i in 0..<d { a = a.addingProduct(x[i], r[i]) }
        out[j] = a
        j += 1
    }
}

/// Up to four sixteen-lane chains side by side: lane l of chain v is Σ_t s[t]·base[t·step + 16v + l]
/// over t in 0..<count, one chain of fused multiply-adds from +0 in increasing t (`width`, 1, 2
/// or 4, chains; the others stay zero). Independent chains let the processor overlap their
/// latencies instead of waiting on one.
@inline(__always)
func sideBySideChains(_ width: Int, count: Int, scalars s: UnsafePointer<Float>, _ base: UnsafePointer<Float>, step: Int)
    -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
    typealias V = SIMD16<Float>
    @inline(__always) func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    var a0 = V(repeating: 0), a1 = V(repeating: 0), a2 = V(repeating: 0), a3 = V(repeating: 0)
    for t in 0..<count {
        let st = V(repeating: s[t]), p = base + t * step
        a0 = a0.addingProduct(st, load(p))
        if width > 1 { a1 = a1.addingProduct(st, load(p + 16)) }
        if width > 2 {
            a2 = a2.addingProduct(st, load(p + 32))
            a3 = a3.addingProduct(st, load(p + 48))
        }
    }
    return (a0, a1, a2, a3)
}

/// `rowDots` over keys stored by columns (element i of key j at columns[i·stride + j]):
/// sixteen keys' chains in one vector, each lane one chain of fused multiply-adds from +0 in
/// increasing i, so exactly `rowDots`'s bits; up to four blocks of sixteen keys side by side.
/// Reads stay within the blocks that hold keys (⌈count/16⌉ of them, inside the stride).
@inline(__always)
func columnDots(_ x: UnsafePointer<Float>, _ columns: UnsafePointer<Float>, stride: Int, count: Int, length d: Int,
                into out: UnsafeMutablePointer<Float>) {
    typealias V = SIMD16<Float>
    // The last block's lanes past `count` are dropped.
    @inline(__always) func store(_ a: V, at j: Int) {
        if j + 16 <= count {
            UnsafeMutableRawPointer(out + j).storeBytes(of: a, as: V.self)
        } else if j < count {
            withUnsafeBytes(of: a) { UnsafeMutableRawPointer(out + j).copyMemory(from: $0.baseAddress!, byteCount: (count - j) * 4) }
        }
    }
    var j = 0
    while j < count {
        let blocks = (count - j + 15) / 16, width = blocks >= 4 ? 4 : blocks >= 2 ? 2 : 1
        // A literal width at each call, so each inlined copy has no tests in its loop.
        let (a0, a1, a2, a3) = width == 4 ? sideBySideChains(4, count: d, scalars: x, columns + j, step: stride)
            : width == 2 ? sideBySideChains(2, count: d, scalars: x, columns + j, step: stride)
            : sideBySideChains(1, count: d, scalars: x, columns + j, step: stride)
        store(a0, at: j)
        if width > 1 { store(a1, at: j + 16) }
        if width > 2 { store(a2, at: j + 32); store(a3, at: j + 48) }
        j += 16 * width
    }
}

/// out[i] = Σ_j w[j]·rows[j·stride + i] for i in 0..<d, each one chain of fused multiply-adds
/// from +0 in increasing j: the bits of `addScaled` of every row in turn into a zeroed `out`,
/// with the running sums kept in registers instead of stored and loaded again at every row
/// (that store-to-load chain was half of the training forward's attention time), and up to
/// four vectors' chains side by side.
@inline(__always)
func weightedRows(_ w: UnsafePointer<Float>, _ rows: UnsafePointer<Float>, stride: Int, count: Int, length d: Int,
                  into out: UnsafeMutablePointer<Float>) {
    typealias V = SIMD16<Float>
    @inline(__always) func store(_ a: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: a, as: V.self) }
    var i = 0
    while i + 16 <= d {
        let vectors = (d - i) / 16, width = vectors >= 4 ? 4 : vectors >= 2 ? 2 : 1
        let (s0, s1, s2, s3) = width == 4 ? sideBySideChains(4, count: count, scalars: w, rows + i, step: stride)
            : width == 2 ? sideBySideChains(2, count: count, scalars: w, rows + i, step: stride)
            : sideBySideChains(1, count: count, scalars: w, rows + i, step: stride)
        store(s0, out + i)
        if width > 1 { store(s1, out + i + 16) }
        if width > 2 { store(s2, out + i + 32); store(s3, out + i + 48) }
        i += 16 * width
    }
    while i < d {
        var sum: Float = 0
        for j in 0..<count { sum = sum.addingProduct(w[j], rows[j * stride + i]) }
        out[i] = sum
        i += 1
    }
}

/// y[i] = fma(w, x[i], y[i]) for i in 0..<d: element by element, so sixteen at a time gives
/// the plain loop's bits.
@inline(__always)
func addScaled(_ w: Float, _ x: UnsafePointer<Float>, to y: UnsafeMutablePointer<Float>, length d: Int) {
    typealias V = SIMD16<Float>
    let wv = V(repeating: w)
    var i = 0
    while i + 16 <= d {
        let xv = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
        let yv = UnsafeRawPointer(y + i).loadUnaligned(as: V.self)
        UnsafeMutableRawPointer(y + i).storeBytes(of: yv.addingProduct(wv, xv), as: V.self)
        i += 16
    }
    while i < d {
        y[i] = y[i].addingProduct(w, x[i])
        i += 1
    }
}

/// Room for up to `longest` rows of `width` elements stored by columns (`byColumns`), each
/// column's stride a multiple of 16 (`columnDots` reads whole blocks of sixteen); zeroed, so
/// the lanes past a sequence's last key read finite values.
func columnsRoom(longest: Int, width: Int) -> (UnsafeMutablePointer<Float>, stride: Int) {
    let stride = (longest + 15) / 16 * 16
    let columns = UnsafeMutablePointer<Float>.allocate(capacity: max(1, width * stride))
    columns.initialize(repeating: 0, count: width * stride)
    return (columns, stride)
}

/// columns[c·stride + j] = rows[j·width + c] for j < n.
func byColumns(_ rows: UnsafePointer<Float>, rows n: Int, width: Int, into columns: UnsafeMutablePointer<Float>, stride: Int) {
    for j in 0..<n { for c in 0..<width { columns[c * stride + j] = rows[j * width + c] } }
}

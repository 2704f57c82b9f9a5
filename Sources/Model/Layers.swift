// The decoder's layers: each forward with its backward right below it, over flat buffers.
//
// N = rows (tokens of all sequences packed one after another), C = hidden size,
// H = heads, Hkv = key/value heads, D = head dimension, F = intermediate size, V = vocabulary.
// Rounding is not decided here: a function that stores an activation takes the `Rounder?`
// to apply (nil = keep float32), and the caller (an engine's profile) chooses it.
// Backward passes treat each rounding as the identity (the straight-through estimator), as
// mixed-precision training does.
// Row-wise and elementwise passes over large buffers are cut between threads: every row (or
// element) is computed, and rounded, on its own, so the bits do not depend on the cut. Sums
// over rows (RMSNorm's weight gradient) are cut by columns instead, each column's sum in row
// order.

import Numerics

@inline(__always)
func roundInPlace(_ r: Rounder?, _ x: UnsafeMutablePointer<Float>, _ n: Int) {
    if let r { r.round(x, into: x, count: n) }
}

/// From this many values a row-wise or elementwise pass is cut between threads. Every row
/// (every element) is computed on its own, so the result is the same.
let parallelElements = 1 << 18

/// Calls `body` on chunks of 0..<count small enough to stay in the first-level cache between
/// the passes `body` makes over them, cut between threads when the count is large.
func forEachBlock(_ count: Int, _ body: (Range<Int>) -> Void) {
    forEachChunk(count, minimum: parallelElements, body)
}

/// `count` floats, every one written by `body` (a product's output, a norm's rows): no
/// zeros written first only to be written over.
@inline(__always)
func written(_ count: Int, by body: (UnsafeMutablePointer<Float>) -> Void) -> [Float] {
    [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
        if count > 0 { body(buffer.baseAddress!) }
        initialized = count
    }
}

/// For each row i in `rows`: a chain over j in 0..<width, from `start`, of `step(i, j, sum)`
/// (a row's sum of squares, a dot product), handed to `each(i, sum)` in row order. Eight
/// rows' chains run side by side, each in its own order, so the processor overlaps their
/// latencies: every row's sum is the bits it has alone.
@inline(__always)
func rowChains(_ rows: Range<Int>, width: Int, start: Float, _ step: (Int, Int, Float) -> Float,
               _ each: (Int, Float) -> Void) {
    var i = rows.lowerBound
    while i + 8 <= rows.upperBound {
        var s0 = start, s1 = start, s2 = start, s3 = start, s4 = start, s5 = start, s6 = start, s7 = start
        for j in 0..<width {
            s0 = step(i, j, s0); s1 = step(i + 1, j, s1); s2 = step(i + 2, j, s2); s3 = step(i + 3, j, s3)
            s4 = step(i + 4, j, s4); s5 = step(i + 5, j, s5); s6 = step(i + 6, j, s6); s7 = step(i + 7, j, s7)
        }
        each(i, s0); each(i + 1, s1); each(i + 2, s2); each(i + 3, s3)
        each(i + 4, s4); each(i + 5, s5); each(i + 6, s6); each(i + 7, s7)
        i += 8
    }
    while i < rows.upperBound {
        var sum = start
        for j in 0..<width { sum = step(i, j, sum) }
        each(i, sum)
        i += 1
    }
}

// MARK: RMSNorm

/// RMSNorm of each row: `out = round(w ⊙ round(x / rms(x)))` with rms(x) = √(mean(x²) + eps).
/// With `fused` the product is rounded once: `out = round(w ⊙ x / rms(x))` (one kernel).
/// Statistics are computed in float32 with a fixed order. Saves 1/rms per row in `rstd` (N).
public func rmsnormForward(_ x: UnsafePointer<Float>,          // (N, C)
                           _ w: UnsafePointer<Float>,          // (C)
                           _ out: UnsafeMutablePointer<Float>, // (N, C)
                           _ rstd: UnsafeMutablePointer<Float>,// (N)
                           rows n: Int, width c: Int, eps: Float, round: Rounder?, fused: Bool) {
    forEachRange(n, minimumCost: parallelElements, cost: { _ in c }) { rows in
        rowChains(rows, width: c, start: 0, { i, j, sum in sum.addingProduct(x[i * c + j], x[i * c + j]) }) { i, ss in
            let xi = x + i * c, oi = out + i * c
            let r = 1 / (ss / Float(c) + eps).squareRoot()
            rstd[i] = r
            if fused {
                for j in 0..<c { oi[j] = w[j] * (xi[j] * r) }
                roundInPlace(round, oi, c)
            } else {
                for j in 0..<c { oi[j] = xi[j] * r }
                roundInPlace(round, oi, c)
                for j in 0..<c { oi[j] = w[j] * oi[j] }
                roundInPlace(round, oi, c)
            }
        }
    }
}

/// Backward of `rmsnormForward` (roundings as identity). With n̂ = x·r, out = w ⊙ n̂:
/// dw += Σ_rows dout ⊙ n̂;  dx = r · (w⊙dout − n̂ · mean(w⊙dout ⊙ n̂)).
public func rmsnormBackward(_ dout: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                            _ rstd: UnsafePointer<Float>,
                            _ dx: UnsafeMutablePointer<Float>,   // (N, C), overwritten
                            _ dw: UnsafeMutablePointer<Float>,   // (C), accumulated
                            rows n: Int, width c: Int) {
    // dx: each row on its own, rows cut between threads.
    forEachRange(n, minimumCost: parallelElements, cost: { _ in c }) { rows in
        rowChains(rows, width: c, start: 0, { i, j, dot in dot + w[j] * dout[i * c + j] * (x[i * c + j] * rstd[i]) }) { i, dot in
            let xi = x + i * c, gi = dout + i * c, dxi = dx + i * c
            let r = rstd[i]
            let mean = dot / Float(c)
            for j in 0..<c { dxi[j] = r * (w[j] * gi[j] - xi[j] * r * mean) }
        }
    }
    // dw: each column's sum over the rows in row order, columns cut between threads.
    forEachRange(c, minimumCost: parallelElements, cost: { _ in n }) { columns in
        for i in 0..<n {
            let xi = x + i * c, gi = dout + i * c
            let r = rstd[i]
            for j in columns { dw[j] += gi[j] * (xi[j] * r) }
        }
    }
}

// MARK: Rotary position embedding

/// cos and sin of position · θ^(−2i/D) for every position < maxPositions and i < D/2, in
/// double precision with the lab's deterministic functions, stored as float32.
public struct RotaryTable: Sendable {
    public let halfDim: Int
    public let cos: [Float]   // (maxPositions, D/2)
    public let sin: [Float]

    public init(headDim: Int, theta: Float, maxPositions: Int) {
        let half = headDim / 2
        halfDim = half
        var c = [Float](repeating: 0, count: maxPositions * half), s = c
        for i in 0..<half {
            // Hugging Face: inv_freq = 1 / θ^(2i/D).
            let invFreq = 1 / powD(Double(theta), Double(2 * i) / Double(headDim))
            for p in 0..<maxPositions {
                let (sn, cs) = sinCosD(Double(p) * invFreq)
                c[p * half + i] = Float(cs)
                s[p * half + i] = Float(sn)
            }
        }
        cos = c
        sin = s
    }
}

/// Rotates each head of each row by its position (rotate-half convention, as Hugging Face
/// Llama): for i < D/2, (x_i, x_{i+D/2}) ← (x_i·cos − x_{i+D/2}·sin, x_{i+D/2}·cos + x_i·sin).
/// Computed in float32, then rounded once.
public func ropeForward(_ x: UnsafeMutablePointer<Float>,  // (N, heads, D), in place
                        positions: UnsafePointer<Int32>,    // (N)
                        rows n: Int, heads: Int, headDim d: Int, table: RotaryTable, round: Rounder?) {
    let half = d / 2
    table.cos.withUnsafeBufferPointer { cosines in
        table.sin.withUnsafeBufferPointer { sines in
            forEachRange(n, minimumCost: parallelElements, cost: { _ in heads * d }) { rows in
                for r in rows {
                    let p = Int(positions[r])
                    let cs = cosines.baseAddress! + p * half, sn = sines.baseAddress! + p * half
                    for h in 0..<heads {
                        let v = x + (r * heads + h) * d
                        for i in 0..<half {
                            let a = v[i], b = v[i + half]
                            v[i] = a * cs[i] - b * sn[i]
                            v[i + half] = b * cs[i] + a * sn[i]
                        }
                    }
                    roundInPlace(round, x + r * heads * d, heads * d)
                }
            }
        }
    }
}

/// Backward of `ropeForward`: the transpose of the rotation,
/// (g_i, g_{i+D/2}) ← (g_i·cos + g_{i+D/2}·sin, g_{i+D/2}·cos − g_i·sin).
public func ropeBackward(_ g: UnsafeMutablePointer<Float>, positions: UnsafePointer<Int32>,
                         rows n: Int, heads: Int, headDim d: Int, table: RotaryTable) {
    let half = d / 2
    table.cos.withUnsafeBufferPointer { cosines in
        table.sin.withUnsafeBufferPointer { sines in
            forEachRange(n, minimumCost: parallelElements, cost: { _ in heads * d }) { rows in
                for r in rows {
                    let p = Int(positions[r])
                    for h in 0..<heads {
                        let v = g + (r * heads + h) * d
                        for i in 0..<half {
                            let c = cosines[p * half + i], s = sines[p * half + i]
                            let a = v[i], b = v[i + half]
                            v[i] = a * c + b * s
                            v[i + half] = b * c - a * s
                        }
                    }
                }
            }
        }
    }
}

// MARK: SwiGLU

/// `out = down-input = silu(gate) ⊙ up` with silu(g) = g / (1 + e^−g).
/// Unfused: round(round(silu(gate)) ⊙ up) — two kernels; fused: round(silu(gate) ⊙ up).
public func swigluForward(_ gate: UnsafePointer<Float>, _ up: UnsafePointer<Float>,
                          _ out: UnsafeMutablePointer<Float>, count: Int, round: Rounder?, fused: Bool) {
    forEachBlock(count) { range in
        for i in range { out[i] = -gate[i] }
        expInPlace(out + range.lowerBound, range.count)
        for i in range { out[i] = gate[i] / (1 + out[i]) }
    }
    if !fused { roundInPlace(round, out, count) }
    forEachBlock(count) { range in
        for i in range { out[i] *= up[i] }
    }
    roundInPlace(round, out, count)
}

/// Backward of `swigluForward`: with σ = sigmoid(g), silu'(g) = σ(1 + g(1 − σ)):
/// dgate = dout ⊙ up ⊙ silu'(gate), dup = dout ⊙ silu(gate). With `rounding`, dout is rounded
/// in place first and dgate and dup after, chunk by chunk while in cache: the bits of rounding
/// each whole array before and after.
public func swigluBackward(_ dout: UnsafeMutablePointer<Float>, _ gate: UnsafePointer<Float>, _ up: UnsafePointer<Float>,
                           _ dgate: UnsafeMutablePointer<Float>, _ dup: UnsafeMutablePointer<Float>, count: Int,
                           rounding: Rounder? = nil) {
    forEachBlock(count) { range in
        // Stochastic draws by element index, as rounding the whole arrays would take them.
        let start = range.lowerBound, offset = UInt64(start)
        rounding?.round(dout + start, into: dout + start, count: range.count, offset: offset)
        defer {
            rounding?.round(dgate + start, into: dgate + start, count: range.count, offset: offset)
            rounding?.round(dup + start, into: dup + start, count: range.count, offset: offset)
        }
        for i in range { dgate[i] = -gate[i] }
        expInPlace(dgate + range.lowerBound, range.count)
        for i in range {
            let g = gate[i]
            let s = 1 / (1 + dgate[i])
            let silu = g * s
            dup[i] = dout[i] * silu
            dgate[i] = dout[i] * up[i] * (s * (1 + g * (1 - s)))
        }
    }
}

// MARK: Log-softmax over the vocabulary

/// m = max_j x_j, e_j = e^(x_j − m) and their sum in increasing j, in float32: where a softmax
/// starts, for the log-softmax over the vocabulary and a row of attention alike.
@inline(__always)
func shiftedExponentials(_ x: UnsafePointer<Float>, count n: Int, into e: UnsafeMutablePointer<Float>) -> (max: Float, sum: Float) {
    var m = -Float.infinity
    for j in 0..<n { m = max(m, x[j]) }
    for j in 0..<n { e[j] = x[j] - m }
    expInPlace(e, n)
    var sum: Float = 0
    for j in 0..<n { sum += e[j] }
    return (m, sum)
}

/// log p = z − max − log Σ e^(z − max), per row, in float32 (the sum in a fixed order).
/// `out` may be `logits` itself (the exponentials go to a scratch row). Rows are independent,
/// so large batches are cut between threads by rows with the same results.
public func logSoftmaxForward(_ logits: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, rows n: Int, vocab v: Int) {
    let buffers = UncheckedSendable((logits, out))
    forEachRange(n, minimumCost: 1 << 18, cost: { _ in v }) { range in
        let (logits, out) = buffers.value
        let e = UnsafeMutablePointer<Float>.allocate(capacity: max(v, 1))
        defer { e.deallocate() }
        for i in range {
            let z = logits + i * v, o = out + i * v
            let (m, s) = shiftedExponentials(z, count: v, into: e)
            let lse = logF(s)
            for j in 0..<v { o[j] = z[j] - m - lse }
        }
    }
}

/// Backward of log-softmax for a loss that depends only on the chosen tokens' log p:
/// given g = ∂L/∂log p(y) per row, ∂L/∂z_j = g · (1[j = y] − p_j).
public func logSoftmaxBackward(_ logp: UnsafePointer<Float>, targets: UnsafePointer<Int32>, grad: UnsafePointer<Float>,
                               _ dlogits: UnsafeMutablePointer<Float>, rows n: Int, vocab v: Int) {
    for i in 0..<n {
        let lp = logp + i * v, d = dlogits + i * v
        for j in 0..<v { d[j] = lp[j] }
        expInPlace(d, v)
        let g = grad[i]
        for j in 0..<v { d[j] = -g * d[j] }
        d[Int(targets[i])] += g
    }
}

/// y[i] += x[i] for every i, then y rounded (when a rounder is given): one pass over each
/// chunk, cut between threads; the bits of the plain loop followed by the rounding.
func addInPlace(_ y: inout [Float], _ x: [Float], rounding: Rounder?) {
    precondition(y.count == x.count)
    let n = y.count
    y.withUnsafeMutableBufferPointer { yb in
        x.withUnsafeBufferPointer { xb in
            let pointers = UncheckedSendable((yb.baseAddress!, xb.baseAddress!))
            forEachChunk(n) { range in
                let (y, x) = pointers.value
                for i in range { y[i] += x[i] }
                // Stochastic draws by element index, as rounding the whole array would take them.
                rounding?.round(y + range.lowerBound, into: y + range.lowerBound, count: range.count, offset: UInt64(range.lowerBound))
            }
        }
    }
}

/// The residual stream's x + y, and that sum rounded (the same array when there is no
/// rounding): one pass over each chunk, cut between threads. A fused residual-and-norm reads
/// the unrounded sum; the stream goes on rounded.
func residualSum(_ x: [Float], _ y: [Float], rounding: Rounder?) -> (sum: [Float], rounded: [Float]) {
    precondition(x.count == y.count)
    let n = x.count
    var rounded: [Float] = []
    let sum = written(n) { s in
        x.withUnsafeBufferPointer { xb in
            y.withUnsafeBufferPointer { yb in
                guard let rounding else {
                    let pointers = UncheckedSendable((s, xb.baseAddress!, yb.baseAddress!))
                    forEachChunk(n) { range in
                        let (s, x, y) = pointers.value
                        for i in range { s[i] = x[i] + y[i] }
                    }
                    return
                }
                rounded = written(n) { r in
                    let pointers = UncheckedSendable((s, r, xb.baseAddress!, yb.baseAddress!))
                    forEachChunk(n) { range in
                        let (s, r, x, y) = pointers.value
                        for i in range { s[i] = x[i] + y[i] }
                        rounding.round(s + range.lowerBound, into: r + range.lowerBound, count: range.count,
                                       offset: UInt64(range.lowerBound))
                    }
                }
            }
        }
    }
    return (sum, rounding == nil ? sum : rounded)
}

/// `count` floats for a producer that writes every one of them (a product's output, an
/// element-wise result): no zeros written first.
func toBeWritten(_ count: Int) -> [Float] {
    [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
}

import Foundation
import Model
import Numerics
import Testing

/// One query row's attention with its keys also given by columns (the training forward's
/// sixteen scores at a time) gives the bits of the keys read by rows (the decode step's), for
/// every length of a short sequence, head size and layout, and the probabilities kept for the
/// backward are those the row's own exponentials give.
@Suite struct AttentionRowTests {
    @Test func keysByColumnsGiveTheBitsOfKeysByRows() {
        let heads = 4, kvHeads = 2
        var rng = RandomStream(seed: 11, name: "attention-row")
        // Up to five blocks of sixteen keys (four side by side, then one); head sizes that
        // take every width of the weighted sum's vectors (64, 32, 16, then one by one).
        for d in [8, 24, 64, 120] {
            let longest = 70, stride = 80, kvDim = kvHeads * d
            let q = (0..<(heads * d)).map { _ in Float(rng.nextUnit() * 2 - 1) }
            let keys = (0..<(longest * kvDim)).map { _ in Float(rng.nextUnit() * 4 - 2) }
            let values = (0..<(longest * kvDim)).map { _ in Float(rng.nextUnit() * 2 - 1) }
            var columns = [Float](repeating: 0, count: kvDim * stride)
            for j in 0..<longest { for c in 0..<kvDim { columns[c * stride + j] = keys[j * kvDim + c] } }
            for layout in [SoftmaxLayout.wholeRow, .chunked(16)] {
                for rounding in [nil, Rounder(format: .bf16)] {
                    for l in 1...longest {
                        func attend(byColumns: Bool) -> (out: [Float], probs: [Float]) {
                            var out = [Float](repeating: .nan, count: heads * d)
                            var probs = [Float](repeating: .nan, count: heads * l)
                            var scratch = [Float](repeating: .nan, count: 2 * l + d + 16)
                            columns.withUnsafeBufferPointer { cp in
                                keys.withUnsafeBufferPointer { kp in
                                    attendRow(q: q, keys: byColumns ? .columns(cp.baseAddress!, stride: stride) : .rows(kp.baseAddress!),
                                              values: values, count: l, heads: heads, kvHeads: kvHeads, headDim: d,
                                              layout: layout, probabilityRounding: rounding, outputRounding: rounding,
                                              out: &out, probs: &probs, scratch: &scratch)
                                }
                            }
                            return (out, probs)
                        }
                        let rows = attend(byColumns: false), cols = attend(byColumns: true)
                        #expect(cols.out.map(\.bitPattern) == rows.out.map(\.bitPattern), "d \(d) l \(l) \(layout)")
                        #expect(cols.probs.map(\.bitPattern) == rows.probs.map(\.bitPattern), "d \(d) l \(l) \(layout)")
                        // p_j = e^(s_j − max s) / Σ e^(s_k − max s), per head, against Double.
                        for h in 0..<heads {
                            let g = h / (heads / kvHeads)
                            let s = (0..<l).map { j in (0..<d).reduce(0.0) { $0 + Double(q[h * d + $1]) * Double(keys[j * kvDim + g * d + $1]) } / Double(d).squareRoot() }
                            let m = s.max()!, z = s.reduce(0.0) { $0 + exp($1 - m) }
                            for j in 0..<l {
                                #expect(abs(Double(rows.probs[h * l + j]) - exp(s[j] - m) / z) <= 1e-5, "p \(h) \(j)")
                            }
                        }
                    }
                }
            }
        }
    }
    /// The row's output (whole-row softmax, no rounding) and its backward against the formulas
    /// written plainly, one scalar fused multiply-add at a time in the documented order:
    /// s_j = (q·k_j)/√D, e_j = e^(s_j − max s), out = (Σ_j e_j v_j)/Σ_j e_j; and for the backward
    /// dp_j = dout·v_j, w = Σ_j p_j dp_j, ds_j = p_j (dp_j − w)/√D, dq = Σ_j ds_j k_j,
    /// dk_j += ds_j q, dv_j += p_j dout, every sum a chain from +0 in increasing index.
    @Test func aRowAndItsBackwardAreThePlainFormulasBitForBit() {
        let heads = 4, kvHeads = 2
        var rng = RandomStream(seed: 12, name: "attention-plain")
        for (d, l) in [(5, 37), (16, 37), (24, 37), (32, 37), (64, 70), (120, 53)] {
            let kvDim = kvHeads * d, group = heads / kvHeads, scale = 1 / Float(d).squareRoot()
            func random(_ n: Int) -> [Float] { (0..<n).map { _ in Float(rng.nextUnit() * 2 - 1) } }
            let q = random(heads * d), keys = random(l * kvDim), values = random(l * kvDim), dout = random(heads * d)
            func chain(_ n: Int, _ term: (Int) -> (Float, Float)) -> Float {
                var sum: Float = 0
                for j in 0..<n { let (a, b) = term(j); sum = sum.addingProduct(a, b) }
                return sum
            }
            var out = [Float](repeating: .nan, count: heads * d), probs = [Float](repeating: .nan, count: heads * l)
            var scratch = [Float](repeating: .nan, count: 2 * l + d + 16)
            keys.withUnsafeBufferPointer { kp in
                attendRow(q: q, keys: .rows(kp.baseAddress!), values: values, count: l, heads: heads, kvHeads: kvHeads, headDim: d,
                          layout: .wholeRow, probabilityRounding: nil, outputRounding: nil, out: &out, probs: &probs, scratch: &scratch)
            }
            var dq = [Float](repeating: .nan, count: heads * d)
            var dk = [Float](repeating: 0, count: l * kvDim), dv = dk
            attendRowBackward(dout: dout, q: q, keys: keys, values: values, probs: probs, count: l, heads: heads, kvHeads: kvHeads,
                              headDim: d, dq: &dq, dkeys: &dk, dvalues: &dv, scratch: &scratch)
            var expectedDk = [Float](repeating: 0, count: l * kvDim), expectedDv = expectedDk
            for h in 0..<heads {
                let kv = (h / group) * d
                let s = (0..<l).map { j in chain(d) { (q[h * d + $0], keys[j * kvDim + kv + $0]) } * scale }
                let m = s.max()!
                var e = s.map { $0 - m }
                expInPlace(&e, l)
                let total = e.reduce(Float(0), +)
                for i in 0..<d {
                    let expected = chain(l) { (e[$0], values[$0 * kvDim + kv + i]) } / total
                    #expect(out[h * d + i].bitPattern == expected.bitPattern, "out d \(d) head \(h) \(i)")
                }
                let p = Array(probs[(h * l)..<(h * l + l)])
                let dp = (0..<l).map { j in chain(d) { (dout[h * d + $0], values[j * kvDim + kv + $0]) } }
                let w = chain(l) { (p[$0], dp[$0]) }
                let ds = (0..<l).map { p[$0] * (dp[$0] - w) * scale }
                for i in 0..<d {
                    let expected = chain(l) { (ds[$0], keys[$0 * kvDim + kv + i]) }
                    #expect(dq[h * d + i].bitPattern == expected.bitPattern, "dq d \(d) head \(h) \(i)")
                }
                for j in 0..<l {
                    for i in 0..<d {
                        expectedDk[j * kvDim + kv + i] = expectedDk[j * kvDim + kv + i].addingProduct(ds[j], q[h * d + i])
                        expectedDv[j * kvDim + kv + i] = expectedDv[j * kvDim + kv + i].addingProduct(p[j], dout[h * d + i])
                    }
                }
            }
            #expect(dk.map(\.bitPattern) == expectedDk.map(\.bitPattern), "dk d \(d)")
            #expect(dv.map(\.bitPattern) == expectedDv.map(\.bitPattern), "dv d \(d)")
        }
    }

    /// Up to four rows at a time (`attendRows`, the training forward's way) give each row's
    /// bits from `attendRow` alone: outputs and kept probabilities, for group sizes 1…4, first
    /// rows whose keys end inside, at and past a block of sixteen, head sizes of every width,
    /// with and without roundings.
    @Test func rowsTogetherGiveEachRowsBits() {
        let heads = 4, kvHeads = 2
        var rng = RandomStream(seed: 13, name: "attention-rows")
        for d in [8, 24, 64, 120] {
            let longest = 68, stride = 80, kvDim = kvHeads * d
            let q = (0..<(longest * heads * d)).map { _ in Float(rng.nextUnit() * 2 - 1) }
            let keys = (0..<(longest * kvDim)).map { _ in Float(rng.nextUnit() * 4 - 2) }
            let values = (0..<(longest * kvDim)).map { _ in Float(rng.nextUnit() * 2 - 1) }
            var columns = [Float](repeating: 0, count: kvDim * stride)
            for j in 0..<longest { for c in 0..<kvDim { columns[c * stride + j] = keys[j * kvDim + c] } }
            for rounding in [nil, Rounder(format: .bf16)] {
                for rows in 1...4 {
                    for first in [1, 2, 15, 16, 17, 33, 61, longest - rows + 1] {
                        // Row r (0-based in the group) is query row first − 1 + r, with first + r keys.
                        var alone = [Float](repeating: .nan, count: rows * heads * d)
                        var aloneProbs = [[Float]](repeating: [], count: rows)
                        var scratch = [Float](repeating: .nan, count: 2 * longest + d + 16)
                        for r in 0..<rows {
                            var probs = [Float](repeating: .nan, count: heads * (first + r))
                            alone.withUnsafeMutableBufferPointer { out in
                                q.withUnsafeBufferPointer { qp in
                                    keys.withUnsafeBufferPointer { kp in
                                        attendRow(q: qp.baseAddress! + (first - 1 + r) * heads * d, keys: .rows(kp.baseAddress!),
                                                  values: values, count: first + r, heads: heads, kvHeads: kvHeads, headDim: d,
                                                  layout: .wholeRow, probabilityRounding: rounding, outputRounding: rounding,
                                                  out: out.baseAddress! + r * heads * d, probs: &probs, scratch: &scratch)
                                    }
                                }
                            }
                            aloneProbs[r] = probs
                        }
                        var together = [Float](repeating: .nan, count: rows * heads * d)
                        var probs = (0..<rows).map { [Float](repeating: .nan, count: heads * (first + $0)) }
                        var groupScratch = [Float](repeating: .nan, count: 4 * (2 * longest + d + 1) + 16)
                        let probPointers = (0..<rows).map { r in UnsafeMutablePointer<Float>.allocate(capacity: heads * (first + r)) }
                        defer { probPointers.forEach { $0.deallocate() } }
                        q.withUnsafeBufferPointer { qp in
                            columns.withUnsafeBufferPointer { cp in
                                attendRows(q: qp.baseAddress! + (first - 1) * heads * d, values: values, firstCount: first,
                                           rows: rows, heads: heads, kvHeads: kvHeads, headDim: d, probabilityRounding: rounding,
                                           outputRounding: rounding, out: &together, probs: { probPointers[$0] },
                                           scratch: &groupScratch, keyColumns: cp.baseAddress!, keyColumnStride: stride)
                            }
                        }
                        for r in 0..<rows { probs[r] = Array(UnsafeBufferPointer(start: probPointers[r], count: heads * (first + r))) }
                        #expect(together.map(\.bitPattern) == alone.map(\.bitPattern), "d \(d) rows \(rows) first \(first)")
                        #expect(probs.map { $0.map(\.bitPattern) } == aloneProbs.map { $0.map(\.bitPattern) },
                                "probabilities, d \(d) rows \(rows) first \(first)")
                    }
                }
            }
        }
    }

    /// The backward of up to four rows at a time (`attendRowsBackward`, the training backward's
    /// way) gives the bits of `attendRowBackward` row after row: dq, and the keys' and values'
    /// gradients added onto values already there (so the order of the additions shows), with
    /// two query heads per key/value head.
    @Test func rowsTogetherBackwardGiveTheRowByRowBits() {
        let heads = 4, kvHeads = 2
        var rng = RandomStream(seed: 14, name: "attention-rows-backward")
        func random(_ n: Int) -> [Float] { (0..<n).map { _ in Float(rng.nextUnit() * 2 - 1) } }
        for d in [8, 24, 64, 120] {
            let longest = 68, stride = 80, kvDim = kvHeads * d, qDim = heads * d
            let q = random(longest * qDim), keys = random(longest * kvDim), values = random(longest * kvDim)
            let dout = random(longest * qDim), start = (random(longest * kvDim), random(longest * kvDim))
            var columns = [Float](repeating: 0, count: kvDim * stride)
            for j in 0..<longest { for c in 0..<kvDim { columns[c * stride + j] = values[j * kvDim + c] } }
            for rows in 1...4 {
                for first in [1, 2, 15, 16, 17, 33, longest - rows + 1] {
                    // Probabilities of each row: a softmax's, positive and summing to one per head.
                    let probs = (0..<rows).map { r -> [Float] in
                        let l = first + r
                        return (0..<heads).flatMap { _ -> [Float] in
                            let e = (0..<l).map { _ in Float(rng.nextUnit()) + 0.1 }
                            let total = e.reduce(0, +)
                            return e.map { $0 / total }
                        }
                    }
                    var dq = [Float](repeating: .nan, count: rows * qDim), (dk, dv) = start
                    var scratch = [Float](repeating: .nan, count: 2 * longest + d + 16)
                    for r in 0..<rows {
                        let row = first - 1 + r
                        dq.withUnsafeMutableBufferPointer { dqp in
                            attendRowBackward(dout: dout.withUnsafeBufferPointer { $0.baseAddress! } + row * qDim,
                                              q: q.withUnsafeBufferPointer { $0.baseAddress! } + row * qDim, keys: keys, values: values,
                                              probs: probs[r], count: first + r, heads: heads, kvHeads: kvHeads, headDim: d,
                                              dq: dqp.baseAddress! + r * qDim, dkeys: &dk, dvalues: &dv, scratch: &scratch)
                        }
                    }
                    var dqTogether = [Float](repeating: .nan, count: rows * qDim), (dkTogether, dvTogether) = start
                    var groupScratch = [Float](repeating: .nan, count: 4 * heads * longest + 16)
                    let probPointers = probs.map { p in
                        let pointer = UnsafeMutablePointer<Float>.allocate(capacity: p.count)
                        pointer.initialize(from: p, count: p.count)
                        return pointer
                    }
                    defer { probPointers.forEach { $0.deallocate() } }
                    dout.withUnsafeBufferPointer { gp in
                        q.withUnsafeBufferPointer { qp in
                            columns.withUnsafeBufferPointer { cp in
                                attendRowsBackward(dout: gp.baseAddress! + (first - 1) * qDim, q: qp.baseAddress! + (first - 1) * qDim,
                                                   keys: keys, probs: { UnsafePointer(probPointers[$0]) }, firstCount: first, rows: rows,
                                                   heads: heads, kvHeads: kvHeads, headDim: d, dq: &dqTogether, dkeys: &dkTogether,
                                                   dvalues: &dvTogether, scratch: &groupScratch, valueColumns: cp.baseAddress!,
                                                   valueColumnStride: stride)
                            }
                        }
                    }
                    #expect(dqTogether.map(\.bitPattern) == dq.map(\.bitPattern), "dq d \(d) rows \(rows) first \(first)")
                    #expect(dkTogether.map(\.bitPattern) == dk.map(\.bitPattern), "dk d \(d) rows \(rows) first \(first)")
                    #expect(dvTogether.map(\.bitPattern) == dv.map(\.bitPattern), "dv d \(d) rows \(rows) first \(first)")
                }
            }
        }
    }
}

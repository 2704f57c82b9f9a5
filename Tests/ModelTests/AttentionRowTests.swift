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
        for d in [8, 16, 24] {
            let longest = 40, stride = 48, kvDim = kvHeads * d
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
                                attendRow(q: q, keys: keys, values: values, count: l, heads: heads, kvHeads: kvHeads, headDim: d,
                                          layout: layout, probabilityRounding: rounding, outputRounding: rounding,
                                          out: &out, probs: &probs, scratch: &scratch,
                                          keyColumns: byColumns ? cp.baseAddress! : nil, keyColumnStride: byColumns ? stride : 0)
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
}

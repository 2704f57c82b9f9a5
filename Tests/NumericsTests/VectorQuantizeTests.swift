import Numerics
import Testing

/// The vectorised quantizer against the tile-by-tile scalar one it replaced
/// (`referenceQuantize`, kept in the tests), bit for bit: values, scales and counts.
@Suite struct VectorQuantizeTests {
    @Test func quantizeMatchesTheScalarReference() throws {
        var rng = RandomStream(seed: 13, name: "quantize-cases")
        func pick<T>(_ xs: [T]) -> T { xs[Int(rng.next() % UInt64(xs.count))] }
        let sizes = [1, 2, 3, 15, 16, 17, 33, 64, 100, 129]
        let granularities: [ScaleGranularity] = [
            .unscaled, .tensor, .rowGroups(1), .rowGroups(16), .rowGroups(5), .rowGroups(128), .rowGroups(96),
            .columnGroups(1), .columnGroups(16), .columnGroups(7), .columnGroups(96), .blocks(16, 16), .blocks(7, 9),
            .blocks(128, 128), .blocks(1, 33),
        ]
        var mismatches = 0
        for index in 0..<400 {
            let rows = pick(sizes), cols = pick(sizes)
            let q = Quantization(format: pick([NumberFormat.e4m3, .e5m2, .bf16, .fp16, .fp32]), rounding: pick(RoundingMode.allCases),
                                 saturate: rng.next() % 2 == 0, granularity: pick(granularities),
                                 formula: pick(ScaleFormula.allCases), powerOfTwoScales: rng.next() % 3 == 0)
            var x = randomMatrix(rows * cols, seed: UInt64(index), name: "q")
            // Specials and extremes in some matrices: NaN, ±inf, huge, tiny, zero tiles.
            let specials: [Float] = [.nan, .infinity, -.infinity, 3e38, -1e38, 0x1p-133, -0x1p-149, 0, -0.0, 1e30, 500, -465]
            if index % 3 == 0 {
                for _ in 0..<(1 + rows * cols / 20) { x[Int(rng.next() % UInt64(x.count))] = pick(specials) }
            }
            if index % 7 == 0 { for i in 0..<min(x.count, 40) { x[i] = 0 } }
            let stream = RandomStream(seed: UInt64(index), name: "sr"), offset = rng.next() % 1000
            let got = try q.quantize(x, rows: rows, cols: cols, stream: stream, offset: offset)
            let want = try q.referenceQuantize(x, rows: rows, cols: cols, stream: stream, offset: offset)
            let same = got.values.map(\.bitPattern) == want.values.map(\.bitPattern)
                && got.scales.map(\.bitPattern) == want.scales.map(\.bitPattern)
                && got.saturated == want.saturated && got.nonFinite == want.nonFinite
            if !same {
                mismatches += 1
                let i = got.values.indices.first { got.values[$0].bitPattern != want.values[$0].bitPattern } ?? -1
                let detail = i >= 0 ? "first value \(i): \(x[i]) → \(got.values[i]) vs \(want.values[i]), scale \(got.scales.count > 1 ? got.scale(row: i / cols, col: i % cols) : got.scales[0])" : "scales differ"
                Issue.record("\(rows)x\(cols) \(q): \(detail); saturated \(got.saturated)/\(want.saturated), nonFinite \(got.nonFinite)/\(want.nonFinite)")
                if mismatches > 5 { break }
            }
        }
        #expect(mismatches == 0)
    }
}

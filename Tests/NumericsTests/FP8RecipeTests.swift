import Foundation
import Numerics
import Testing

/// Every FP8 recipe the engines run — FProp, DGrad and WGrad of the `fp8`, HYBRID and MXFP8
/// profiles, with the scale rules and accumulations a user can pick — against a slow scalar
/// reference written from the rules: scales from each tile's amax, values rounded by the
/// independent `ReferenceFormat`, products accumulated per output with promotion.
@Suite struct FP8RecipeTests {
    /// A stored (rows, cols) matrix quantized by the rule, from the definitions.
    struct Reference {
        var values: [Float]
        var scales: [[Float]]     // [tile row][tile col]
        var tile: (Int, Int)

        func scale(_ r: Int, _ c: Int) -> Float { scales[r / tile.0][c / tile.1] }
    }

    static func quantize(_ x: [Float], rows: Int, cols: Int, _ q: Quantization) -> Reference {
        let ref = ReferenceFormat(q.format)
        let maxF = Float(ref.maxFinite)
        let tile: (Int, Int)
        switch q.granularity {
        case .unscaled, .tensor: tile = (rows, cols)
        case .rowGroups(let g): tile = (1, g)
        case .columnGroups(let g): tile = (g, 1)
        case .blocks(let r, let c): tile = (r, c)
        }
        var values = [Float](repeating: 0, count: rows * cols)
        var scales: [[Float]] = []
        for r0 in stride(from: 0, to: rows, by: tile.0) {
            var row: [Float] = []
            for c0 in stride(from: 0, to: cols, by: tile.1) {
                var amax: Float = 0
                for r in r0..<min(rows, r0 + tile.0) { for c in c0..<min(cols, c0 + tile.1) { amax = max(amax, abs(x[r * cols + c])) } }
                // The scale s (value = q · s) and the float32 operation that forms x / s.
                var s: Float = 1
                var scaled: (Float) -> Float = { $0 }
                var clamp = false
                if q.granularity != .unscaled, amax > 0 {
                    switch (q.formula, q.powerOfTwoScales) {
                    case (.mx, _):
                        let emax = Double(Int(Foundation.log2(Double(maxF)).rounded(.down)))
                        s = Float(Foundation.pow(2, Foundation.floor(Foundation.log2(Double(amax))) - emax))
                        scaled = { $0 * (1 / s) }
                        clamp = true
                    case (let f, true):
                        s = Float(Foundation.pow(2, Foundation.ceil(Foundation.log2(Double(amax) / Double(maxF)))))
                        if Double(amax) > Double(s) * Double(maxF) { s *= 2 }
                        if Double(amax) <= Double(s) / 2 * Double(maxF) { s /= 2 }
                        if f == .maxOverAmax { scaled = { $0 * (1 / s) }; clamp = true } else { scaled = { $0 / s } }
                    case (.amaxOverMax, false):
                        s = amax / maxF
                        scaled = { $0 / s }
                    case (.maxOverAmax, false):
                        let sc = maxF / amax
                        s = 1 / sc
                        scaled = { $0 * sc }
                        clamp = true
                    }
                }
                row.append(s)
                for r in r0..<min(rows, r0 + tile.0) {
                    for c in c0..<min(cols, c0 + tile.1) {
                        var v = scaled(x[r * cols + c])
                        if clamp { v = min(max(v, -maxF), maxF) }
                        switch ref.nearest(Double(v)) {
                        case .value(let d): values[r * cols + c] = Float(d)
                        case .overflow:
                            values[r * cols + c] = q.saturate ? (v < 0 ? -maxF : maxF)
                                : (q.format.exponentBits == 4 ? .nan : (v < 0 ? -.infinity : .infinity))
                        }
                    }
                }
            }
            scales.append(row)
        }
        return Reference(values: values, scales: scales, tile: tile)
    }

    /// C = op(A)·op(B): per output, K in stretches that end at every scale-tile boundary of
    /// either operand and every promotion interval; in a stretch, MMA steps each summed by an
    /// FMA chain from 0 and added to a partial sum truncated to `bits`; then
    /// C = fma(partial, sA·sB, C). Float32 accumulation: one FMA chain per stretch.
    static func product(_ a: Reference, _ b: Reference, m: Int, n: Int, k: Int, transA: Bool, transB: Bool,
                        recipe: GemmRecipe) -> [Float] {
        let aCols = transA ? m : k, bCols = transB ? k : n
        func av(_ i: Int, _ p: Int) -> Float { transA ? a.values[p * aCols + i] : a.values[i * aCols + p] }
        func bv(_ p: Int, _ j: Int) -> Float { transB ? b.values[j * bCols + p] : b.values[p * bCols + j] }
        func sa(_ i: Int, _ p: Int) -> Float { transA ? a.scale(p, i) : a.scale(i, p) }
        func sb(_ p: Int, _ j: Int) -> Float { transB ? b.scale(j, p) : b.scale(p, j) }
        let aTile = recipe.a.granularity == .unscaled || recipe.a.granularity == .tensor ? k : (transA ? a.tile.0 : a.tile.1)
        let bTile = recipe.b.granularity == .unscaled || recipe.b.granularity == .tensor ? k : (transB ? b.tile.1 : b.tile.0)
        var stretch = gcdOf(min(aTile, k), min(bTile, k))
        var bits = 24, step = k
        if case .limited(let kept, let mma, let interval) = recipe.accumulation {
            stretch = gcdOf(stretch, interval)
            bits = kept
            step = gcdOf(mma, stretch)
        }
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var acc: Float = 0
                for k0 in stride(from: 0, to: k, by: stretch) {
                    let k1 = min(k, k0 + stretch)
                    var partial: Float = 0
                    if bits >= 24 {
                        for p in k0..<k1 { partial = partial.addingProduct(av(i, p), bv(p, j)) }
                    } else {
                        for s0 in stride(from: k0, to: k1, by: step) {
                            var sum: Float = 0
                            for p in s0..<min(k1, s0 + step) { sum = sum.addingProduct(av(i, p), bv(p, j)) }
                            partial = QuantizedGEMMTests.truncate(Double(partial) + Double(sum), bits: bits)
                        }
                    }
                    acc = acc.addingProduct(partial, sa(i, k0) * sb(k0, j))
                }
                c[i * n + j] = acc
            }
        }
        if recipe.output == .fp32 { return c }
        let out = ReferenceFormat(recipe.output)
        return c.map { v in
            if case .value(let d) = out.nearest(Double(v)) { return Float(d) }
            return v < 0 ? -.infinity : .infinity
        }
    }

    static func gcdOf(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcdOf(b, a % b) }

    /// The three products of an engine, with its operands stored as the engine stores them:
    /// FProp x (rows, in) · Wᵀ, W stored (out, in); DGrad dy (rows, out) · W; WGrad dyᵀ · x.
    static func recipes(_ w: Quantization, _ x: Quantization, _ dy: Quantization, _ dyT: Quantization, _ xT: Quantization,
                        _ acc: Accumulation) -> [(String, GemmRecipe, transA: Bool, transB: Bool)] {
        var wT = w
        wT.granularity = w.granularity.transposed
        return [("fprop", GemmRecipe(a: x, b: w, accumulation: acc, output: .bf16), false, true),
                ("dgrad", GemmRecipe(a: dy, b: wT, accumulation: acc, output: .bf16), false, false),
                ("wgrad", GemmRecipe(a: dyT, b: xT, accumulation: acc, output: .fp32), true, false)]
    }

    static func e4m3(_ g: ScaleGranularity, formula: ScaleFormula = .amaxOverMax, pow2: Bool = false,
                     format: NumberFormat = .e4m3, saturate: Bool = true) -> Quantization {
        Quantization(format: format, saturate: saturate, granularity: g, formula: formula, powerOfTwoScales: pow2)
    }

    static let cases: [(String, Quantization, Quantization, Quantization, Quantization, Quantization)] = [
        // name, weights, x (FProp), dy (DGrad), dy along tokens (WGrad), x along tokens (WGrad)
        ("fp8 1x16/16x16", e4m3(.blocks(16, 16)), e4m3(.rowGroups(16)), e4m3(.rowGroups(16)), e4m3(.columnGroups(16)), e4m3(.columnGroups(16))),
        ("hybrid", e4m3(.blocks(16, 16)), e4m3(.rowGroups(16)), e4m3(.rowGroups(16), format: .e5m2), e4m3(.columnGroups(16), format: .e5m2), e4m3(.columnGroups(16))),
        ("mxfp8", e4m3(.rowGroups(32), formula: .mx), e4m3(.rowGroups(32), formula: .mx), e4m3(.rowGroups(32), formula: .mx),
         e4m3(.columnGroups(32), formula: .mx), e4m3(.columnGroups(32), formula: .mx)),
        ("max/amax pow2 1x8/8x24", e4m3(.blocks(8, 24), formula: .maxOverAmax, pow2: true), e4m3(.rowGroups(8), formula: .maxOverAmax, pow2: true),
         e4m3(.rowGroups(8), formula: .maxOverAmax), e4m3(.columnGroups(8), formula: .maxOverAmax), e4m3(.columnGroups(8), formula: .maxOverAmax)),
        ("tensor", e4m3(.tensor), e4m3(.tensor), e4m3(.tensor), e4m3(.tensor), e4m3(.tensor)),
        ("tensor, no saturation", e4m3(.blocks(16, 16), saturate: false), e4m3(.tensor, saturate: false), e4m3(.tensor, saturate: false),
         e4m3(.tensor, saturate: false), e4m3(.tensor, saturate: false)),
    ]

    /// (rows, in, out): odd sizes that no group, block or MMA step divides.
    static let shapes: [(Int, Int, Int)] = [(3, 37, 17), (5, 100, 40), (1, 129, 33), (19, 64, 48)]

    @Test(arguments: [Accumulation.fp32, .hopperFP8, .limited(bits: 10, step: 8, interval: 32)])
    func everyRecipeMatchesTheScalarReference(accumulation: Accumulation) throws {
        for (name, w, x, dy, dyT, xT) in FP8RecipeTests.cases {
            for (rows, inDim, outDim) in FP8RecipeTests.shapes {
                let xs = randomMatrix(rows * inDim, seed: 21, name: "x"), ws = randomMatrix(outDim * inDim, seed: 21, name: "w")
                let dys = randomMatrix(rows * outDim, seed: 21, name: "dy")
                for (product, recipe, transA, transB) in FP8RecipeTests.recipes(w, x, dy, dyT, xT, accumulation) {
                    // Stored operands and the product's (m, n, k), as the engine has them.
                    let (a, aRows, aCols, b, bRows, bCols, m, n, k): ([Float], Int, Int, [Float], Int, Int, Int, Int, Int)
                    switch product {
                    case "fprop": (a, aRows, aCols, b, bRows, bCols, m, n, k) = (xs, rows, inDim, ws, outDim, inDim, rows, outDim, inDim)
                    case "dgrad": (a, aRows, aCols, b, bRows, bCols, m, n, k) = (dys, rows, outDim, ws, outDim, inDim, rows, inDim, outDim)
                    default: (a, aRows, aCols, b, bRows, bCols, m, n, k) = (dys, rows, outDim, xs, rows, inDim, outDim, inDim, rows)
                    }
                    let ra = FP8RecipeTests.quantize(a, rows: aRows, cols: aCols, recipe.a)
                    let rb = FP8RecipeTests.quantize(b, rows: bRows, cols: bCols, recipe.b)
                    let expected = FP8RecipeTests.product(ra, rb, m: m, n: n, k: k, transA: transA, transB: transB, recipe: recipe)
                    for backend in [PortableBackend(threads: 1) as any MatmulBackend, PortableBackend(threads: 2)] {
                        let got = try QuantizedGEMM(recipe: recipe, backend: backend)
                            .multiply(a, b, m: m, n: n, k: k, transA: transA, transB: transB).c
                        let same = zip(got, expected).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
                        #expect(same, "\(name) \(product) \(rows)x\(inDim)x\(outDim) \(accumulation)")
                    }
                }
            }
        }
    }

    /// A value beyond a per-tensor scale's range: clamped when saturating, NaN in E4M3
    /// without saturation — and NaN poisons the outputs it reaches, in the reference too.
    @Test func overflowWithoutSaturationIsNaNAndCounted() throws {
        let q = FP8RecipeTests.e4m3(.tensor, saturate: false)
        let x: [Float] = [1, 2, 3, 1000]
        let m = try q.quantize(x, rows: 1, cols: 4, scaleAmax: 100)    // a stale amax: 1000 is 10× beyond it
        #expect(m.saturated == 1 && m.values[3].isNaN)
        #expect(m.amax == 1000)
        let s = try FP8RecipeTests.e4m3(.tensor).quantize(x, rows: 1, cols: 4, scaleAmax: 100)
        #expect(s.saturated == 1 && s.values[3] == 448 && s.scales == [100 / 448])
    }
}

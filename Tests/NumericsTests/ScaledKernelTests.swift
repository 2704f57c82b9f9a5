import Numerics
import Testing

/// The fused block-scaled kernel behind `QuantizedGEMM.multiplyPrepared` against the plain
/// reference model (`referenceMultiplyPrepared`: one portable-backend product per K stretch
/// or MMA step, scales applied element by element), bit for bit, on every backend, with one
/// or two threads, and with B packed in advance (`packedAsRightOperand`).
@Suite struct ScaledKernelTests {
    static let accumulations: [Accumulation] = [
        .fp32, .hopperFP8, .limited(bits: 14, step: 32, interval: 128), .limited(bits: 5, step: 3, interval: 9),
        .limited(bits: 10, step: 8, interval: 32), .limited(bits: 24, step: 4, interval: 8), .limited(bits: 1, step: 1, interval: 2),
    ]

    static let granularities: [ScaleGranularity] = [
        .unscaled, .tensor, .rowGroups(16), .rowGroups(5), .rowGroups(128), .columnGroups(16), .columnGroups(7),
        .blocks(16, 16), .blocks(7, 9), .blocks(128, 128),
    ]

    /// Same bits, or both NaN (NaN payloads are not specified).
    static func sameBits(_ x: [Float], _ y: [Float]) -> Bool {
        x.count == y.count && zip(x, y).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
    }

    /// Runs one product through the kernel on openblas, portable with 1 and 2 threads, and
    /// through the reference on portable with 1 thread (on openblas for its plain float32
    /// products); returns whether all agree.
    static func check(_ recipe: GemmRecipe, a: [Float], b: [Float], m: Int, n: Int, k: Int,
                      transA: Bool, transB: Bool, splitK: Int) throws -> Bool {
        let qa = try PreparedOperand(a, rows: transA ? k : m, cols: transA ? m : k, transposed: transA,
                                     quantization: recipe.a)
        let qb = try PreparedOperand(b, rows: transB ? n : k, cols: transB ? k : n, transposed: transB,
                                     quantization: recipe.b)
        var expected = [Float](repeating: 0, count: m * n)
        QuantizedGEMM(recipe: recipe, backend: PortableBackend(threads: 1))
            .referenceMultiplyPrepared(qa, qb, m: m, n: n, k: k, splitK: splitK, into: &expected)
        var ok = true
        let backends: [any MatmulBackend] = [PortableBackend(threads: 1), PortableBackend(threads: 2), LibraryBackend(.openblas),
                                             LibraryBackend(.onednn)]
        // B laid out in advance (as an engine's weights are) must change nothing either.
        for (backend, qb) in backends.map({ ($0, qb) }) + [(PortableBackend(threads: 2), qb.packedAsRightOperand())] {
            let unscaledFP32 = (qa.matrix.scales.allSatisfy { $0 == 1 } && qb.matrix.scales.allSatisfy { $0 == 1 }
                                && recipe.accumulation == .fp32)
            // Plain float32 products stay with their backend (openblas sums in its own order):
            // there, the reference on openblas (split-K's pieces one product after the other,
            // where the kernel hands them over together).
            var expected = expected
            if unscaledFP32 && backend is LibraryBackend {
                QuantizedGEMM(recipe: recipe, backend: backend)
                    .referenceMultiplyPrepared(qa, qb, m: m, n: n, k: k, splitK: splitK, into: &expected)
            }
            var c = [Float](repeating: .nan, count: m * n)
            QuantizedGEMM(recipe: recipe, backend: backend).multiplyPrepared(qa, qb, m: m, n: n, k: k, splitK: splitK, into: &c)
            if !sameBits(c, expected) {
                let bad = (0..<(m * n)).first { c[$0].bitPattern != expected[$0].bitPattern && !(c[$0].isNaN && expected[$0].isNaN) }!
                Issue.record("\(backend.name) \(m)x\(n)x\(k) tA \(transA) tB \(transB) splitK \(splitK) \(recipe): C[\(bad)] = \(c[bad]) vs \(expected[bad])")
                ok = false
            }
        }
        return ok
    }

    /// Random shapes (odd sizes, not multiples of groups, blocks or the vector width), all
    /// four transpositions, every kind of scaling on either side, float32 and limited
    /// accumulation (odd bit counts, steps and intervals too), split-K 1…4, output rounding.
    @Test func randomProductsMatchTheReferenceBitForBit() throws {
        var rng = RandomStream(seed: 11, name: "scaled-kernel-cases")
        let sizes = [1, 2, 3, 5, 16, 17, 31, 33, 47, 64, 129]
        let outputs: [NumberFormat] = [.fp32, .bf16]
        var failures = 0
        for index in 0..<240 {
            func pick<T>(_ xs: [T]) -> T { xs[Int(rng.next() % UInt64(xs.count))] }
            let m = pick(sizes), n = pick(sizes), k = index % 5 == 0 ? pick([200, 257, 300]) : pick(sizes)
            let transA = index % 2 == 1, transB = (index / 2) % 2 == 1
            let recipe = GemmRecipe(
                a: Quantization(format: .e4m3, saturate: rng.next() % 2 == 0, granularity: pick(ScaledKernelTests.granularities),
                                formula: pick(ScaleFormula.allCases), powerOfTwoScales: rng.next() % 4 == 0),
                b: Quantization(format: pick([NumberFormat.e4m3, .e5m2, .bf16]), saturate: true,
                                granularity: pick(ScaledKernelTests.granularities)),
                accumulation: pick(ScaledKernelTests.accumulations), output: pick(outputs))
            let a = randomMatrix(m * k, seed: UInt64(index), name: "a"), b = randomMatrix(k * n, seed: UInt64(index), name: "b")
            let splitK = 1 + index % 4
            if try !ScaledKernelTests.check(recipe, a: a, b: b, m: m, n: n, k: k, transA: transA, transB: transB, splitK: splitK) {
                failures += 1
                if failures > 5 { break }
            }
        }
        #expect(failures == 0)
    }

    /// A split-K product written out: one `gemm` per piece (K cut as `QuantizedGEMM` cuts an
    /// unscaled product) on the given layouts, the pieces added in order, then the output
    /// rounding. A is (m, k), or stored (k, m) if `transA`; B is (k, n), or stored (n, k) if `transB`.
    static func piecesOneAfterTheOther(_ backend: any MatmulBackend, a: [Float], transA: Bool, b: [Float], transB: Bool,
                                       m: Int, n: Int, k: Int, splitK: Int, output: NumberFormat) -> [Float] {
        var sum = [Float](repeating: 0, count: m * n), piece = sum
        for p in 0..<splitK {
            let k0 = p * k / splitK, k1 = (p + 1) * k / splitK
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    piece.withUnsafeMutableBufferPointer { cp in
                        backend.gemm(transA: transA, transB: transB, m: m, n: n, k: k1 - k0,
                                     a: ap.baseAddress! + (transA ? k0 * m : k0), lda: transA ? m : k,
                                     b: bp.baseAddress! + (transB ? k0 : k0 * n), ldb: transB ? k : n,
                                     c: cp.baseAddress!, ldc: n, accumulate: false)
                    }
                }
            }
            if p == 0 { sum = piece } else { for i in 0..<(m * n) { sum[i] += piece[i] } }
        }
        return output == .fp32 ? sum : sum.map { Rounder(format: output).round($0) }
    }

    /// A rollout engine's plain products with split-K on openblas (a decode step's shapes, FP32
    /// and the BF16 emulation, A as is or transposed, B as the engines keep weights, one and two
    /// threads): the pieces, handed to OpenBLAS as one sum, give the bits of the pieces written
    /// out here, one `gemm` each on the same layout, added in order, then the output rounding.
    @Test func splitKPiecesOnOpenBLASMatchThemOneAfterTheOther() throws {
        let bf16 = Quantization(format: .bf16)
        let recipes = [GemmRecipe.fp32, GemmRecipe(a: bf16, b: bf16, accumulation: .fp32, output: .bf16)]
        for (index, (m, n, k)) in [(64, 384, 384), (64, 1024, 384), (64, 384, 1024), (5, 33, 17), (64, 96, 96)].enumerated() {
            let a = randomMatrix(m * k, seed: 40 + UInt64(index), name: "a"), b = randomMatrix(k * n, seed: 40 + UInt64(index), name: "b")
            for recipe in recipes {
                // B (n, k), used transposed as the engines' weights are; or also stored (k, n).
                let weights = try PreparedOperand(b, rows: n, cols: k, transposed: true, quantization: recipe.b)
                let w = weights.matrix.values
                let stored = (0..<(k * n)).map { w[($0 % n) * k + $0 / n] }
                for transA in [false, true] {
                    let qa = try PreparedOperand(a, rows: transA ? k : m, cols: transA ? m : k, transposed: transA,
                                                 quantization: recipe.a)
                    let av = qa.matrix.values
                    for (qb, untransposed) in [(weights, false), (weights.untransposedForBackend(), true)] {
                        for backend in FloatLibrary.allCases.flatMap({ [LibraryBackend($0, nativeBF16: false, threads: 2),
                                                                        LibraryBackend($0, nativeBF16: false, threads: 1)] }) {
                            let gemm = QuantizedGEMM(recipe: recipe, backend: backend)
                            for splitK in [2, 3, 4] {
                                let expected = ScaledKernelTests.piecesOneAfterTheOther(
                                    backend, a: av, transA: transA, b: untransposed ? stored : w, transB: !untransposed,
                                    m: m, n: n, k: k, splitK: splitK, output: recipe.output)
                                var together = [Float](repeating: .nan, count: m * n)
                                gemm.multiplyPrepared(qa, qb, m: m, n: n, k: k, splitK: splitK, into: &together)
                                let what = "\(backend.name) \(m)x\(n)x\(k) \(recipe.a.format) transA \(transA) untransposed B \(untransposed) split-K \(splitK) threads \(backend.threads)"
                                #expect(together.map(\.bitPattern) == expected.map(\.bitPattern), "\(what)")
                                if recipe.a.isIdentity {
                                    var inPlace = [Float](repeating: .nan, count: m * n)
                                    let done = a.withUnsafeBufferPointer {
                                        gemm.multiplyInPlace($0.baseAddress!, transA: transA, qb, m: m, n: n, k: k, splitK: splitK, into: &inPlace)
                                    }
                                    #expect(done && inPlace.map(\.bitPattern) == expected.map(\.bitPattern), "in place: \(what)")
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The engines' shapes: activations per 1×G group, weights per B×B block, Hopper-style
    /// accumulation; FProp (B transposed), DGrad, WGrad (A transposed, G×1 on both), large
    /// enough to run on two threads.
    @Test(arguments: [false, true])
    func engineShapedProductsMatchTheReference(transA: Bool) throws {
        let (m, n, k) = (67, 129, 1000)   // above the kernel's threshold for using threads
        for accumulation in [Accumulation.hopperFP8, .fp32] {
            for (ga, gb) in [(ScaleGranularity.rowGroups(96), ScaleGranularity.blocks(96, 96)),
                             (.columnGroups(32), .columnGroups(32)), (.rowGroups(32), .blocks(32, 32))] {
                let recipe = GemmRecipe(a: Quantization(format: .e4m3, saturate: true, granularity: ga),
                                        b: Quantization(format: .e4m3, saturate: true, granularity: gb),
                                        accumulation: accumulation, output: .bf16)
                let a = randomMatrix(m * k, seed: 5, name: "a"), b = randomMatrix(k * n, seed: 5, name: "b")
                for transB in [false, true] {
                    for splitK in [1, 4] {
                        #expect(try ScaledKernelTests.check(recipe, a: a, b: b, m: m, n: n, k: k,
                                                            transA: transA, transB: transB, splitK: splitK))
                    }
                }
            }
        }
    }

    /// Partial sums outside float32's normal range (subnormal, beyond 2^127, overflowing) take
    /// the scalar fallback of the truncated add; NaN and infinite inputs give NaN and
    /// infinity where the reference does.
    @Test func extremeValuesTakeTheSameFallback() throws {
        var rng = RandomStream(seed: 12, name: "extreme")
        let (m, n, k) = (9, 37, 70)
        // The last two: magnitudes spread over 2^±40 (step sums far below the partial sum, so
        // the double sum itself rounds), then NaN and infinities.
        let magnitudes: [(Float, Float)] = [(0x1p-70, 0x1p-60), (0x1p-75, 0x1p-52), (0x1p62, 0x1p62), (0x1p63, 0x1p64), (0, 1), (1, 1)]
        for (index, (sa, sb)) in magnitudes.enumerated() {
            func spread() -> Float { Float(sign: .plus, exponent: Int(rng.next() % 81) - 40, significand: 1) }
            var a = (0..<(m * k)).map { _ in Float(rng.nextUnit() * 2 - 1) * (sa == 0 ? spread() : sa) }
            var b = (0..<(k * n)).map { _ in Float(rng.nextUnit() * 2 - 1) * sb }
            if index == magnitudes.count - 1 {
                a[3] = .nan; a[5 * k + 2] = .infinity; b[7] = -.infinity; b[40 * n % (k * n)] = .nan
            }
            for accumulation in [Accumulation.limited(bits: 14, step: 32, interval: 64), .limited(bits: 7, step: 5, interval: 10), .fp32] {
                for (qa, qb) in [(Quantization.none, Quantization.none), (Quantization(format: .bf16), Quantization(format: .fp32, granularity: .tensor)),
                                 (Quantization(format: .fp32, granularity: .rowGroups(16)), Quantization(format: .fp32, granularity: .blocks(16, 8)))] {
                    let recipe = GemmRecipe(a: qa, b: qb, accumulation: accumulation, output: .fp32)
                    for (ta, tb) in [(false, false), (true, true)] {
                        #expect(try ScaledKernelTests.check(recipe, a: a, b: b, m: m, n: n, k: k, transA: ta, transB: tb, splitK: 1 + index % 2))
                    }
                }
            }
        }
    }

    /// The truncated add on crafted operands: C[j] = trunc(trunc(p_j) + s_j) through a 1×2 · 2×n
    /// product with MMA steps of 1 and promotion every 2 (A = [1, 1], B's rows p and s):
    /// partial sums on and between kept values, sums that cancel, pull just below a kept value
    /// or a power of two, step sums 25…35 binades below the partial sum (where the double sum
    /// starts to round), subnormal, huge and non-finite sums, for several kept widths.
    @Test func truncatedAddEdgeCasesMatchTheReference() throws {
        var rng = RandomStream(seed: 14, name: "truncated-add")
        let n = 4099
        for bits in [1, 2, 5, 8, 13, 14, 20, 23] {
            var p = [Float](), s = [Float]()
            for _ in 0..<n {
                let e = Int(rng.next() % 261) - 130
                let top = UInt32(rng.next() % (1 << UInt64(bits)))
                let sign: Float = rng.next() % 2 == 0 ? 1 : -1
                let pj = sign * Float(sign: .plus, exponent: e - bits + 1, significand: Float((1 << UInt32(bits - 1)) | (top >> 1)))
                let ulp = Float(sign: .plus, exponent: e - 23, significand: 1)
                let sj: Float
                switch rng.next() % 9 {
                case 0: sj = -pj
                case 1: sj = -sign * ulp * Float(1 + rng.next() % 3) / 2          // just below |p|
                case 2: sj = sign * ulp * Float(rng.next() % 4)                    // just above
                case 3: sj = Float(rng.nextUnit() * 2 - 1) * Float(sign: .plus, exponent: e - 24 - Int(rng.next() % 12), significand: 1)
                case 4: sj = Float(rng.nextUnit() * 2 - 1) * Float(sign: .plus, exponent: e, significand: 1)
                case 5: sj = -pj * Float(sign: .plus, exponent: -1, significand: 1) - ulp / 2
                case 6: sj = [Float.nan, .infinity, -.infinity, .greatestFiniteMagnitude, 0x1p-140, -0.0][Int(rng.next() % 6)]
                case 7: sj = -pj + Float(rng.nextUnit() * 2 - 1) * ulp * 4
                default: sj = Float(rng.nextUnit() * 2 - 1) * Float(sign: .plus, exponent: Int(rng.next() % 261) - 130, significand: 1)
                }
                p.append(pj)
                s.append(sj)
            }
            let recipe = GemmRecipe(a: .none, b: .none, accumulation: .limited(bits: bits, step: 1, interval: 2))
            #expect(try ScaledKernelTests.check(recipe, a: [1, 1], b: p + s, m: 1, n: n, k: 2,
                                                transA: false, transB: false, splitK: 1), "bits \(bits)")
        }
    }
}

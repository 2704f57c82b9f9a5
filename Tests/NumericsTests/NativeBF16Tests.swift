import Foundation
import Numerics
import Testing

/// The native BF16 product (`BF16Kernel`, AVX512_BF16) against two independent references: the
/// chain it is defined to compute (pairs of K positions, odd then even, each a fused
/// multiply-add), exactly; and the float32 emulation (one chain in increasing k), within the
/// bound that two summation orders allow and that a wrong rounding exceeds.
@Suite(.enabled(if: BF16Kernel.available, "this processor has no AVX512_BF16 instructions"))
struct NativeBF16Tests {
    /// Random BF16 values of mixed magnitudes (exponents over 2^-12…2^12, both signs).
    static func bf16Values(_ count: Int, seed: UInt64) -> [Float] {
        var rng = RandomStream(seed: seed, name: "bf16")
        return (0..<count).map { _ in
            let r = rng.next()
            let exponent = Int(r % 25) - 12
            let mantissa = Float((r >> 8) % 128) / 128
            let sign: Float = (r >> 20) & 1 == 0 ? 1 : -1
            return sign * (1 + mantissa) * Float(sign: .plus, exponent: exponent, significand: 1)
        }
    }

    /// op(X)[i][p] for X stored (rows, cols) with `trans` meaning X holds op(X) transposed.
    static func element(_ x: [Float], _ ld: Int, trans: Bool, _ i: Int, _ p: Int) -> Float {
        trans ? x[p * ld + i] : x[i * ld + p]
    }

    /// The defining chain, written plainly with Float's fused multiply-add.
    static func pairChain(_ a: [Float], lda: Int, transA: Bool, _ b: [Float], ldb: Int, transB: Bool,
                          m: Int, n: Int, k: Int, start: [Float]?) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var acc = start?[i * n + j] ?? 0
                for p in stride(from: 0, to: k, by: 2) {
                    if p + 1 < k {
                        acc = acc.addingProduct(element(a, lda, trans: transA, i, p + 1), element(b, ldb, trans: !transB, j, p + 1))
                    } else {
                        acc = acc.addingProduct(0, 0)  // the zero that pads an odd k
                    }
                    acc = acc.addingProduct(element(a, lda, trans: transA, i, p), element(b, ldb, trans: !transB, j, p))
                }
                c[i * n + j] = acc
            }
        }
        return c
    }

    static func native(_ a: [Float], lda: Int, transA: Bool, _ b: [Float], ldb: Int, transB: Bool,
                       m: Int, n: Int, k: Int, start: [Float]?, threads: Int, threshold: Int = 1) -> [Float] {
        var c = start ?? [Float](repeating: .nan, count: m * n)
        let packed = b.withUnsafeBufferPointer { BF16Kernel.PackedB($0.baseAddress!, ldb: ldb, transB: transB, k: k, n: n, threads: threads) }
        a.withUnsafeBufferPointer { av in
            c.withUnsafeMutableBufferPointer { cv in
                _ = BF16Kernel.multiply(transA: transA, m: m, n: n, k: k, a: av.baseAddress!, lda: lda, b: packed,
                                        c: cv.baseAddress!, ldc: n, accumulate: start != nil, threads: threads, parallelThreshold: threshold)
            }
        }
        return c
    }

    /// Every layout, with and without accumulation, on shapes with edge panels (rows not a
    /// multiple of 8, columns not of 32, odd k, k past one cache block), on 1 and 2 threads:
    /// the same bits as the defining chain.
    @Test(arguments: [(1, 1, 1), (3, 5, 7), (8, 32, 2), (9, 33, 3), (17, 70, 129), (64, 96, 384), (5, 40, 1001), (130, 40, 70),
                      (61, 33, 77)])
    func equalsThePairChainBitForBit(shape: (Int, Int, Int)) {
        let (m, n, k) = shape
        for transA in [false, true] {
            for transB in [false, true] {
                let a = Self.bf16Values(m * k, seed: UInt64(m * 1000 + k))
                let b = Self.bf16Values(k * n, seed: UInt64(n * 1000 + k + 1))
                let start = Self.bf16Values(m * n, seed: 3)
                let lda = transA ? m : k, ldb = transB ? k : n
                for accumulate in [false, true] {
                    let expected = Self.pairChain(a, lda: lda, transA: transA, b, ldb: ldb, transB: transB,
                                                  m: m, n: n, k: k, start: accumulate ? start : nil)
                    for threads in [1, 2] {
                        let got = Self.native(a, lda: lda, transA: transA, b, ldb: ldb, transB: transB,
                                              m: m, n: n, k: k, start: accumulate ? start : nil, threads: threads)
                        #expect(got.map(\.bitPattern) == expected.map(\.bitPattern),
                                "\(m)x\(n)x\(k) transA \(transA) transB \(transB) accumulate \(accumulate) threads \(threads)")
                    }
                }
            }
        }
    }

    /// Against the float32 emulation (the portable backend's chain in increasing k): two
    /// orders of the same exact products each lie within γ_k·Σ|a·b| of the exact sum
    /// (γ_k = k·u/(1−k·u), u = 2⁻²⁴), so they differ by at most twice that. Operands rounded
    /// to BF16 in another direction (toward zero, a wrong rounding) leave that bound by orders
    /// of magnitude: the bound discriminates.
    @Test func agreesWithTheEmulationWithinTheSummationBound() {
        let m = 48, n = 80, k = 300
        let rawA = (0..<(m * k)).map { Float(sin(Double($0) * 0.37)) * 1.7 }
        let rawB = (0..<(k * n)).map { Float(cos(Double($0) * 0.11)) * 0.9 }
        let nearest = Rounder(format: .bf16), towardZero = Rounder(format: .bf16, mode: .towardZero)
        let a = rawA.map { nearest.round($0) }, b = rawB.map { nearest.round($0) }
        let native = Self.native(a, lda: k, transA: false, b, ldb: n, transB: false, m: m, n: n, k: k, start: nil, threads: 2)
        var emulated = [Float](repeating: 0, count: m * n)
        PortableBackend(threads: 1).gemm(transA: false, transB: false, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n,
                                         c: &emulated, ldc: n, accumulate: false)
        let u = 0x1p-24, gamma = Double(k) * u / (1 - Double(k) * u)
        var worstRatio = 0.0, wrongRatio = 0.0, differing = 0
        let az = rawA.map { towardZero.round($0) }, bz = rawB.map { towardZero.round($0) }
        let wrong = Self.native(az, lda: k, transA: false, bz, ldb: n, transB: false, m: m, n: n, k: k, start: nil, threads: 1)
        for i in 0..<m {
            for j in 0..<n {
                var magnitude = 0.0
                for p in 0..<k { magnitude += abs(Double(a[i * k + p]) * Double(b[p * n + j])) }
                let bound = 2 * gamma * magnitude
                let difference = abs(Double(native[i * n + j]) - Double(emulated[i * n + j]))
                if difference > 0 { differing += 1 }
                worstRatio = max(worstRatio, difference / bound)
                wrongRatio = max(wrongRatio, abs(Double(wrong[i * n + j]) - Double(emulated[i * n + j])) / bound)
            }
        }
        #expect(worstRatio <= 1, "native and emulated BF16 products differ by \(worstRatio)× the summation bound")
        #expect(differing > 0, "the two summation orders never differed: the test would not see a change of order")
        #expect(wrongRatio > 10, "a wrong operand rounding stayed within \(wrongRatio)× the bound")
    }

    /// What the instruction does with subnormals, and why the emulation can differ there:
    /// a subnormal operand is read as zero, a subnormal result is flushed to zero.
    @Test func subnormalsAreFlushedAsTheInstructionDoes() {
        let tiny = Float(bitPattern: 0x0040_0000)  // 2⁻¹²⁷, a BF16 subnormal
        let half = Float(0.5), smallest = Float.leastNormalMagnitude  // 2⁻¹²⁶
        // A subnormal operand times 1.
        #expect(Self.native([tiny], lda: 1, transA: false, [1], ldb: 1, transB: false, m: 1, n: 1, k: 1, start: nil, threads: 1) == [0])
        // A normal product whose value (2⁻¹²⁷) is subnormal.
        #expect(Self.native([smallest], lda: 1, transA: false, [half], ldb: 1, transB: false, m: 1, n: 1, k: 1, start: nil, threads: 1) == [0])
        // The emulation keeps both.
        #expect(smallest * half == tiny && tiny * 1 == tiny)
    }

    /// The epilogue's rounding (VCVTNEPS2BF16) against the lab's BF16 rounder: every high half
    /// (all signs, exponents and BF16 mantissas, infinities and NaNs) with the low halves that
    /// decide a rounding (zero, just below, at and just above the tie, the largest). Equal
    /// bits everywhere but where the instruction reads a subnormal as zero, and for NaN (a NaN
    /// either way, its payload aside).
    @Test func theEpilogueRoundsAsTheRounderDoes() {
        let lows: [UInt32] = [0, 1, 0x7fff, 0x8000, 0x8001, 0xffff]
        var x: [Float] = []
        for high in UInt32(0)..<0x1_0000 { for low in lows { x.append(Float(bitPattern: high << 16 | low)) } }
        var y = [Float](repeating: 0, count: x.count)
        BF16Kernel.round(x, into: &y, count: x.count)
        let rounder = Rounder(format: .bf16)
        var checked = 0
        for (value, got) in zip(x, y) {
            if value.isNaN { #expect(got.isNaN); continue }
            if value.isSubnormal { #expect(got == 0); continue }
            #expect(got.bitPattern == rounder.round(value).bitPattern, "\(value)")
            checked += 1
        }
        #expect(checked > 300_000)
    }

    /// Through the quantized product: the `openblas` backend with native BF16 gives the pair
    /// chain on the BF16 recipe; forced to the float32 fallback it gives what its float32
    /// product gives on the same rounded operands; FP16 operands never take the native path.
    @Test func theBackendUsesItOnlyForBF16ValuesAndFallsBackWhenTold() throws {
        let m = 20, n = 36, k = 50
        let rawA = (0..<(m * k)).map { Float(sin(Double($0) * 0.7)) }, rawB = (0..<(k * n)).map { Float(cos(Double($0) * 0.3)) }
        let a = rawA.map { Rounder(format: .bf16).round($0) }, b = rawB.map { Rounder(format: .bf16).round($0) }
        let chain = Self.pairChain(a, lda: k, transA: false, b, ldb: n, transB: false, m: m, n: n, k: k, start: nil)
            .map { Rounder(format: .bf16).round($0) }
        let native = try QuantizedGEMM(recipe: .uniform(.bf16), backend: LibraryBackend(.openblas)).multiply(rawA, rawB, m: m, n: n, k: k).c
        #expect(native.map(\.bitPattern) == chain.map(\.bitPattern))
        let fallbackBackend = LibraryBackend(.openblas, nativeBF16: false)
        #expect(!fallbackBackend.nativeBF16)
        let fallback = try QuantizedGEMM(recipe: .uniform(.bf16), backend: fallbackBackend).multiply(rawA, rawB, m: m, n: n, k: k).c
        var float32 = [Float](repeating: 0, count: m * n)
        fallbackBackend.gemm(transA: false, transB: false, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &float32, ldc: n, accumulate: false)
        #expect(fallback.map(\.bitPattern) == float32.map { Rounder(format: .bf16).round($0) }.map(\.bitPattern))
        #expect(!BF16Kernel.carries(.fp16) && !BF16Kernel.carries(.fp32) && BF16Kernel.carries(.bf16)
                && BF16Kernel.carries(NumberFormat(name: "e8m3", exponentBits: 8, mantissaBits: 3)))
        #expect(!PortableBackend().nativeBF16)
    }
    /// A given unrounded and rounded as the kernel packs it (`multiplyRoundingA`) against A
    /// quantized to BF16 first: the same product bits and the same counts, for both layouts of
    /// A, shapes that are not whole panels, and values of every kind — ties to even both ways,
    /// values that overflow to ±inf, subnormals, ±0, ±inf and NaNs with payloads.
    @Test(arguments: [false, true])
    func roundingAsItPacksIsQuantizingFirst(transA: Bool) throws {
        let m = 43, n = 40, k = 37  // transposed A: four panels packed together, then the rest
        var rng = RandomStream(seed: 31, name: "rounding-pack")
        let specials: [Float] = [
            Float(bitPattern: 0x3f80_8000), Float(bitPattern: 0x3f81_8000),   // ties: to even down, and up
            Float(bitPattern: 0xbf80_8000), Float(bitPattern: 0x3f80_7fff),
            Float(bitPattern: 0x7f7f_8000), Float(bitPattern: 0xff7f_ffff),   // overflow to ±inf
            Float(bitPattern: 0x7f7f_7fff),                                    // the largest that stays finite
            Float(bitPattern: 0x0000_8000), Float(bitPattern: 0x8001_7fff), Float(bitPattern: 0x007f_ffff),  // subnormals
            0, -0.0, .infinity, -.infinity,
            Float(bitPattern: 0x7fa0_0001), Float(bitPattern: 0xffc1_2345), Float(bitPattern: 0x7f80_0001)]  // NaNs
        var a = (0..<(m * k)).map { _ in Float(rng.nextUnit() * 8 - 4) * Float(sign: .plus, exponent: Int(rng.next() % 40) - 20, significand: 1) }
        // The specials in a few rows of op(A) only, so that most outputs stay finite.
        for (index, value) in specials.enumerated() {
            let row = [2, 9, 17][index % 3], column = (index * 5) % k
            a[transA ? column * m + row : row * k + column] = value
        }
        let b = (0..<(k * n)).map { _ in Rounder(format: .bf16).round(Float(rng.nextUnit() * 2 - 1)) }
        let qb = try PreparedOperand(b, rows: n, cols: k, transposed: true, quantization: Quantization(format: .bf16))
            .packedForNativeBF16(keepingValues: false)
        for output in [NumberFormat.bf16, .fp32] {
            let gemm = QuantizedGEMM(recipe: GemmRecipe(a: Quantization(format: .bf16), b: Quantization(format: .bf16), output: output),
                                     backend: LibraryBackend(.openblas))
            let qa = try PreparedOperand(a, rows: transA ? k : m, cols: transA ? m : k, transposed: transA,
                                         quantization: Quantization(format: .bf16))
            var expected = [Float](repeating: 0, count: m * n), fused = expected
            gemm.multiplyPrepared(qa, qb, m: m, n: n, k: k, into: &expected)
            let counts = try #require(a.withUnsafeBufferPointer {
                gemm.multiplyRoundingA($0.baseAddress!, transA: transA, qb, m: m, n: n, k: k, into: &fused)
            })
            #expect(fused.map(\.bitPattern) == expected.map(\.bitPattern), "output \(output.name)")
            #expect(counts.overflowed == qa.matrix.saturated && counts.nonFinite == qa.matrix.nonFinite)
            #expect(counts.overflowed == 2 && counts.nonFinite == 5)
        }
        // Not such a product: another rule, split-K, or no native kernel: nothing done.
        var untouched = [Float](repeating: 7, count: m * n)
        a.withUnsafeBufferPointer { ap in
            let fp16 = QuantizedGEMM(recipe: .uniform(.fp16), backend: LibraryBackend(.openblas))
            #expect(fp16.multiplyRoundingA(ap.baseAddress!, transA: transA, qb, m: m, n: n, k: k, into: &untouched) == nil)
            let bf16 = QuantizedGEMM(recipe: .uniform(.bf16), backend: LibraryBackend(.openblas))
            #expect(bf16.multiplyRoundingA(ap.baseAddress!, transA: transA, qb, m: m, n: n, k: k, splitK: 2, into: &untouched) == nil)
            let emulated = QuantizedGEMM(recipe: .uniform(.bf16), backend: LibraryBackend(.openblas, nativeBF16: false))
            #expect(emulated.multiplyRoundingA(ap.baseAddress!, transA: transA, qb, m: m, n: n, k: k, into: &untouched) == nil)
        }
        #expect(untouched.allSatisfy { $0 == 7 })
    }
    /// Both operands given unrounded (`multiplyRoundingBoth`, a weight gradient dyᵀ·x): the
    /// bits and counts of quantizing both first, with special values in each.
    @Test func roundingBothAsTheyArePackedIsQuantizingFirst() throws {
        let m = 37, n = 45, k = 39  // four panels of A packed together, then the rest
        var rng = RandomStream(seed: 33, name: "rounding-both")
        func values(_ count: Int) -> [Float] {
            (0..<count).map { _ in Float(rng.nextUnit() * 8 - 4) * Float(sign: .plus, exponent: Int(rng.next() % 30) - 15, significand: 1) }
        }
        var a = values(k * m), b = values(k * n)  // A stored k × m (used transposed), B stored k × n
        let specials: [UInt32] = [0x3f80_8000, 0x3f81_8000, 0x7f7f_8000, 0xff7f_ffff, 0x0000_8000, 0x8000_0000, 0x7f80_0000,
                                  0xffc1_2345]
        for (index, bits) in specials.enumerated() {
            a[(index * 31) % a.count] = Float(bitPattern: bits)
            b[(index * 53 + 7) % b.count] = Float(bitPattern: bits)
        }
        let bf16 = Quantization(format: .bf16)
        let gemm = QuantizedGEMM(recipe: GemmRecipe(a: bf16, b: bf16, output: .fp32), backend: LibraryBackend(.openblas))
        let qa = try PreparedOperand(a, rows: k, cols: m, transposed: true, quantization: bf16)
        let qb = try PreparedOperand(b, rows: k, cols: n, transposed: false, quantization: bf16)
        var expected = [Float](repeating: 0, count: m * n), fused = expected
        gemm.multiplyPrepared(qa, qb, m: m, n: n, k: k, into: &expected)
        let counts = try #require(a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                gemm.multiplyRoundingBoth(ap.baseAddress!, transA: true, bp.baseAddress!, m: m, n: n, k: k, into: &fused)
            }
        })
        #expect(fused.map(\.bitPattern) == expected.map(\.bitPattern))
        #expect(counts.a.overflowed == qa.matrix.saturated && counts.a.nonFinite == qa.matrix.nonFinite)
        #expect(counts.b.overflowed == qb.matrix.saturated && counts.b.nonFinite == qb.matrix.nonFinite)
        #expect(counts.a.overflowed == 2 && counts.a.nonFinite == 2 && counts.b.overflowed == 2 && counts.b.nonFinite == 2)
    }

    /// Products that share one input's packing (`PackMemo`: q, k and v reading the same
    /// activations, as A in the forward and as B in the weight gradient) give the bits and
    /// counts of each product packing it anew; an operand at another address (of the same
    /// shape) is never served from the memo.
    @Test func sharedPackingsChangeNoBit() throws {
        let m = 37, k = 45
        var rng = RandomStream(seed: 35, name: "shared-packing")
        func values(_ count: Int) -> [Float] { (0..<count).map { _ in Float(rng.nextUnit() * 6 - 3) } }
        var x = values(m * k)
        x[5] = Float(bitPattern: 0x7f7f_8000)  // overflows: counted
        let other = values(m * k), dys = (0..<3).map { _ in values(m * 21) }
        let bf16 = Quantization(format: .bf16)
        let weights = try (0..<3).map { i in
            try PreparedOperand((0..<(k * (20 + i))).map { _ in Rounder(format: .bf16).round(Float(rng.nextUnit() * 2 - 1)) },
                                rows: 20 + i, cols: k, transposed: true, quantization: bf16).packedForNativeBF16(keepingValues: false)
        }
        let gemm = QuantizedGEMM(recipe: GemmRecipe(a: bf16, b: bf16, output: .bf16), backend: LibraryBackend(.openblas))
        let wgrad = QuantizedGEMM(recipe: GemmRecipe(a: bf16, b: bf16, output: .fp32), backend: LibraryBackend(.openblas))
        func run(memo: Bool) -> [[UInt32]] {
            var results: [[UInt32]] = []
            x.withUnsafeBufferPointer { xp in
                let shared = memo ? BF16Kernel.PackMemo(source: xp.baseAddress!) : nil
                for (i, w) in weights.enumerated() {
                    var y = [Float](repeating: .nan, count: m * (20 + i))
                    let counts = gemm.multiplyRoundingA(xp.baseAddress!, w, m: m, n: 20 + i, k: k, memo: shared, into: &y)
                    results.append(y.map(\.bitPattern) + [UInt32(counts?.overflowed ?? -1), UInt32(counts?.nonFinite ?? -1)])
                    // Another operand of the same shape under the same memo: its own product.
                    var z = [Float](repeating: .nan, count: m * (20 + i))
                    _ = other.withUnsafeBufferPointer { gemm.multiplyRoundingA($0.baseAddress!, w, m: m, n: 20 + i, k: k, memo: shared, into: &z) }
                    results.append(z.map(\.bitPattern))
                    // dW = dyᵀ·x: x as B, shared.
                    var dW = [Float](repeating: .nan, count: 21 * k)
                    let both = dys[i].withUnsafeBufferPointer {
                        wgrad.multiplyRoundingBoth($0.baseAddress!, transA: true, xp.baseAddress!, m: 21, n: k, k: m, memo: shared, into: &dW)
                    }
                    results.append(dW.map(\.bitPattern) + [UInt32(both?.b.overflowed ?? -1), UInt32(both?.b.nonFinite ?? -1)])
                }
            }
            return results
        }
        let alone = run(memo: false), shared = run(memo: true)
        #expect(shared == alone)
        #expect(alone[0].suffix(2) == [1, 0] && alone[2].suffix(2) == [1, 0])
        #expect(alone[0] != alone[1])
    }
}

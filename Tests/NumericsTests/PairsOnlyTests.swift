import Foundation
import Numerics
import Testing

/// An operand held as its BF16 pairs alone (`packedForNativeBF16(keepingValues: false)`): its
/// float32 values come back from the pairs bit for bit, and every product — native, the
/// float32 fallback, split-K stretches the pairs cannot serve, the fused kernel, the plain
/// reference — gives the bits it gives with the values kept.
@Suite(.enabled(if: BF16Kernel.available, "this processor has no AVX512_BF16 instructions"))
struct PairsOnlyTests {
    /// Every BF16 value (all 65,536 bit patterns: zeros, subnormals, infinities, NaNs with
    /// their payloads) in a matrix whose sides are not multiples of the kernel's panels, both
    /// ways round: packed, then unpacked, the same float32 bits.
    @Test(arguments: [false, true])
    func everyBF16ValueComesBackFromThePairs(transposed: Bool) {
        let k = 257, n = 255  // 65,535 elements; the last pattern goes to a matrix of its own
        let bits = (0..<(k * n)).map { UInt32($0) << 16 }
        let values = bits.map { Float(bitPattern: $0) }
        let packed = values.withUnsafeBufferPointer {
            BF16Kernel.PackedB($0.baseAddress!, ldb: transposed ? k : n, transB: transposed, k: k, n: n)
        }
        #expect(packed.unpacked(transB: transposed).map(\.bitPattern) == bits)
        let last: [Float] = [Float(bitPattern: 0xffff_0000)]
        let one = last.withUnsafeBufferPointer { BF16Kernel.PackedB($0.baseAddress!, ldb: 1, transB: transposed, k: 1, n: 1) }
        #expect(one.unpacked(transB: transposed).map(\.bitPattern) == [0xffff_0000])
    }

    /// Products of A (m, k) with B held as pairs alone against B with its values, for every
    /// path a product can take: the same bits.
    @Test(arguments: [(9, 70, 33), (64, 96, 130), (3, 17, 5)])
    func productsAreTheSameBits(shape: (Int, Int, Int)) throws {
        let (m, n, k) = shape
        let a = (0..<(m * k)).map { Float(sin(Double($0) * 0.37)) }
        let w = (0..<(n * k)).map { Float(cos(Double($0) * 0.11)) * 3 }
        // Weights stored (out, in) = (n, k), used as B = Wᵀ, as an engine holds them.
        let weights = try PreparedOperand(w, rows: n, cols: k, transposed: true, quantization: Quantization(format: .bf16))
        let kept = weights.packedForNativeBF16(), alone = weights.packedForNativeBF16(keepingValues: false)
        #expect(alone.valuesInPairsOnly && alone.matrix.values.isEmpty && !kept.valuesInPairsOnly)
        #expect(alone.withValues().matrix.values.map(\.bitPattern) == kept.matrix.values.map(\.bitPattern))
        let qa = try PreparedOperand(a, rows: m, cols: k, transposed: false, quantization: Quantization(format: .bf16))
        let limited = GemmRecipe(a: Quantization(format: .bf16), b: Quantization(format: .bf16),
                                 accumulation: .limited(bits: 14, step: 4, interval: 8), output: .bf16)
        let cases: [(String, QuantizedGEMM, Int)] = [
            ("native", QuantizedGEMM(recipe: .uniform(.bf16), backend: LibraryBackend(.openblas)), 1),
            ("native, split-K at odd positions", QuantizedGEMM(recipe: .uniform(.bf16), backend: LibraryBackend(.openblas)), 3),
            ("float32 fallback", QuantizedGEMM(recipe: .uniform(.bf16), backend: LibraryBackend(.openblas, nativeBF16: false)), 1),
            ("portable", QuantizedGEMM(recipe: .uniform(.bf16), backend: PortableBackend()), 2),
            ("fused kernel", QuantizedGEMM(recipe: limited, backend: PortableBackend()), 1)]
        for (name, gemm, splitK) in cases {
            var withValues = [Float](repeating: 0, count: m * n), withPairs = withValues
            gemm.multiplyPrepared(qa, kept, m: m, n: n, k: k, splitK: splitK, into: &withValues)
            gemm.multiplyPrepared(qa, alone, m: m, n: n, k: k, splitK: splitK, into: &withPairs)
            #expect(withPairs.map(\.bitPattern) == withValues.map(\.bitPattern), "\(name)")
            var reference = [Float](repeating: 0, count: m * n), referenceKept = reference
            gemm.referenceMultiplyPrepared(qa, alone, m: m, n: n, k: k, splitK: splitK, into: &reference)
            gemm.referenceMultiplyPrepared(qa, kept, m: m, n: n, k: k, splitK: splitK, into: &referenceKept)
            #expect(reference.map(\.bitPattern) == referenceKept.map(\.bitPattern), "\(name), reference")
        }
        // A pairs-only operand serves every other layout too.
        #expect(alone.untransposedForBackend().withValues().matrix.values == kept.matrix.values)
        // Read in place (an FP32 activation against BF16 weights on the float32 path).
        let inPlace = QuantizedGEMM(recipe: GemmRecipe(b: Quantization(format: .bf16)), backend: PortableBackend())
        var fromPairs = [Float](repeating: 0, count: m * n), fromValues = fromPairs
        #expect(a.withUnsafeBufferPointer { inPlace.multiplyInPlace($0.baseAddress!, alone, m: m, n: n, k: k, into: &fromPairs) })
        #expect(a.withUnsafeBufferPointer { inPlace.multiplyInPlace($0.baseAddress!, kept, m: m, n: n, k: k, into: &fromValues) })
        #expect(fromPairs.map(\.bitPattern) == fromValues.map(\.bitPattern))
    }
    /// Rounded as they are packed (`bf16Pairs`): the operand quantizing first and then
    /// packing gives, value for value (unpacked) and count for count, both layouts, with ties,
    /// overflow, subnormals, ±0, ±inf and NaN payloads among ordinary values.
    @Test(arguments: [false, true])
    func pairsRoundedAsTheyArePackedAreTheQuantizedOnes(transposed: Bool) throws {
        let rows = 45, cols = 37
        var rng = RandomStream(seed: 51, name: "bf16-pairs")
        var values = (0..<(rows * cols)).map { _ in
            Float(rng.nextUnit() * 8 - 4) * Float(sign: .plus, exponent: Int(rng.next() % 60) - 30, significand: 1)
        }
        let specials: [UInt32] = [0x3f80_8000, 0x3f81_8000, 0xbf80_8000, 0x7f7f_8000, 0xff7f_ffff, 0x7f7f_7fff, 0x0000_8000,
                                  0x8001_7fff, 0x007f_ffff, 0, 0x8000_0000, 0x7f80_0000, 0xff80_0000, 0x7fa0_0001, 0xffc1_2345]
        for (i, bits) in specials.enumerated() { values[i * 97 % values.count] = Float(bitPattern: bits) }
        let expected = try PreparedOperand(values, rows: rows, cols: cols, transposed: transposed,
                                           quantization: Quantization(format: .bf16)).packedForNativeBF16(keepingValues: false)
        let fused = values.withUnsafeBufferPointer { PreparedOperand.bf16Pairs($0, rows: rows, cols: cols, transposed: transposed) }
        #expect(fused.valuesInPairsOnly)
        #expect(fused.withValues().matrix.values.map(\.bitPattern) == expected.withValues().matrix.values.map(\.bitPattern))
        #expect(fused.matrix.saturated == expected.matrix.saturated && fused.matrix.nonFinite == expected.matrix.nonFinite)
        #expect(fused.matrix.saturated == 2 && fused.matrix.nonFinite == 4)
        #expect(fused.matrix.scales == expected.matrix.scales && fused.matrix.tileRows == expected.matrix.tileRows
                && fused.matrix.tileCols == expected.matrix.tileCols)
    }
}

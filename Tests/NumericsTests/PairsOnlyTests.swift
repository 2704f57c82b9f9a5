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
            ("native", QuantizedGEMM(recipe: .uniform(.bf16), backend: OpenBLASBackend()), 1),
            ("native, split-K at odd positions", QuantizedGEMM(recipe: .uniform(.bf16), backend: OpenBLASBackend()), 3),
            ("float32 fallback", QuantizedGEMM(recipe: .uniform(.bf16), backend: OpenBLASBackend(nativeBF16: false)), 1),
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
}

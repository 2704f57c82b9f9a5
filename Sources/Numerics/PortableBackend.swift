// The lab's own matrix product: the same bits on every machine.

/// A matrix product with a fixed summation order, so its results are identical on every
/// machine, whatever the vector width or thread count.
///
/// Concretely, every output is one chain of fused multiply-adds in increasing k:
/// `acc = accumulate ? C[i][j] : 0; for p in 0..<k { acc = fma(A[i][p], B[p][j], acc) }`.
/// Fused multiply-add is correctly rounded by definition, so hardware and software FMA agree.
public struct PortableBackend: MatmulBackend {
    public let name = "portable"
    public init() {}

    public func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                     a: UnsafePointer<Float>, lda: Int,
                     b: UnsafePointer<Float>, ldb: Int,
                     c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
        for i in 0..<m {
            for j in 0..<n {
                var acc: Float = accumulate ? c[i * ldc + j] : 0
                for p in 0..<k {
                    let x = transA ? a[p * lda + i] : a[i * lda + p]
                    let y = transB ? b[j * ldb + p] : b[p * ldb + j]
                    acc = acc.addingProduct(x, y)
                }
                c[i * ldc + j] = acc
            }
        }
    }
}

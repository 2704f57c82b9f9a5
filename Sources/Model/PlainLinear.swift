// Matrix products in plain float32 on a backend: the reference kernel of the model.

import Numerics

/// Float32 linear layers straight on a matrix-product backend, no quantization.
public struct PlainLinear: LinearKernel {
    public let weights: ModelWeights
    public let backend: any MatmulBackend

    public init(weights: ModelWeights, backend: any MatmulBackend) {
        self.weights = weights
        self.backend = backend
    }

    public func forward(_ site: LinearSite, x: UnsafePointer<Float>, rows: Int, y: UnsafeMutablePointer<Float>) {
        let s = site.slot(in: weights)
        weights.data.withUnsafeBufferPointer { w in
            // y (rows, out) = x (rows, in) · Wᵀ with W stored (out, in).
            backend.gemm(transA: false, transB: true, m: rows, n: s.rows, k: s.cols, a: x, lda: s.cols,
                         b: w.baseAddress! + s.offset, ldb: s.cols, c: y, ldc: s.rows, accumulate: false)
        }
    }

    public func backward(_ site: LinearSite, dy: UnsafePointer<Float>, x: UnsafePointer<Float>, rows: Int,
                         dx: UnsafeMutablePointer<Float>?, dW: UnsafeMutablePointer<Float>?) {
        let s = site.slot(in: weights)
        weights.data.withUnsafeBufferPointer { w in
            if let dx {
                // dx (rows, in) = dy (rows, out) · W (out, in)
                backend.gemm(transA: false, transB: false, m: rows, n: s.cols, k: s.rows, a: dy, lda: s.rows,
                             b: w.baseAddress! + s.offset, ldb: s.cols, c: dx, ldc: s.cols, accumulate: false)
            }
            // dW (out, in) += dyᵀ (out, rows) · x (rows, in)
            guard let dW else { return }
            backend.gemm(transA: true, transB: false, m: s.rows, n: s.cols, k: rows, a: dy, lda: s.rows,
                         b: x, ldb: s.cols, c: dW, ldc: s.cols, accumulate: true)
        }
    }
}

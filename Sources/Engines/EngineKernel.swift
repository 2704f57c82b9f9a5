// The matrix products of one engine: weights quantized once per sync, activations quantized
// per product, each product under the profile's recipe.

import Model
import Numerics

/// A `LinearKernel` in an engine's precision. Holds the engine's copy of the weights:
/// linear weights quantized per the profile, everything else rounded to `otherWeights`.
public final class EngineKernel: LinearKernel {
    public let profile: PrecisionProfile
    public let backend: any MatmulBackend
    /// The engine's weights: embedding and norms rounded; linear weights dequantized
    /// (q · scale) for display and traces.
    public private(set) var weights: ModelWeights
    private var prepared: [LinearSite: PreparedOperand] = [:]
    /// Operand elements that overflowed their format in this engine since the last sync.
    public private(set) var saturated = 0

    /// Quantizes the master weights per the profile (a weight sync).
    public init(master: ModelWeights, profile: PrecisionProfile, backend: any MatmulBackend) throws(NumericsError) {
        self.profile = profile
        self.backend = backend
        var w = master
        let other = Rounder(format: profile.otherWeights)
        var sites: [LinearSite] = [LinearSite(.lmHead, layer: -1)]
        for l in 0..<master.config.numHiddenLayers {
            for kind in LinearKind.allCases where kind != .lmHead { sites.append(LinearSite(kind, layer: l)) }
        }
        let linearNames = Set(sites.map { $0.slot(in: master).name })
        // Non-matrix parameters: rounded to their storage format.
        for s in master.slots where !linearNames.contains(s.name) || (master.config.tieWordEmbeddings && s.name == master.embedding.name) {
            w.data.withUnsafeMutableBufferPointer { p in other.round(p.baseAddress! + s.offset, into: p.baseAddress! + s.offset, count: s.count) }
        }
        for site in sites {
            let s = site.slot(in: master)
            let values = Array(master.data[s.offset..<(s.offset + s.count)])
            var q = try PreparedOperand(values, rows: s.rows, cols: s.cols, transposed: true, quantization: profile.weights)
            // Every forward product reuses the weights as its right operand: lay them out once
            // for the fused kernel when the products run on it (scaled or limited accumulation).
            if profile.weights.granularity != .unscaled || profile.fprop.accumulation != .fp32 {
                q = q.packedAsRightOperand()
            }
            prepared[site] = q
            saturated += q.matrix.saturated
            if !(master.config.tieWordEmbeddings && site.kind == .lmHead) {
                let deq = q.matrix.dequantized()
                w.data.replaceSubrange(s.offset..<(s.offset + s.count), with: deq)
            }
        }
        weights = w
    }

    private func gemm(_ spec: GemmSpec, output: NumberFormat) -> QuantizedGEMM {
        QuantizedGEMM(recipe: GemmRecipe(a: spec.input, b: profile.weights, accumulation: spec.accumulation, output: output),
                      backend: backend)
    }

    /// y (rows, out) = x (rows, in) · Wᵀ: x quantized per FProp, the product accumulated per
    /// the recipe (split-K if the source is on), the output rounded to the activation format —
    /// or kept float32 for the LM head when `logits_fp32` is on.
    public func forward(_ site: LinearSite, x: UnsafePointer<Float>, rows: Int, y: UnsafeMutablePointer<Float>) {
        guard let w = prepared[site] else { preconditionFailure("no weights for \(site)") }
        let inDim = w.matrix.cols, outDim = w.matrix.rows
        let output: NumberFormat = (site.kind == .lmHead && profile.sources.logitsFP32) ? .fp32 : profile.activation
        let qx = quantize(x, rows: rows, cols: inDim, profile.fprop.input, transposed: false)
        gemm(profile.fprop, output: output).multiplyPrepared(qx, w, m: rows, n: outDim, k: inDim,
                                                             splitK: profile.sources.splitK, into: y)
    }

    /// dx = dy · W (DGrad: dy quantized per 1×G along the output features, the same quantized
    /// weights, output in the gradient format) and dW += dyᵀ · x (WGrad: both operands
    /// quantized along the token axis, output float32, added to the master gradient).
    public func backward(_ site: LinearSite, dy: UnsafePointer<Float>, x: UnsafePointer<Float>, rows: Int,
                         dx: UnsafeMutablePointer<Float>?, dW: UnsafeMutablePointer<Float>) {
        guard let w = prepared[site] else { preconditionFailure("no weights for \(site)") }
        let inDim = w.matrix.cols, outDim = w.matrix.rows
        if let dx {
            let qdy = quantize(dy, rows: rows, cols: outDim, profile.dgrad.input, transposed: false)
            let wPlain = PreparedOperand(matrix: w.matrix, transposed: false)
            gemm(profile.dgrad, output: profile.gradient).multiplyPrepared(qdy, wPlain, m: rows, n: inDim, k: outDim, into: dx)
        }
        // dW (out, in) = dyᵀ (out, rows) · x (rows, in): K is the token axis.
        let qdyT = quantize(dy, rows: rows, cols: outDim, profile.wgrad.input, transposed: true)
        let qx = quantize(x, rows: rows, cols: inDim, profile.wgrad.input, transposed: false)
        let recipe = GemmRecipe(a: profile.wgrad.input, b: profile.wgrad.input, accumulation: profile.wgrad.accumulation, output: .fp32)
        let product = UnsafeMutablePointer<Float>.allocate(capacity: outDim * inDim)
        defer { product.deallocate() }
        QuantizedGEMM(recipe: recipe, backend: backend).multiplyPrepared(qdyT, qx, m: outDim, n: inDim, k: rows, into: product)
        for i in 0..<(outDim * inDim) { dW[i] += product[i] }
    }

    private func quantize(_ x: UnsafePointer<Float>, rows: Int, cols: Int, _ q: Quantization, transposed: Bool) -> PreparedOperand {
        // Sizes were validated when the profile was set; a failure here is a programming error.
        let m = try! q.quantize(UnsafeBufferPointer(start: x, count: rows * cols), rows: rows, cols: cols)
        return PreparedOperand(matrix: m, transposed: transposed)
    }
}

// The quantized matrix product: C = A·B under a recipe.
//
// Each operand is quantized to its format with its scaling; every product of two values of
// formats up to 12 significant bits (E4M3, E5M2, BF16, FP16…) is exact in float32, so only the
// accumulation needs modelling. K is cut into stretches along which both operands' scales are
// constant (and, under limited accumulation, into promotion intervals and MMA steps); each
// stretch's partial sum is an FMA chain from +0 in increasing k, and the stretches are combined
// in a fixed order with their scales applied.
//
// Who computes what:
// - Unscaled operands with float32 accumulation (BF16, FP16, FP32 recipes): one backend product
//   over all of K, so the fp32 recipe on openblas is exactly `cblas_sgemm` (on onednn
//   `dnnl_sgemm`), and the bits are the backend's (a library's depend on the CPU; the portable
//   backend's do not).
// - Anything scaled or with limited accumulation (the FP8 recipes): the fused kernel of
//   ScaledKernel.swift, whatever the backend. It packs both operands once per product and keeps
//   step sums and partial sums in registers, and its bits are fixed by the definition above:
//   FP8 products give the same bits on every backend, on every machine, with any
//   thread count. `referenceMultiplyPrepared` keeps the plain model (one backend product per
//   stretch or MMA step) that the kernel is tested against.

/// How a matrix product accumulates along K.
public enum Accumulation: Hashable, Sendable, CustomStringConvertible {
    /// Float32 accumulation throughout.
    case fp32
    /// Limited-precision accumulation with promotion, after DeepSeek-V3's description of
    /// FP8 GEMMs on Hopper tensor cores: K is walked in steps of `step` elements (one MMA
    /// instruction, 32 for FP8); each step's products are summed in float32 and added to a
    /// running partial sum that keeps only `bits` significant bits (truncated toward zero,
    /// ≈14 on H800); every `interval` elements (N_C = 128) the partial sum is multiplied by
    /// its scales and added to a float32 accumulator, and the partial sum restarts from 0.
    case limited(bits: Int, step: Int, interval: Int)

    /// DeepSeek-V3's figures: 14 bits, MMA step 32, promotion every 128.
    public static let hopperFP8 = Accumulation.limited(bits: 14, step: 32, interval: 128)

    public var description: String {
        switch self {
        case .fp32: return "fp32"
        case .limited(let bits, let step, let interval): return "\(bits)-bit/\(step), promote every \(interval)"
        }
    }

    func validate() throws(NumericsError) {
        if case .limited(let bits, let step, let interval) = self {
            guard (1...24).contains(bits) else {
                throw .invalidArgument("accumulator bits \(bits) out of range; accepted: 1…24")
            }
            guard step >= 1 else {
                throw .invalidArgument("MMA step \(step) must be at least 1")
            }
            guard interval >= step, interval % step == 0 else {
                throw .invalidArgument("promotion interval \(interval) must be a positive multiple of the MMA step \(step)")
            }
        }
    }
}

/// A matrix product's precision: each operand's quantization, the accumulation, and the
/// output format.
public struct GemmRecipe: Hashable, Sendable, CustomStringConvertible {
    public var a: Quantization
    public var b: Quantization
    public var accumulation: Accumulation
    /// The output is rounded to this (nearest even); fp32 leaves the accumulator as is.
    public var output: NumberFormat

    public init(a: Quantization = .none, b: Quantization = .none, accumulation: Accumulation = .fp32,
                output: NumberFormat = .fp32) {
        self.a = a
        self.b = b
        self.accumulation = accumulation
        self.output = output
    }

    /// Plain float32: exactly `cblas_sgemm` on the openblas backend, `dnnl_sgemm` on onednn.
    public static let fp32 = GemmRecipe()

    /// Both operands rounded to `format` (unscaled), float32 accumulation, output in `format`:
    /// what a BF16 or FP16 GEMM on a GPU does.
    public static func uniform(_ format: NumberFormat) -> GemmRecipe {
        GemmRecipe(a: Quantization(format: format), b: Quantization(format: format), output: format)
    }

    public var description: String {
        "A \(a) · B \(b), accumulate \(accumulation), out \(output.name)"
    }
}

/// Counts of what a quantized product lost beyond ordinary rounding.
public struct GemmReport: Sendable, Equatable {
    /// Operand elements that overflowed their format (clamped or inf/NaN).
    public var saturated = 0
    /// Operand elements that were already NaN or infinite.
    public var nonFinite = 0

    public init(saturated: Int = 0, nonFinite: Int = 0) {
        self.saturated = saturated
        self.nonFinite = nonFinite
    }
}

/// C (m, n) = op(A) · op(B) under a recipe, on a backend.
public struct QuantizedGEMM: Sendable {
    public let recipe: GemmRecipe
    public let backend: any MatmulBackend

    public init(recipe: GemmRecipe, backend: any MatmulBackend) {
        self.recipe = recipe
        self.backend = backend
    }

    /// Quantizes both operands per the recipe and multiplies them.
    /// A is stored (m, k), or (k, m) when `transA`; B is stored (k, n), or (n, k) when `transB`.
    public func multiply(_ a: [Float], _ b: [Float], m: Int, n: Int, k: Int,
                         transA: Bool = false, transB: Bool = false,
                         stream: RandomStream = RandomStream(key: 0)) throws(NumericsError) -> (c: [Float], report: GemmReport) {
        guard m > 0, n > 0, k > 0 else {
            throw .invalidArgument("matrix product of shape \(m)x\(k) · \(k)x\(n): every dimension must be at least 1")
        }
        guard a.count == m * k, b.count == k * n else {
            throw .invalidArgument("matrix product: A has \(a.count) values (needs \(m * k)), B has \(b.count) (needs \(k * n))")
        }
        try recipe.accumulation.validate()
        let qa = try PreparedOperand(a, rows: transA ? k : m, cols: transA ? m : k, transposed: transA,
                                     quantization: recipe.a, stream: stream.split("A"))
        let qb = try PreparedOperand(b, rows: transB ? n : k, cols: transB ? k : n, transposed: transB,
                                     quantization: recipe.b, stream: stream.split("B"))
        var c = [Float](repeating: 0, count: m * n)
        c.withUnsafeMutableBufferPointer { out in
            multiplyPrepared(qa, qb, m: m, n: n, k: k, into: out.baseAddress!)
        }
        let report = GemmReport(saturated: qa.matrix.saturated + qb.matrix.saturated,
                                nonFinite: qa.matrix.nonFinite + qb.matrix.nonFinite)
        return (c, report)
    }

    /// Multiplies operands already quantized (weights are quantized once per sync, not per
    /// product), writing C (m, n) row-major.
    ///
    /// `splitK` > 1 models a split-K kernel: K is cut into that many contiguous ranges (at
    /// boundaries of the scale tiles), each range's product is accumulated on its own from
    /// zero, and the partial results are added in order in float32 before the output
    /// rounding — the same arithmetic in another order.
    public func multiplyPrepared(_ qa: PreparedOperand, _ qb: PreparedOperand, m: Int, n: Int, k: Int,
                                 splitK: Int = 1, into c: UnsafeMutablePointer<Float>) {
        // Unscaled operands with float32 accumulation: one plain product per split-K piece.
        if qa.allScalesOne && qb.allScalesOne && recipe.accumulation == .fp32 {
            return qa.withValues().matrix.values.withUnsafeBufferPointer { av in
                plainSum(av.baseAddress!, transA: qa.transposed, lda: qa.matrix.cols, qb, m: m, n: n, k: k, splitK: splitK, into: c)
            }
        }
        combine(stretch: stretchLength(qa, qb, k: k), m: m, n: n, k: k, splitK: splitK, piecesAtOnce: ownKernels,
                into: c) { k0, k1, out, roundOutput in
            accumulate(qa, qb, m: m, n: n, k0: k0, k1: k1, roundOutput: roundOutput, into: out)
        }
    }

    /// A plain product (unscaled operands, float32 accumulation), A read where it lies
    /// (element (0, 0) at `a`), split-K's pieces each one `plainProduct`. On a float32 library
    /// backend (OpenBLAS, oneDNN) the pieces go to it as one sum (`MatmulBackend.gemmSum`, `combine`'s K
    /// ranges), each the backend product it is alone, added in the same order, so the same
    /// bits; then the output rounding. Otherwise, or when the partial results would pass
    /// `QuantizedGEMM.sumLimit` floats (many rows times a large vocabulary), through `combine`.
    private func plainSum(_ a: UnsafePointer<Float>, transA: Bool, lda: Int, _ qb: PreparedOperand, m: Int, n: Int, k: Int,
                          splitK: Int, into c: UnsafeMutablePointer<Float>) {
        let pieces = min(max(1, splitK), k)
        guard !ownKernels, pieces > 1, (pieces - 1) * m * n <= QuantizedGEMM.sumLimit else {
            return combine(stretch: k, m: m, n: n, k: k, splitK: splitK, piecesAtOnce: ownKernels, into: c) { k0, k1, out, roundOutput in
                plainProduct(a + (transA ? k0 * lda : k0), transA: transA, lda: lda, qb, m: m, n: n, k0: k0, k1: k1,
                             roundOutput: roundOutput, into: out).roundedOutput
            }
        }
        let partials = UnsafeMutablePointer<Float>.allocate(capacity: (pieces - 1) * m * n)
        defer { partials.deallocate() }
        qb.withValues().asBackendB { b, bTransposed, ldb in
            backend.gemmSum((0..<pieces).map { piece in
                let (k0, k1) = QuantizedGEMM.splitRange(piece, of: pieces, units: k, unit: 1, k: k)
                return GemmCall(transA: transA, transB: bTransposed, m: m, n: n, k: k1 - k0, a: a + (transA ? k0 * lda : k0),
                                lda: lda, b: b(k0), ldb: ldb, c: piece == 0 ? c : partials + (piece - 1) * m * n, ldc: n,
                                accumulate: false)
            })
        }
        if recipe.output != .fp32 { Rounder(format: recipe.output).round(c, into: c, count: m * n) }
    }

    /// The most floats a sum of split-K pieces keeps as partial results at once (64 MB).
    static let sumLimit = 1 << 24

    /// Split-K piece `piece` of `pieces`: K indices k0..<k1, cut at multiples of `unit` (the
    /// scale tiles' length, 1 if unscaled), `units` of them in K.
    static func splitRange(_ piece: Int, of pieces: Int, units: Int, unit: Int, k: Int) -> (Int, Int) {
        ((piece * units / pieces) * unit, min(k, ((piece + 1) * units / pieces) * unit))
    }

    /// Whether the products run on the lab's own kernels (the portable backend, native BF16
    /// products) rather than on a float32 library's (OpenBLAS, oneDNN).
    var ownKernels: Bool {
        backend is PortableBackend || BF16Kernel.computes(recipe.a.format, recipe.b.format, on: backend)
    }

    /// The reference model of `multiplyPrepared`, kept to test it: the same split-K, stretches,
    /// MMA steps, promotion and output rounding, written plainly — one backend product per
    /// K stretch (or per MMA step under limited accumulation), the scales applied afterwards
    /// element by element. On the portable backend it gives the same bits as
    /// `multiplyPrepared` on any backend; it is far slower.
    public func referenceMultiplyPrepared(_ qa: PreparedOperand, _ qb: PreparedOperand, m: Int, n: Int, k: Int,
                                          splitK: Int = 1, into c: UnsafeMutablePointer<Float>) {
        combine(stretch: stretchLength(qa, qb, k: k), m: m, n: n, k: k, splitK: splitK, into: c) { k0, k1, out, _ in
            referenceAccumulate(qa, qb, m: m, n: n, k0: k0, k1: k1, into: out)
            return false
        }
    }

    /// Split-K and the output rounding around `accumulate(k0, k1, into, roundOutput)`, which
    /// returns true when it rounded to the output format itself (`roundOutput`: it may).
    ///
    /// `stretch`: the length of K over which the operands' scales stay constant (split-K cuts
    /// only at its ends). `piecesAtOnce`: split-K's pieces may be computed on several threads,
    /// each into its own buffer (when each is too small to be cut between threads itself);
    /// they are added in the same order afterwards, so the bits are the same.
    private func combine(stretch: Int, m: Int, n: Int, k: Int, splitK: Int,
                         piecesAtOnce: Bool = false, into c: UnsafeMutablePointer<Float>,
                         accumulate: (Int, Int, UnsafeMutablePointer<Float>, Bool) -> Bool) {
        if emptyProduct(m: m, n: n, k: k, c: c, ldc: n, accumulate: false) { return }
        let unit = stretch >= k ? 1 : max(1, stretch)  // split only where scales change, if they do
        let units = (k + unit - 1) / unit
        let pieces = min(max(1, splitK), units)
        var rounded = false
        if pieces == 1 {
            rounded = accumulate(0, k, c, true)
        } else {
            let pieceWork = m * n * (k / pieces)
            let threads = piecesAtOnce && pieceWork < PortableBackend.defaultParallelThreshold
                ? (backend as? PortableBackend)?.threads ?? ParallelWork.threads : 1
            func range(_ piece: Int) -> (Int, Int) {
                QuantizedGEMM.splitRange(piece, of: pieces, units: units, unit: unit, k: k)
            }
            if threads > 1 && pieceWork * pieces >= 1 << 20 {
                // Each piece into its own buffer, on several threads; added in order after.
                let partials = UnsafeMutablePointer<Float>.allocate(capacity: (pieces - 1) * m * n)
                defer { partials.deallocate() }
                let out = { (piece: Int) in piece == 0 ? c : partials + (piece - 1) * m * n }
                forEachRange(pieces, threads: threads, minimumCost: 0, cost: { _ in pieceWork }) { pieceRange in
                    for piece in pieceRange {
                        let (k0, k1) = range(piece)
                        _ = accumulate(k0, k1, out(piece), false)
                    }
                }
                for piece in 1..<pieces {
                    let partial = out(piece)
                    for i in 0..<(m * n) { c[i] += partial[i] }
                }
            } else {
                // One piece after the other, each added as soon as it is made.
                let partial = UnsafeMutablePointer<Float>.allocate(capacity: m * n)
                defer { partial.deallocate() }
                for piece in 0..<pieces {
                    let (k0, k1) = range(piece)
                    _ = accumulate(k0, k1, piece == 0 ? c : partial, false)
                    if piece > 0 { for i in 0..<(m * n) { c[i] += partial[i] } }
                }
            }
        }
        if recipe.output != .fp32 && !rounded {
            Rounder(format: recipe.output).round(c, into: c, count: m * n)
        }
    }

    /// The length of K over which both operands' scales stay constant (and of a promotion
    /// interval under limited accumulation).
    func stretchLength(_ qa: PreparedOperand, _ qb: PreparedOperand, k: Int) -> Int {
        let aTile = qa.allScalesOne ? k : qa.kTile(isA: true)
        let bTile = qb.allScalesOne ? k : qb.kTile(isA: false)
        let stretch = gcd(min(aTile, k), min(bTile, k))
        if case .limited(_, _, let promote) = recipe.accumulation { return gcd(promote, stretch) }
        return stretch
    }

    /// C (m, n) = the product over K indices k0..<k1, accumulated per the recipe, unrounded.
    ///
    /// Unscaled operands with float32 accumulation are one backend product over all of K;
    /// anything else (scales, limited accumulation) goes through the fused `ScaledKernel`,
    /// whatever the backend, so those products have the same bits on every backend.
    ///
    /// `roundOutput`: the caller lets it round to the output format too; true when it did (the
    /// native BF16 product rounds a BF16 output in its epilogue).
    @discardableResult
    func accumulate(_ qa: PreparedOperand, _ qb: PreparedOperand, m: Int, n: Int, k0 kStart: Int, k1 kEnd: Int,
                    roundOutput: Bool = false, into c: UnsafeMutablePointer<Float>) -> Bool {
        let (stretch, mmaStep, bits, scaled) = accumulationPlan(qa, qb, kEnd: kEnd)
        let step = mmaStep ?? stretch
        let qa = qa.withValues()
        if !scaled && bits >= 24 && stretch >= kEnd {
            let aStart = qa.transposed ? kStart * qa.matrix.cols : kStart
            return qa.matrix.values.withUnsafeBufferPointer { av in
                plainProduct(av.baseAddress! + aStart, transA: qa.transposed, lda: qa.matrix.cols, qb, m: m, n: n,
                             k0: kStart, k1: kEnd, roundOutput: roundOutput, into: c).roundedOutput
            }
        }
        let threads = (backend as? PortableBackend)?.threads ?? ScaledKernel.processorCount
        ScaledKernel.multiply(qa, qb.withValues(), m: m, n: n, kStart: kStart, kEnd: kEnd, stretch: stretch, step: step,
                              bits: bits, scaled: scaled, threads: threads, into: c)
        return false
    }

    /// One backend product over K indices k0..<k1 of unscaled operands with float32
    /// accumulation (B read untransposed when it is also stored so); `a` points at A's
    /// element (0, k0). True when it rounded to the output format itself (the native BF16
    /// product rounds a BF16 output in its epilogue, when `roundOutput` lets it).
    ///
    /// `roundA` (native BF16 products only): A is rounded to BF16 as the kernel packs it; the
    /// counts are what quantizing it would have counted.
    private func plainProduct(_ a: UnsafePointer<Float>, transA: Bool, lda: Int, _ qb: PreparedOperand, m: Int, n: Int,
                              k0 kStart: Int, k1 kEnd: Int, roundOutput: Bool, roundA: Bool = false, memo: BF16Kernel.PackMemo? = nil,
                              into c: UnsafeMutablePointer<Float>) -> (roundedOutput: Bool, overflowed: Int, nonFinite: Int) {
        let native = BF16Kernel.computes(recipe.a.format, recipe.b.format, on: backend)
        // B's float32 values are read unless its pairs serve this product as packed.
        let pairsServe = native && qb.packedBF16.map { $0.n == n && $0.accepts(start: kStart, count: kEnd - kStart) } == true
        let qb = pairsServe ? qb : qb.withValues()
        let roundsInEpilogue = native && roundOutput && recipe.output == .bf16
        precondition(!roundA || native, "A is rounded as it is packed only by the native BF16 product")
        var counts = (overflowed: 0, nonFinite: 0)
        qb.asBackendB { b, bTransposed, ldb in
            if native {
                // BF16 operands on the BF16 instructions: B as packed at the sync when the
                // product's stretch of K is whole pairs of it, else packed now.
                let threads = ParallelWork.threads
                var packed = qb.packedBF16, start = kStart
                if !pairsServe {
                    packed = BF16Kernel.PackedB(b(kStart), ldb: ldb, transB: bTransposed, k: kEnd - kStart, n: n,
                                                threads: threads)
                    start = 0
                }
                counts = BF16Kernel.multiply(transA: transA, m: m, n: n, k: kEnd - kStart, a: a, lda: lda, b: packed!,
                                             bStart: start, c: c, ldc: n, accumulate: false, roundToBF16: roundsInEpilogue,
                                             roundA: roundA, threads: threads,
                                             parallelThreshold: PortableBackend.defaultParallelThreshold, memo: memo)
                return
            }
            backend.gemm(transA: transA, transB: bTransposed, m: m, n: n, k: kEnd - kStart, a: a, lda: lda,
                         b: b(kStart), ldb: ldb, c: c, ldc: n, accumulate: false)
        }
        return (roundsInEpilogue, counts.overflowed, counts.nonFinite)
    }

    /// `multiplyPrepared` for a left operand whose rule leaves float32 as it is
    /// (`recipe.a.isIdentity`, an FP32 engine's activations and gradients), read where it
    /// lies (row-major m × k, or k × m used transposed) instead of from a copy: the same bits
    /// (save a NaN's payload: the copy makes every NaN the canonical quiet one), split-K
    /// included. False, with nothing done, when the product is not float32-accumulated
    /// products of unscaled operands (a scaled B, limited accumulation); the caller then
    /// prepares A.
    public func multiplyInPlace(_ a: UnsafePointer<Float>, transA: Bool = false, _ qb: PreparedOperand, m: Int, n: Int, k: Int,
                                splitK: Int = 1, into c: UnsafeMutablePointer<Float>) -> Bool {
        guard recipe.a.isIdentity, recipe.accumulation == .fp32, qb.allScalesOne else { return false }
        if emptyProduct(m: m, n: n, k: k, c: c, ldc: n, accumulate: false) { return true }
        plainSum(a, transA: transA, lda: transA ? m : k, qb, m: m, n: n, k: k, splitK: splitK, into: c)
        return true
    }

    /// `multiplyInPlace` with B read where it lies too, stored (k, n) row-major (a weight
    /// gradient dyᵀ·x of an FP32 engine): one backend product, the same bits as through
    /// prepared copies of both (save NaN payloads). False, with nothing done, unless both
    /// rules leave float32 as it is and the accumulation is float32.
    public func multiplyBothInPlace(_ a: UnsafePointer<Float>, transA: Bool = false, _ b: UnsafePointer<Float>,
                                    m: Int, n: Int, k: Int, into c: UnsafeMutablePointer<Float>) -> Bool {
        guard recipe.a.isIdentity, recipe.b.isIdentity, recipe.accumulation == .fp32 else { return false }
        backend.gemm(transA: transA, transB: false, m: m, n: n, k: k, a: a, lda: transA ? m : k, b: b, ldb: n,
                     c: c, ldc: n, accumulate: false)
        if recipe.output != .fp32 { Rounder(format: recipe.output).round(c, into: c, count: m * n) }
        return true
    }

    /// `multiplyPrepared` for a left operand given unrounded whose rule is plain BF16 (nearest
    /// even, unscaled, not saturating) when the product runs on the native BF16 kernel: A is
    /// read where it lies and rounded as the kernel packs it, never stored rounded. The same
    /// bits as quantizing A first (tested). Returns the counts quantizing A would have made
    /// (finite values that overflowed, NaN and infinite values), or nil, with nothing done,
    /// when the product is not such a one (another rule, no native kernel, a scaled B,
    /// limited accumulation, split-K); the caller then prepares A. `memo` shares A's packing
    /// with the other products that read the same input.
    public func multiplyRoundingA(_ a: UnsafePointer<Float>, transA: Bool = false, _ qb: PreparedOperand, m: Int, n: Int, k: Int,
                                  splitK: Int = 1, memo: BF16Kernel.PackMemo? = nil,
                                  into c: UnsafeMutablePointer<Float>) -> (overflowed: Int, nonFinite: Int)? {
        guard recipe.a == Quantization(format: .bf16), BF16Kernel.computes(recipe.a.format, recipe.b.format, on: backend),
              recipe.accumulation == .fp32, splitK <= 1, qb.allScalesOne else { return nil }
        if emptyProduct(m: m, n: n, k: k, c: c, ldc: n, accumulate: false) { return (0, 0) }
        let result = plainProduct(a, transA: transA, lda: transA ? m : k, qb, m: m, n: n, k0: 0, k1: k, roundOutput: true,
                                  roundA: true, memo: memo, into: c)
        if recipe.output != .fp32 && !result.roundedOutput {
            Rounder(format: recipe.output).round(c, into: c, count: m * n)
        }
        return (result.overflowed, result.nonFinite)
    }

    /// `multiplyRoundingA` with B given unrounded too, stored (k, n) row-major and read where
    /// it lies: both operands rounded to BF16 as they are packed (a weight gradient dyᵀ·x),
    /// neither ever stored rounded. The counts are A's and B's; nil, with nothing done, unless
    /// both rules are plain BF16 and the product runs on the native BF16 kernel with float32
    /// accumulation. `memo` shares either operand's packing with the other products that read
    /// the same input.
    public func multiplyRoundingBoth(_ a: UnsafePointer<Float>, transA: Bool = false, _ b: UnsafePointer<Float>,
                                     m: Int, n: Int, k: Int, memo: BF16Kernel.PackMemo? = nil, into c: UnsafeMutablePointer<Float>)
        -> (a: (overflowed: Int, nonFinite: Int), b: (overflowed: Int, nonFinite: Int))? {
        guard recipe.a == Quantization(format: .bf16), recipe.b == Quantization(format: .bf16), recipe.accumulation == .fp32,
              BF16Kernel.computes(recipe.a.format, recipe.b.format, on: backend) else { return nil }
        if emptyProduct(m: m, n: n, k: k, c: c, ldc: n, accumulate: false) { return ((0, 0), (0, 0)) }
        let threads = ParallelWork.threads
        let make = { BF16Kernel.PackedB(b, ldb: n, transB: false, k: k, n: n, threads: threads, round: true) }
        let packed = memo?.packedB(b, transB: false, k: k, n: n, ldb: n, round: true, make) ?? make()
        let roundsInEpilogue = recipe.output == .bf16
        let countsA = BF16Kernel.multiply(transA: transA, m: m, n: n, k: k, a: a, lda: transA ? m : k, b: packed, c: c, ldc: n,
                                          accumulate: false, roundToBF16: roundsInEpilogue, roundA: true, threads: threads,
                                          parallelThreshold: PortableBackend.defaultParallelThreshold, memo: memo)
        if recipe.output != .fp32 && !roundsInEpilogue {
            Rounder(format: recipe.output).round(c, into: c, count: m * n)
        }
        return (countsA, packed.roundingCounts)
    }

    /// How a product over K up to `kEnd` accumulates: the stretch between scale-tile
    /// boundaries, the MMA step of limited accumulation (nil for float32 accumulation), the
    /// significand bits kept (24 for float32) and whether any scale is not 1.
    func accumulationPlan(_ qa: PreparedOperand, _ qb: PreparedOperand, kEnd: Int)
        -> (stretch: Int, mmaStep: Int?, bits: Int, scaled: Bool) {
        let stretch = stretchLength(qa, qb, k: kEnd)
        var step: Int? = nil, bits = 24
        if case .limited(let kept, let mmaStep, _) = recipe.accumulation {
            bits = kept
            step = gcd(mmaStep, stretch)
        }
        return (stretch, step, bits, !(qa.allScalesOne && qb.allScalesOne))
    }

    /// `accumulate` as a plain model: one backend product per stretch or MMA step (see
    /// `referenceMultiplyPrepared`).
    func referenceAccumulate(_ qa: PreparedOperand, _ qb: PreparedOperand, m: Int, n: Int, k0 kStart: Int, k1 kEnd: Int,
                    into c: UnsafeMutablePointer<Float>) {
        let qa = qa.withValues(), qb = qb.withValues()
        let k = kEnd - kStart
        // The K stretches: boundaries of either operand's scale tiles, plus the MMA steps and
        // promotion intervals of limited accumulation.
        let (stretch, mmaStep, bits, scaled) = accumulationPlan(qa, qb, kEnd: kEnd)
        let step = mmaStep ?? k
        let lda = qa.matrix.cols, ldb = qb.matrix.cols
        qa.matrix.values.withUnsafeBufferPointer { av in
            qb.matrix.values.withUnsafeBufferPointer { bv in
                let aBase = av.baseAddress!, bBase = bv.baseAddress!
                // Pointer to the start of K index p in each operand.
                func aAt(_ p: Int) -> UnsafePointer<Float> { qa.transposed ? aBase + p * lda : aBase + p }
                func bAt(_ p: Int) -> UnsafePointer<Float> { qb.transposed ? bBase + p : bBase + p * ldb }

                if !scaled && bits >= 24 && stretch >= kEnd {
                    // One product over all of K.
                    backend.gemm(transA: qa.transposed, transB: qb.transposed, m: m, n: n, k: k,
                                 a: aAt(kStart), lda: lda, b: bAt(kStart), ldb: ldb, c: c, ldc: n, accumulate: false)
                    return
                }
                c.update(repeating: 0, count: m * n)
                let partial = UnsafeMutablePointer<Float>.allocate(capacity: m * n)
                let stepSum = UnsafeMutablePointer<Float>.allocate(capacity: m * n)
                defer { partial.deallocate(); stepSum.deallocate() }
                let truncate = Rounder(format: NumberFormat(name: "acc", exponentBits: 8, mantissaBits: bits - 1),
                                       mode: .towardZero)
                var k0 = kStart
                while k0 < kEnd {
                    let k1 = min(kEnd, k0 + stretch)
                    if bits >= 24 {
                        backend.gemm(transA: qa.transposed, transB: qb.transposed, m: m, n: n, k: k1 - k0,
                                     a: aAt(k0), lda: lda, b: bAt(k0), ldb: ldb, c: partial, ldc: n, accumulate: false)
                    } else {
                        // Limited accumulation inside the interval, one MMA step at a time.
                        partial.update(repeating: 0, count: m * n)
                        var s0 = k0
                        while s0 < k1 {
                            let s1 = min(k1, s0 + step)
                            backend.gemm(transA: qa.transposed, transB: qb.transposed, m: m, n: n, k: s1 - s0,
                                         a: aAt(s0), lda: lda, b: bAt(s0), ldb: ldb, c: stepSum, ldc: n, accumulate: false)
                            truncatedAdd(partial, stepSum, count: m * n, bits: bits, fallback: truncate)
                            s0 = s1
                        }
                    }
                    // Promotion: C += partial · (sA · sB), one fused multiply-add.
                    if scaled {
                        for i in 0..<m {
                            let sa = qa.scale(outer: i, k: k0, isA: true)
                            for j in 0..<n {
                                let s = sa * qb.scale(outer: j, k: k0, isA: false)
                                c[i * n + j] = c[i * n + j].addingProduct(partial[i * n + j], s)
                            }
                        }
                    } else {
                        for i in 0..<(m * n) { c[i] += partial[i] }
                    }
                    k0 = k1
                }
            }
        }
    }
}

/// partial[i] ← the sum partial[i] + add[i], truncated toward zero to `bits` significant bits.
///
/// The sum of a `bits`-bit value and a float32 is exact in a double unless their exponents
/// are over 29 apart; clearing the double's low mantissa bits then truncates it (the format is
/// sign–magnitude), and the result, of at most 24 bits, converts to float32 exactly. Values
/// outside float32's normal range go through the scalar rounder instead.
func truncatedAdd(_ partial: UnsafeMutablePointer<Float>, _ add: UnsafePointer<Float>, count: Int, bits: Int,
                  fallback: Rounder) {
    let mask = SIMD8<UInt64>(repeating: ~((UInt64(1) << UInt64(53 - bits)) - 1))
    let low = SIMD8<Double>(repeating: 0x1p-126), high = SIMD8<Double>(repeating: 0x1p127)
    var i = 0
    while i + 8 <= count {
        let p = SIMD8<Double>(UnsafeRawPointer(partial + i).loadUnaligned(as: SIMD8<Float>.self))
        let a = SIMD8<Double>(UnsafeRawPointer(add + i).loadUnaligned(as: SIMD8<Float>.self))
        let sum = p + a
        let magnitude = sum.replacing(with: -sum, where: sum .< 0)
        if any((magnitude .< low) .& (magnitude .!= 0)) || any(.!(magnitude .< high)) {
            for j in i..<(i + 8) { partial[j] = fallback.round(double: Double(partial[j]) + Double(add[j])) }
        } else {
            let truncated = unsafeBitCast(unsafeBitCast(sum, to: SIMD8<UInt64>.self) & mask, to: SIMD8<Double>.self)
            UnsafeMutableRawPointer(partial + i).storeBytes(of: SIMD8<Float>(truncated), as: SIMD8<Float>.self)
        }
        i += 8
    }
    while i < count {
        partial[i] = fallback.round(double: Double(partial[i]) + Double(add[i]))
        i += 1
    }
}

func gcd(_ a: Int, _ b: Int) -> Int {
    var (x, y) = (a, b)
    while y != 0 { (x, y) = (y, x % y) }
    return x
}

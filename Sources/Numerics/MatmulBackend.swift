// The matrix-product backends behind one interface (ARCHITECTURE.md "Determinism").

import CBLAS
import CDNNL

/// Plain float32 matrix products, row-major: `C = op(A)·op(B) + (accumulate ? C : 0)` with
/// op(A) of shape (m, k) and op(B) of shape (k, n). The models' float32 products and the
/// unscaled, float32-accumulated quantized products (FP32, BF16, FP16 recipes) go through one
/// of these; scaled or limited-accumulation products (FP8) run the lab's own fused kernel on
/// every backend (see QuantizedGEMM.swift), so their bits do not depend on the backend.
public protocol MatmulBackend: Sendable {
    /// `portable`, `openblas` or `onednn`: recorded in transcripts, so a replay uses the same one.
    var name: String { get }

    /// C (m×n, leading dimension ldc) = op(A)·op(B), plus C's old value if `accumulate`.
    /// `transA`: A is stored (k×m) and used transposed; `transB` likewise for B (stored n×k).
    /// Leading dimensions are those of the stored matrices.
    func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
              a: UnsafePointer<Float>, lda: Int,
              b: UnsafePointer<Float>, ldb: Int,
              c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool)

    /// A sum of products of one shape m × n (split-K's pieces): each term computed as `gemm`
    /// computes it alone from zero (its `accumulate` must be false) into its own C, then the
    /// terms added into the first's C in order, c₀ = ((c₀ + c₁) + c₂) + …, in float32. A
    /// backend may compute the terms at once; the bits are those of this order.
    func gemmSum(_ terms: [GemmCall])

    /// True when the BF16 recipe's products (operands of BF16 values, float32 sums) run on the
    /// processor's BF16 dot-product instructions (`BF16Kernel`) instead of float32 products.
    var nativeBF16: Bool { get }
}

extension MatmulBackend {
    public var nativeBF16: Bool { false }

    /// One term after the other, then their sum.
    public func gemmSum(_ terms: [GemmCall]) { sumOneAfterTheOther(terms) }

    /// `gemmSum` the plain way: one `gemm` per term, then the additions.
    func sumOneAfterTheOther(_ terms: [GemmCall]) {
        checkTerms(terms)
        for t in terms {
            gemm(transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, a: t.a, lda: t.lda, b: t.b, ldb: t.ldb,
                 c: t.c, ldc: t.ldc, accumulate: false)
        }
        addTerms(terms, rows: 0..<(terms.first?.m ?? 0), cols: 0..<(terms.first?.n ?? 0))
    }
}

/// The terms of a sum of products have one shape and start from zero (checked before any is
/// computed).
func checkTerms(_ terms: [GemmCall]) {
    guard let first = terms.first else { return }
    precondition(terms.allSatisfy { !$0.accumulate && $0.m == first.m && $0.n == first.n },
                 "the terms of a sum of products have one shape and start from zero")
}

/// c₀ += c₁, then c₀ += c₂, … over the given rows and columns of the terms' outputs.
func addTerms(_ terms: [GemmCall], rows: Range<Int>, cols: Range<Int>) {
    guard let first = terms.first else { return }
    for t in terms.dropFirst() {
        for i in rows {
            let c = first.c + i * first.ldc, term = t.c + i * t.ldc
            for j in cols { c[j] += term[j] }
        }
    }
}

/// The arguments of one `MatmulBackend.gemm` call (`gemmSum`'s terms).
public struct GemmCall: @unchecked Sendable {
    public var transA: Bool, transB: Bool
    public var m: Int, n: Int, k: Int
    public var a: UnsafePointer<Float>, lda: Int
    public var b: UnsafePointer<Float>, ldb: Int
    public var c: UnsafeMutablePointer<Float>, ldc: Int
    public var accumulate: Bool

    public init(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
        (self.transA, self.transB, self.m, self.n, self.k) = (transA, transB, m, n, k)
        (self.a, self.lda, self.b, self.ldb, self.c, self.ldc, self.accumulate) = (a, lda, b, ldb, c, ldc, accumulate)
    }
}

/// The float32 matrix-product library a `LibraryBackend` calls for each rectangle of C.
public enum FloatLibrary: String, Sendable, CaseIterable {
    /// OpenBLAS's `cblas_sgemm`.
    case openblas
    /// oneDNN's `dnnl_sgemm`, on the calling thread (`plab_dnnl_sgemm`).
    case onednn

    /// This machine's build of the library and the kernels it chose for this processor:
    /// `Cooperlake; OpenBLAS 0.3.21 DYNAMIC_ARCH …` (`openblas_get_corename()`,
    /// `openblas_get_config()`) or `oneDNN 2.6.3 (avx512_core_bf16, OpenMP)` (its version,
    /// instruction set and threading runtime).
    public var build: String {
        switch self {
        case .openblas:
            let core = openblas_get_corename().map { String(cString: $0) } ?? "unknown"
            let config = openblas_get_config().map { String(cString: $0) } ?? "unknown"
            return "\(core); " + String(config.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
        case .onednn:
            var buffer = [CChar](repeating: 0, count: 128)
            plab_dnnl_describe(&buffer, Int32(buffer.count))
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }
}

/// The machine's fastest products: a library's float32 product (`FloatLibrary`: OpenBLAS or
/// oneDNN), and the processor's BF16 dot-product instructions for the BF16 recipe where it has
/// them (`BF16Kernel`). Each product is cut into rectangles by the processors and each
/// rectangle is one call of the library on one of the lab's threads. The libraries choose
/// their kernels (and so their summation order) by CPU, and the BF16 instructions sum in
/// another order than the float32 emulation, so the last bits can differ between machines.
public struct LibraryBackend: MatmulBackend {
    public let library: FloatLibrary
    /// `openblas` or `onednn`.
    public var name: String { library.rawValue }
    /// BF16 recipe products on the BF16 instructions (only where the processor has them).
    public let nativeBF16: Bool

    /// The smallest product (m·n·k) cut into rectangles.
    public let parallelThreshold: Int
    /// How many rectangles a product is cut into: the machine's processors, whatever the
    /// thread settings. The libraries choose their kernels (and so their summation order) by
    /// the shape of each call, so the cut changes bits; the threads that compute the
    /// rectangles do not.
    public let pieces: Int
    /// The threads that compute the rectangles (1: one after the other, on the caller).
    public let threads: Int

    /// `nativeBF16: false` keeps the BF16 recipe on float32 products (the emulation).
    /// `parallelThreshold`: the smallest product (m·n·k) cut into rectangles; `pieces`: into
    /// how many; `threads`: computed by how many threads (default: `OPENBLAS_NUM_THREADS` for
    /// OpenBLAS, as OpenBLAS reads it; the lab's threads, `PLAB_THREADS`, for oneDNN).
    public init(_ library: FloatLibrary, nativeBF16: Bool = true, parallelThreshold: Int = LibraryBackend.defaultParallelThreshold,
                pieces: Int = PortableBackend.cores, threads: Int? = nil) {
        self.library = library
        self.nativeBF16 = nativeBF16 && BF16Kernel.available
        self.parallelThreshold = max(1, parallelThreshold)
        self.pieces = max(1, pieces)
        self.threads = max(1, threads ?? (library == .openblas ? LibraryBackend.environmentThreads : ParallelWork.threads))
    }

    /// Below this many multiply-adds a product runs on the calling thread alone.
    public static let defaultParallelThreshold = 1 << 18

    /// How this machine computes `library`'s products: `Cooperlake; OpenBLAS 0.3.21
    /// DYNAMIC_ARCH …; BF16 products: native (AVX512_BF16); float32 products cut in 2` (the
    /// library's build and kernels, how the BF16 recipe is computed, and into how many
    /// rectangles a product is cut: the processors), written into transcript headers.
    public static func description(of library: FloatLibrary) -> String {
        let bf16 = BF16Kernel.available ? "native (AVX512_BF16)"
            : BF16Kernel.hardware ? "float32 emulation (PLAB_BF16=emulated)" : "float32 emulation (no BF16 instructions)"
        return "\(library.build); BF16 products: \(bf16); float32 products cut in \(PortableBackend.cores)"
    }

    public func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                     a: UnsafePointer<Float>, lda: Int,
                     b: UnsafePointer<Float>, ldb: Int,
                     c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
        let call = GemmCall(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb,
                            c: c, ldc: ldc, accumulate: accumulate)
        if emptyProduct(m: m, n: n, k: k, c: c, ldc: ldc, accumulate: accumulate) { return }
        let cut = grid(call)
        if cut.pieces == 1 {
            compute(call, rows: 0..<m, cols: 0..<n)
        } else if threads == 1 {
            for piece in 0..<cut.pieces {
                let (rows, cols) = cut.region(piece)
                compute(call, rows: rows, cols: cols)
            }
        } else {
            parallelPerform(cut.pieces) { piece in
                let (rows, cols) = cut.region(piece)
                compute(call, rows: rows, cols: cols)
            }
        }
    }

    /// Each term cut into the rectangles it has alone (so it has the bits `gemm` gives it).
    /// When every term is cut alike (as split-K's pieces are, unless their m·n·k fall on either
    /// side of `parallelThreshold`), each rectangle is one job: its terms one after the other,
    /// then their sum, while the rectangle is in cache; one pass of the threads for the whole
    /// sum, no serial additions. Otherwise one term after the other, then the additions.
    public func gemmSum(_ terms: [GemmCall]) {
        checkTerms(terms)
        guard let first = terms.first, first.m > 0, first.n > 0, terms.allSatisfy({ $0.k > 0 }) else {
            return sumOneAfterTheOther(terms)
        }
        let grids = terms.map(grid)
        let regions = (0..<grids[0].pieces).map { grids[0].region($0) }
        guard grids.allSatisfy({ g in g.pieces == regions.count && (0..<g.pieces).allSatisfy { g.region($0) == regions[$0] } })
        else { return sumOneAfterTheOther(terms) }
        let rectangle = { (index: Int) in
            let (rows, cols) = regions[index]
            for t in terms { compute(t, rows: rows, cols: cols) }
            addTerms(terms, rows: rows, cols: cols)
        }
        if threads == 1 || regions.count == 1 {
            for index in regions.indices { rectangle(index) }
        } else {
            parallelPerform(regions.count, rectangle)
        }
    }

    /// How C is cut into rectangles: by the processors (`pieces`), never by the threads.
    private func grid(_ p: GemmCall) -> ProductGrid {
        ProductGrid(m: p.m, n: p.n, k: p.k, threads: pieces, parallelThreshold: parallelThreshold,
                    tile: LibraryBackend.tile, rowsOnTie: p.m >= p.n)
    }

    /// One rectangle of C, rows × cols: one call of the library, reading the rows of op(A) and
    /// the columns of op(B) it needs and writing only its elements.
    private func compute(_ p: GemmCall, rows: Range<Int>, cols: Range<Int>) {
        let a = p.a + (p.transA ? rows.lowerBound : rows.lowerBound * p.lda)
        let b = p.b + (p.transB ? cols.lowerBound * p.ldb : cols.lowerBound)
        let c = p.c + rows.lowerBound * p.ldc + cols.lowerBound
        let beta: Float = p.accumulate ? 1 : 0
        switch library {
        case .openblas:
            cblas_sgemm(CblasRowMajor, p.transA ? CblasTrans : CblasNoTrans, p.transB ? CblasTrans : CblasNoTrans,
                        Int32(rows.count), Int32(cols.count), Int32(p.k), 1, a, Int32(p.lda), b, Int32(p.ldb),
                        beta, c, Int32(p.ldc))
        case .onednn:
            let status = plab_dnnl_sgemm(CChar(UInt8(ascii: p.transA ? "T" : "N")), CChar(UInt8(ascii: p.transB ? "T" : "N")),
                                         rows.count, cols.count, p.k, a, p.lda, b, p.ldb, beta, c, p.ldc)
            precondition(status == 0, "dnnl_sgemm refused a product (status \(status))")
        }
    }

    /// The threads OpenBLAS products may use: OpenBLAS's own count as the environment set it
    /// (`OPENBLAS_NUM_THREADS`, else the processors), read once. OpenBLAS itself is then kept
    /// on one thread and the lab computes the rectangles on its own threads: OpenBLAS's pool
    /// spins in `sched_yield` between products (a third of the samples of a training step
    /// on the default model), the lab's threads sleep.
    public static let environmentThreads: Int = {
        let count = min(max(1, Int(openblas_get_num_threads())), PortableBackend.mostThreads)
        openblas_set_num_threads(1)
        return count
    }()

    /// The tile at whose edges C is cut between threads: the rows and columns OpenBLAS's
    /// kernels compute at a time on AVX-512 (16 × 4 in its column-major view, which is C
    /// transposed), rounded up so that every cut falls on one.
    static let tile = (rows: 16, cols: 16)
}

/// Handles the products with nothing to sum, the same way on every backend: nothing to do
/// for m = 0 or n = 0; C = 0 (or unchanged when accumulating) for k = 0. True when handled.
@inline(__always)
func emptyProduct(m: Int, n: Int, k: Int, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) -> Bool {
    guard m > 0, n > 0 else { return true }
    guard k == 0 else { return false }
    if !accumulate { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
    return true
}

/// The backends' names, as `set backend` accepts them.
public let matmulBackendNames = ["portable"] + FloatLibrary.allCases.map(\.rawValue)

/// The backend named `name`: `portable`, `openblas` or `onednn`.
public func matmulBackend(named name: String) throws(NumericsError) -> any MatmulBackend {
    if let library = FloatLibrary(rawValue: name.lowercased()) {
        if library == .onednn && plab_dnnl_confined() == 0 {
            throw .invalidArgument("the onednn backend is not available here: this oneDNN (\(library.build)) starts threads of its own that the lab cannot limit; use openblas or portable")
        }
        return LibraryBackend(library)
    }
    switch name.lowercased() {
    case "portable": return PortableBackend()
    default: throw .invalidArgument("unknown matrix-product backend '\(name)'; accepted: \(matmulBackendNames.joined(separator: " "))")
    }
}

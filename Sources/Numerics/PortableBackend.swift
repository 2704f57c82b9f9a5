// The lab's own matrix product: the same bits on every machine.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A matrix product with a fixed summation order, so its results are identical on every
/// machine, whatever the vector width or thread count.
///
/// Concretely, every output is one chain of fused multiply-adds in increasing k:
/// `acc = accumulate ? C[i][j] : 0; for p in 0..<k { acc = fma(A[i][p], B[p][j], acc) }`.
/// Fused multiply-add is correctly rounded by definition, so hardware and software FMA agree.
/// (NaN payloads aside: IEEE 754 does not say which NaN operand an operation passes on, so
/// only where NaNs appear is portable, not their payload bits.)
///
/// How it is made fast without changing a bit:
/// - Vectors run across output columns j (lanes of `SIMD16<Float>`), never across k: each
///   lane is its own chain, so the vector width changes nothing.
/// - A register-blocked micro-kernel keeps a tile of C (up to 8 rows × two 16-lane vectors)
///   in registers for a whole block of k, reading A and B from packed panels (B in place
///   when it is used by only a few row tiles).
/// - k is cut into blocks of `kc`. The first block starts each chain from +0 (or from C when
///   accumulating); every later block reloads the partial sums the previous one stored in C
///   and goes on with the same chain. Storing a Float and loading it back is exact, so the
///   chain is the one above, step for step.
/// - Edge tiles take a kernel with fewer rows, or one vector of columns; a strip with fewer
///   real columns than lanes runs on zero-padded panels through a scratch tile, and only the
///   real columns are read from and written back to C: the padding lanes are thrown away.
/// - Large products are cut into rectangles of C, one per thread. Each output element is
///   computed by exactly one thread, with its whole chain, so the thread count (and how a
///   caller splits a product) changes nothing either.
public struct PortableBackend: MatmulBackend {
    public let name = "portable"
    /// The most threads one product may use; 1 computes everything on the calling thread.
    public let threads: Int
    /// Below this many multiply-adds (m·n·k) a product runs on the calling thread alone.
    public let parallelThreshold: Int

    /// `threads`: the most threads a product may use (default: `PLAB_THREADS` when it is a
    /// positive integer, else the active processor count). `parallelThreshold`: the smallest
    /// product (m·n·k) cut between threads (default `defaultParallelThreshold`). The results
    /// are the same bits whatever they are.
    public init(threads: Int? = nil, parallelThreshold: Int = PortableBackend.defaultParallelThreshold) {
        self.threads = max(1, threads ?? PortableBackend.activeProcessorCount)
        self.parallelThreshold = max(1, parallelThreshold)
    }

    /// The threads the lab's own kernels use, read once: `PLAB_THREADS` when set to a positive
    /// integer (a sweep running several processes at once gives each a share of the cores),
    /// at most `mostThreads`; else the active processor count.
    static var activeProcessorCount: Int { threadSetting.count }

    /// What was wrong with `PLAB_THREADS`, if anything, and what was used instead: for the
    /// executable to print (nothing below the lab's shell prints).
    public static var threadSettingProblem: String? { threadSetting.problem }

    private static let threadSetting: (count: Int, problem: String?) = {
        guard let text = getenv("PLAB_THREADS").map({ String(cString: $0) }), !text.isEmpty else { return (cores, nil) }
        guard let n = Int(text), n > 0 else {
            return (cores, "PLAB_THREADS='\(text)' is not a positive integer; using \(cores) (the processors)")
        }
        if n > mostThreads {
            return (mostThreads, "PLAB_THREADS=\(n) is more than \(mostThreads) (4 × the \(cores) processors); using \(mostThreads)")
        }
        return (n, nil)
    }()

    /// The most threads a thread setting may ask for: more than 4 per processor only waits.
    public static var mostThreads: Int { 4 * cores }

    /// The processors online, whatever `PLAB_THREADS` says.
    public static var cores: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Below this many multiply-adds (m·n·k) a product runs on the calling thread alone. Set
    /// by measurement inside the engines, not in a loop of one product (where the second
    /// thread stays awake and always pays): a decode step's 64×384×384 products ran faster on
    /// one thread, its 64×1024×384 ones on two; a 10 M-model rollout took 1.0 s instead of
    /// 1.7 s with 2^18 (BENCHMARKS.md, "Threads only where they pay").
    public static let defaultParallelThreshold = 1 << 24

    public func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                     a: UnsafePointer<Float>, lda: Int,
                     b: UnsafePointer<Float>, ldb: Int,
                     c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
        if emptyProduct(m: m, n: n, k: k, c: c, ldc: ldc, accumulate: accumulate) { return }
        let problem = Problem(transA: transA, transB: transB, k: k,
                              a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc,
                              accumulate: accumulate)
        let grid = ProductGrid(m: m, n: n, k: k, threads: threads, parallelThreshold: parallelThreshold,
                               tile: (PortableKernel.mr, PortableKernel.nr))
        if grid.pieces == 1 {
            problem.compute(rows: 0..<m, cols: 0..<n)
        } else {
            parallelPerform(grid.pieces) { piece in
                let (rows, cols) = grid.region(piece)
                problem.compute(rows: rows, cols: cols)
            }
        }
    }

    /// One product's operands, shared by the threads that compute its regions.
    ///
    /// Every thread reads A and B and writes only the elements of C in its own region, which
    /// no other thread touches; `gemm` returns only after all of them have finished. That is
    /// why sharing the raw pointers across threads is sound, and the only reason for
    /// `@unchecked Sendable` (raw pointers are never `Sendable`).
    struct Problem: @unchecked Sendable {
        let transA: Bool, transB: Bool
        let k: Int
        let a: UnsafePointer<Float>, lda: Int
        let b: UnsafePointer<Float>, ldb: Int
        let c: UnsafeMutablePointer<Float>, ldc: Int
        let accumulate: Bool

        /// Computes C[rows][cols], every element with its whole chain.
        ///
        /// Columns go in strips of 32 (the last one 16 wide when it has at most 16 columns),
        /// rows in tiles of up to 8; a tile with fewer real columns than its strip is computed
        /// in a scratch tile and only its real columns are copied to C.
        func compute(rows: Range<Int>, cols: Range<Int>) {
            let mr = PortableKernel.mr, nr = PortableKernel.nr, kc = PortableKernel.kc, nc = PortableKernel.nc
            // With a few row tiles, each B strip is used a few times only: packing it would cost
            // more than it saves, so whole strips are read in place (only op(B) = B allows
            // that). Many row tiles amortise the packing, which also keeps the strips' rows
            // contiguous whatever ldb (a power-of-two ldb thrashes the caches otherwise).
            let inPlaceB = !transB && rows.count <= 8 * mr
            // A single row has only two chains per strip, too few to hide the latency of
            // fused multiply-adds: short k blocks let the processor overlap several strips.
            let kBlock = inPlaceB && rows.count == 1 ? 8 : kc
            let kcMax = min(k, kBlock)
            let ncMax = min((cols.count + 15) / 16 * 16, nc)
            // One allocation, 64-byte aligned: 32 vectors for transposing, then the packed
            // B panel, the packed A micro-panel and a scratch tile.
            let floats = kcMax * ncMax + kcMax * mr + mr * nr
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: 32 * 64 + floats * 4, alignment: 64)
            defer { buffer.deallocate() }
            let transposeScratch = buffer.bindMemory(to: SIMD16<Float>.self, capacity: 32)
            let packedB = (buffer + 32 * 64).bindMemory(to: Float.self, capacity: floats)
            let packedA = packedB + kcMax * ncMax
            let scratch = packedA + kcMax * mr

            for jc in stride(from: cols.lowerBound, to: cols.upperBound, by: nc) {
                let ncur = min(nc, cols.upperBound - jc)
                for pc in stride(from: 0, to: k, by: kBlock) {
                    let kcur = min(kBlock, k - pc)
                    // The chain starts from C when accumulating, or when an earlier k block
                    // left its partial sums there; otherwise from +0 (C is not read).
                    let resume = accumulate || pc > 0
                    packB(into: packedB, p0: pc, kcur: kcur, j0: jc, ncur: ncur, partialOnly: inPlaceB,
                          transposeScratch: transposeScratch)
                    for ic in stride(from: rows.lowerBound, to: rows.upperBound, by: mr) {
                        let mcur = min(mr, rows.upperBound - ic)
                        packA(into: packedA, i0: ic, mcur: mcur, p0: pc, kcur: kcur)
                        for jr in stride(from: 0, to: ncur, by: nr) {
                            let real = min(nr, ncur - jr)
                            let width = real > 16 ? 32 : 16
                            var panel = UnsafeRawPointer(packedB + jr * kcur)
                            var panelStride = width * 4
                            if inPlaceB && real == width {
                                panel = UnsafeRawPointer(b + pc * ldb + jc + jr)
                                panelStride = ldb * 4
                            }
                            let tile = c + ic * ldc + jc + jr
                            if real == width {
                                PortableKernel.runTile(mcur, width / 16, kcur, packedA, panel, panelStride, tile, ldc, resume)
                            } else {
                                if resume {
                                    for r in 0..<mcur { (scratch + r * nr).update(from: tile + r * ldc, count: real) }
                                }
                                PortableKernel.runTile(mcur, width / 16, kcur, packedA, panel, panelStride, scratch, nr, resume)
                                for r in 0..<mcur { (tile + r * ldc).update(from: scratch + r * nr, count: real) }
                            }
                        }
                    }
                }
            }
        }

        /// Packs op(B)[p0..<p0+kcur][j0..<j0+ncur] in strips of 32 columns (the last one 16
        /// wide if it has at most 16): the strip at column s starts at `dst + s·kcur` and holds,
        /// for each p in turn, its `width` values B[p][j0 + s ..< j0 + s + width], zero past
        /// the last column. `partialOnly`: only a last strip with fewer columns than its width.
        func packB(into dst: UnsafeMutablePointer<Float>, p0: Int, kcur: Int, j0: Int, ncur: Int,
                   partialOnly: Bool, transposeScratch: UnsafeMutablePointer<SIMD16<Float>>) {
            let nr = PortableKernel.nr
            for s in stride(from: 0, to: ncur, by: nr) {
                let real = min(nr, ncur - s)
                let width = real > 16 ? 32 : 16
                if partialOnly && real == width { continue }
                let strip = dst + s * kcur
                if !transB {
                    for p in 0..<kcur {
                        let row = strip + p * width
                        row.update(from: b + (p0 + p) * ldb + j0 + s, count: real)
                        if real < width { (row + real).update(repeating: 0, count: width - real) }
                    }
                } else {
                    // B is stored n×k: column j of op(B) is row j of B, contiguous in p. Blocks
                    // of 16 × 16 are transposed in registers, the rest element by element.
                    for jb in stride(from: 0, to: real, by: 16) {
                        let rowsHere = min(16, real - jb)
                        let src = b + (j0 + s + jb) * ldb + p0
                        var p = 0
                        if rowsHere == 16 {
                            while p + 16 <= kcur {
                                PortableKernel.transpose16(src + p, ldb, strip + p * width + jb, width, transposeScratch)
                                p += 16
                            }
                        }
                        for j in 0..<rowsHere {
                            for q in p..<kcur { strip[q * width + jb + j] = src[j * ldb + q] }
                        }
                    }
                    if real < width {
                        for p in 0..<kcur { (strip + p * width + real).update(repeating: 0, count: width - real) }
                    }
                }
            }
        }

        /// Packs op(A)[i0..<i0+mcur][p0..<p0+kcur] column by column: for each p in turn, the
        /// values A[i0 ..< i0 + mcur][p] at `dst + p·mr` (the kernel reads only `mcur` of them).
        func packA(into dst: UnsafeMutablePointer<Float>, i0: Int, mcur: Int, p0: Int, kcur: Int) {
            let mr = PortableKernel.mr
            if transA {
                // A is stored k×m: row p of A holds column p of op(A), contiguous in i.
                for p in 0..<kcur { (dst + p * mr).update(from: a + (p0 + p) * lda + i0, count: mcur) }
            } else {
                for r in 0..<mcur {
                    let src = a + (i0 + r) * lda + p0
                    for p in 0..<kcur { dst[p * mr + r] = src[p] }
                }
            }
        }
    }
}

/// The register kernels and the tile and block sizes of the portable backend. The sizes are
/// for speed only: the bits do not depend on them.
private enum PortableKernel {
    /// Rows of the register tile (at most 8: the kernel below is written for 8).
    static let mr = 8
    /// Columns of the register tile: two 16-lane vectors.
    static let nr = 32
    /// The k block: a packed A micro-panel (mr × kc) stays in L1.
    static let kc = 256
    /// The column block (a multiple of nr): a packed B panel (kc × nc) stays in L2.
    static let nc = 512

    /// dst[p·ldd + j] = src[j·ld + p] for j, p in 0..<16, through 32 vectors of scratch.
    ///
    /// Four rounds of the same two-vector shuffle: viewing the 256 elements' (row, lane) as an
    /// 8-bit index, each round rotates it right by one bit, so four rounds swap row and lane.
    static func transpose16(_ src: UnsafePointer<Float>, _ ld: Int, _ dst: UnsafeMutablePointer<Float>,
                            _ ldd: Int, _ scratch: UnsafeMutablePointer<SIMD16<Float>>) {
        typealias V = SIMD16<Float>
        var x = scratch, y = scratch + 16
        for j in 0..<16 { x[j] = UnsafeRawPointer(src + j &* ld).loadUnaligned(as: V.self) }
        for _ in 0..<4 {
            for i in 0..<8 {
                let u = x[2 * i], v = x[2 * i + 1]
                y[i] = V(lowHalf: u.evenHalf, highHalf: v.evenHalf)
                y[i + 8] = V(lowHalf: u.oddHalf, highHalf: v.oddHalf)
            }
            swap(&x, &y)
        }
        for p in 0..<16 { UnsafeMutableRawPointer(dst + p &* ldd).storeBytes(of: x[p], as: V.self) }
    }

    /// `tileKernel` specialised for each tile shape: `rows` in 1...8, `halves` in 1...2.
    static func runTile(_ rows: Int, _ halves: Int, _ kcur: Int, _ a: UnsafePointer<Float>,
                        _ b: UnsafeRawPointer, _ bStride: Int,
                        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ resume: Bool) {
        if halves == 2 {
            switch rows {
            case 8: tileKernel(8, 2, kcur, a, b, bStride, c, ldc, resume)
            case 7: tileKernel(7, 2, kcur, a, b, bStride, c, ldc, resume)
            case 6: tileKernel(6, 2, kcur, a, b, bStride, c, ldc, resume)
            case 5: tileKernel(5, 2, kcur, a, b, bStride, c, ldc, resume)
            case 4: tileKernel(4, 2, kcur, a, b, bStride, c, ldc, resume)
            case 3: tileKernel(3, 2, kcur, a, b, bStride, c, ldc, resume)
            case 2: tileKernel(2, 2, kcur, a, b, bStride, c, ldc, resume)
            default: tileKernel(1, 2, kcur, a, b, bStride, c, ldc, resume)
            }
        } else {
            switch rows {
            case 8: tileKernel(8, 1, kcur, a, b, bStride, c, ldc, resume)
            case 7: tileKernel(7, 1, kcur, a, b, bStride, c, ldc, resume)
            case 6: tileKernel(6, 1, kcur, a, b, bStride, c, ldc, resume)
            case 5: tileKernel(5, 1, kcur, a, b, bStride, c, ldc, resume)
            case 4: tileKernel(4, 1, kcur, a, b, bStride, c, ldc, resume)
            case 3: tileKernel(3, 1, kcur, a, b, bStride, c, ldc, resume)
            case 2: tileKernel(2, 1, kcur, a, b, bStride, c, ldc, resume)
            default: tileKernel(1, 1, kcur, a, b, bStride, c, ldc, resume)
            }
        }
    }

    /// The register tile: C[0..<rows][0..<16·halves] (row stride `ldc`) goes on with `kcur` more
    /// steps of its chains. Step p reads A[r][p] at `a[p·mr + r]` and the row B[p][...] at
    /// `b + p·bStride` bytes. Starts from C when `resume`, from +0 otherwise (C is then only
    /// written). Called with constant `rows` and `halves`, so the unused accumulators and their
    /// tests fold away and the rest stay in registers.
    @inline(__always)
    static func tileKernel(_ rows: Int, _ halves: Int, _ kcur: Int, _ a: UnsafePointer<Float>,
                           _ b: UnsafeRawPointer, _ bStride: Int,
                           _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ resume: Bool) {
        typealias V = SIMD16<Float>
        @inline(__always) func load(_ r: Int, _ h: Int) -> V {
            r < rows && h < halves && resume ? UnsafeRawPointer(c + r * ldc + 16 * h).loadUnaligned(as: V.self) : V()
        }
        @inline(__always) func store(_ v: V, _ r: Int, _ h: Int) {
            if r < rows && h < halves { UnsafeMutableRawPointer(c + r * ldc + 16 * h).storeBytes(of: v, as: V.self) }
        }
        var c00 = load(0, 0), c01 = load(0, 1)
        var c10 = load(1, 0), c11 = load(1, 1)
        var c20 = load(2, 0), c21 = load(2, 1)
        var c30 = load(3, 0), c31 = load(3, 1)
        var c40 = load(4, 0), c41 = load(4, 1)
        var c50 = load(5, 0), c51 = load(5, 1)
        var c60 = load(6, 0), c61 = load(6, 1)
        var c70 = load(7, 0), c71 = load(7, 1)
        var ap = a
        var bp = b
        for _ in 0..<kcur {
            let b0 = bp.loadUnaligned(as: V.self)
            let b1 = halves > 1 ? bp.loadUnaligned(fromByteOffset: 64, as: V.self) : V()
            // One fused multiply-add per accumulator and step: each lane is its own chain.
            if rows > 0 { c00 = c00.addingProduct(ap[0], b0); if halves > 1 { c01 = c01.addingProduct(ap[0], b1) } }
            if rows > 1 { c10 = c10.addingProduct(ap[1], b0); if halves > 1 { c11 = c11.addingProduct(ap[1], b1) } }
            if rows > 2 { c20 = c20.addingProduct(ap[2], b0); if halves > 1 { c21 = c21.addingProduct(ap[2], b1) } }
            if rows > 3 { c30 = c30.addingProduct(ap[3], b0); if halves > 1 { c31 = c31.addingProduct(ap[3], b1) } }
            if rows > 4 { c40 = c40.addingProduct(ap[4], b0); if halves > 1 { c41 = c41.addingProduct(ap[4], b1) } }
            if rows > 5 { c50 = c50.addingProduct(ap[5], b0); if halves > 1 { c51 = c51.addingProduct(ap[5], b1) } }
            if rows > 6 { c60 = c60.addingProduct(ap[6], b0); if halves > 1 { c61 = c61.addingProduct(ap[6], b1) } }
            if rows > 7 { c70 = c70.addingProduct(ap[7], b0); if halves > 1 { c71 = c71.addingProduct(ap[7], b1) } }
            ap += mr
            bp += bStride
        }
        store(c00, 0, 0); store(c01, 0, 1)
        store(c10, 1, 0); store(c11, 1, 1)
        store(c20, 2, 0); store(c21, 2, 1)
        store(c30, 3, 0); store(c31, 3, 1)
        store(c40, 4, 0); store(c41, 4, 1)
        store(c50, 5, 0); store(c51, 5, 1)
        store(c60, 6, 0); store(c61, 6, 1)
        store(c70, 7, 0); store(c71, 7, 1)
    }
}

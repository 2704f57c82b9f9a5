// The fused block-scaled matrix product: scaled operands and limited accumulation in one
// pass, the same bits on every backend and machine.


/// C (m, n) = the product over K indices kStart..<kEnd of two prepared operands, with their
/// scales applied per K stretch and the accumulation of the recipe, unrounded.
///
/// It computes exactly what `QuantizedGEMM.referenceMultiplyPrepared` computes on the
/// portable backend (one backend product per stretch or MMA step), per output element:
/// - K is cut into stretches of `stretch` elements from `kStart` (the last one may be
///   shorter); within a stretch both operands' scales are constant.
/// - Unlimited accumulation: a stretch's partial sum is one chain of fused multiply-adds
///   from +0 in increasing k. Limited (`bits` < 24): each MMA step of `step` elements is such
///   a chain, and the partial sum becomes `truncate(double(partial) + double(stepSum))` to
///   `bits` significant bits toward zero, from +0 (see `truncatedAdd`).
/// - Promotion, stretches in increasing order from c = +0: `c = fma(partial, sA·sB, c)` with
///   the scale product rounded to float32 first; `c = c + partial` when unscaled.
///
/// How it is fast without changing a bit: both operands are packed once per product (A in
/// panels of `mr` rows, B in strips of 32 columns, zero-padded; B not at all when it was
/// packed in advance, as an engine's weights are at each sync); a register tile of `mr` rows
/// × 32 columns (two `SIMD16<Float>` per row) keeps the step sums and the partial sums in
/// registers for a whole stretch, the truncated add runs in float32 lanes (see
/// `Registers.truncated` for why it equals the double-precision definition), and C only
/// sees one fused multiply-add per stretch. Vectors
/// run across output columns, never across k, so every lane is its own chain; threads take
/// rectangles of whole tiles, and each output element is computed by one thread with its
/// whole chain. Neither the vector width nor the thread count changes a result.
struct ScaledKernel {
    /// Rows of the register tile.
    static let mr = 6
    /// Columns of the register tile: two 16-lane vectors.
    static let nr = 32
    /// Columns per block: a packed B block (about `kc` × `nc`) stays in L2 while the row panels
    /// pass over it.
    static let nc = 512
    /// About this many K indices per block (whole stretches: at least one).
    static let kc = 256
    /// Below this many multiply-adds (m·n·k) a product runs on the calling thread alone (waking
    /// threads costs more than a small product).
    static let parallelThreshold = 1 << 23

    /// Threads for products on a backend without a thread setting (a library's): the active
    /// processor count, read once (asking the system reads a file each time).
    static let processorCount = PortableBackend.activeProcessorCount

    let m: Int, n: Int, kLength: Int
    let stretch: Int
    /// MMA step under limited accumulation (a divisor of `stretch`).
    let step: Int
    /// Limited accumulation: the partial sum keeps `bits` < 24 bits.
    let limited: Bool
    let bits: Int
    /// Whether scales apply at promotion (else C += partial).
    let scaled: Bool
    let threads: Int

    /// Runs the product over kStart..<kEnd of `qa` (op(A): m × K) and `qb` (op(B): K × n),
    /// writing C (m, n) row-major (every element overwritten).
    static func multiply(_ qa: PreparedOperand, _ qb: PreparedOperand, m: Int, n: Int, kStart: Int, kEnd: Int,
                         stretch: Int, step: Int, bits: Int, scaled: Bool, threads: Int,
                         into c: UnsafeMutablePointer<Float>) {
        let kernel = ScaledKernel(m: m, n: n, kLength: kEnd - kStart, stretch: max(1, stretch),
                                  step: max(1, bits < 24 ? step : stretch), limited: bits < 24, bits: bits,
                                  scaled: scaled, threads: max(1, threads))
        kernel.run(qa, qb, kStart: kStart, into: c)
    }

    private func run(_ qa: PreparedOperand, _ qb: PreparedOperand, kStart: Int, into c: UnsafeMutablePointer<Float>) {
        let mr = ScaledKernel.mr, nr = ScaledKernel.nr
        let k = kLength
        guard m > 0, n > 0 else { return }
        if k <= 0 {
            c.update(repeating: 0, count: m * n)
            return
        }
        let panels = (m + mr - 1) / mr, strips = (n + nr - 1) / nr
        let mPad = panels * mr, nPad = strips * nr
        let stretches = (k + stretch - 1) / stretch
        // One allocation: packed A, packed B, scales of A and of B per stretch (64-byte aligned).
        func rounded(_ x: Int) -> Int { (x + 15) / 16 * 16 }
        // B laid out in advance over all of its K (a model's weights), if it was.
        let prepacked = qb.packedPanels.flatMap { $0.width == nr && $0.panels == strips && kStart + k <= $0.k ? $0 : nil }
        let sizeA = rounded(mPad * k), sizeB = prepacked == nil ? rounded(nPad * k) : 0
        let sizeSA = rounded(scaled ? stretches * mPad : 0), sizeSB = rounded(scaled ? stretches * nPad : 0)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: (sizeA + sizeB + sizeSA + sizeSB) * 4, alignment: 64)
        defer { buffer.deallocate() }
        let packedA = buffer.bindMemory(to: Float.self, capacity: sizeA + sizeB + sizeSA + sizeSB)
        let packedB = packedA + sizeA
        let scalesA = packedB + sizeB
        let scalesB = scalesA + sizeSA

        let parallel = m * n * k >= ScaledKernel.parallelThreshold ? threads : 1
        // Packing (and the scales), in parallel too: pieces of A's panels and B's strips.
        let pieces = (m + (prepacked == nil ? n : 0)) * k >= 1 << 16 ? min(parallel, max(panels, strips)) : 1
        let packing = Packing(qa: qa, qb: qb, m: m, n: n, panels: panels, strips: prepacked == nil ? strips : 0,
                              kStart: kStart, k: k, packedA: packedA, packedB: packedB)
        if pieces == 1 {
            packing.pack(piece: 0, of: 1)
        } else {
            parallelPerform(pieces) { packing.pack(piece: $0, of: pieces) }
        }
        if scaled {
            for t in 0..<stretches {
                let k0 = kStart + t * stretch
                ScaledKernel.scaleRow(qa, isA: true, k: k0, outer: m, outerPad: mPad, into: scalesA + t * mPad)
                ScaledKernel.scaleRow(qb, isA: false, k: k0, outer: n, outerPad: nPad, into: scalesB + t * nPad)
            }
        }

        let truncate = Rounder(format: NumberFormat(name: "acc", exponentBits: 8, mantissaBits: max(bits, 1) - 1),
                               mode: .towardZero)
        let work = Work(kernel: self, packedA: packedA,
                        packedB: prepacked.map { UnsafePointer($0.values + kStart * nr) } ?? UnsafePointer(packedB),
                        bStripStride: (prepacked?.k ?? k) * nr, scalesA: scalesA, scalesB: scalesB,
                        mPad: mPad, nPad: nPad, c: c, truncate: truncate)
        let grid = Grid(panels: panels, strips: strips, threads: parallel)
        if grid.pieces == 1 {
            work.compute(panels: 0..<panels, strips: 0..<strips)
        } else {
            parallelPerform(grid.pieces) { piece in
                let (p, s) = grid.region(piece)
                work.compute(panels: p, strips: s)
            }
        }
    }

    /// Packs panels `panels` of op(X) over K indices kStart..<kStart+k: for A (isA) the rows i
    /// in panels of `width`, for B the columns j in strips of `width`; panel q starts at
    /// `dst + q·width·k` and holds, for each p in turn, its `width` values (zero past `outer`).
    static func pack(_ x: PreparedOperand, isA: Bool, outer: Int, width: Int, panels: Range<Int>,
                     kStart: Int, k: Int, into dst: UnsafeMutablePointer<Float>) {
        // Element (outer o, K index p): stored at o·ld + p when K runs along the stored
        // columns, at p·ld + o otherwise.
        let kAlongColumns = isA != x.transposed
        let ld = x.matrix.cols
        x.matrix.values.withUnsafeBufferPointer { v in
            let src = v.baseAddress!
            for q in panels {
                let panel = dst + q * width * k
                let o0 = q * width, real = min(width, outer - o0)
                if real < width {
                    for p in 0..<k { (panel + p * width + real).update(repeating: 0, count: width - real) }
                }
                if kAlongColumns {
                    // Transposing: blocks of 16 K indices, so the block written stays in L1
                    // while each stored row is read 64 bytes at a time.
                    for pb in stride(from: 0, to: k, by: 16) {
                        let pe = min(k, pb + 16)
                        for o in 0..<real {
                            let row = src + (o0 + o) * ld + kStart
                            for p in pb..<pe { panel[p &* width &+ o] = row[p] }
                        }
                    }
                } else if real == 32 && width == 32 {
                    for p in 0..<k {
                        let from = UnsafeRawPointer(src + ((kStart + p) &* ld &+ o0))
                        let to = UnsafeMutableRawPointer(panel + p &* 32)
                        to.storeBytes(of: from.loadUnaligned(as: SIMD16<Float>.self), as: SIMD16<Float>.self)
                        to.storeBytes(of: from.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self), toByteOffset: 64,
                                      as: SIMD16<Float>.self)
                    }
                } else {
                    for p in 0..<k {
                        let from = src + ((kStart + p) &* ld &+ o0), to = panel + p &* width
                        for o in 0..<real { to[o] = from[o] }
                    }
                }
            }
        }
    }

    /// dst[o] = the scale of op(X)'s element at (outer o, K index k) — `x.scale(outer: o, k: k,
    /// isA:)` — for o < outer, 1 up to outerPad; a tile's run of outer indices at a time.
    static func scaleRow(_ x: PreparedOperand, isA: Bool, k: Int, outer: Int, outerPad: Int,
                         into dst: UnsafeMutablePointer<Float>) {
        let q = x.matrix
        let kAlongColumns = isA != x.transposed
        // Tiles along the outer axis, and the offset of the K index's tile in the scale grid.
        let outerTile = kAlongColumns ? q.tileRows : q.tileCols
        let base = kAlongColumns ? k / q.tileCols : (k / q.tileRows) * q.scaleCols
        let step = kAlongColumns ? q.scaleCols : 1
        q.scales.withUnsafeBufferPointer { scales in
            var o = 0, u = 0
            while o < outer {
                let end = min(outer, o + outerTile)
                (dst + o).update(repeating: scales[base + u * step], count: end - o)
                o = end
                u += 1
            }
        }
        if outerPad > outer { (dst + outer).update(repeating: 1, count: outerPad - outer) }
    }

    /// Packs all of K of `x` used as the right operand B: strips of `nr` columns.
    static func packAsB(_ x: PreparedOperand) -> PackedPanels {
        let n = x.transposed ? x.matrix.rows : x.matrix.cols
        let k = x.transposed ? x.matrix.cols : x.matrix.rows
        let strips = (n + nr - 1) / nr
        let packed = PackedPanels(width: nr, panels: strips, k: k)
        pack(x, isA: false, outer: n, width: nr, panels: 0..<strips, kStart: 0, k: k, into: packed.values)
        return packed
    }

    /// The packing of one product's operands, cut into pieces for threads: each piece packs
    /// its own panels of A and strips of B, which no other piece writes.
    struct Packing: @unchecked Sendable {
        let qa: PreparedOperand, qb: PreparedOperand
        let m: Int, n: Int, panels: Int, strips: Int, kStart: Int, k: Int
        let packedA: UnsafeMutablePointer<Float>, packedB: UnsafeMutablePointer<Float>

        func pack(piece: Int, of pieces: Int) {
            ScaledKernel.pack(qa, isA: true, outer: m, width: ScaledKernel.mr,
                              panels: (panels * piece / pieces)..<(panels * (piece + 1) / pieces),
                              kStart: kStart, k: k, into: packedA)
            ScaledKernel.pack(qb, isA: false, outer: n, width: ScaledKernel.nr,
                              panels: (strips * piece / pieces)..<(strips * (piece + 1) / pieces),
                              kStart: kStart, k: k, into: packedB)
        }
    }

    /// C cut into rectangles of whole tiles, as even as possible, one per thread.
    struct Grid: Sendable {
        let panels: Int, strips: Int
        private(set) var rowPieces = 1, colPieces = 1
        var pieces: Int { rowPieces * colPieces }

        init(panels: Int, strips: Int, threads: Int) {
            self.panels = panels
            self.strips = strips
            guard threads > 1 else { return }
            var best = (tiles: panels * strips, pieces: 1)
            for pm in 1...min(threads, panels) {
                for pn in 1...min(threads / pm, strips) {
                    let tiles = ((panels + pm - 1) / pm) * ((strips + pn - 1) / pn)
                    if tiles < best.tiles || (tiles == best.tiles && pm * pn <= best.pieces) {
                        best = (tiles, pm * pn)
                        (rowPieces, colPieces) = (pm, pn)
                    }
                }
            }
        }

        func region(_ index: Int) -> (panels: Range<Int>, strips: Range<Int>) {
            func cut(_ i: Int, _ pieces: Int, _ total: Int) -> Range<Int> {
                (total * i / pieces)..<(total * (i + 1) / pieces)
            }
            return (cut(index / colPieces, rowPieces, panels), cut(index % colPieces, colPieces, strips))
        }
    }

    /// One product's packed operands, shared by the threads that compute its regions.
    ///
    /// Every thread reads the packed buffers and writes only the elements of C in its own
    /// region; `run` returns after all have finished. That is why sharing the raw pointers
    /// is sound, and the only reason for `@unchecked Sendable`.
    struct Work: @unchecked Sendable {
        let kernel: ScaledKernel
        let packedA: UnsafePointer<Float>
        /// Strip s of B starts at `packedB + s·bStripStride` (at the product's first K index).
        let packedB: UnsafePointer<Float>, bStripStride: Int
        let scalesA: UnsafePointer<Float>, scalesB: UnsafePointer<Float>
        let mPad: Int, nPad: Int
        let c: UnsafeMutablePointer<Float>
        let truncate: Rounder

        func compute(panels: Range<Int>, strips: Range<Int>) {
            let mr = ScaledKernel.mr, nr = ScaledKernel.nr
            let k = kernel.kLength, stretch = kernel.stretch, m = kernel.m, n = kernel.n
            let stretches = (k + stretch - 1) / stretch
            let perBlock = max(1, ScaledKernel.kc / stretch)
            let stripsPerBlock = ScaledKernel.nc / nr
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: mr * nr)
            defer { scratch.deallocate() }
            for sb in stride(from: strips.lowerBound, to: strips.upperBound, by: stripsPerBlock) {
                let sEnd = min(strips.upperBound, sb + stripsPerBlock)
                for t0 in stride(from: 0, to: stretches, by: perBlock) {
                    let t1 = min(stretches, t0 + perBlock)
                    let resume = t0 > 0
                    for q in panels {
                        let i0 = q * mr, rows = min(mr, m - i0)
                        let aPanel = packedA + q * mr * k
                        for s in sb..<sEnd {
                            let j0 = s * nr, cols = min(nr, n - j0)
                            let bStrip = packedB + s * bStripStride
                            let full = rows == mr && cols == nr
                            let tile = full ? c + i0 * n + j0 : scratch
                            let ldt = full ? n : nr
                            if !full && resume {
                                for r in 0..<rows { (scratch + r * nr).update(from: c + (i0 + r) * n + j0, count: cols) }
                            }
                            runTile(aPanel, bStrip, i0: i0, j0: j0, t0: t0, t1: t1, tile: tile, ldt: ldt, resume: resume)
                            if !full {
                                for r in 0..<rows { (c + (i0 + r) * n + j0).update(from: scratch + r * nr, count: cols) }
                            }
                        }
                    }
                }
            }
        }

        /// The tile kernel specialised for the four combinations of limited and scaled.
        @inline(__always)
        func runTile(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, i0: Int, j0: Int, t0: Int, t1: Int,
                     tile: UnsafeMutablePointer<Float>, ldt: Int, resume: Bool) {
            switch (kernel.limited, kernel.scaled) {
            case (true, true): tileKernel(true, true, a, b, i0, j0, t0, t1, tile, ldt, resume)
            case (true, false): tileKernel(true, false, a, b, i0, j0, t0, t1, tile, ldt, resume)
            case (false, true): tileKernel(false, true, a, b, i0, j0, t0, t1, tile, ldt, resume)
            case (false, false): tileKernel(false, false, a, b, i0, j0, t0, t1, tile, ldt, resume)
            }
        }

        /// Stretches t0..<t1 of the register tile at rows i0..<i0+mr, columns j0..<j0+32: C
        /// (`tile`, row stride `ldt`) starts from +0 unless `resume`.
        @inline(__always)
        func tileKernel(_ limited: Bool, _ scaled: Bool, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                        _ i0: Int, _ j0: Int, _ t0: Int, _ t1: Int,
                        _ tile: UnsafeMutablePointer<Float>, _ ldt: Int, _ resume: Bool) {
            typealias V = SIMD16<Float>
            let mr = ScaledKernel.mr, nr = ScaledKernel.nr
            let k = kernel.kLength, stretch = kernel.stretch, step = kernel.step
            if !resume {
                for r in 0..<mr { (tile + r * ldt).update(repeating: 0, count: nr) }
            }
            let quantum = UInt32(1) << UInt32(24 - max(1, min(kernel.bits, 24)))
            for t in t0..<t1 {
                let k0 = t * stretch, k1 = min(k, k0 + stretch)
                var partial = Registers()
                if limited {
                    // The first step adds to +0: the sum is the step sum itself (exactly).
                    let s1 = min(k1, k0 + step)
                    partial.chain(a + k0 * mr, b + k0 * nr, s1 - k0)
                    partial.truncateFirst(quantum: quantum, fallback: truncate)
                    var s0 = s1
                    while s0 < k1 {
                        let s1 = min(k1, s0 + step)
                        var sum = Registers()
                        sum.chain(a + s0 * mr, b + s0 * nr, s1 - s0)
                        partial.truncatedAdd(sum, quantum: quantum, fallback: truncate)
                        s0 = s1
                    }
                } else {
                    partial.chain(a + k0 * mr, b + k0 * nr, k1 - k0)
                }
                if scaled {
                    let sa = scalesA + t * mPad + i0
                    let sbp = UnsafeRawPointer(scalesB + t * nPad + j0)
                    partial.promote(into: tile, ldt, sa, sbp.loadUnaligned(as: V.self),
                                    sbp.loadUnaligned(fromByteOffset: 64, as: V.self))
                } else {
                    partial.add(into: tile, ldt)
                }
            }
        }
    }

    /// The 6 × 32 register tile: two 16-lane vectors per row.
    struct Registers {
        typealias V = SIMD16<Float>
        var r00 = V(), r01 = V(), r10 = V(), r11 = V(), r20 = V(), r21 = V()
        var r30 = V(), r31 = V(), r40 = V(), r41 = V(), r50 = V(), r51 = V()

        /// `count` more steps of each lane's chain of fused multiply-adds: step p reads
        /// A[r][p] at `a[p·6 + r]` and B[p][0..<32] at `b + p·32`.
        @inline(__always)
        mutating func chain(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) {
            var ap = a
            var bp = UnsafeRawPointer(b)
            for _ in 0..<count {
                let b0 = bp.loadUnaligned(as: V.self)
                let b1 = bp.loadUnaligned(fromByteOffset: 64, as: V.self)
                r00 = r00.addingProduct(ap[0], b0); r01 = r01.addingProduct(ap[0], b1)
                r10 = r10.addingProduct(ap[1], b0); r11 = r11.addingProduct(ap[1], b1)
                r20 = r20.addingProduct(ap[2], b0); r21 = r21.addingProduct(ap[2], b1)
                r30 = r30.addingProduct(ap[3], b0); r31 = r31.addingProduct(ap[3], b1)
                r40 = r40.addingProduct(ap[4], b0); r41 = r41.addingProduct(ap[4], b1)
                r50 = r50.addingProduct(ap[5], b0); r51 = r51.addingProduct(ap[5], b1)
                ap += 6
                bp += 128
            }
        }

        /// Each lane: self ← truncate(double(self) + double(sum)) to the kept bits.
        @inline(__always)
        mutating func truncatedAdd(_ s: Registers, quantum: UInt32, fallback: Rounder) {
            r00 = Registers.truncated(r00, s.r00, quantum, fallback); r01 = Registers.truncated(r01, s.r01, quantum, fallback)
            r10 = Registers.truncated(r10, s.r10, quantum, fallback); r11 = Registers.truncated(r11, s.r11, quantum, fallback)
            r20 = Registers.truncated(r20, s.r20, quantum, fallback); r21 = Registers.truncated(r21, s.r21, quantum, fallback)
            r30 = Registers.truncated(r30, s.r30, quantum, fallback); r31 = Registers.truncated(r31, s.r31, quantum, fallback)
            r40 = Registers.truncated(r40, s.r40, quantum, fallback); r41 = Registers.truncated(r41, s.r41, quantum, fallback)
            r50 = Registers.truncated(r50, s.r50, quantum, fallback); r51 = Registers.truncated(r51, s.r51, quantum, fallback)
        }

        /// Each lane: self ← truncate(double(+0) + double(self)) to the kept bits: the first
        /// MMA step of a promotion interval.
        @inline(__always)
        mutating func truncateFirst(quantum: UInt32, fallback: Rounder) {
            r00 = Registers.truncatedFirst(r00, quantum, fallback); r01 = Registers.truncatedFirst(r01, quantum, fallback)
            r10 = Registers.truncatedFirst(r10, quantum, fallback); r11 = Registers.truncatedFirst(r11, quantum, fallback)
            r20 = Registers.truncatedFirst(r20, quantum, fallback); r21 = Registers.truncatedFirst(r21, quantum, fallback)
            r30 = Registers.truncatedFirst(r30, quantum, fallback); r31 = Registers.truncatedFirst(r31, quantum, fallback)
            r40 = Registers.truncatedFirst(r40, quantum, fallback); r41 = Registers.truncatedFirst(r41, quantum, fallback)
            r50 = Registers.truncatedFirst(r50, quantum, fallback); r51 = Registers.truncatedFirst(r51, quantum, fallback)
        }

        /// trunc(double(+0) + double(s)): the double sum is s exactly (+0 for −0), so in
        /// float32's normal range (or zero) the result is s with its dropped bits cleared, as
        /// `truncatedAdd`'s vector path does; elsewhere the scalar rounder decides.
        @inline(__always)
        static func truncatedFirst(_ s: V, _ quantum: UInt32, _ fallback: Rounder) -> V {
            typealias U = SIMD16<UInt32>
            let bits = unsafeBitCast(s + V(repeating: 0), to: U.self)   // −0 + +0 = +0
            let magnitude = bits & U(repeating: 0x7FFF_FFFF)
            // |s| nonzero and outside [2^-126, 2^127) (exponent fields 1…253), NaN and inf included.
            let outOfRange = ((magnitude &- U(repeating: 0x0080_0000)) .>= U(repeating: 0x7F00_0000 - 0x0080_0000))
                .& (magnitude .!= U(repeating: 0))
            if any(outOfRange) {
                return slowTruncated(V(), s, fallback)
            }
            return unsafeBitCast(bits & U(repeating: ~(quantum &- 1)), to: V.self)
        }

        /// trunc(D), D = double(p) + double(s) rounded to nearest as a double, truncated toward
        /// zero to the kept bits — what `truncatedAdd` computes — in float32 arithmetic.
        /// `quantum` is 2^(24 − bits): one unit in the last kept place, in bit-pattern units.
        ///
        /// Why this is the same: the float sum hi = fl(p + s) and its exact error lo (TwoSum)
        /// give the exact sum x = hi + lo, |lo| ≤ ulp(hi)/2. When |hi| lies in [2^-125, 2^126)
        /// and lo is 0 or at most 29 binades below hi, x has at most 53 significant bits, so
        /// D = x, well inside float32's normal range. Then with t = hi with its dropped bits
        /// cleared: if t ≠ hi, hi is at least one float ulp away from the kept values on either
        /// side and x is within half of one, so trunc(x) = t; if t = hi, trunc(x) is hi when
        /// |x| ≥ |hi| (lo zero or of hi's sign), else the kept value just below |hi|, whose bit
        /// pattern is hi's minus `quantum` (a borrow into the exponent field is the correct
        /// value below a power of two). Any other lane (out of range, NaN, inf, a wider gap)
        /// takes the scalar rounder on the double sum, as `truncatedAdd` does.
        @inline(__always)
        static func truncated(_ p: V, _ s: V, _ quantum: UInt32, _ fallback: Rounder) -> V {
            typealias U = SIMD16<UInt32>
            let hi = p + s
            let bb = hi - p
            let lo = (p - (hi - bb)) + (s - bb)
            let hiBits = unsafeBitCast(hi, to: U.self), loBits = unsafeBitCast(lo, to: U.self)
            let magnitudeMask = U(repeating: 0x7FFF_FFFF)
            let hiMagnitude = hiBits & magnitudeMask, loMagnitude = loBits & magnitudeMask
            // |hi| nonzero and outside [2^-125, 2^126) (exponent fields 2…252), NaN and inf
            // included. (hi = 0 means p = −s exactly: lo = 0 and D = hi, sign included.)
            let outOfRange = ((hiMagnitude &- U(repeating: 0x0100_0000)) .>= U(repeating: 0x7E80_0000 - 0x0100_0000))
                .& (hiMagnitude .!= U(repeating: 0))
            // lo more than 29 binades below hi (a subnormal lo counts as field 0, which only
            // widens the gap), or not smaller than hi (an overflow inside TwoSum).
            let wideGap = ((loMagnitude .!= U(repeating: 0))
                .& ((hiMagnitude &>> 23) .> ((loMagnitude &>> 23) &+ U(repeating: 29))))
                .| (loMagnitude .> hiMagnitude)
            if any(outOfRange .| wideGap) {
                return slowTruncated(p, s, fallback)
            }
            let keep = U(repeating: ~(quantum &- 1))
            let t = hiBits & keep
            // t = hi and lo pulls toward zero: one kept unit down.
            let below = (t .== hiBits) .& (loMagnitude .!= U(repeating: 0))
                .& (((hiBits ^ loBits) & U(repeating: 0x8000_0000)) .!= U(repeating: 0))
            return unsafeBitCast(t.replacing(with: hiBits &- U(repeating: quantum), where: below), to: V.self)
        }

        @inline(never)
        static func slowTruncated(_ p: V, _ s: V, _ fallback: Rounder) -> V {
            var r = V()
            for l in 0..<16 { r[l] = fallback.round(double: Double(p[l]) + Double(s[l])) }
            return r
        }

        /// C[r][0..<32] = fma(self[r], sA[r] · sB, C[r]) for each row, with the scale product
        /// rounded to float32 first.
        @inline(__always)
        func promote(into c: UnsafeMutablePointer<Float>, _ ldc: Int, _ sa: UnsafePointer<Float>, _ sb0: V, _ sb1: V) {
            @inline(__always) func row(_ r: Int, _ v0: V, _ v1: V) {
                let p = UnsafeMutableRawPointer(c + r * ldc)
                let s = V(repeating: sa[r])
                p.storeBytes(of: p.loadUnaligned(as: V.self).addingProduct(v0, s * sb0), as: V.self)
                p.storeBytes(of: p.loadUnaligned(fromByteOffset: 64, as: V.self).addingProduct(v1, s * sb1),
                             toByteOffset: 64, as: V.self)
            }
            row(0, r00, r01); row(1, r10, r11); row(2, r20, r21)
            row(3, r30, r31); row(4, r40, r41); row(5, r50, r51)
        }

        /// C[r][0..<32] += self[r] for each row.
        @inline(__always)
        func add(into c: UnsafeMutablePointer<Float>, _ ldc: Int) {
            @inline(__always) func row(_ r: Int, _ v0: V, _ v1: V) {
                let p = UnsafeMutableRawPointer(c + r * ldc)
                p.storeBytes(of: p.loadUnaligned(as: V.self) + v0, as: V.self)
                p.storeBytes(of: p.loadUnaligned(fromByteOffset: 64, as: V.self) + v1, toByteOffset: 64, as: V.self)
            }
            row(0, r00, r01); row(1, r10, r11); row(2, r20, r21)
            row(3, r30, r31); row(4, r40, r41); row(5, r50, r51)
        }
    }
}

/// An operand laid out for the fused kernel over all of its K, kept with a `PreparedOperand`
/// that many products reuse (a model's weights between syncs). Written once when created, then
/// only read: that is why sharing it between threads is sound (`@unchecked Sendable` for the
/// raw pointer).
final class PackedPanels: @unchecked Sendable {
    let width: Int, panels: Int, k: Int
    let values: UnsafeMutablePointer<Float>

    init(width: Int, panels: Int, k: Int) {
        self.width = width
        self.panels = panels
        self.k = k
        values = UnsafeMutablePointer<Float>.allocate(capacity: max(1, width * panels * k))
    }

    deinit { values.deallocate() }
}

// Native BF16 matrix products (AVX512_BF16), for the BF16 recipe on the `openblas` and `onednn`
// backends.

import CBF16
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The processor's BF16 dot-product instruction (`VDPBF16PS`) as a matrix product.
///
/// What it computes. The BF16 recipe multiplies operands already rounded to BF16 and sums in
/// float32. A product of two BF16 values is exact in float32, so the instruction's step
/// `acc += a·b` is a fused multiply-add, and the native product is the emulated one up to the
/// order of the sum. Each `VDPBF16PS` lane takes a pair of K positions: it adds the odd one's
/// product, then the even one's, each rounded to nearest even (measured bit for bit on this
/// instruction, `NativeBF16Tests`). So every output here is one chain from +0 (or from C):
///
///     for p in 0..<⌈k/2⌉ { acc = fma(a[2p+1], b[2p+1], acc); acc = fma(a[2p], b[2p], acc) }
///
/// (a zero pads an odd k), whatever the threads, the blocking or the machine, as long as it
/// has the instruction. Against the emulation (one chain in increasing k) only the order
/// differs, except for subnormals: the instruction reads subnormal inputs as zero and flushes
/// subnormal results to zero (|x| < 2⁻¹²⁶, far below any activation or weight of a model).
/// `NativeBF16Tests` checks the chain above exactly and the emulation within a bound that a
/// wrong rounding would exceed.
///
/// The operands are float32 arrays whose values are all BF16 values (any format with 8
/// exponent bits and at most 7 stored mantissa bits qualifies): each is packed into 32-bit
/// words holding a pair of BF16 halves, taken from the high halves of the floats.
public enum BF16Kernel {
    /// True when this processor runs AVX512_BF16 instructions and `PLAB_BF16` is not
    /// `emulated` (which keeps every BF16 product on float32 products, to compare).
    public static let available: Bool = hardware && !emulationRequested

    /// True when this processor runs AVX512_BF16 instructions.
    public static let hardware: Bool = plab_bf16_available() != 0

    /// `PLAB_BF16=emulated` in the environment.
    public static let emulationRequested: Bool = getenv("PLAB_BF16").map { String(cString: $0) } == "emulated"

    /// Whether operands of `format` can go through the native product unchanged: every value
    /// of the format is a BF16 value.
    public static func carries(_ format: NumberFormat) -> Bool {
        format.exponentBits == 8 && format.bias == 127 && format.mantissaBits <= 7
    }

    /// Whether `backend` computes a product of operands of these formats (unscaled, float32
    /// sums) on this kernel.
    public static func computes(_ a: NumberFormat, _ b: NumberFormat, on backend: any MatmulBackend) -> Bool {
        backend.nativeBF16 && carries(a) && carries(b)
    }

    /// op(B) laid out for the kernel: BF16 pairs in panels of 32 columns. A model's weights are
    /// packed once per sync and reused by every product, at half the bytes of float32.
    public struct PackedB: @unchecked Sendable {
        let words: [UInt32]
        public let k: Int, n: Int

        /// With `round`, what rounding B's values to BF16 counted: finite values that became
        /// infinite, and NaN and infinite values (as `Quantization.quantize` counts them).
        public let roundingCounts: (overflowed: Int, nonFinite: Int)

        /// Packs op(B) (k × n): B stored (k, n) with leading dimension ldb, or (n, k) when
        /// `transB`. Every value must be a BF16 value, unless `round`: then B holds any float32
        /// values, each rounded to BF16 as it is packed (nearest even, as `Rounder` rounds:
        /// subnormals kept, overflow to ±inf, NaN made quiet), never stored rounded.
        public init(_ b: UnsafePointer<Float>, ldb: Int, transB: Bool, k: Int, n: Int, threads: Int = 1, round: Bool = false) {
            precondition(BF16Kernel.hardware, "native BF16 packing on a processor without AVX512_BF16")
            self.k = k
            self.n = n
            let panels = (n + nr - 1) / nr
            let count = panels * nr * ((k + 1) / 2)
            // Each packing call counts into the slot of its first panel.
            let counts = UnsafeMutablePointer<Int>.allocate(capacity: 2 * max(panels, 1))
            defer { counts.deallocate() }
            counts.initialize(repeating: 0, count: 2 * max(panels, 1))
            let shared = UncheckedSendable((source: b, counts: counts))
            words = [UInt32](unsafeUninitializedCapacity: count) { out, initialized in
                let packed = UncheckedSendable(out.baseAddress!)
                forEachRange(panels, threads: k * n >= 1 << 16 ? threads : 1, minimumCost: 0, cost: { _ in 1 }) { range in
                    plab_bf16_pack_b(shared.value.source, ldb, transB ? 1 : 0, Int32(k), Int32(n),
                                     Int32(range.lowerBound * nr), Int32(min(n, range.upperBound * nr)), packed.value,
                                     round ? 1 : 0, shared.value.counts + 2 * range.lowerBound)
                }
                initialized = count
            }
            var overflowed = 0, nonFinite = 0
            for panel in 0..<panels {
                overflowed += counts[2 * panel]
                nonFinite += counts[2 * panel + 1]
            }
            roundingCounts = (overflowed, nonFinite)
        }

        /// Whether op(B)'s rows start..<start+count can be multiplied from this packing: pairs
        /// are whole (an even start) and none mixes a row inside with one outside.
        func accepts(start: Int, count: Int) -> Bool {
            start >= 0 && count >= 0 && start % 2 == 0 && (start + count == k || (count % 2 == 0 && start + count <= k))
        }

        /// Bytes held.
        public var bytes: Int { words.count * 4 }

        /// The width NR of the panels a packing cuts op(B)'s n columns into: a packing of
        /// op(B) (k × n) holds ⌈n/NR⌉·NR·⌈k/2⌉ 4-byte words (for a memory estimate, before
        /// anything is packed).
        public static var panelWidth: Int { nr }

        /// The float32 values packed: op(B) (k × n) stored (k, n), or (n, k) when `transB`, as
        /// `init` read them. Exact: a BF16 value is the high half of its float32.
        public func unpacked(transB: Bool) -> [Float] {
            let pairs = (k + 1) / 2, nr = BF16Kernel.nr, k = k, n = n
            return words.withUnsafeBufferPointer { w in
                [Float](unsafeUninitializedCapacity: k * n) { out, initialized in
                    for kk in 0..<k {
                        let shift = UInt32(16 * (kk % 2)), pairRow = (kk / 2) * nr
                        for j in 0..<n {
                            let word = w[(j / nr) * pairs * nr + pairRow + j % nr]
                            let value = Float(bitPattern: ((word >> shift) & 0xffff) << 16)
                            out[transB ? j * k + kk : kk * n + j] = value
                        }
                    }
                    initialized = k * n
                }
            }
        }
    }

    static let mr = Int(PLAB_BF16_MR), nr = Int(PLAB_BF16_NR)

    /// C (m×n, ldc) = op(A)·op(B) (+ C when `accumulate`), op(A) (m × k) from A stored (m, k)
    /// with leading dimension lda, or (k, m) when `transA`. Cut into rectangles of C between
    /// `threads` threads from `parallelThreshold` multiply-adds, as the portable backend cuts
    /// its products; each output is computed whole by one thread, so the bits are the same.
    /// Requires `available`.
    ///
    /// `roundToBF16`: each output rounded to BF16 (nearest even) as it is stored, in the
    /// product's epilogue: the same values as rounding C afterwards (`round`).
    ///
    /// `bStart`: the product's K starts at this row of op(B) as packed (K cut into stretches,
    /// as split-K cuts it): even, and the stretch ends at B's last row or an even length.
    ///
    /// `roundA`: A holds any float32 values, rounded to BF16 as they are packed (nearest even,
    /// as `Rounder` rounds: subnormals kept, overflow to ±inf, NaN made quiet); the result
    /// counts the finite values that became infinite and the NaN and infinite ones, as
    /// quantizing A first would (`Quantization.quantize`). Without it, every value of A must
    /// already be a BF16 value, and the counts are zero.
    @discardableResult
    public static func multiply(transA: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                         b: PackedB, bStart: Int = 0, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool,
                         roundToBF16: Bool = false, roundA: Bool = false, threads: Int,
                         parallelThreshold: Int, memo: PackMemo? = nil) -> (overflowed: Int, nonFinite: Int) {
        precondition(available && b.n == n && b.accepts(start: bStart, count: k))
        if emptyProduct(m: m, n: n, k: k, c: c, ldc: ldc, accumulate: accumulate) { return (0, 0) }
        let make = { PackedA(transA: transA, m: m, k: k, a: a, lda: lda, round: roundA, threads: threads) }
        let packedA = memo?.packedA(a, transA: transA, m: m, k: k, lda: lda, round: roundA, make) ?? make()
        multiply(packedA, b: b, bStart: bStart, n: n, c: c, ldc: ldc, accumulate: accumulate, roundToBF16: roundToBF16,
                 threads: threads, parallelThreshold: parallelThreshold)
        return packedA.roundingCounts
    }

    /// C (m×n, ldc) = A·op(B) (+ C when `accumulate`) from A as packed: `multiply`'s product,
    /// cut between threads the same way.
    static func multiply(_ packedA: PackedA, b: PackedB, bStart: Int, n: Int, c: UnsafeMutablePointer<Float>, ldc: Int,
                         accumulate: Bool, roundToBF16: Bool, threads: Int, parallelThreshold: Int) {
        let m = packedA.m, k = packedA.k
        // Threads take rectangles of C cut at this kernel's panels. Each writes only its own
        // rectangle of C, and the call returns after every thread has finished.
        let grid = ProductGrid(m: m, n: n, k: k, threads: threads, parallelThreshold: parallelThreshold, tile: (mr, nr))
        let pointers = UncheckedSendable((c: c, packedA: UnsafePointer(packedA.words)))
        b.words.withUnsafeBufferPointer { bw in
            let packedB = UncheckedSendable(bw.baseAddress!)
            let region = { @Sendable (piece: Int) in
                let (rows, cols) = grid.region(piece)
                plab_bf16_compute(pointers.value.packedA, packedB.value, Int32((b.k + 1) / 2), Int32(bStart / 2),
                                  Int32(m), Int32(n), Int32(k), pointers.value.c, ldc, accumulate ? 1 : 0, roundToBF16 ? 1 : 0,
                                  Int32(rows.lowerBound / mr), Int32((rows.upperBound + mr - 1) / mr),
                                  Int32(cols.lowerBound / nr), Int32((cols.upperBound + nr - 1) / nr))
            }
            if grid.pieces == 1 { region(0) } else { parallelPerform(grid.pieces, region) }
        }
    }

    /// op(A) (m × k) laid out for the kernel: BF16 pairs in panels of 8 rows, and the counts of
    /// its rounding (with `round`; zeros without).
    public final class PackedA: @unchecked Sendable {
        let words: UnsafeMutablePointer<UInt32>
        let m: Int, k: Int
        let roundingCounts: (overflowed: Int, nonFinite: Int)

        /// Packs op(A): A stored (m, k) with leading dimension lda, or (k, m) when `transA`.
        /// Every value must be a BF16 value unless `round` (then each is rounded as `multiply`'s
        /// `roundA` says).
        init(transA: Bool, m: Int, k: Int, a: UnsafePointer<Float>, lda: Int, round: Bool, threads: Int) {
            self.m = m
            self.k = k
            let rowPanels = (m + mr - 1) / mr
            words = UnsafeMutablePointer<UInt32>.allocate(capacity: max(1, rowPanels * mr * ((k + 1) / 2)))
            // Each packing call counts into the slot of its first row panel, and writes only
            // its own panels: sharing the pointers is sound.
            let counts = UnsafeMutablePointer<Int>.allocate(capacity: 2 * max(1, rowPanels))
            defer { counts.deallocate() }
            counts.initialize(repeating: 0, count: 2 * max(1, rowPanels))
            let pointers = UncheckedSendable((a: a, packedA: words, counts: counts))
            forEachRange(rowPanels, threads: m * k >= 1 << 16 ? threads : 1, minimumCost: 0, cost: { _ in 1 }) { range in
                plab_bf16_pack_a(pointers.value.a, lda, transA ? 1 : 0, Int32(m), Int32(k),
                                 Int32(range.lowerBound * mr), Int32(min(m, range.upperBound * mr)), pointers.value.packedA,
                                 round ? 1 : 0, pointers.value.counts + 2 * range.lowerBound)
            }
            var overflowed = 0, nonFinite = 0
            for panel in 0..<rowPanels {
                overflowed += counts[2 * panel]
                nonFinite += counts[2 * panel + 1]
            }
            roundingCounts = (overflowed, nonFinite)
        }

        deinit { words.deallocate() }
    }

    /// Operands packed once for every product that reads one input, while those products run:
    /// q, k and v read the same normed activations (each packs them as A in the forward, and as
    /// B for its weight gradient). Only operands read from `source` are kept; the caller keeps
    /// that input alive and unchanged while the memo is in use.
    public final class PackMemo: @unchecked Sendable {
        struct Key: Hashable { let transposed: Bool, rows: Int, cols: Int, leading: Int, round: Bool }
        public let source: UnsafePointer<Float>
        private var packedA: [Key: PackedA] = [:], packedB: [Key: PackedB] = [:]

        public init(source: UnsafePointer<Float>) { self.source = source }

        func packedA(_ a: UnsafePointer<Float>, transA: Bool, m: Int, k: Int, lda: Int, round: Bool,
                     _ make: () -> PackedA) -> PackedA {
            Self.shared(a == source, Key(transposed: transA, rows: m, cols: k, leading: lda, round: round), in: &packedA, make)
        }

        func packedB(_ b: UnsafePointer<Float>, transB: Bool, k: Int, n: Int, ldb: Int, round: Bool,
                     _ make: () -> PackedB) -> PackedB {
            Self.shared(b == source, Key(transposed: transB, rows: k, cols: n, leading: ldb, round: round), in: &packedB, make)
        }

        /// The packing kept under `key` when the operand is the source (made and kept the first
        /// time), else one made for this product alone.
        private static func shared<P>(_ isSource: Bool, _ key: Key, in table: inout [Key: P], _ make: () -> P) -> P {
            guard isSource else { return make() }
            if let hit = table[key] { return hit }
            let made = make()
            table[key] = made
            return made
        }
    }

    /// y = x rounded to BF16 as `Rounder(format: .bf16)` rounds (subnormals kept, overflow to
    /// ±inf, NaN made quiet): sixteen values at a time by the processor's conversion where all
    /// are finite and zero or normal. Requires `hardware`.
    static func roundExactly(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        plab_bf16_round_exact(x, y, count)
    }

    /// y = x rounded to BF16 (nearest even) the way the fused epilogue rounds; subnormal x is
    /// read as zero (the product never produces one). Requires `available`.
    public static func round(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        plab_bf16_round(x, y, count)
    }
}

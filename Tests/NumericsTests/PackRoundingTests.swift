import CBF16
import Numerics
import Testing

/// The native BF16 kernel's packers, rounding as they pack, and `Rounder`'s BF16 rounding of
/// buffers (which uses the same instructions), against `Rounder`'s rounding of one value
/// on every 16-bit high half with the low halves that decide a rounding (zero, the smallest,
/// just below a tie, the tie, just above, the largest): all signs, zeros, subnormals, normals,
/// values that overflow, infinities and NaNs. Consecutive high halves lie side by side in
/// memory, so most sixteen-value vectors are all normal (the packers' one-instruction path)
/// and the rest mix in subnormals, infinities or NaNs (their exact path); both must give
/// Rounder's bits and the counts `Quantization` keeps.
@Suite(.enabled(if: BF16Kernel.available, "this processor has no AVX512_BF16 instructions"))
struct PackRoundingTests {
    static let lows: [UInt32] = [0x0000, 0x0001, 0x7fff, 0x8000, 0x8001, 0xffff]
    /// Value index = low half's index · 65536 + high half.
    static let values: [Float] = lows.flatMap { low in (0..<65536).map { Float(bitPattern: UInt32($0) << 16 | low) } }

    /// Each value's expected BF16 half, and the counts: finite values that became infinite,
    /// and NaN and infinite values.
    static let expected: (halves: [UInt16], overflowed: Int, nonFinite: Int) = {
        let bf16 = Rounder(format: .bf16)
        var halves: [UInt16] = [], overflowed = 0, nonFinite = 0
        for x in values {
            let r = bf16.round(x)
            halves.append(UInt16(r.bitPattern >> 16))
            if !x.isFinite { nonFinite += 1 } else if r.isInfinite { overflowed += 1 }
        }
        return (halves, overflowed, nonFinite)
    }()

    /// The BF16 half of op(X)[row][kk] in a packing of `rows` rows per panel (8 for A, with the
    /// row across the panel's words; 32 for B, with op(B)'s column there).
    static func half(_ words: [UInt32], panel: Int, pairs: Int, index: Int, kk: Int) -> UInt16 {
        let (q, j) = index.quotientAndRemainder(dividingBy: panel)
        let word = words[(q * pairs + kk / 2) * panel + j]
        return UInt16(truncatingIfNeeded: kk % 2 == 0 ? word : word >> 16)
    }

    /// op(A) (m × k) stored m × k (rows of k) or k × m (four panels side by side); op(B) (k × n)
    /// stored k × n (rows of n) or n × k (rows of k).
    @Test(arguments: [(true, false), (true, true), (false, false), (false, true)])
    func packingEqualsTheRounder(operand: (isA: Bool, transposed: Bool)) {
        let (isA, transposed) = operand
        // rows: op(X)'s rows for A, its columns for B, laid across a panel's words.
        let rows = isA ? (transposed ? 64 : 48) : (transposed ? 48 : 64), k = Self.values.count / rows
        let panel = isA ? 8 : 32, pairs = (k + 1) / 2
        // Stored with rows of k when A is not transposed or B is; else rows of `rows`.
        let rowsOfK = isA != transposed
        var words = [UInt32](repeating: 0xdead_beef, count: (rows + panel - 1) / panel * panel * pairs)
        var counts = [Int](repeating: 0, count: 2)
        Self.values.withUnsafeBufferPointer { x in
            if isA {
                plab_bf16_pack_a(x.baseAddress!, rowsOfK ? k : rows, transposed ? 1 : 0, Int32(rows), Int32(k), 0, Int32(rows),
                                 &words, 1, &counts)
            } else {
                plab_bf16_pack_b(x.baseAddress!, rowsOfK ? k : rows, transposed ? 1 : 0, Int32(k), Int32(rows), 0, Int32(rows),
                                 &words, 1, &counts)
            }
        }
        var wrong = 0
        for index in 0..<rows {
            for kk in 0..<k where Self.half(words, panel: panel, pairs: pairs, index: index, kk: kk)
                != Self.expected.halves[rowsOfK ? index * k + kk : kk * rows + index] { wrong += 1 }
        }
        #expect(wrong == 0, "\(wrong) halves differ from the Rounder's")
        #expect(counts == [Self.expected.overflowed, Self.expected.nonFinite])
        #expect(Self.expected.overflowed > 0 && Self.expected.nonFinite > 0)
    }

    /// `Rounder(format: .bf16)` on buffers (on this processor by the conversion instruction
    /// where it may) gives its own one-value rounding's bits, from an unaligned start and with
    /// a tail shorter than sixteen.
    @Test func theRounderOnBuffersIsItsOneValueRounding() {
        let bf16 = Rounder(format: .bf16)
        let start = 3, count = Self.values.count - 8
        var out = [Float](repeating: 0, count: count)
        Self.values.withUnsafeBufferPointer { bf16.round($0.baseAddress! + start, into: &out, count: count) }
        var wrong = 0
        for i in 0..<count where out[i].bitPattern != UInt32(Self.expected.halves[start + i]) << 16 { wrong += 1 }
        #expect(wrong == 0, "\(wrong) values differ from the one-value rounding")
    }
}

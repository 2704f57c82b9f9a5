import Numerics
import Testing

/// Work cut between threads gives what one thread gives.
@Suite struct ParallelTests {
    /// The ranges cover every item once, in order, each a run of items, for any thread count.
    @Test(arguments: [1, 2, 3, 8])
    func rangesCoverEveryItemOnce(threads: Int) {
        for count in [1, 2, 5, 64, 1000] {
            let seen = UnsafeMutablePointer<Int>.allocate(capacity: count)
            defer { seen.deallocate() }
            seen.update(repeating: 0, count: count)
            let shared = UncheckedSendable(seen)
            forEachRange(count, threads: threads, minimumCost: 0, cost: { $0 % 7 + 1 }) { range in
                for i in range { shared.value[i] += 1 }
            }
            #expect((0..<count).allSatisfy { seen[$0] == 1 }, "\(count) items on \(threads) threads")
        }
    }

    /// A buffer large enough to be rounded on several threads gives, value by value, what the
    /// scalar rounding gives (the stochastic draw of element i at offset + i).
    @Test func largeBuffersRoundAsEachValueDoes() {
        let count = (1 << 18) + 77
        var rng = RandomStream(seed: 4, name: "values")
        let x = (0..<count).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()) & 0x7fff_ffff | 0x3000_0000) }
        let stream = RandomStream(seed: 9, name: "sr")
        for mode in [RoundingMode.nearestEven, .towardZero, .stochastic] {
            let rounder = Rounder(format: .bf16, mode: mode)
            var y = [Float](repeating: .nan, count: count)
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    rounder.round(xp.baseAddress!, into: yp.baseAddress!, count: count, stream: stream, offset: 5)
                }
            }
            let expected = (0..<count).map { rounder.round(x[$0], draw: stream.draw(at: 5 + UInt64($0))) }
            #expect(y.map(\.bitPattern) == expected.map(\.bitPattern), "\(mode)")
        }
    }
}

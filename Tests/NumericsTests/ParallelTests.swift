#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
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

    /// The worker pool runs every iteration exactly once, whatever the count; calls made from
    /// inside an iteration (nested) and from several threads at once all complete, each
    /// iteration once.
    @Test func poolRunsEveryIterationOnceNestedAndFromSeveralThreads() async {
        for count in [0, 1, 2, 3, 7, 64, 1000] {
            let seen = UnsafeMutablePointer<Int>.allocate(capacity: max(1, count))
            defer { seen.deallocate() }
            seen.update(repeating: 0, count: max(1, count))
            let shared = UncheckedSendable(seen)
            parallelPerform(count) { shared.value[$0] += 1 }
            #expect((0..<count).allSatisfy { seen[$0] == 1 }, "\(count) iterations")
        }
        // Nested: each outer iteration runs an inner job of 5 over its own row.
        let rows = 6, inner = 5
        let grid = UnsafeMutablePointer<Int>.allocate(capacity: rows * inner)
        defer { grid.deallocate() }
        grid.update(repeating: 0, count: rows * inner)
        let sharedGrid = UncheckedSendable(grid)
        parallelPerform(rows) { r in parallelPerform(inner) { sharedGrid.value[r * inner + $0] += 1 } }
        #expect((0..<(rows * inner)).allSatisfy { grid[$0] == 1 })
        // Several callers at once: each job's sums are its own.
        let sums = await withTaskGroup(of: (Int, Int).self) { group in
            for caller in 0..<4 {
                group.addTask {
                    let cells = UnsafeMutablePointer<Int>.allocate(capacity: 500)
                    defer { cells.deallocate() }
                    let shared = UncheckedSendable(cells)
                    var total = 0
                    for _ in 0..<50 {
                        parallelPerform(500) { shared.value[$0] = $0 * (caller + 1) }
                        total += (0..<500).reduce(0) { $0 + cells[$1] }
                    }
                    return (caller, total)
                }
            }
            var out: [Int: Int] = [:]
            for await (caller, total) in group { out[caller] = total }
            return out
        }
        for caller in 0..<4 { #expect(sums[caller] == 50 * 124_750 * (caller + 1)) }
    }

    /// With two or more threads, a job's iterations run on more than one thread (a worker
    /// takes part): some of 100 tries of two long iterations must show two threads.
    @Test func poolRunsIterationsOnAWorker() {
        guard ParallelWork.threads > 1 else { return }
        let ids = UnsafeMutablePointer<pthread_t>.allocate(capacity: 2)
        defer { ids.deallocate() }
        let shared = UncheckedSendable(ids)
        var sawTwo = false
        for _ in 0..<100 where !sawTwo {
            parallelPerform(2) { i in
                var x = 0.0
                for j in 0..<200_000 { x += Double(j % 7) }
                if x > 0 { shared.value[i] = pthread_self() }
            }
            sawTwo = pthread_equal(ids[0], ids[1]) == 0
        }
        #expect(sawTwo)
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

    /// Non-finite values counted in chunks on the threads: the plain count, whatever the size
    /// (one chunk, a chunk and one, many), with NaNs and infinities of both signs at chunk
    /// edges, at the ends and scattered.
    @Test func nonFiniteCountsAreThePlainCount() {
        var rng = RandomStream(seed: 12, name: "non-finite")
        for count in [1, 17, 1 << 15, (1 << 15) + 1, (1 << 17) + 3, 300_001] {
            var x = (0..<count).map { _ in Float(rng.nextUnit() * 2 - 1) }
            #expect(x.withUnsafeBufferPointer { countNonFinite($0.baseAddress!, count) } == 0, "\(count) finite values")
            // One non-finite value alone, at each of these places, is found.
            for place in [0, count / 2, count - 1] {
                var one = x
                one[place] = .infinity
                #expect(one.withUnsafeBufferPointer { countNonFinite($0.baseAddress!, count) } == 1, "\(count) values, inf at \(place)")
            }
            let specials: [Float] = [.nan, -.nan, .infinity, -.infinity, .signalingNaN]
            var places = [0, count - 1, (1 << 15) - 1, 1 << 15, (1 << 16) + 1].filter { (0..<count).contains($0) }
            for _ in 0..<(count / 1000) { places.append(Int(rng.next() % UInt64(count))) }
            for (i, place) in places.enumerated() { x[place] = specials[i % specials.count] }
            // Huge finite values are not counted.
            if count > 2 { x[1] = .greatestFiniteMagnitude }
            let expected = x.reduce(0) { $0 + ($1.isFinite ? 0 : 1) }
            #expect(x.withUnsafeBufferPointer { countNonFinite($0.baseAddress!, count) } == expected, "\(count) values")
        }
    }
}

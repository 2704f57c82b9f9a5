// Work cut between threads where it pays, with results that do not depend on the cut.

import Dispatch

/// Runs `body` over contiguous ranges of `0..<count` that together cover it, one range per
/// thread, each with about the same total `cost`; on the calling thread alone when there is
/// one thread or when the total cost is below `minimumCost`. `body` must write only what its
/// own items own: then the results are the same whatever the threads, and they are (the
/// callers' items are independent sequences or rows).
public func forEachRange(_ count: Int, threads: Int = ParallelWork.threads, minimumCost: Int,
                         cost: (Int) -> Int, _ body: (Range<Int>) -> Void) {
    guard count > 0 else { return }
    var prefix = [Int](repeating: 0, count: count + 1)
    for i in 0..<count { prefix[i + 1] = prefix[i] + max(0, cost(i)) }
    let total = prefix[count]
    let pieces = min(threads, count)
    guard pieces > 1, total >= minimumCost else { body(0..<count); return }
    // Boundaries where the running cost crosses each share.
    var bounds = [0]
    var i = 0
    for piece in 1..<pieces {
        let target = total * piece / pieces
        while i < count && prefix[i] < target { i += 1 }
        bounds.append(max(bounds.last!, i))
    }
    bounds.append(count)
    let cuts = bounds
    withoutActuallyEscaping(body) { body in
        let shared = UncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: pieces) { p in
            if cuts[p] < cuts[p + 1] { shared.value(cuts[p]..<cuts[p + 1]) }
        }
    }
}

/// The threads the lab's own kernels use, read once: `PLAB_THREADS`, else the processors.
public enum ParallelWork {
    public static let threads = PortableBackend.activeProcessorCount
}

/// A value handed to other threads by a caller that guarantees they use it safely (each
/// writes only its own part of what it points to, and the caller waits for all of them).
public struct UncheckedSendable<Value>: @unchecked Sendable {
    public let value: Value
    public init(_ value: Value) { self.value = value }
}

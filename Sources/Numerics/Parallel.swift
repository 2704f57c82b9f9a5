// Work cut between threads where it pays, with results that do not depend on the cut.

import CPool

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
    parallelPerform(pieces) { p in
        if cuts[p] < cuts[p + 1] { body(cuts[p]..<cuts[p + 1]) }
    }
}

/// Runs `body(i)` for every i in 0..<iterations, on the calling thread and the lab's worker
/// threads (CPool: a worker polls briefly for the next job, then sleeps), and returns when all
/// have returned. `body` must write only what iteration i owns. A call made while another
/// runs (nested, or from a second thread) runs its iterations on its own thread, in order:
/// the results are the same either way.
public func parallelPerform(_ iterations: Int, _ body: (Int) -> Void) {
    guard iterations > 1 else {
        if iterations == 1 { body(0) }
        return
    }
    _ = ParallelWork.pool
    withoutActuallyEscaping(body) { body in
        var job = body
        withUnsafeMutablePointer(to: &job) { pointer in
            plab_pool_run(iterations, { context, index in
                context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(index)
            }, pointer)
        }
    }
}

/// C cut into `rowPieces` × `colPieces` rectangles of whole tiles, as even as possible, one
/// per thread. Which thread computes an element changes nothing in its value: each element's
/// sum is computed whole by one thread.
struct ProductGrid: Sendable {
    let m: Int, n: Int
    /// The tile at whose edges C is cut: rows, columns.
    let tile: (rows: Int, cols: Int)
    private(set) var rowPieces = 1, colPieces = 1
    var pieces: Int { rowPieces * colPieces }

    /// `rowsOnTie`: between cuts with equally many tiles in the largest piece, prefer more row
    /// pieces (a row piece reuses its packed B panel over more rows); false prefers column
    /// pieces (each thread then reads only its share of B, which pays when B is the larger
    /// operand, as the weights of a decode step).
    init(m: Int, n: Int, k: Int, threads: Int, parallelThreshold: Int, tile: (rows: Int, cols: Int), rowsOnTie: Bool = true) {
        self.m = m
        self.n = n
        self.tile = tile
        guard threads > 1, m * n * k >= parallelThreshold else { return }
        let tilesM = (m + tile.rows - 1) / tile.rows, tilesN = (n + tile.cols - 1) / tile.cols
        // The fewest tiles in the largest piece; on a tie, fewer pieces, then more row (or
        // column) pieces.
        var best = (tiles: tilesM * tilesN, pieces: 1)
        for pm in 1...min(threads, tilesM) {
            for pn in 1...min(threads / pm, tilesN) {
                let tiles = ((tilesM + pm - 1) / pm) * ((tilesN + pn - 1) / pn)
                if tiles < best.tiles || (tiles == best.tiles && (pm * pn < best.pieces || (pm * pn == best.pieces && rowsOnTie))) {
                    best = (tiles, pm * pn)
                    (rowPieces, colPieces) = (pm, pn)
                }
            }
        }
    }

    /// The rows and columns of piece `index`: never empty, since a side is cut into at most
    /// as many pieces as it has tiles.
    func region(_ index: Int) -> (rows: Range<Int>, cols: Range<Int>) {
        func cut(_ i: Int, _ pieces: Int, _ size: Int, _ total: Int) -> Range<Int> {
            let tiles = (total + size - 1) / size
            return min(total, tiles * i / pieces * size)..<min(total, tiles * (i + 1) / pieces * size)
        }
        return (cut(index / colPieces, rowPieces, tile.rows, m), cut(index % colPieces, colPieces, tile.cols, n))
    }
}

/// The threads the lab's own kernels use, read once: `PLAB_THREADS`, else the processors.
public enum ParallelWork {
    public static let threads = PortableBackend.activeProcessorCount

    /// The worker threads, started at the first parallel job: as many as the most threads
    /// any product or pass may use, less the caller.
    static let pool: Void = plab_pool_start(Int32(max(threads, LibraryBackend.environmentThreads)))

    /// Jobs shared with a worker and worker sleeps since the start (tests, benchmarks).
    public static var sharedJobs: Int { plab_pool_shared_jobs() }
    public static var sleeps: Int { plab_pool_sleeps() }
}

/// A value handed to other threads by a caller that guarantees they use it safely (each
/// writes only its own part of what it points to, and the caller waits for all of them).
public struct UncheckedSendable<Value>: @unchecked Sendable {
    public let value: Value
    public init(_ value: Value) { self.value = value }
}

/// Runs `body` over chunks of at most `chunk` elements of 0..<count, the chunks cut between
/// threads (on the calling thread alone below `minimum` elements): for element-wise work, each
/// element computed on its own, so the results are the same whatever the threads. A chunk is
/// small enough to stay in the first-level cache between two passes over it.
public func forEachChunk(_ count: Int, chunk: Int = 4096, minimum: Int = 1 << 16, _ body: (Range<Int>) -> Void) {
    let chunks = (count + chunk - 1) / chunk
    forEachRange(chunks, minimumCost: (minimum + chunk - 1) / chunk, cost: { _ in 1 }) { range in
        for c in range { body(c * chunk..<min(count, (c + 1) * chunk)) }
    }
}

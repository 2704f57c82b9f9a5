// The BPE model: a word (one piece from the pre-tokenizer) to ids.
//
// A word starts as one symbol per scalar: the scalar's token, else (with byte fallback) the
// `<0xXX>` token of each of its UTF-8 bytes, else the unknown token (runs of them fused into
// one with `fuse_unk`), else nothing. Then merges join neighbours, always the pair of lowest
// rank first, and among equal ranks the leftmost, until no neighbouring pair has a merge:
//
//     "lower" with merges 1: (l, o)  2: (lo, w)  3: (e, r)
//     l o w e r → lo w e r → low e r → low er
//
// This is the library's `Word.merge_all` (without dropout), with its priority queue and its
// check that a queued pair is still there; a word's ids are kept for the rest of the `encode`
// call, since words repeat.

/// A BPE model read from tokenizer.json.
struct BPEModel: Sendable {
    /// Token → id.
    let vocabulary: [[Unicode.Scalar]: Int]
    /// Id → token.
    let tokens: [Int: String]
    /// (left id, right id) → (rank, id of the merged token); see `pairKey`.
    let merges: [UInt64: Merge]
    /// The id of each token that is one scalar.
    let scalarIDs: [Unicode.Scalar: Int]
    /// With byte fallback, the id of `<0xXX>` for each byte value that has one.
    let byteIDs: [Int?]?
    /// The unknown token's id, when the model names one.
    let unknownID: Int?
    /// Whether neighbouring unknown scalars become one unknown token.
    let fuseUnknown: Bool
    /// Whether a word that is itself a token is that token, merges or not.
    let ignoreMerges: Bool

    struct Merge: Sendable {
        var rank: Int
        var id: Int
    }

    /// Words already tokenized: the scalars and their ids.
    typealias Cache = [[Unicode.Scalar]: [Int]]

    static func pairKey(_ left: Int, _ right: Int) -> UInt64 {
        UInt64(UInt32(truncatingIfNeeded: left)) << 32 | UInt64(UInt32(truncatingIfNeeded: right))
    }

    /// The largest id of the vocabulary (-1 when empty).
    var largestID: Int { tokens.keys.max() ?? -1 }

    func token(for id: Int) -> String? { tokens[id] }

    func id(for token: [Unicode.Scalar]) -> Int? { vocabulary[token] }

    /// Appends the ids of one word.
    func tokenize(_ word: [Unicode.Scalar], into ids: inout [Int], cache: inout Cache) {
        if word.isEmpty { return }
        if let known = cache[word] {
            ids += known
            return
        }
        if ignoreMerges, let id = vocabulary[word] {
            ids.append(id)
            cache[word] = [id]
            return
        }
        var symbols = Symbols(capacity: word.count)
        var unknown: (id: Int, length: Int)?
        for u in word {
            let length = u.utf8.count
            if let id = scalarIDs[u] {
                if let pending = unknown {
                    symbols.append(pending.id, length: pending.length)
                    unknown = nil
                }
                symbols.append(id, length: length)
                continue
            }
            if let byteIDs {
                let bytes = u.utf8.map { byteIDs[Int($0)] }
                if bytes.allSatisfy({ $0 != nil }) {
                    // As in the library, a pending unknown token waits until after these.
                    for id in bytes { symbols.append(id!, length: 1) }
                    continue
                }
            }
            if let unknownID {
                if let pending = unknown {
                    if fuseUnknown {
                        unknown = (pending.id, pending.length + length)
                    } else {
                        symbols.append(pending.id, length: pending.length)
                        unknown = (unknownID, length)
                    }
                } else {
                    unknown = (unknownID, length)
                }
            }
        }
        if let pending = unknown { symbols.append(pending.id, length: pending.length) }
        symbols.mergeAll(merges)
        let result = symbols.ids
        ids += result
        cache[word] = result
    }
}

/// A word's symbols as a linked list over arrays (the library's `Word`).
private struct Symbols {
    var id: [Int] = []
    /// UTF-8 length of what the symbol covers; 0 once merged into its left neighbour.
    var length: [Int] = []
    var previous: [Int] = []
    var next: [Int] = []

    init(capacity: Int) {
        id.reserveCapacity(capacity)
        length.reserveCapacity(capacity)
        previous.reserveCapacity(capacity)
        next.reserveCapacity(capacity)
    }

    mutating func append(_ symbol: Int, length byteCount: Int) {
        let n = id.count
        if n > 0 { next[n - 1] = n }
        id.append(symbol)
        length.append(byteCount)
        previous.append(n - 1)
        next.append(-1)
    }

    /// The ids left, in order.
    var ids: [Int] { id.indices.filter { length[$0] > 0 }.map { id[$0] } }

    /// Applies merges, lowest rank first and leftmost among equals, until none applies.
    mutating func mergeAll(_ merges: [UInt64: BPEModel.Merge]) {
        let n = id.count
        guard n > 1 else { return }
        var queue = MergeQueue()
        for i in 0..<(n - 1) {
            if let m = merges[BPEModel.pairKey(id[i], id[i + 1])] {
                queue.push(.init(position: i, rank: m.rank, id: m.id))
            }
        }
        while let top = queue.pop() {
            let p = top.position
            // Skip a queued pair that is gone: its left symbol was merged away, it has no
            // right neighbour any more, or the pair there now merges into something else.
            if length[p] == 0 || next[p] == -1 { continue }
            let right = next[p]
            guard let m = merges[BPEModel.pairKey(id[p], id[right])], m.id == top.id else { continue }

            id[p] = top.id
            length[p] += length[right]
            next[p] = next[right]
            length[right] = 0
            if next[right] >= 0 { previous[next[right]] = p }

            if previous[p] >= 0, let m = merges[BPEModel.pairKey(id[previous[p]], id[p])] {
                queue.push(.init(position: previous[p], rank: m.rank, id: m.id))
            }
            if next[p] >= 0, let m = merges[BPEModel.pairKey(id[p], id[next[p]])] {
                queue.push(.init(position: p, rank: m.rank, id: m.id))
            }
        }
    }
}

/// A binary heap of candidate merges: the lowest rank first, the leftmost among equal ranks.
private struct MergeQueue {
    struct Entry {
        var position: Int
        var rank: Int
        var id: Int

        func precedes(_ other: Entry) -> Bool {
            rank != other.rank ? rank < other.rank : position < other.position
        }
    }

    private var heap: [Entry] = []

    mutating func push(_ entry: Entry) {
        heap.append(entry)
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].precedes(heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Entry? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var parent = 0
            while true {
                let left = 2 * parent + 1, right = left + 1
                var first = parent
                if left < heap.count && heap[left].precedes(heap[first]) { first = left }
                if right < heap.count && heap[right].precedes(heap[first]) { first = right }
                if first == parent { break }
                heap.swapAt(parent, first)
                parent = first
            }
        }
        return top
    }
}

// Pre-tokenizers: how a normalized stretch of text is cut into the words the model merges
// within, and (ByteLevel) how a word's bytes are written in the byte alphabet.

/// What a split does with the stretches its pattern matches (the library's
/// `SplitDelimiterBehavior`). Splitting "the-final--countdown" on "-":
///
/// | behavior | pieces |
/// |---|---|
/// | `removed` | "the" "final" "countdown" |
/// | `isolated` | "the" "-" "final" "-" "-" "countdown" |
/// | `mergedWithPrevious` | "the-" "final-" "-" "countdown" |
/// | `mergedWithNext` | "the" "-final" "-" "-countdown" |
/// | `contiguous` | "the" "-" "final" "--" "countdown" |
enum SplitBehavior: String, Sendable, CaseIterable {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"
}

/// Where Metaspace puts a replacement character in front of a piece that lacks one.
enum PrependScheme: String, Sendable, CaseIterable {
    /// In front of every piece.
    case always
    /// In front of the piece that begins the input only.
    case first
    /// Nowhere.
    case never
}

/// A pre-tokenizer of tokenizer.json (Loading.swift reads it).
indirect enum PreTokenizer: Sendable {
    /// `ByteLevel`: a space in front of a piece that lacks one (`addPrefixSpace`), GPT-2's
    /// split (`useRegex`), then each piece's UTF-8 bytes written in `ByteLevelAlphabet`.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    /// `Split`: cut where the pattern matches (or, with `invert`, where it does not).
    case split(SplitPattern, SplitBehavior, invert: Bool)
    /// `Metaspace`: spaces become `replacement`, one is prepended per the scheme, and with
    /// `split` each replacement begins a new piece.
    case metaspace(replacement: Unicode.Scalar, prependScheme: PrependScheme, split: Bool)
    /// `Digits`: each number scalar (\p{N}) apart (`individual`) or runs of them apart.
    case digits(individual: Bool)
    /// `Sequence`: each in turn, on every piece the previous one gave.
    case sequence([PreTokenizer])

    /// The pieces, in order; empty pieces are dropped, as the library drops them.
    func preTokenize(_ pieces: [Piece]) -> [Piece] {
        switch self {
        case .byteLevel(let addPrefixSpace, let useRegex):
            return pieces.flatMap { piece -> [Piece] in
                var piece = piece
                if addPrefixSpace && piece.scalars.first != " " { piece.scalars.insert(" ", at: 0) }
                let words = useRegex ? splitPiece(piece, at: SplitPattern.gpt2.matches(in: piece.scalars), .isolated) : [piece]
                return words.map { Piece(scalars: ByteLevelAlphabet.encode($0.scalars), atStart: $0.atStart) }
            }
        case .split(let pattern, let behavior, let invert):
            return pieces.flatMap { splitPiece($0, at: pattern.matches(in: $0.scalars), behavior, invert: invert) }
        case .metaspace(let replacement, let scheme, let splits):
            return pieces.flatMap { piece -> [Piece] in
                var piece = piece
                piece.scalars = piece.scalars.map { $0 == " " ? replacement : $0 }
                let prepend = switch scheme {
                case .always: true
                case .first: piece.atStart
                case .never: false
                }
                if prepend && piece.scalars.first != replacement { piece.scalars.insert(replacement, at: 0) }
                guard splits else { return [piece] }
                return splitPiece(piece, at: eachScalar(of: piece.scalars) { $0 == replacement }, .mergedWithNext)
            }
        case .digits(let individual):
            return pieces.flatMap { piece in
                splitPiece(piece, at: eachScalar(of: piece.scalars) { ScalarClass.of($0).contains(.number) },
                      individual ? .isolated : .contiguous)
            }
        case .sequence(let preTokenizers):
            return preTokenizers.reduce(pieces) { $1.preTokenize($0) }
        }
    }
}

/// Each scalar that satisfies `test`, as a match of its own (the library's pattern of a
/// character or of a predicate: two adjacent ones are two matches).
func eachScalar(of text: [Unicode.Scalar], where test: (Unicode.Scalar) -> Bool) -> [Range<Int>] {
    text.indices.filter { test(text[$0]) }.map { $0..<($0 + 1) }
}

/// A piece cut at `matches` the way `behavior` says (the library's `NormalizedString.split`):
/// the matches and the stretches between them cover the piece; `invert` swaps which are
/// which; the behavior keeps, drops or joins them; empty pieces are dropped.
func splitPiece(_ piece: Piece, at matches: [Range<Int>], _ behavior: SplitBehavior, invert: Bool = false) -> [Piece] {
    let n = piece.scalars.count
    // The whole piece as (stretch, is a match), in order.
    var marked: [(range: Range<Int>, isMatch: Bool)] = []
    var previous = 0
    for m in matches {
        if previous != m.lowerBound { marked.append((previous..<m.lowerBound, invert)) }
        marked.append((m, !invert))
        previous = m.upperBound
    }
    if previous != n { marked.append((previous..<n, invert)) }

    // (stretch, to be removed)
    var kept: [(range: Range<Int>, remove: Bool)] = []
    switch behavior {
    case .isolated:
        kept = marked.map { ($0.range, false) }
    case .removed:
        kept = marked.map { ($0.range, $0.isMatch) }
    case .contiguous:
        var previousMatch = false
        for (range, isMatch) in marked {
            if isMatch == previousMatch, let last = kept.last {
                kept[kept.count - 1].range = last.range.lowerBound..<range.upperBound
            } else {
                kept.append((range, false))
            }
            previousMatch = isMatch
        }
    case .mergedWithPrevious:
        var previousMatch = false
        for (range, isMatch) in marked {
            if isMatch && !previousMatch, let last = kept.last {
                kept[kept.count - 1].range = last.range.lowerBound..<range.upperBound
            } else {
                kept.append((range, false))
            }
            previousMatch = isMatch
        }
    case .mergedWithNext:
        // From the end: a match joins the stretch after it, unless that one is a match too.
        var nextMatch = false
        for (range, isMatch) in marked.reversed() {
            if isMatch && !nextMatch, let last = kept.last {
                kept[kept.count - 1].range = range.lowerBound..<last.range.upperBound
            } else {
                kept.append((range, false))
            }
            nextMatch = isMatch
        }
        kept.reverse()
    }
    return kept.compactMap { range, remove in
        guard !remove, !range.isEmpty else { return nil }
        return Piece(scalars: Array(piece.scalars[range]), atStart: piece.atStart && range.lowerBound == 0)
    }
}

/// GPT-2's byte alphabet: each of the 256 byte values written as a printable character, so a
/// byte-level vocabulary is text.
///
/// The bytes that are printable Latin-1 characters stand for themselves: "!"…"~"
/// (0x21–0x7E), "¡"…"¬" (0xA1–0xAC) and "®"…"ÿ" (0xAE–0xFF). The other 68 (controls, space,
/// DEL, NBSP, soft hyphen) take U+0100, U+0101, … in byte order: 0x00 → "Ā", 0x20 (space)
/// → "Ġ", 0x0A (line feed) → "Ċ", 0xAD → "Ń".
public enum ByteLevelAlphabet {
    /// The character standing for each byte value.
    public static let scalars: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: "\0", count: 256)
        var next: UInt32 = 0x100
        for byte in 0..<256 {
            switch byte {
            case 0x21...0x7E, 0xA1...0xAC, 0xAE...0xFF:
                table[byte] = Unicode.Scalar(UInt8(byte))
            default:
                table[byte] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return table
    }()

    /// The byte a character stands for, indexed by scalar value (all are below U+0144).
    private static let bytes: [UInt8?] = {
        var inverse = [UInt8?](repeating: nil, count: 0x144)
        for (byte, scalar) in scalars.enumerated() { inverse[Int(scalar.value)] = UInt8(byte) }
        return inverse
    }()

    /// The byte a character stands for, or nil for a character outside the alphabet.
    public static func byte(for scalar: Unicode.Scalar) -> UInt8? {
        scalar.value < 0x144 ? bytes[Int(scalar.value)] : nil
    }

    /// A text's UTF-8 bytes, written in the alphabet ("é" → "Ã©").
    static func encode(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(text.count)
        for u in text {
            if u.isASCII {
                out.append(scalars[Int(u.value)])
            } else {
                for byte in u.utf8 { out.append(scalars[Int(byte)]) }
            }
        }
        return out
    }
}

// Normalizers: what happens to each stretch of text between added tokens before it is cut
// into words. The ones small open models use: Unicode normal forms (Qwen2's NFC), and
// SentencePiece-style Llama's `Sequence[Prepend("▁"), Replace(" ", "▁")]`.

import Foundation

/// A normalizer of tokenizer.json (Loading.swift reads it).
indirect enum Normalizer: Sendable {
    /// A Unicode normal form (UAX #15), computed by Foundation.
    case nfc, nfd, nfkc, nfkd
    /// `Prepend`: the string goes in front of a non-empty text ("Hi" → "▁Hi"; "" stays "").
    case prepend([Unicode.Scalar])
    /// `Replace` with a `String` pattern: every occurrence, leftmost first and not
    /// overlapping, becomes `content` ("a  b" with "  " → "_" is "a_b"; "   " is "_ ").
    case replace(pattern: [Unicode.Scalar], content: [Unicode.Scalar])
    /// `Sequence`: each in turn.
    case sequence([Normalizer])

    func normalize(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        switch self {
        case .nfc:
            // Below U+0300 nothing composes (every second scalar of a canonical composition is
            // U+0300 or above) and every scalar is already its own NFC.
            if text.allSatisfy({ $0.value < 0x300 }) { return text }
            return Array(String(scalars: text).precomposedStringWithCanonicalMapping.unicodeScalars)
        case .nfd:
            if text.allSatisfy(\.isASCII) { return text }
            return Array(String(scalars: text).decomposedStringWithCanonicalMapping.unicodeScalars)
        case .nfkc:
            if text.allSatisfy(\.isASCII) { return text }
            return Array(String(scalars: text).precomposedStringWithCompatibilityMapping.unicodeScalars)
        case .nfkd:
            if text.allSatisfy(\.isASCII) { return text }
            return Array(String(scalars: text).decomposedStringWithCompatibilityMapping.unicodeScalars)
        case .prepend(let prefix):
            return text.isEmpty ? text : prefix + text
        case .replace(let pattern, let content):
            return replacing(pattern, with: content, in: text)
        case .sequence(let normalizers):
            return normalizers.reduce(text) { $1.normalize($0) }
        }
    }
}

/// Every occurrence of a non-empty `pattern` in `text`, leftmost first and not overlapping
/// (the way a regular expression of the literal finds them), replaced by `content`.
func replacing(_ pattern: [Unicode.Scalar], with content: [Unicode.Scalar], in text: [Unicode.Scalar]) -> [Unicode.Scalar] {
    let found = occurrences(of: pattern, in: text)
    if found.isEmpty { return text }
    var out: [Unicode.Scalar] = []
    out.reserveCapacity(text.count + found.count * max(0, content.count - pattern.count))
    var last = 0
    for range in found {
        out += text[last..<range.lowerBound]
        out += content
        last = range.upperBound
    }
    out += text[last...]
    return out
}

/// Where a non-empty `pattern` occurs in `text`: leftmost first, each search starting after
/// the previous occurrence.
func occurrences(of pattern: [Unicode.Scalar], in text: [Unicode.Scalar]) -> [Range<Int>] {
    guard let first = pattern.first, pattern.count <= text.count else { return [] }
    var found: [Range<Int>] = []
    var i = 0
    let last = text.count - pattern.count
    while i <= last {
        if text[i] == first && text[i..<(i + pattern.count)].elementsEqual(pattern) {
            found.append(i..<(i + pattern.count))
            i += pattern.count
        } else {
            i += 1
        }
    }
    return found
}

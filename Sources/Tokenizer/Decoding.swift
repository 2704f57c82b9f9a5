// Decoders: tokens back to text. Each decoder maps the list of token strings to another list
// (the library's `decode_chain`); the text is the final list joined.
//
//     byte-level:  ["Hello", "Ġw", "orld"] → ByteLevel → "Hello world"
//     Llama 2:     ["▁Hello", "▁w", "orld", "<0xF0>", "<0x9F>", "<0x91>", "<0x8D>"]
//                  → Replace("▁", " ") → ByteFallback → Fuse → Strip(" ", 1, 0) → "Hello world👍"

/// A decoder of tokenizer.json (Loading.swift reads it).
indirect enum Decoder: Sendable {
    /// `ByteLevel`: each token's characters back to the bytes they stand for
    /// (`ByteLevelAlphabet`; a token with a character outside the alphabet gives its own UTF-8),
    /// all tokens' bytes read as one UTF-8 text.
    case byteLevel
    /// `Replace` with a `String` pattern, in each token.
    case replace(pattern: [Unicode.Scalar], content: [Unicode.Scalar])
    /// `ByteFallback`: runs of `<0xXX>` tokens become the text their bytes spell, or one
    /// U+FFFD per byte when they are not UTF-8.
    case byteFallback
    /// `Fuse`: all tokens into one.
    case fuse
    /// `Strip`: up to `start` leading and `stop` trailing `content` characters off each token.
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    /// `Metaspace`: the replacement character back to a space; in the first token it is
    /// removed instead, unless the scheme is `never`.
    case metaspace(replacement: Unicode.Scalar, prependScheme: PrependScheme)
    /// `Sequence`: each in turn.
    case sequence([Decoder])

    func decodeChain(_ tokens: [String]) -> [String] {
        switch self {
        case .byteLevel:
            var bytes: [UInt8] = []
            for token in tokens {
                let scalars = Array(token.unicodeScalars)
                let mapped = scalars.compactMap(ByteLevelAlphabet.byte(for:))
                if mapped.count == scalars.count {
                    bytes += mapped
                } else {
                    bytes += token.utf8
                }
            }
            return [String(decoding: bytes, as: UTF8.self)]
        case .replace(let pattern, let content):
            return tokens.map { String(scalars: replacing(pattern, with: content, in: Array($0.unicodeScalars))) }
        case .byteFallback:
            var out: [String] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                let text = String(decoding: pending, as: UTF8.self)
                if text.utf8.elementsEqual(pending) {  // valid UTF-8: nothing was replaced
                    out.append(text)
                } else {
                    out += Array(repeating: "\u{FFFD}", count: pending.count)
                }
                pending.removeAll()
            }
            for token in tokens {
                if let byte = fallbackByte(token) {
                    pending.append(byte)
                } else {
                    flush()
                    out.append(token)
                }
            }
            flush()
            return out
        case .fuse:
            return [tokens.joined()]
        case .strip(let content, let start, let stop):
            return tokens.map { token in
                let scalars = Array(token.unicodeScalars)
                var from = 0
                while from < min(start, scalars.count) && scalars[from] == content { from += 1 }
                var to = scalars.count
                while scalars.count - to < stop && to > from && scalars[to - 1] == content { to -= 1 }
                return String(scalars: scalars[from..<to])
            }
        case .metaspace(let replacement, let scheme):
            return tokens.enumerated().map { i, token in
                var scalars: [Unicode.Scalar] = []
                for u in token.unicodeScalars {
                    if u != replacement {
                        scalars.append(u)
                    } else if i != 0 || scheme == .never {
                        scalars.append(" ")
                    }
                }
                return String(scalars: scalars)
            }
        case .sequence(let decoders):
            return decoders.reduce(tokens) { $1.decodeChain($0) }
        }
    }
}

/// The byte a `<0xXX>` token stands for: six bytes, "<0x", two hexadecimal digits (either
/// case; as Rust's `u8::from_str_radix` reads them, "+F" is 15 too), ">".
func fallbackByte(_ token: String) -> UInt8? {
    let bytes = Array(token.utf8)
    guard bytes.count == 6, bytes.starts(with: Array("<0x".utf8)), bytes[5] == UInt8(ascii: ">"),
          bytes[3] != UInt8(ascii: "-") else { return nil }
    return UInt8(String(decoding: bytes[3..<5], as: UTF8.self), radix: 16)
}

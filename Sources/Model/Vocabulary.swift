// Token vocabularies: small, explicit, one string per token.

import Numerics

/// A vocabulary: token strings by id, with the special tokens' ids.
public struct Vocabulary: Sendable, Hashable, Codable {
    public var tokens: [String]
    public var bos: Int32
    public var eos: Int32
    public var pad: Int32

    public init(tokens: [String], bos: Int32, eos: Int32, pad: Int32) {
        self.tokens = tokens
        self.bos = bos
        self.eos = eos
        self.pad = pad
    }

    public var count: Int { tokens.count }

    /// The lab's general-purpose vocabulary: specials, digits, operators, punctuation and
    /// lower-case letters (50 tokens).
    public static let standard: Vocabulary = {
        let specials = ["<pad>", "<bos>", "<eos>"]
        let digits = (0...9).map(String.init)
        let symbols = ["+", "-", "*", "=", "(", ")", ",", ".", "?", "|", ":"]
        let letters = "abcdefghijklmnopqrstuvwxyz".map(String.init)
        return Vocabulary(tokens: specials + digits + symbols + letters, bos: 1, eos: 2, pad: 0)
    }()

    /// The id of a token string, if it is in the vocabulary.
    public func id(of token: String) -> Int32? {
        tokens.firstIndex(of: token).map { Int32($0) }
    }

    /// Parses tokens written by the user: each word is a token string or a numeric id `#7`;
    /// a word that is not a token is split into single characters when each is one.
    public func encode(_ words: [String]) throws(NumericsError) -> [Int32] {
        var out: [Int32] = []
        for w in words {
            if w.hasPrefix("#"), let n = Int32(w.dropFirst()) {
                guard n >= 0 && Int(n) < count else {
                    throw .invalidArgument("token id \(w) out of range; the vocabulary has ids #0…#\(count - 1)")
                }
                out.append(n)
            } else if let id = id(of: w) {
                out.append(id)
            } else {
                let chars = w.map(String.init)
                let ids = chars.compactMap { id(of: $0) }
                guard ids.count == chars.count else {
                    let bad = chars.first { id(of: $0) == nil } ?? w
                    throw .invalidArgument("'\(bad)' is not a token; tokens: \(tokens.joined(separator: " ")) (or #ID)")
                }
                out += ids
            }
        }
        return out
    }

    /// Token strings joined for display; specials kept as written.
    public func decode(_ ids: [Int32]) -> String {
        ids.map { Int($0) < count && $0 >= 0 ? tokens[Int($0)] : "#\($0)" }.joined(separator: " ")
    }
}

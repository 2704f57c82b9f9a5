// Text in and out of the shell: with a Hugging Face tokenizer beside the live model's
// checkpoint (tokenizer.json), sequences are given as text and shown as text; without one,
// as the lab's vocabulary strings.

import Foundation
import Model
import Numerics
import Storage
import Tokenizer

/// A tokenizer that came with the live model: the parsed tokenizer, the bytes it was read
/// from (a save writes them back), and the ids that end a generated sequence.
public struct ModelTokenizer: Sendable {
    public let tokenizer: Tokenizer
    public let json: [UInt8]
    /// generation_config.json's `eos_token_id` ids, else config.json's; each ends a
    /// rollout's sequences (none: every sequence runs to max_new).
    public let endTokens: [Int32]
    /// generation_config.json's bytes, written back by a save.
    public let generationJSON: [UInt8]?
    /// config.json's special token ids as read (a save writes them back, not placeholders).
    public let special: SpecialTokenIDs

    /// Parses `checkpoint.tokenizerJSON`, refusing a tokenizer with ids the model has no
    /// embedding row for. Nil when the checkpoint has no tokenizer.
    public init?(checkpoint: Checkpoint) throws(LabError) {
        guard let json = checkpoint.tokenizerJSON else { return nil }
        let parsed: Tokenizer
        do throws(TokenizerError) { parsed = try Tokenizer(json: json, label: CheckpointFile.tokenizer) } catch {
            throw LabError("\(error.message) (the checkpoint is not loaded; remove \(CheckpointFile.tokenizer) to load the model without text)")
        }
        let rows = checkpoint.weights.config.vocabSize
        guard parsed.vocabularySize <= rows else {
            throw LabError("\(CheckpointFile.tokenizer) has ids up to \(parsed.vocabularySize - 1) but the model's embedding has \(rows) rows (vocab_size in \(CheckpointFile.config)); the tokenizer is not this model's")
        }
        let special = checkpoint.specialTokens
        for (key, id) in [("bos_token_id", special.bos), ("eos_token_id", special.eos), ("pad_token_id", special.pad)] {
            if let id, !(0..<rows).contains(id) {
                throw LabError("\(CheckpointFile.config): \(key) \(id) is outside the vocabulary 0..<\(rows)")
            }
        }
        tokenizer = parsed
        self.json = json
        self.special = special
        generationJSON = checkpoint.generationConfigJSON
        let ends = checkpoint.generationEndTokens ?? special.eos.map { [$0] } ?? []
        endTokens = ends.map { Int32($0) }
    }

    /// The vocabulary the shell shows: each id's token string (placeholders t17 for ids the
    /// tokenizer does not name), with the checkpoint's special ids.
    func vocabulary(size: Int, special: SpecialTokenIDs) -> Vocabulary {
        let tokens = (0..<size).map { tokenizer.token(for: $0) ?? "t\($0)" }
        func id(_ given: Int?, _ fallback: Int32) -> Int32 { given.map { Int32($0) } ?? min(fallback, Int32(size - 1)) }
        return Vocabulary(tokens: tokens, bos: id(special.bos, 1), eos: endTokens.first ?? id(special.eos, 2), pad: id(special.pad, 0))
    }
}

extension LabState {
    /// The ids that end a rollout's sequences: the tokenizer's (generation_config.json's
    /// list, or config.json's id; possibly none) when the model came with one, else the
    /// vocabulary's end token.
    public var endTokens: Set<Int32> {
        if let text = tokenizer { return Set(text.endTokens) }
        return [vocabulary.eos]
    }

    /// The token ids of a sequence typed as words. With a tokenizer: the words joined by
    /// spaces are text, encoded with the model's special tokens (its BOS), unless every word
    /// is an id `#N`. Without one: vocabulary strings, `#N` ids, or words of single-character
    /// tokens (`Vocabulary.encode`).
    public func encodeWords(_ words: [String]) throws -> [Int32] {
        guard let text = tokenizer, !words.isEmpty else { return try vocabulary.encode(words) }
        let parts = words.flatMap { $0.split(separator: " ").map(String.init) }
        if !parts.isEmpty, parts.allSatisfy({ $0.hasPrefix("#") && Int32($0.dropFirst()) != nil }) { return try vocabulary.encode(parts) }
        return text.tokenizer.encode(words.joined(separator: " ")).map { Int32($0) }
    }

    /// A sequence for reading: with a tokenizer its decoded text, else the vocabulary strings.
    public func showText(_ ids: [Int32]) -> String {
        guard let text = tokenizer else { return vocabulary.decode(ids) }
        return text.tokenizer.decode(ids.map(Int.init))
    }

    /// Each token's text as the tokenizer decodes it alone, or the vocabulary string.
    public func pieces(_ ids: [Int32]) -> [String] {
        guard let text = tokenizer else { return ids.map { Int($0) < vocabulary.count && $0 >= 0 ? vocabulary.tokens[Int($0)] : "#\($0)" } }
        return text.tokenizer.pieces(ids.map(Int.init))
    }

    /// Token boundaries made visible: each token's text in brackets, control characters
    /// escaped (`visible`), with `marks[i]` (a figure) after token i's text when given.
    public func bracketed(_ ids: [Int32], marks: [String]? = nil) -> String {
        pieces(ids).enumerated().map { i, piece in
            "[\(LabState.visible(piece))\(marks.map { "|" + $0[i] } ?? "")]"
        }.joined()
    }

    /// A token's text with what would not show as itself written out: \n, \r, \t, a
    /// backslash as \\ (so that a token "\n" and a newline differ), and \u{HH} for the
    /// other controls (C0, DEL, C1), the line and paragraph separators and the bidirectional
    /// controls (which would reorder the line), so that one token shows on one line as it is.
    public static func visible(_ piece: String) -> String {
        var out = ""
        for scalar in piece.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\\": out += "\\\\"
            default:
                let v = scalar.value
                if v < 0x20 || (0x7F...0x9F).contains(v) || v == 0x2028 || v == 0x2029 || v == 0x200E || v == 0x200F
                    || (0x202A...0x202E).contains(v) || (0x2066...0x2069).contains(v) {
                    out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}

// Hugging Face tokenizers, read from the `tokenizers` library's serialization (tokenizer.json):
// text to ids and ids to text, id for id as that library gives them, for the two families
// small open models use:
//
// - byte-level BPE (GPT-2, Llama 3, Qwen2/Qwen3, SmolLM): the text is cut into words by a
//   split pattern, each word's UTF-8 bytes are written as printable characters (one per
//   byte, `ByteLevelAlphabet`), and merges by rank join them into tokens;
// - SentencePiece-style BPE with byte fallback (Llama 2, TinyLlama): spaces become "▁", a
//   "▁" goes in front, merges join characters, and a character without a token is written
//   as its bytes (`<0x41>`), or as the unknown token.
//
// A text goes the way it goes in the library:
// 1. added tokens found in the raw text are split out (AddedTokens.swift);
// 2. the normalizer runs on each stretch between them (Normalization.swift), and added tokens
//    marked `normalized` are split out of what it gives;
// 3. the pre-tokenizer cuts each stretch into words (PreTokenization.swift, SplitPatterns.swift);
// 4. the BPE model turns each word into ids (BPE.swift);
// 5. the post-processor adds its template's special tokens when asked (AddedTokens.swift).
// Decoding turns ids into their tokens, leaves special ones out when asked, and runs the
// decoder (Decoding.swift). Loading.swift reads tokenizer.json and refuses, naming the
// culprit, every part this lab does not compute as the library does.

import Foundation
import JSON

/// Why a tokenizer.json was refused: the file, the place in it, what was found and what
/// would be accepted.
public struct TokenizerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// "tokenizer.json: model.type: the model type \"WordPiece\" is not supported; this lab
    /// reads \"BPE\" models …".
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// A Hugging Face tokenizer: encodes text to ids and decodes ids to text as the `tokenizers`
/// library does with the same tokenizer.json.
///
///     let tokenizer = try Tokenizer(contentsOf: URL(fileURLWithPath: "tokenizer.json"))
///     let ids = tokenizer.encode("Hello world")            // Llama 2's: [1, …], BOS first
///     tokenizer.decode(ids, skipSpecialTokens: true)       // "Hello world"
///     tokenizer.pieces(ids)                                // ["<s>", "Hello", "world"]
///
/// Encoding and decoding never fail: every refusal happens when the file is read. Values are
/// immutable and can be shared between threads; each `encode` call keeps its own cache of the
/// words it has already merged.
public struct Tokenizer: Sendable {
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    let model: BPEModel
    let added: AddedVocabulary
    let postProcessor: PostProcessor?
    let decoder: Decoder?

    /// Reads a tokenizer.json file (see Loading.swift for what is accepted); errors name the
    /// file's path.
    public init(contentsOf url: URL) throws(TokenizerError) {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw TokenizerError("cannot read \(url.path): \(error.localizedDescription)")
        }
        try self.init(json: data, label: url.path)
    }

    /// Reads the text of a tokenizer.json; `label` names it in errors.
    public init(json bytes: some Sequence<UInt8>, label: String = "tokenizer.json") throws(TokenizerError) {
        self = try TokenizerFile(label: label).tokenizer(from: Array(bytes))
    }

    init(normalizer: Normalizer?, preTokenizer: PreTokenizer?, model: BPEModel, added: AddedVocabulary,
         postProcessor: PostProcessor?, decoder: Decoder?) {
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.model = model
        self.added = added
        self.postProcessor = postProcessor
        self.decoder = decoder
    }

    // MARK: Vocabulary

    /// The number of ids: the largest id of the model's vocabulary and of the added tokens,
    /// plus one (the rows of an embedding matrix that covers them all).
    public var vocabularySize: Int { max(model.largestID, added.largestID) + 1 }

    /// The token of an id: an added token's text (for one marked `normalized`, its normalized
    /// form), else the model's token, in the model's alphabet (byte-level tokens read "Ġthe"
    /// for " the"); nil for an id neither knows.
    public func token(for id: Int) -> String? {
        added.decodingForm(of: id) ?? model.token(for: id)
    }

    /// The id of a token written as `token(for:)` gives it: an added token first, then the
    /// model's vocabulary; nil for a string that is neither.
    public func id(for token: String) -> Int? {
        let scalars = Array(token.unicodeScalars)
        return added.id(forContent: scalars) ?? model.id(for: scalars)
    }

    /// Whether the id is an added token marked special (left out by
    /// `decode(_:skipSpecialTokens:)` with `skipSpecialTokens`).
    public func isSpecial(_ id: Int) -> Bool {
        guard let token = token(for: id) else { return false }
        return added.isSpecial(Array(token.unicodeScalars))
    }

    // MARK: Encoding and decoding

    /// The ids of a text; with `addSpecialTokens`, the post-processor's template adds its
    /// special tokens (Llama's BOS), as `Tokenizer.encode(text, add_special_tokens=True)`
    /// does in the library, which is also its default.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var ids: [Int] = []
        var cache = BPEModel.Cache()
        for segment in added.segments(of: Array(text.unicodeScalars), normalizer: normalizer) {
            switch segment {
            case .token(let id):
                ids.append(id)
            case .text(let piece):
                let words = preTokenizer?.preTokenize([piece]) ?? [piece]
                for word in words {
                    model.tokenize(word.scalars, into: &ids, cache: &cache)
                }
            }
        }
        guard let postProcessor else { return ids }
        return postProcessor.process(ids, addSpecialTokens: addSpecialTokens)
    }

    /// The text of some ids, through the decoder; with `skipSpecialTokens`, special added
    /// tokens are left out first. Ids no token has are passed over, as the library does.
    /// Bytes that do not form UTF-8 become U+FFFD, one for each maximal ill-formed part.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            guard let token = token(for: id) else { continue }
            if skipSpecialTokens && added.isSpecial(Array(token.unicodeScalars)) { continue }
            tokens.append(token)
        }
        guard let decoder else { return tokens.joined(separator: " ") }
        return decoder.decodeChain(tokens).joined()
    }

    /// The decoded text of each id alone, for showing where tokens begin and end. A piece may
    /// be "�" where a token holds part of a character's bytes, and a SentencePiece-style
    /// piece loses its leading space (the decoder strips it), as `decode([id])` does.
    public func pieces(_ ids: [Int]) -> [String] {
        ids.map { decode([$0], skipSpecialTokens: false) }
    }

    // MARK: Single parts

    /// What one pre-tokenizer, given as its tokenizer.json object, makes of a text: the words
    /// the model would see (byte-level ones in the byte alphabet), as the library's
    /// `pre_tokenize_str` gives them.
    public static func preTokenize(_ text: String, with json: JSONValue) throws(TokenizerError) -> [String] {
        let preTokenizer = try TokenizerFile(label: "pre-tokenizer").preTokenizer(json, at: "pre_tokenizer")
        let scalars = Array(text.unicodeScalars)
        let start = scalars.isEmpty ? [] : [Piece(scalars: scalars, atStart: true)]
        return preTokenizer.preTokenize(start).map(\.text)
    }

    /// What one normalizer, given as its tokenizer.json object, makes of a text, as the
    /// library's `normalize_str` gives it.
    public static func normalize(_ text: String, with json: JSONValue) throws(TokenizerError) -> String {
        let normalizer = try TokenizerFile(label: "normalizer").normalizer(json, at: "normalizer")
        return String(scalars: normalizer.normalize(Array(text.unicodeScalars)))
    }
}

/// A stretch of text on its way to the model: its scalars, and whether it begins where the
/// input began (the Metaspace pre-tokenizer's "first" scheme prepends only there). Offsets
/// are not tracked through normalization: after a cut, only the first piece of a stretch
/// that began the input begins it.
struct Piece: Sendable {
    var scalars: [Unicode.Scalar]
    var atStart: Bool

    var text: String { String(scalars: scalars) }
}

extension String {
    /// A string of exactly these scalars.
    init(scalars: some Sequence<Unicode.Scalar>) {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        self = String(view)
    }
}

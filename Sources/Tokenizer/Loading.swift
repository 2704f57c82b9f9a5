// Reading tokenizer.json, the `tokenizers` library's serialization of a tokenizer.
//
// What is accepted (anything else is refused, naming the place, what was found and what
// would do):
// - `version` "1.0"; `truncation` and `padding` null (the lab encodes whole texts).
// - `model`: `type` "BPE" with `vocab` (token → id) and `merges` by rank, each either
//   "a b" (the legacy form; "#version" lines skipped) or ["a", "b"]; every merge must name
//   two tokens of the vocabulary whose concatenation is one too. `unk_token` (in the
//   vocabulary), `fuse_unk`, `byte_fallback`, `ignore_merges`. `dropout` null or 0;
//   `continuing_subword_prefix` and `end_of_word_suffix` null or "".
// - `normalizer`: null, NFC, NFD, NFKC, NFKD, Prepend, Replace with a String pattern, Sequence.
// - `pre_tokenizer`: null, ByteLevel, Split (a String pattern, or one of the regular
//   expressions SplitPatterns.swift knows), Metaspace, Digits, Sequence.
// - `post_processor`: null, TemplateProcessing (its `single` template), ByteLevel, Sequence.
// - `decoder`: null, ByteLevel, Replace with a String pattern, ByteFallback, Fuse, Strip,
//   Metaspace, Sequence.
// - `added_tokens`: each with `id` and `content`; `special`, `lstrip`, `rstrip`,
//   `single_word` (default false) and `normalized` (default: not special). The id must be
//   the one the library gives the token when it reads the file: its id in the model's
//   vocabulary, else the next one after the vocabulary's size, in the order of the list.
//   A token with empty content is ignored, as the library ignores it.
// Unknown keys are ignored, as the library ignores them.
//
// Vocabulary entries are told apart by their exact scalars ("é" and "e\u{301}" are two
// tokens), but the JSON reader refuses an object with two keys Swift deems equal, so a
// vocabulary holding two canonically equivalent tokens cannot be read.

import JSON

/// The reading of one tokenizer.json; `label` names it in errors.
struct TokenizerFile {
    let label: String

    func fail(_ place: String, _ message: String) -> TokenizerError {
        TokenizerError("\(label): \(place): \(message)")
    }

    func tokenizer(from bytes: [UInt8]) throws(TokenizerError) -> Tokenizer {
        let parsed: JSONValue
        do throws(JSONReadError) {
            parsed = try JSONValue(parsing: bytes)
        } catch {
            if let key = error.duplicateKey {
                throw TokenizerError("\(label): the key \(quoted(key)) appears twice in one object (the second time at \(error.place))")
            }
            throw TokenizerError("\(label): not valid JSON: \(error)")
        }
        guard let root = parsed.objectValue else {
            throw TokenizerError("\(label): expected a JSON object (a tokenizer.json); found \(describe(parsed))")
        }
        if let version = present(root["version"]), version.stringValue != "1.0" {
            throw fail("version", "\(describe(version)) is not a version this lab reads; only \"1.0\"")
        }
        for key in ["truncation", "padding"] {
            if let value = present(root[key]) {
                throw fail(key, "is set (\(describe(value))); the lab encodes whole texts without \(key), so only null is accepted")
            }
        }
        let model = try bpeModel(root["model"])
        let normalizer = try present(root["normalizer"]).map { v throws(TokenizerError) in try self.normalizer(v, at: "normalizer") }
        let preTokenizer = try present(root["pre_tokenizer"]).map { v throws(TokenizerError) in try self.preTokenizer(v, at: "pre_tokenizer") }
        let postProcessor = try present(root["post_processor"]).map { v throws(TokenizerError) in try self.postProcessor(v, at: "post_processor") }
        let decoder = try present(root["decoder"]).map { v throws(TokenizerError) in try self.decoder(v, at: "decoder") }
        let added = try addedTokens(root["added_tokens"], model: model, normalizer: normalizer)
        return Tokenizer(normalizer: normalizer, preTokenizer: preTokenizer, model: model, added: added,
                         postProcessor: postProcessor, decoder: decoder)
    }

    // MARK: Model

    func bpeModel(_ value: JSONValue?) throws(TokenizerError) -> BPEModel {
        let o = try object(value, at: "model")
        guard let type = o["type"]?.stringValue else {
            throw fail("model", "the model has no \"type\"; this lab reads \"BPE\" models")
        }
        guard type == "BPE" else {
            throw fail("model.type", "the model type \(quoted(type)) is not supported; this lab reads \"BPE\" models (byte-level, or SentencePiece-style with byte fallback), not WordPiece, Unigram or WordLevel")
        }
        if let dropout = present(o["dropout"]), dropout.doubleValue != 0 {
            throw fail("model.dropout", "\(describe(dropout)) would make encoding random; only null or 0 is accepted")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let affix = present(o[key]), affix.stringValue != "" {
                throw fail("model.\(key)", "\(describe(affix)) is not supported (a WordPiece-style affix); only null or \"\" is accepted")
            }
        }
        let unknownToken = try optionalString(o, "unk_token", at: "model")
        let fuseUnknown = try flag(o, "fuse_unk", at: "model") ?? false
        let byteFallback = try flag(o, "byte_fallback", at: "model") ?? false
        let ignoreMerges = try flag(o, "ignore_merges", at: "model") ?? false

        guard let vocab = present(o["vocab"])?.objectValue else {
            throw fail("model.vocab", "expected an object of tokens and their ids; found \(describe(o["vocab"]))")
        }
        var vocabulary: [[Unicode.Scalar]: Int] = [:]
        var tokens: [Int: String] = [:]
        vocabulary.reserveCapacity(vocab.members.count)
        tokens.reserveCapacity(vocab.members.count)
        for member in vocab.members {
            guard let id = member.value.intValue, (0...Int(UInt32.max)).contains(id) else {
                throw fail("model.vocab", "the id of \(quoted(member.key)) must be an integer from 0 to \(UInt32.max); found \(describe(member.value))")
            }
            if let other = tokens[id] {
                throw fail("model.vocab", "the id \(id) is given to both \(quoted(other)) and \(quoted(member.key)); ids must be distinct")
            }
            tokens[id] = member.key
            vocabulary[Array(member.key.unicodeScalars)] = id
        }

        guard let mergeList = present(o["merges"])?.arrayValue else {
            throw fail("model.merges", "expected an array of merges (\"a b\" or [\"a\", \"b\"]); found \(describe(o["merges"]))")
        }
        var merges: [UInt64: BPEModel.Merge] = [:]
        merges.reserveCapacity(mergeList.count)
        var rank = 0
        for (i, entry) in mergeList.enumerated() {
            let place = "model.merges[\(i)]"
            let pair: (String, String)
            if let line = entry.stringValue {
                if line.hasPrefix("#version") { continue }
                let parts = line.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else {
                    throw fail(place, "\(quoted(line)) is not two tokens separated by one space")
                }
                pair = (String(parts[0]), String(parts[1]))
            } else if let list = entry.arrayValue, list.count == 2, let a = list[0].stringValue, let b = list[1].stringValue {
                pair = (a, b)
            } else {
                throw fail(place, "expected \"a b\" or [\"a\", \"b\"]; found \(describe(entry))")
            }
            let left = Array(pair.0.unicodeScalars), right = Array(pair.1.unicodeScalars)
            for side in [pair.0, pair.1] where vocabulary[Array(side.unicodeScalars)] == nil {
                throw fail(place, "the merge \(quoted(pair.0)) + \(quoted(pair.1)) names \(quoted(side)), which is not in model.vocab")
            }
            guard let joined = vocabulary[left + right] else {
                throw fail(place, "the merge \(quoted(pair.0)) + \(quoted(pair.1)) makes \(quoted(pair.0 + pair.1)), which is not in model.vocab")
            }
            // A pair merged twice keeps the later rank, as the library's map does.
            merges[BPEModel.pairKey(vocabulary[left]!, vocabulary[right]!)] = BPEModel.Merge(rank: rank, id: joined)
            rank += 1
        }

        var unknownID: Int?
        if let unknownToken {
            guard let id = vocabulary[Array(unknownToken.unicodeScalars)] else {
                throw fail("model.unk_token", "\(quoted(unknownToken)) is not in model.vocab")
            }
            unknownID = id
        }
        var scalarIDs: [Unicode.Scalar: Int] = [:]
        for (token, id) in vocabulary where token.count == 1 { scalarIDs[token[0]] = id }
        var byteIDs: [Int?]?
        if byteFallback {
            byteIDs = (0..<256).map { byte in
                let hex = String(byte, radix: 16, uppercase: true)
                return vocabulary[Array("<0x\(byte < 16 ? "0" : "")\(hex)>".unicodeScalars)]
            }
        }
        return BPEModel(vocabulary: vocabulary, tokens: tokens, merges: merges, scalarIDs: scalarIDs, byteIDs: byteIDs,
                        unknownID: unknownID, fuseUnknown: fuseUnknown, ignoreMerges: ignoreMerges)
    }

    // MARK: Added tokens

    func addedTokens(_ value: JSONValue?, model: BPEModel, normalizer: Normalizer?) throws(TokenizerError) -> AddedVocabulary {
        guard let value = present(value) else { return AddedVocabulary([]) }
        guard let list = value.arrayValue else {
            throw fail("added_tokens", "expected an array of added tokens; found \(describe(value))")
        }
        var tokens: [AddedToken] = []
        var places: [[Unicode.Scalar]: String] = [:]  // content → where it was first listed
        var patternPlaces: [[Unicode.Scalar]: String] = [:]
        var nextID = model.vocabulary.count
        for (i, item) in list.enumerated() {
            let place = "added_tokens[\(i)]"
            let o = try object(item, at: place)
            guard let id = o["id"]?.intValue, id >= 0 else {
                throw fail("\(place).id", "expected a non-negative integer; found \(describe(o["id"]))")
            }
            guard let text = o["content"]?.stringValue else {
                throw fail("\(place).content", "expected a string; found \(describe(o["content"]))")
            }
            let content = Array(text.unicodeScalars)
            if content.isEmpty { continue }
            let special = try flag(o, "special", at: place) ?? false
            var token = AddedToken(
                id: id, content: content, special: special,
                lstrip: try flag(o, "lstrip", at: place) ?? false,
                rstrip: try flag(o, "rstrip", at: place) ?? false,
                singleWord: try flag(o, "single_word", at: place) ?? false,
                normalized: try flag(o, "normalized", at: place) ?? !special,
                pattern: content)
            if let first = places[content] {
                throw fail(place, "\(quoted(text)) is listed again (first at \(first)); each added token must appear once")
            }
            places[content] = place
            let expected: Int
            let reason: String
            if let inModel = model.id(for: content) {
                expected = inModel
                reason = "its id in model.vocab"
            } else {
                expected = nextID
                reason = "the next id after the model's \(model.vocabulary.count) tokens and the added tokens listed before it"
                nextID += 1
            }
            guard id == expected else {
                throw fail("\(place).id", "\(quoted(text)) has id \(id), but the tokenizers library gives it id \(expected) (\(reason)); the file disagrees with itself")
            }
            if token.normalized, let normalizer {
                token.pattern = normalizer.normalize(content)
                guard !token.pattern.isEmpty else {
                    throw fail(place, "\(quoted(text)) normalizes to nothing, so it could never be found")
                }
            }
            let key = (token.normalized ? [Unicode.Scalar("n")] : ["r"]) + token.pattern
            if let first = patternPlaces[key] {
                throw fail(place, "\(quoted(text)) is looked for as the same text as the added token at \(first)")
            }
            patternPlaces[key] = place
            tokens.append(token)
        }
        return AddedVocabulary(tokens)
    }

    // MARK: Normalizers

    func normalizer(_ value: JSONValue, at place: String) throws(TokenizerError) -> Normalizer {
        let o = try object(value, at: place)
        let type = try typeName(o, at: place, of: "normalizer")
        switch type {
        case "NFC": return .nfc
        case "NFD": return .nfd
        case "NFKC": return .nfkc
        case "NFKD": return .nfkd
        case "Prepend":
            return .prepend(Array(try string(o, "prepend", at: place).unicodeScalars))
        case "Replace":
            return .replace(pattern: try literalPattern(o, at: place, of: "Replace normalizer"),
                            content: Array(try string(o, "content", at: place).unicodeScalars))
        case "Sequence":
            var parts: [Normalizer] = []
            for (i, item) in try array(o, "normalizers", at: place).enumerated() {
                parts.append(try normalizer(item, at: "\(place).normalizers[\(i)]"))
            }
            return .sequence(parts)
        default:
            throw fail("\(place).type", "the normalizer \(quoted(type)) is not supported; accepted: NFC, NFD, NFKC, NFKD, Prepend, Replace (with a String pattern), Sequence, or null")
        }
    }

    // MARK: Pre-tokenizers

    func preTokenizer(_ value: JSONValue, at place: String) throws(TokenizerError) -> PreTokenizer {
        let o = try object(value, at: place)
        let type = try typeName(o, at: place, of: "pre-tokenizer")
        switch type {
        case "ByteLevel":
            return .byteLevel(addPrefixSpace: try flag(o, "add_prefix_space", at: place) ?? true,
                              useRegex: try flag(o, "use_regex", at: place) ?? true)
        case "Split":
            let pattern: SplitPattern
            let patternObject = try object(o["pattern"], at: "\(place).pattern")
            if let regex = patternObject["Regex"]?.stringValue {
                guard let known = SplitPattern(regex: regex) else {
                    let accepted = SplitPattern.known.map { "\($0.name) \($0.regex)" }.joined(separator: "; ")
                    throw fail("\(place).pattern", "the split pattern \(quoted(regex)) is not one this lab knows; it scans exactly these: \(accepted)")
                }
                pattern = known
            } else {
                pattern = .literal(try literalPattern(o, at: place, of: "Split pre-tokenizer"))
            }
            guard let name = o["behavior"]?.stringValue, let behavior = SplitBehavior(rawValue: name) else {
                throw fail("\(place).behavior", "expected one of \(SplitBehavior.allCases.map { quoted($0.rawValue) }.joined(separator: ", ")); found \(describe(o["behavior"]))")
            }
            return .split(pattern, behavior, invert: try flag(o, "invert", at: place) ?? false)
        case "Metaspace":
            let (replacement, scheme) = try metaspace(o, at: place)
            return .metaspace(replacement: replacement, prependScheme: scheme, split: try flag(o, "split", at: place) ?? true)
        case "Digits":
            return .digits(individual: try flag(o, "individual_digits", at: place) ?? false)
        case "Sequence":
            var parts: [PreTokenizer] = []
            for (i, item) in try array(o, "pretokenizers", at: place).enumerated() {
                parts.append(try preTokenizer(item, at: "\(place).pretokenizers[\(i)]"))
            }
            return .sequence(parts)
        default:
            throw fail("\(place).type", "the pre-tokenizer \(quoted(type)) is not supported; accepted: ByteLevel, Split, Metaspace, Digits, Sequence, or null")
        }
    }

    /// Metaspace's replacement and prepend scheme, shared by the pre-tokenizer and the
    /// decoder; the older `add_prefix_space` false means the scheme "never".
    func metaspace(_ o: JSONObject, at place: String) throws(TokenizerError) -> (Unicode.Scalar, PrependScheme) {
        let replacement = try string(o, "replacement", at: place)
        guard replacement.unicodeScalars.count == 1, let scalar = replacement.unicodeScalars.first else {
            throw fail("\(place).replacement", "expected one character; found \(quoted(replacement))")
        }
        var scheme = PrependScheme.always
        if let name = try optionalString(o, "prepend_scheme", at: place) {
            guard let known = PrependScheme(rawValue: name) else {
                throw fail("\(place).prepend_scheme", "expected \"always\", \"first\" or \"never\"; found \(quoted(name))")
            }
            scheme = known
        }
        if try flag(o, "add_prefix_space", at: place) == false {
            guard scheme == .never else {
                throw fail("\(place).add_prefix_space", "false does not agree with prepend_scheme \(quoted(scheme.rawValue)); false goes only with \"never\"")
            }
        }
        return (scalar, scheme)
    }

    // MARK: Post-processors

    func postProcessor(_ value: JSONValue, at place: String) throws(TokenizerError) -> PostProcessor {
        let o = try object(value, at: place)
        let type = try typeName(o, at: place, of: "post-processor")
        switch type {
        case "ByteLevel":
            return .byteLevel
        case "TemplateProcessing":
            let specials = try object(o["special_tokens"], at: "\(place).special_tokens")
            var parts: [PostProcessor.TemplatePart] = []
            for (i, item) in try array(o, "single", at: place).enumerated() {
                let piece = "\(place).single[\(i)]"
                let p = try object(item, at: piece)
                if let sequence = p["Sequence"]?.objectValue {
                    guard sequence["id"]?.stringValue == "A" else {
                        throw fail(piece, "a single-sequence template can only hold the sequence \"A\"; found \(describe(sequence["id"]))")
                    }
                    parts.append(.sequence)
                } else if let token = p["SpecialToken"]?.objectValue, let name = token["id"]?.stringValue {
                    guard let entry = specials[name]?.objectValue, let ids = entry["ids"]?.arrayValue else {
                        throw fail(piece, "the special token \(quoted(name)) is not in \(place).special_tokens")
                    }
                    var values: [Int] = []
                    for id in ids {
                        guard let v = id.intValue, v >= 0 else {
                            throw fail("\(place).special_tokens", "the ids of \(quoted(name)) must be non-negative integers; found \(describe(id))")
                        }
                        values.append(v)
                    }
                    parts.append(.special(values))
                } else {
                    throw fail(piece, "expected {\"Sequence\": {\"id\": \"A\", …}} or {\"SpecialToken\": {\"id\": …}}; found \(describe(item))")
                }
            }
            return .template(parts)
        case "Sequence":
            var parts: [PostProcessor] = []
            for (i, item) in try array(o, "processors", at: place).enumerated() {
                parts.append(try postProcessor(item, at: "\(place).processors[\(i)]"))
            }
            return .sequence(parts)
        default:
            throw fail("\(place).type", "the post-processor \(quoted(type)) is not supported; accepted: TemplateProcessing, ByteLevel, Sequence, or null")
        }
    }

    // MARK: Decoders

    func decoder(_ value: JSONValue, at place: String) throws(TokenizerError) -> Decoder {
        let o = try object(value, at: place)
        let type = try typeName(o, at: place, of: "decoder")
        switch type {
        case "ByteLevel": return .byteLevel
        case "ByteFallback": return .byteFallback
        case "Fuse": return .fuse
        case "Replace":
            return .replace(pattern: try literalPattern(o, at: place, of: "Replace decoder"),
                            content: Array(try string(o, "content", at: place).unicodeScalars))
        case "Strip":
            let content = try string(o, "content", at: place)
            guard content.unicodeScalars.count == 1, let scalar = content.unicodeScalars.first else {
                throw fail("\(place).content", "expected one character; found \(quoted(content))")
            }
            return .strip(content: scalar, start: try count(o, "start", at: place), stop: try count(o, "stop", at: place))
        case "Metaspace":
            let (replacement, scheme) = try metaspace(o, at: place)
            return .metaspace(replacement: replacement, prependScheme: scheme)
        case "Sequence":
            var parts: [Decoder] = []
            for (i, item) in try array(o, "decoders", at: place).enumerated() {
                parts.append(try decoder(item, at: "\(place).decoders[\(i)]"))
            }
            return .sequence(parts)
        default:
            throw fail("\(place).type", "the decoder \(quoted(type)) is not supported; accepted: ByteLevel, ByteFallback, Fuse, Replace (with a String pattern), Strip, Metaspace, Sequence, or null")
        }
    }

    // MARK: Values

    /// A value that is there and not null.
    func present(_ value: JSONValue?) -> JSONValue? {
        guard let value, !value.isNull else { return nil }
        return value
    }

    func object(_ value: JSONValue?, at place: String) throws(TokenizerError) -> JSONObject {
        guard let o = value?.objectValue else { throw fail(place, "expected an object; found \(describe(value))") }
        return o
    }

    func typeName(_ o: JSONObject, at place: String, of what: String) throws(TokenizerError) -> String {
        guard let type = o["type"]?.stringValue else {
            throw fail(place, "the \(what) has no \"type\"")
        }
        return type
    }

    func string(_ o: JSONObject, _ key: String, at place: String) throws(TokenizerError) -> String {
        guard let s = o[key]?.stringValue else { throw fail("\(place).\(key)", "expected a string; found \(describe(o[key]))") }
        return s
    }

    func optionalString(_ o: JSONObject, _ key: String, at place: String) throws(TokenizerError) -> String? {
        guard let value = present(o[key]) else { return nil }
        guard let s = value.stringValue else { throw fail("\(place).\(key)", "expected a string or null; found \(describe(value))") }
        return s
    }

    func flag(_ o: JSONObject, _ key: String, at place: String) throws(TokenizerError) -> Bool? {
        guard let value = present(o[key]) else { return nil }
        guard let b = value.boolValue else { throw fail("\(place).\(key)", "expected true or false; found \(describe(value))") }
        return b
    }

    func count(_ o: JSONObject, _ key: String, at place: String) throws(TokenizerError) -> Int {
        guard let n = o[key]?.intValue, n >= 0 else { throw fail("\(place).\(key)", "expected a non-negative integer; found \(describe(o[key]))") }
        return n
    }

    func array(_ o: JSONObject, _ key: String, at place: String) throws(TokenizerError) -> [JSONValue] {
        guard let a = o[key]?.arrayValue else { throw fail("\(place).\(key)", "expected an array; found \(describe(o[key]))") }
        return a
    }

    /// A `pattern` of {"String": text}: the text, which must not be empty; a {"Regex": …}
    /// pattern is refused (only Split knows some regular expressions).
    func literalPattern(_ o: JSONObject, at place: String, of what: String) throws(TokenizerError) -> [Unicode.Scalar] {
        let pattern = try object(o["pattern"], at: "\(place).pattern")
        if let regex = pattern["Regex"]?.stringValue {
            throw fail("\(place).pattern", "the \(what) has the regular expression \(quoted(regex)); only a String pattern is accepted here")
        }
        guard let text = pattern["String"]?.stringValue else {
            throw fail("\(place).pattern", "expected {\"String\": …} or {\"Regex\": …}; found \(describe(o["pattern"]))")
        }
        guard !text.isEmpty else {
            throw fail("\(place).pattern", "the \(what) has an empty String pattern, which would match between every character")
        }
        return Array(text.unicodeScalars)
    }

    /// A string as JSON writes it: "\"a\\nb\"".
    func quoted(_ s: String) -> String { JSONValue.string(s).serialized }

    /// A value for a message, shortened past 120 characters; "nothing" when absent.
    func describe(_ value: JSONValue?) -> String {
        guard let value else { return "nothing" }
        let text = value.serialized
        return text.count > 120 ? String(text.prefix(117)) + "..." : text
    }
}

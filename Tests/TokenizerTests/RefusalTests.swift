import Foundation
import JSON
import Testing
import Tokenizer

/// What the lab does not compute as the library does is refused when the file is read, and
/// the message names the culprit and what would be accepted.
@Suite struct RefusalTests {
    /// The message of the error reading `json` gives; records an issue if it reads.
    func refusal(_ json: JSONValue, sourceLocation: SourceLocation = #_sourceLocation) -> String {
        refusal(Array(json.serialized.utf8), sourceLocation: sourceLocation)
    }

    func refusal(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) -> String {
        do {
            _ = try Tokenizer(json: bytes, label: "t.json")
            Issue.record("expected a refusal, got a tokenizer", sourceLocation: sourceLocation)
            return ""
        } catch {
            return error.description
        }
    }

    /// A fixture's tokenizer.json with one change.
    func changed(_ name: String = "llama3", _ change: (inout JSONObject) throws -> Void) throws -> JSONValue {
        var o = try Fixtures.configuration(name)
        try change(&o)
        return .object(o)
    }

    func set(_ o: inout JSONObject, _ path: [String], _ value: JSONValue) {
        guard let key = path.first else { return }
        if path.count == 1 {
            o[key] = value
        } else {
            var inner = o[key]?.objectValue ?? JSONObject()
            set(&inner, Array(path.dropFirst()), value)
            o[key] = .object(inner)
        }
    }

    @Test func theUnchangedFixturesRead() throws {
        for name in Fixtures.names {
            let bytes = Array(try Data(contentsOf: Fixtures.url(name, "tokenizer.json")))
            _ = try Tokenizer(json: bytes)
            _ = try Tokenizer(json: Array(JSONValue.object(Fixtures.configuration(name)).serialized.utf8))
        }
    }

    @Test func unknownModelTypes() throws {
        for type in ["WordPiece", "Unigram", "WordLevel"] {
            let message = refusal(try changed { set(&$0, ["model", "type"], .string(type)) })
            #expect(message.contains("t.json: model.type"), "\(message)")
            #expect(message.contains("\"\(type)\""), "\(message)")
            #expect(message.contains("\"BPE\""), "\(message)")
        }
    }

    @Test func unknownPreTokenizer() throws {
        let message = refusal(try changed { $0["pre_tokenizer"] = ["type": "Whitespace"] })
        #expect(message.contains("pre_tokenizer.type"), "\(message)")
        #expect(message.contains("\"Whitespace\""), "\(message)")
        #expect(message.contains("ByteLevel, Split, Metaspace, Digits, Sequence"), "\(message)")
        // Inside a sequence, the place says which one.
        let nested = refusal(try changed {
            $0["pre_tokenizer"] = ["type": "Sequence", "pretokenizers": [["type": "ByteLevel"], ["type": "Punctuation"]]]
        })
        #expect(nested.contains("pre_tokenizer.pretokenizers[1].type"), "\(nested)")
        #expect(nested.contains("\"Punctuation\""), "\(nested)")
    }

    @Test func unknownSplitPattern() throws {
        let pattern = #"\p{L}+|\p{N}+"#
        let message = refusal(try changed {
            $0["pre_tokenizer"] = ["type": "Split", "pattern": ["Regex": .string(pattern)], "behavior": "Isolated", "invert": false]
        })
        #expect(message.contains("pre_tokenizer.pattern"), "\(message)")
        #expect(message.contains(JSONValue.string(pattern).serialized), "\(message)")
        #expect(message.contains("Llama 3's"), "\(message)")
        let behavior = refusal(try changed {
            $0["pre_tokenizer"] = ["type": "Split", "pattern": ["String": " "], "behavior": "Sideways", "invert": false]
        })
        #expect(behavior.contains("pre_tokenizer.behavior") && behavior.contains("\"Sideways\"") && behavior.contains("\"Isolated\""), "\(behavior)")
    }

    @Test func unknownNormalizerDecoderAndPostProcessor() throws {
        let normalizer = refusal(try changed { $0["normalizer"] = ["type": "Sequence", "normalizers": [["type": "NFC"], ["type": "Lowercase"]]] })
        #expect(normalizer.contains("normalizer.normalizers[1].type") && normalizer.contains("\"Lowercase\"") && normalizer.contains("NFC"), "\(normalizer)")
        let regex = refusal(try changed { $0["normalizer"] = ["type": "Replace", "pattern": ["Regex": " +"], "content": " "] })
        #expect(regex.contains("normalizer.pattern") && regex.contains("\" +\""), "\(regex)")
        let decoder = refusal(try changed { $0["decoder"] = ["type": "WordPiece", "prefix": "##"] })
        #expect(decoder.contains("decoder.type") && decoder.contains("\"WordPiece\"") && decoder.contains("ByteFallback"), "\(decoder)")
        let post = refusal(try changed { $0["post_processor"] = ["type": "BertProcessing"] })
        #expect(post.contains("post_processor.type") && post.contains("\"BertProcessing\"") && post.contains("TemplateProcessing"), "\(post)")
    }

    @Test func malformedJSON() throws {
        let text = Array(try Data(contentsOf: Fixtures.url("gpt2", "tokenizer.json")))
        let cut = refusal(Array(text.prefix(text.count / 2)))
        #expect(cut.contains("t.json: not valid JSON") && cut.contains("line"), "\(cut)")
        let comma = refusal(Array("{\"model\": {\"type\": \"BPE\",}}".utf8))
        #expect(comma.contains("not valid JSON") && comma.contains("column"), "\(comma)")
        let array = refusal(Array("[1, 2]".utf8))
        #expect(array.contains("expected a JSON object"), "\(array)")
        let noModel = refusal(try changed { $0["model"] = nil })
        #expect(noModel.contains("t.json: model:") && noModel.contains("expected an object"), "\(noModel)")
    }

    @Test func mergesNamingUnknownTokens() throws {
        for name in ["gpt2", "llama3"] {
            // gpt2's merges are "a b" strings, llama3's ["a", "b"] pairs.
            let message = refusal(try changed(name) { o in
                var model = try #require(o["model"]?.objectValue)
                var merges = try #require(model["merges"]?.arrayValue)
                merges[3] = name == "gpt2" ? "Ġthe zzzunknown" : ["Ġthe", "zzzunknown"]
                model["merges"] = .array(merges)
                o["model"] = .object(model)
            })
            #expect(message.contains("model.merges[3]") && message.contains("\"zzzunknown\"") && message.contains("not in model.vocab"), "\(message)")
        }
        // Two known tokens whose concatenation is not a token.
        let joined = refusal(try changed { o in
            var model = try #require(o["model"]?.objectValue)
            var merges = try #require(model["merges"]?.arrayValue)
            merges[0] = ["<|begin_of_text|>", "<|end_of_text|>"]
            model["merges"] = .array(merges)
            o["model"] = .object(model)
        })
        #expect(joined.contains("model.merges[0]") && joined.contains("\"<|begin_of_text|><|end_of_text|>\""), "\(joined)")
        let shape = refusal(try changed("gpt2") { o in
            var model = try #require(o["model"]?.objectValue)
            var merges = try #require(model["merges"]?.arrayValue)
            merges[1] = "a b c"
            model["merges"] = .array(merges)
            o["model"] = .object(model)
        })
        #expect(shape.contains("model.merges[1]") && shape.contains("\"a b c\""), "\(shape)")
    }

    @Test func inconsistentVocabularyAndAddedTokens() throws {
        let unk = refusal(try changed("llama2") { set(&$0, ["model", "unk_token"], "<nope>") })
        #expect(unk.contains("model.unk_token") && unk.contains("\"<nope>\""), "\(unk)")
        let added = refusal(try changed { o in
            var tokens = try #require(o["added_tokens"]?.arrayValue)
            var last = try #require(tokens[tokens.count - 1].objectValue)
            last["id"] = 5000
            tokens[tokens.count - 1] = .object(last)
            o["added_tokens"] = .array(tokens)
        })
        #expect(added.contains("added_tokens[4].id") && added.contains("\"<|eot_id|>\"") && added.contains("5000"), "\(added)")
        let dropout = refusal(try changed { set(&$0, ["model", "dropout"], 0.1) })
        #expect(dropout.contains("model.dropout") && dropout.contains("0.1"), "\(dropout)")
        let padding = refusal(try changed { $0["padding"] = ["strategy": "BatchLongest"] })
        #expect(padding.contains("t.json: padding") && padding.contains("BatchLongest"), "\(padding)")
    }
}

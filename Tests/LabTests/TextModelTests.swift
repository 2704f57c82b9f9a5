import Foundation
import Lab
import Model
import Numerics
import Storage
import Testing
import Tokenizer

// A model whose checkpoint has a Hugging Face tokenizer (tokenizer.json): sequences typed
// and shown as text. The tokenizer is a fixture trained by the `tokenizers` library
// (Tests/Fixtures/tokenizers/llama3), whose expected.json holds the library's ids for its
// corpus; the model is random, of that vocabulary's size.

private let fixtures = packageRoot.appendingPathComponent("Tests/Fixtures/tokenizers")

/// The library's ids (with the BOS its template adds) of each corpus text of a fixture.
private func libraryIDs(_ name: String) throws -> [String: [Int]] {
    let data = try Data(contentsOf: fixtures.appendingPathComponent("\(name)/expected.json"))
    let object = try #require(JSONSerialization.jsonObject(with: data) as? [String: Any])
    let cases = try #require(object["cases"] as? [[String: Any]])
    var out: [String: [Int]] = [:]
    for c in cases { out[try #require(c["text"] as? String)] = try #require(c["ids_with_special_tokens"] as? [Int]) }
    return out
}

/// A random Llama of `vocab` tokens saved in `dir` with the llama3 fixture's tokenizer.json
/// (BOS 0, end-of-text 1) and, when given, generation_config.json's end ids.
private func textCheckpoint(_ dir: URL, vocab: Int = 1006, endTokens: [Int]? = [1, 5], tokenizer: Data? = nil) throws {
    let config = LlamaConfig(hiddenSize: 32, intermediateSize: 64, numAttentionHeads: 4, numKeyValueHeads: 2,
                             numHiddenLayers: 2, vocabSize: vocab, maxPositionEmbeddings: 128)
    var weights = ModelWeights(config: config)
    weights.initialize(std: 0.05, stream: RandomStream(seed: 4, name: "text-model"))
    try saveCheckpoint(weights: weights, lab: nil, specialTokens: SpecialTokenIDs(bos: 0, eos: 1), to: dir)
    let json = try tokenizer ?? Data(contentsOf: fixtures.appendingPathComponent("llama3/tokenizer.json"))
    try json.write(to: dir.appendingPathComponent("tokenizer.json"))
    if let endTokens {
        try Data("{\"eos_token_id\": \(endTokens), \"bos_token_id\": 0}".utf8).write(to: dir.appendingPathComponent("generation_config.json"))
    }
}

private func textSession() -> Session {
    let s = Session()
    run("set backend portable", in: s)
    return s
}

@Suite struct TextModelTests {
    @Test func textGoesInAsTheLibrarysIDsAndComesOutAsText() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("m")
        try textCheckpoint(model)
        let s = textSession()
        let load = runOne("model load \(model.path)", in: s)
        #expect(load.errors.isEmpty, "\(load.errors)")
        #expect(load.lines.contains { $0.hasPrefix("tokenizer: tokenizer.json, 1006 tokens") && $0.contains("sequences end at #1, #5") },
                "\(load.lines)")
        let expected = try libraryIDs("llama3")

        // A shell line holds no newline; these corpus texts have accents, CJK, emoji, runs of
        // spaces, digits and special tokens inline.
        for text in ["Hello, world! How are you?", "   three leading spaces and trailing ones   ",
                     "Café déjà vu: naïve façade, Über straße, Ångström, señor.", "日本語のテキストと中文字符，还有한국어 텍스트。",
                     "Emoji: 👍 👍🏽 👨\u{200d}👩\u{200d}👧\u{200d}👦 🏳️\u{200d}🌈 ❤️ 🇫🇷 😀😃😄",
                     "Text<|endoftext|>More text <|endoftext|> and <|end_of_text|>"] {
            let ids = try #require(expected[text], "\(text) is not in the fixture's corpus")
            let score = runOne("score \"\(text)\" --json", in: s)
            #expect(score.errors.isEmpty, "\(score.errors)")
            let json = try parseJSON(try #require(score.lines.first))
            #expect(json["tokens"] as? [Int] == ids, "score \(text)")
            #expect((json["logp_rollout"] as? [Double])?.count == ids.count - 1)
        }
        let trace = try parseJSON(try #require(runOne("trace \"Hello world\" --json", in: s).lines.first))
        #expect(trace["tokens"] as? [Int] == expected["Hello world"])
        // Words not quoted are one text too, joined by spaces; #N words alone stay ids.
        #expect(try parseJSON(runOne("score Hello world --json", in: s).lines[0])["tokens"] as? [Int] == expected["Hello world"])
        #expect(try parseJSON(runOne("score #0 #557 #395 --json", in: s).lines[0])["tokens"] as? [Int] == [0, 557, 395])

        // The score table shows each token's text in brackets.
        let table = runOne("score \"Hello world\"", in: s).lines
        #expect(table.contains { $0.hasPrefix("[ world]") }, "\(table)")

        // A text prompt, sampled `--samples` times; the end ids of generation_config.json.
        let rollout = runOne("rollout \"Hello world\" --samples 3 --json", in: s)
        #expect(rollout.errors.isEmpty, "\(rollout.errors)")
        let samples = try #require(try parseJSON(rollout.lines[0])["samples"] as? [[String: Any]])
        #expect(samples.count == 3)
        #expect(samples.allSatisfy { $0["prompt"] as? [Int] == expected["Hello world"] })
        for sample in samples {
            let response = try #require(sample["response"] as? [Int])
            // Either end id of generation_config.json ends a sequence; nothing follows it.
            if let end = response.firstIndex(where: { $0 == 1 || $0 == 5 }) { #expect(end == response.count - 1) }
        }
        // `plot tokens 2`: the second response token by token, each token's text (decoded
        // alone) in brackets and its |log μ − log π| from the rollout's own figures.
        let tokenizer = try Tokenizer(json: Data(contentsOf: fixtures.appendingPathComponent("llama3/tokenizer.json")))
        let second = samples[1]
        let response = try #require(second["response"] as? [Int])
        let logMu = try #require(second["logp_rollout"] as? [Double]), logPi = try #require(second["logp_train"] as? [Double])
        let plotted = runOne("plot tokens 2", in: s)
        #expect(plotted.errors.isEmpty, "\(plotted.errors)")
        let rows = plotted.lines.dropFirst().prefix(response.count)
        #expect(rows.count == response.count)
        for (i, row) in rows.enumerated() {
            // Control characters written out (\r as \\r), as one line needs; a backslash doubled.
            var piece = ""
            for scalar in tokenizer.decode([response[i]]).unicodeScalars {
                let escapes: [Unicode.Scalar: String] = ["\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"]
                let v = scalar.value
                if let e = escapes[scalar] { piece += e } else if v < 0x20 || (0x7F...0x9F).contains(v) || [0x2028, 0x2029, 0x200E, 0x200F].contains(v)
                    || (0x202A...0x202E).contains(v) || (0x2066...0x2069).contains(v) {
                    piece += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
                } else { piece.unicodeScalars.append(scalar) }
            }
            let trimmed = row.drop { $0 == " " }
            #expect(trimmed.hasPrefix("\(i + 1) [\(piece)]"), "row \(i + 1): \(row)")
            let value = try #require(row.split(separator: " ").last.flatMap { Double($0) }, "\(row)")
            // The JSON's log-probabilities are float32 figures near -10: |Δ| from them is good
            // to about 1e-6, the plotted figure to 4 digits.
            let delta = abs(logMu[i] - logPi[i])
            #expect(abs(value - delta) <= 1e-3 * delta + 2e-6, "row \(i + 1): \(value) against \(delta)")
        }
        #expect(plotted.lines.contains("prompt: <|begin_of_text|>Hello world"), "\(plotted.lines)")
        #expect(failure("plot tokens 4", in: s).contains("SAMPLE must be 1…3"))
        let shown = runOne("rollout \"Hello world\" --samples 2 --tokens", in: s).lines
        #expect(shown.filter { $0.hasPrefix("<|begin_of_text|>Hello world → [") && $0.contains("|") }.count == 2, "\(shown)")
    }

    /// `plot tokens` shows the last `rollout`; after a step it says the model has trained
    /// since (a step keeps its figures, not its samples).
    @Test func plotTokensSaysWhenTheModelTrainedSinceItsRollout() {
        let s = Session()
        #expect(failure("plot tokens", in: s).contains("no rollout of the live model yet; run 'rollout' first"))
        _ = run("set prompts 4", "set samples 2", "rollout 4", in: s)
        let fresh = runOne("plot tokens", in: s).lines.joined(separator: " ")
        #expect(fresh.contains("Response") && !fresh.contains("since:"), "\(fresh)")
        _ = runOne("step 1", in: s)
        let later = runOne("plot tokens", in: s).lines.joined(separator: " ")
        #expect(later.contains("this rollout was made at step 0; the model has taken 1 step since"), "\(later)")
    }

    /// A token's text as shown: controls, separators and bidirectional overrides written
    /// out, a backslash doubled (a token "\\n" is not a newline), everything else as it is.
    @Test func tokensShowOnOneLineAsTheyAre() {
        #expect(LabState.visible("a\\n\nb\tc\r") == "a\\\\n\\nb\\tc\\r")
        #expect(LabState.visible("x\u{202E}y\u{2028}z\u{7}") == "x\\u{202E}y\\u{2028}z\\u{7}")
        #expect(LabState.visible(" Café 日本 👍🏽 e\u{301}") == " Café 日本 👍🏽 e\u{301}")
    }

    /// `compare --prompts-file`: each line a text prompt, sampled `--samples` times under
    /// each preset.
    @Test func compareReadsTextPromptsFromAFile() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("m"), file = dir.appendingPathComponent("prompts.txt")
        try textCheckpoint(model)
        try Data("Hello world\n\nCafé déjà vu: naïve façade, Über straße, Ångström, señor.\n日本語のテキストと中文字符，还有한국어 텍스트。\n".utf8).write(to: file)
        let s = textSession()
        #expect(runOne("model load \(model.path)", in: s).errors.isEmpty)
        run("set max_new 8", in: s)
        let compared = runOne("compare bf16 fp16 --prompts-file \(file.path) --samples 2 --json", in: s)
        #expect(compared.errors.isEmpty, "\(compared.errors)")
        let stats = try #require(try parseJSON(compared.lines[0])["stats"] as? [String: [String: Any]])
        for name in ["bf16", "fp16"] {
            let tokens = try #require(stats[name]?["tokens"] as? Int)
            #expect(tokens > 6 && tokens <= 3 * 2 * 8, "\(name): \(tokens) tokens")
        }
        #expect(failure("compare bf16 --prompts 3 --prompts-file \(file.path)", in: s).contains("exclude each other"))

        // After a rollout of a text prompt, `compare current` repeats it: the same samples.
        let rollout = try parseJSON(runOne("rollout \"Hello world\" --samples 3 --json", in: s).lines[0])
        let repeated = try parseJSON(runOne("compare current --json", in: s).lines[0])
        let current = try #require((repeated["stats"] as? [String: [String: Any]])?["current"])
        #expect(current["tokens"] as? Int == rollout["tokens"] as? Int)
        #expect(current["k3"] as? Double == rollout["k3"] as? Double)
        let empty = dir.appendingPathComponent("empty.txt")
        try Data("\n  \n".utf8).write(to: empty)
        #expect(failure("compare bf16 --prompts-file \(empty.path)", in: s).contains("has no prompt"))
    }

    @Test func aSavedModelKeepsItsTokenizer() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("m"), copy = dir.appendingPathComponent("copy")
        try textCheckpoint(model)
        let s = textSession()
        #expect(runOne("model load \(model.path)", in: s).errors.isEmpty)
        #expect(runOne("model save \(copy.path)", in: s).errors.isEmpty)
        #expect(try Data(contentsOf: copy.appendingPathComponent("tokenizer.json"))
                == Data(contentsOf: model.appendingPathComponent("tokenizer.json")))
        #expect(try Data(contentsOf: copy.appendingPathComponent("generation_config.json"))
                == Data(contentsOf: model.appendingPathComponent("generation_config.json")))
        let again = runOne("model load \(copy.path)", in: s)
        #expect(again.errors.isEmpty && again.lines.contains { $0.hasPrefix("tokenizer: ") && $0.contains("#1, #5") }, "\(again)")
        #expect(try parseJSON(runOne("score \"Hello world\" --json", in: s).lines[0])["tokens"] as? [Int] == [0, 557, 395])
        // Saved again over itself: the checkpoint's own tokenizer, replaced, not kept twice.
        let resaved = runOne("model save \(copy.path)", in: s)
        #expect(resaved.errors.isEmpty, "\(resaved.errors)")
        #expect(runOne("model load \(copy.path)", in: s).lines.contains { $0.hasPrefix("tokenizer: ") })
        // A model without a tokenizer saved over it leaves no stale tokenizer behind.
        #expect(runOne("model new", in: s).errors.isEmpty)
        #expect(runOne("model save \(copy.path)", in: s).errors.isEmpty)
        #expect(!FileManager.default.fileExists(atPath: copy.appendingPathComponent("tokenizer.json").path))
        #expect(!FileManager.default.fileExists(atPath: copy.appendingPathComponent("generation_config.json").path))
        #expect(runOne("model load \(copy.path)", in: s).errors.isEmpty)
    }

    /// A tokenizer without end ids: every sequence runs to max_new, and the output says so;
    /// a special id outside the vocabulary is refused at the door.
    @Test func endIDsComeFromTheCheckpointOrNowhere() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("m")
        try textCheckpoint(model, endTokens: nil)
        let config = model.appendingPathComponent("config.json")
        var object = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: config)) as? [String: Any])
        object["eos_token_id"] = nil
        try JSONSerialization.data(withJSONObject: object).write(to: config)
        let s = textSession()
        let load = runOne("model load \(model.path)", in: s)
        #expect(load.lines.contains { $0.contains("no end-of-sequence id") }, "\(load)")
        run("set max_new 6", in: s)
        let rollout = runOne("rollout \"Hello\" --samples 3", in: s)
        #expect(rollout.lines.contains("3 sequences, 18 response tokens, no end id (each ran to max_new)"), "\(rollout.lines)")

        object["eos_token_id"] = 5000
        try JSONSerialization.data(withJSONObject: object).write(to: config)
        #expect(failure("model load \(model.path)", in: s).contains("eos_token_id 5000 is outside the vocabulary 0..<1006"))
    }

    /// A tokenizer that is not the model's, or one the lab cannot read, is refused with the
    /// live model unchanged; a text prompt without a tokenizer names what it needs.
    @Test func badTokenizersAreRefusedAndChangeNothing() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let s = textSession()
        let before = try parseJSON(runOne("model --json", in: s).lines[0])

        let small = dir.appendingPathComponent("small")
        try textCheckpoint(small, vocab: 500)
        let tooLarge = failure("model load \(small.path)", in: s)
        #expect(tooLarge.contains("tokenizer.json has ids up to 1005 but the model's embedding has 500 rows"), "\(tooLarge)")

        let wordPiece = dir.appendingPathComponent("wordpiece")
        var json = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: fixtures.appendingPathComponent("llama3/tokenizer.json"))) as? [String: Any])
        var modelPart = try #require(json["model"] as? [String: Any])
        modelPart["type"] = "WordPiece"
        json["model"] = modelPart
        try textCheckpoint(wordPiece, tokenizer: try JSONSerialization.data(withJSONObject: json))
        let unknown = failure("model load \(wordPiece.path)", in: s)
        #expect(unknown.contains("WordPiece"), "\(unknown)")

        let after = try parseJSON(runOne("model --json", in: s).lines[0])
        #expect(after["origin"] as? String == before["origin"] as? String)
        #expect(after["vocab_size"] as? Int == before["vocab_size"] as? Int)

        let noTokenizer = failure("rollout \"hello there\"", in: s)
        #expect(noTokenizer.contains("a text prompt needs a model whose checkpoint has tokenizer.json"), "\(noTokenizer)")
    }
}

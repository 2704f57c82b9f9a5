import JSON
import Foundation
import Lab
import Testing

// `model load` at the door: defaulted config.json keys are said, a vocabulary that does
// not match vocab_size and non-finite weights are refused, and a refused load changes
// nothing. Checkpoints are saved from the session, then edited as files here.

/// A session on the base model, portable backend.
private func modelSession() -> Session {
    let s = Session()
    run("set backend portable", in: s)
    return s
}

/// `model --json` as a dictionary.
private func modelJSON(_ s: Session) throws -> [String: Any] {
    try parseJSON(runOne("model --json", in: s).lines[0])
}

/// Rewrites a JSON file of a checkpoint through `edit`.
private func editJSON(_ url: URL, _ edit: (inout [String: Any]) -> Void) throws {
    var object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    edit(&object)
    try JSONSerialization.data(withJSONObject: object).write(to: url)
}

@Suite struct ModelHealthTests {
    @Test func modelLoadSaysWhichConfigKeysWereDefaulted() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let s = modelSession()
        let full = dir.appendingPathComponent("full").path, lacking = dir.appendingPathComponent("lacking").path
        #expect(runOne("model save \(full)", in: s).errors.isEmpty)
        #expect(runOne("model save \(lacking)", in: s).errors.isEmpty)
        try editJSON(URL(fileURLWithPath: lacking + "/config.json")) {
            $0["rms_norm_eps"] = nil
            $0["rope_theta"] = nil
            $0["rope_parameters"] = nil
        }

        let load = runOne("model load \(lacking)", in: s)
        #expect(load.errors.isEmpty, "\(load.errors)")
        #expect(load.lines.contains("config.json lacks rms_norm_eps, rope_theta: took transformers' LlamaConfig defaults 1e-06, 10000"),
                "\(load.lines)")
        let json = try modelJSON(s)
        #expect(json["config_defaults"] as? [String] == ["rms_norm_eps", "rope_theta"])
        #expect((json["rms_norm_eps"] as? Double).map { Float($0) } == Float(1e-6))   // the base model's own is 1e-5
        #expect(json["rope_theta"] as? Double == 10_000)
        let table = runOne("model", in: s).lines
        #expect(table.contains { $0.hasPrefix("defaults taken") && $0.contains("rms_norm_eps 1e-06, rope_theta 10000") }, "\(table)")

        // A complete config.json: nothing said, nothing listed.
        let again = runOne("model load \(full)", in: s)
        #expect(again.lines.count == 1 && again.lines[0].hasPrefix("loaded "), "\(again.lines)")
        #expect(try modelJSON(s)["config_defaults"] as? [String] == [])
        #expect(!runOne("model", in: s).lines.contains { $0.hasPrefix("defaults taken") })
    }

    @Test(arguments: [48, 52])
    func aLabVocabularyOfAnotherSizeIsRefused(tokens: Int) throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let s = modelSession()
        let path = dir.appendingPathComponent("m").path
        #expect(runOne("model save \(path)", in: s).errors.isEmpty)
        try editJSON(URL(fileURLWithPath: path + "/lab.json")) {
            let vocabulary = $0["vocabulary"] as! [String]
            #expect(vocabulary.count == 50)
            $0["vocabulary"] = tokens < 50 ? Array(vocabulary.prefix(tokens)) : vocabulary + (50..<tokens).map { "x\($0)" }
        }
        let before = try modelJSON(s)["origin"] as? String
        let message = failure("model load \(path)", in: s)
        #expect(message.contains("lab.json: the vocabulary has \(tokens) tokens but config.json has vocab_size 50"), "\(message)")
        #expect(try modelJSON(s)["origin"] as? String == before, "a refused load changes nothing")
    }

    @Test func nonFiniteWeightsAreRefusedAndChangeNothing() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let s = modelSession()
        let path = dir.appendingPathComponent("m").path
        #expect(runOne("model save \(path)", in: s).errors.isEmpty)
        // Two NaNs and a -inf in the first up projection, located through the file's header.
        let url = URL(fileURLWithPath: path + "/model.safetensors")
        var bytes = [UInt8](try Data(contentsOf: url))
        let n = Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        let header = try JSONSerialization.jsonObject(with: Data(bytes[8..<(8 + n)])) as! [String: Any]
        let entry = header["model.layers.0.mlp.up_proj.weight"] as! [String: Any]
        #expect(entry["dtype"] as? String == "F32")
        let begin = 8 + n + ((entry["data_offsets"] as! [Any])[0] as! Int)
        for (index, code) in [(0, UInt32(0x7FC0_0000)), (10, 0xFF80_0000), (11, 0x7FC0_0000)] {
            for b in 0..<4 { bytes[begin + 4 * index + b] = UInt8(truncatingIfNeeded: code >> (8 * UInt32(b))) }
        }
        try Data(bytes).write(to: url)

        let before = try modelJSON(s)["origin"] as? String
        let message = failure("model load \(path)", in: s)
        #expect(message.contains("model.safetensors: non-finite weights in 1 tensor: model.layers.0.mlp.up_proj.weight (2 NaN, 1 -inf); the checkpoint is damaged or diverged"),
                "\(message)")
        #expect(try modelJSON(s)["origin"] as? String == before)
        #expect(runOne("rollout 2", in: s).errors.isEmpty, "the live model still works")
    }
}

import Foundation
import JSON
import Model
import Numerics
import Storage
import Testing

// MARK: Helpers (file-private: other test files of this module define their own)

private let ckptConfig = LlamaConfig(hiddenSize: 8, intermediateSize: 12, numAttentionHeads: 2, numKeyValueHeads: 1,
                                     numHiddenLayers: 2, vocabSize: 11, rmsNormEps: 1e-5, ropeTheta: 10_000,
                                     maxPositionEmbeddings: 16)

/// Random weights with a few special values (NaN with a payload, −0, ±∞, a subnormal) that
/// a bit-exact round trip must keep (read back with `acceptNonFinite`: a plain load refuses
/// NaN and infinity).
private func ckptWeights(_ config: LlamaConfig = ckptConfig, seed: UInt64 = 7) -> ModelWeights {
    var w = ModelWeights(config: config)
    w.initialize(std: 0.5, stream: RandomStream(seed: seed, name: "init"))
    w.data[3] = Float(bitPattern: 0x7FC0_1234)
    w.data[4] = -0.0
    w.data[5] = .infinity
    w.data[6] = -.infinity
    w.data[7] = 0x1p-149
    return w
}

private func bits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

/// A fresh empty directory, removed by `cleanup`.
private func scratchDirectory() -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("plab-ckpt-test-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

private func cleanup(_ url: URL) { try? FileManager.default.removeItem(at: url) }

/// The message of the NumericsError a call throws; records an issue if it does not throw.
func failure<T>(_ body: () throws(NumericsError) -> T, sourceLocation: SourceLocation = #_sourceLocation) -> String {
    do {
        _ = try body()
        Issue.record("expected an error, got success", sourceLocation: sourceLocation)
        return ""
    } catch {
        return error.description
    }
}

/// A safetensors file assembled byte by byte, independently of the library's writer.
private func handMade(_ header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> Data {
    let h = Array(header.utf8)
    let n = declaredLength ?? UInt64(h.count)
    var out = (0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * UInt64($0))) }
    out += h
    out += data
    return Data(out)
}

private func le16(_ codes: [UInt16]) -> [UInt8] { codes.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] } }
private func le32(_ values: [Float]) -> [UInt8] {
    values.flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v.bitPattern >> (8 * UInt32($0))) } }
}

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")

/// Siblings a save may leave beside the destination (it must leave none).
private func leftovers(in parent: URL) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: parent.path)) ?? []).filter { $0.contains(".plab-") }
}

// MARK: safetensors

@Suite struct CheckpointSafeTensorsTests {
    @Test func writerOutputHasTheDocumentedLayout() throws {
        var file = SafeTensorsFile(metadata: ["who": "lab"])
        try file.add("b", shape: [2], values: [1, -2])
        try file.add("a", shape: [], values: [0.5])
        let bytes = [UInt8](file.encoded())
        let n = Int(bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) })
        #expect(n % 8 == 0)
        #expect(bytes.count == 8 + n + 12)
        let header = String(decoding: bytes[8..<(8 + n)], as: UTF8.self)
        #expect(header.hasPrefix("{\"__metadata__\":{\"who\":\"lab\"},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[8,12]}}"))
        #expect(header.trimmingCharacters(in: .whitespaces) == header.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: .init(charactersIn: " ")))
        #expect(Array(bytes[(8 + n)...]) == le32([1, -2, 0.5]))
        let back = try SafeTensorsFile.decode(Data(bytes))
        #expect(back.names == ["b", "a"])
        #expect(back["a"]?.shape == [])
        #expect(back.metadata == ["who": "lab"])
    }

    @Test func bf16AndF16AreReadExactly() throws {
        // BF16 codes and the float32 values they denote.
        let bf16: [(UInt16, Float)] = [
            (0x3F80, 1), (0xC000, -2), (0x3FC0, 1.5), (0x4049, 3.140625), (0x0001, 0x1p-133),
            (0x7F7F, 0x1.FEp127), (0xFF80, -.infinity), (0x8000, -0.0), (0x3DCD, 0.10009765625),
        ]
        // FP16 codes and their values.
        let f16: [(UInt16, Float)] = [
            (0x3C00, 1), (0xC000, -2), (0x3555, 0.333251953125), (0x0001, 0x1p-24), (0x03FF, 1023 * 0x1p-24),
            (0x0400, 0x1p-14), (0x7BFF, 65504), (0xFC00, -.infinity), (0x8000, -0.0), (0x5640, 100),
        ]
        let f32: [Float] = [0.1, -7.25]
        let header = """
        {"__metadata__":{"format":"pt"},\
        "h":{"dtype":"BF16","shape":[3,3],"data_offsets":[0,18]},\
        "f":{"dtype":"F16","shape":[10],"data_offsets":[18,38]},\
        "n":{"dtype":"F16","shape":[1],"data_offsets":[38,40]},\
        "s":{"dtype":"F32","shape":[2],"data_offsets":[40,48]}}
        """
        let data = le16(bf16.map(\.0)) + le16(f16.map(\.0)) + le16([0x7E01]) + le32(f32)
        for file in [try SafeTensorsFile.decode(handMade(header, data: data)), try written(handMade(header, data: data))] {
            let h = try file.tensor("h")
            #expect(h.shape == [3, 3])
            #expect(h.storedType == .bf16)
            #expect(bits(h.values) == bits(bf16.map(\.1)))
            let f = try file.tensor("f")
            #expect(f.storedType == .f16)
            #expect(bits(f.values) == bits(f16.map(\.1)))
            let nan = try file.tensor("n").values[0]
            #expect(nan.isNaN && nan.bitPattern == 0x7FC0_2000)   // payload kept
            #expect(bits(try file.values("s", shape: [2])) == bits(f32))
            #expect(file.metadata == ["format": "pt"])
        }
    }

    /// Writes bytes to a temporary file and reads them back through the file reader.
    private func written(_ data: Data) throws -> SafeTensorsFile {
        let dir = scratchDirectory()
        defer { cleanup(dir) }
        let url = dir.appendingPathComponent("t.safetensors")
        try data.write(to: url)
        return try SafeTensorsFile.read(contentsOf: url)
    }

    @Test func everyF16CodeMatchesTheNumericsDecoder() throws {
        let codes = (0...UInt16.max).map { $0 }
        let file = try SafeTensorsFile.decode(handMade(
            "{\"x\":{\"dtype\":\"F16\",\"shape\":[65536],\"data_offsets\":[0,131072]}}", data: le16(codes)))
        let values = try file.values("x", shape: [65536])
        for code in codes {
            let expected = NumberFormat.fp16.decode(UInt32(code))
            let got = values[Int(code)]
            if got.bitPattern != expected.bitPattern {
                Issue.record("F16 code 0x\(String(code, radix: 16)): got \(got), expected \(expected)")
            }
        }
    }

    @Test func malformedFilesAreRefusedWithUsefulMessages() {
        let good = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}"
        let data16 = [UInt8](repeating: 0, count: 16)
        let cases: [(String, Data, String)] = [
            ("empty", Data(), "shorter than the 8-byte header length"),
            ("7 bytes", Data([1, 0, 0, 0, 0, 0, 0]), "shorter than the 8-byte header length"),
            ("length past end", handMade(good, data: data16, declaredLength: 5000), "runs past the end of the file"),
            ("absurd length", handMade(good, data: data16, declaredLength: 1 << 40), "exceeds the limit"),
            ("not JSON", handMade("{\"w\": [", data: data16), "not valid JSON"),
            ("not an object", handMade("[1, 2]", data: data16), "must be a JSON object"),
            ("unknown dtype", handMade(good.replacingOccurrences(of: "F32", with: "F17"), data: data16), "unknown dtype \"F17\""),
            ("unconvertible dtype", handMade(good.replacingOccurrences(of: "F32", with: "I32"), data: data16), "dtype I32; this reader converts F32, BF16, F16"),
            ("shape/offset mismatch", handMade(good.replacingOccurrences(of: "[2,2]", with: "[2,3]"), data: data16), "needs 24 bytes but data_offsets [0, 16] span 16"),
            ("out of bounds", handMade(good.replacingOccurrences(of: "[0,16]", with: "[8,24]"), data: data16), "run past the end of the data (16 bytes"),
            ("offsets reversed", handMade(good.replacingOccurrences(of: "[0,16]", with: "[16,0]"), data: data16), "expected [begin, end] with 0 ≤ begin ≤ end"),
            ("three offsets", handMade(good.replacingOccurrences(of: "[0,16]", with: "[0,8,16]"), data: data16), "data_offsets"),
            ("negative dimension", handMade(good.replacingOccurrences(of: "[2,2]", with: "[-2,-2]"), data: data16), "non-negative integers"),
            ("fractional dimension", handMade(good.replacingOccurrences(of: "[2,2]", with: "[2.5,2]"), data: data16), "non-negative integers"),
            ("boolean dimension", handMade(good.replacingOccurrences(of: "[2,2]", with: "[true,2]"), data: data16), "non-negative integers"),
            ("overflowing shape", handMade(good.replacingOccurrences(of: "[2,2]", with: "[4294967296,4294967296,4294967296]"), data: data16), "overflows"),
            ("huge tensor", handMade(good.replacingOccurrences(of: "[2,2]", with: "[1048576,1048576]"), data: data16), "more than the limit of 1073741824"),
            ("overlap", handMade("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", data: data16), "overlap"),
            ("duplicate name", handMade("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", data: data16), "names \"w\" more than once"),
            ("duplicate written differently", handMade("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"\\u0077\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", data: data16), "names \"w\" more than once"),
            ("metadata not strings", handMade("{\"__metadata__\":{\"step\":3}}"), "__metadata__ entry \"step\" is not a string"),
            ("entry not an object", handMade("{\"w\":3}"), "expected an object {dtype, shape, data_offsets}"),
            ("no dtype", handMade("{\"w\":{\"shape\":[0],\"data_offsets\":[0,0]}}"), "no string \"dtype\""),
        ]
        for (what, bytes, expected) in cases {
            let message = failure { () throws(NumericsError) in try SafeTensorsFile.decode(bytes) }
            #expect(message.contains(expected), "\(what): \(message)")
        }
        // Limits are the caller's to set; a smaller one refuses before allocating.
        let small = SafeTensorsLimits(maxHeaderBytes: 16)
        #expect(failure { () throws(NumericsError) in try SafeTensorsFile.decode(handMade(good, data: data16), limits: small) }
            .contains("exceeds the limit of 16 bytes"))
        let few = SafeTensorsLimits(maxTensorElements: 3)
        #expect(failure { () throws(NumericsError) in try SafeTensorsFile.decode(handMade(good, data: data16), limits: few) }
            .contains("more than the limit of 3"))
        let total = SafeTensorsLimits(maxTotalElements: 3)
        #expect(failure { () throws(NumericsError) in try SafeTensorsFile.decode(handMade(good, data: data16), limits: total) }
            .contains("add up to more than 3 elements"))
    }

    @Test func gapsAndEmptyTensorsAreAccepted() throws {
        let file = try SafeTensorsFile.decode(handMade(
            "{\"e\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[4,4]},\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
            data: le32([9, 3])))
        #expect(file["e"]?.values == [])
        #expect(file["w"]?.values == [3])
    }

    @Test func truncationAtAnyPointIsAnError() throws {
        var file = SafeTensorsFile(metadata: ["format": "pt"])
        try file.add("a", shape: [3, 2], values: [1, 2, 3, 4, 5, 6])
        try file.add("b", shape: [4], values: [7, 8, 9, 10])
        let full = file.encoded()
        for cut in 0..<full.count {
            let message = failure { () throws(NumericsError) in try SafeTensorsFile.decode(full.prefix(cut)) }
            #expect(!message.isEmpty, "cut at \(cut)")
        }
        // Through the file reader too, at a few points (length, header, data).
        let dir = scratchDirectory()
        defer { cleanup(dir) }
        let url = dir.appendingPathComponent("cut.safetensors")
        for cut in [4, 8, 20, full.count - 1] {
            try full.prefix(cut).write(to: url)
            let message = failure { () throws(NumericsError) in try SafeTensorsFile.read(contentsOf: url) }
            #expect(message.hasPrefix("cut.safetensors: "), "\(message)")
        }
        let missing = failure { () throws(NumericsError) in try SafeTensorsFile.read(contentsOf: dir.appendingPathComponent("nope.safetensors")) }
        #expect(missing.contains("nope.safetensors"))
    }

    @Test func writerRefusesBadTensors() {
        var file = SafeTensorsFile()
        #expect(failure { () throws(NumericsError) in try file.add("x", shape: [2, 2], values: [1, 2, 3]) }
            .contains("holds 4 values but 3 were given"))
        #expect(failure { () throws(NumericsError) in try file.add("__metadata__", shape: [1], values: [1]) }
            .contains("reserved"))
        try? file.add("x", shape: [1], values: [1])
        #expect(failure { () throws(NumericsError) in try file.add("x", shape: [1], values: [2]) }
            .contains("already present"))
        #expect(failure { () throws(NumericsError) in try file.tensor("y") }.contains("no tensor named 'y'; present: x"))
        #expect(failure { () throws(NumericsError) in try file.values("x", shape: [2]) }.contains("has shape [1]; expected [2]"))
    }
}

// MARK: Checkpoints

@Suite struct CheckpointRoundTripTests {
    @Test(arguments: [false, true])
    func saveThenLoadIsBitExact(tied: Bool) throws {
        var config = ckptConfig
        config.tieWordEmbeddings = tied
        config.ropeTheta = 500_000
        config.rmsNormEps = 3e-6
        let weights = ckptWeights(config)
        var lab = LabMetadata(vocabulary: ["<pad>", "<bos>", "a", "b/c", "\"q\"", "é"], task: "copy", seed: UInt64.max - 2, step: 50)
        lab.extra["lr"] = 1e-3
        lab.extra["history"] = ["reward": [0.25, 0.5], "note": nil, "on": true]
        struct Scaler: Codable, Equatable { var scale: Double; var goodSteps: Int }
        try lab.setExtra("scaler", Scaler(scale: 65536, goodSteps: 12))
        var state = SafeTensorsFile()
        try state.add("adam.m", shape: [weights.data.count], values: weights.data.map { $0 * 0.5 })
        try state.add("adam.step", shape: [], values: [50])
        let tokens = SpecialTokenIDs(bos: 1, eos: 2, pad: 0)

        let dir = scratchDirectory()
        defer { cleanup(dir) }
        let target = dir.appendingPathComponent("ckpt")
        try saveCheckpoint(weights: weights, lab: lab, labState: state, specialTokens: tokens, to: target)
        let loaded = try loadCheckpoint(from: target, acceptNonFinite: true)

        #expect(loaded.weights.config == config)
        #expect(bits(loaded.weights.data) == bits(weights.data))
        #expect(loaded.weights.slots == weights.slots)
        #expect(loaded.lab == lab)
        #expect(loaded.lab?.seed == UInt64.max - 2)
        #expect(try loaded.lab?.extra("scaler", as: Scaler.self) == Scaler(scale: 65536, goodSteps: 12))
        #expect(loaded.specialTokens == tokens)
        #expect(loaded.labState?.names == ["adam.m", "adam.step"])
        #expect(bits(loaded.labState?["adam.m"]?.values ?? []) == bits(weights.data.map { $0 * 0.5 }))
        #expect(loaded.labState?["adam.step"]?.shape == [])

        let model = try SafeTensorsFile.read(contentsOf: target.appendingPathComponent("model.safetensors"))
        #expect(model.metadata["format"] == "pt")   // transformers refuses a file without it
        #expect((model["lm_head.weight"] != nil) == !tied)
        #expect(model["model.norm.weight"]?.shape == [config.hiddenSize])
        #expect(model["model.layers.1.self_attn.k_proj.weight"]?.shape == [config.kvDim, config.hiddenSize])

        // Saving the loaded checkpoint again gives the same bytes.
        let again = dir.appendingPathComponent("again")
        try saveCheckpoint(loaded, to: again)
        for name in ["config.json", "model.safetensors", "lab.json", "lab_state.safetensors"] {
            #expect(try Data(contentsOf: target.appendingPathComponent(name)) == Data(contentsOf: again.appendingPathComponent(name)), "\(name)")
        }
        #expect(leftovers(in: dir).isEmpty)
    }

    @Test func configJSONCarriesTheHuggingFaceKeys() throws {
        let data = ckptConfig.huggingFaceJSON(specialTokens: SpecialTokenIDs(bos: 1, eos: 2))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(json["hidden_size"] as? Int == 8)
        #expect(json["intermediate_size"] as? Int == 12)
        #expect(json["num_attention_heads"] as? Int == 2)
        #expect(json["num_key_value_heads"] as? Int == 1)
        #expect(json["num_hidden_layers"] as? Int == 2)
        #expect(json["vocab_size"] as? Int == 11)
        #expect(json["head_dim"] as? Int == 4)
        #expect(json["max_position_embeddings"] as? Int == 16)
        #expect(json["rms_norm_eps"] as? Double == 1e-5)
        #expect(json["rope_theta"] as? Double == 10_000)
        let rope = try #require(json["rope_parameters"] as? [String: Any])
        #expect(rope["rope_theta"] as? Double == 10_000)
        #expect(rope["rope_type"] as? String == "default")
        #expect(json["tie_word_embeddings"] as? Bool == false)
        #expect(json["hidden_act"] as? String == "silu")
        #expect(json["model_type"] as? String == "llama")
        #expect(json["architectures"] as? [String] == ["LlamaForCausalLM"])
        #expect(json["torch_dtype"] as? String == "float32")
        #expect(json["attention_bias"] as? Bool == false)
        #expect(json["mlp_bias"] as? Bool == false)
        #expect(json["bos_token_id"] as? Int == 1)
        #expect(json["eos_token_id"] as? Int == 2)
        #expect(json["pad_token_id"] == nil)
        #expect(String(decoding: data, as: UTF8.self).contains("\"rms_norm_eps\": 1e-05"))
    }

    @Test func configReadsTheRotaryBaseFromEitherPlace() throws {
        func config(_ extra: String) -> Data {
            Data("""
            {"model_type": "llama", "hidden_size": 8, "intermediate_size": 12, "num_attention_heads": 2,
             "num_hidden_layers": 1, "vocab_size": 5\(extra)}
            """.utf8)
        }
        #expect(try LlamaConfig(huggingFaceJSON: config(", \"rope_theta\": 500000.0")).ropeTheta == 500_000)
        #expect(try LlamaConfig(huggingFaceJSON: config(", \"rope_parameters\": {\"rope_theta\": 250000, \"rope_type\": \"default\"}")).ropeTheta == 250_000)
        #expect(try LlamaConfig(huggingFaceJSON: config(", \"rope_theta\": 9.0, \"rope_parameters\": {\"rope_theta\": 9.0}")).ropeTheta == 9)
        // Hugging Face's defaults for what is left out.
        let plain = try LlamaConfig.huggingFaceConfig(from: config(""))
        #expect(plain.config.ropeTheta == 10_000)
        #expect(plain.config.rmsNormEps == 1e-6)
        #expect(plain.config.numKeyValueHeads == 2)
        #expect(plain.config.maxPositionEmbeddings == 2048)
        #expect(plain.config.tieWordEmbeddings == false)
        #expect(plain.specialTokens == SpecialTokenIDs())
        let listEOS = try LlamaConfig.huggingFaceConfig(from: config(", \"eos_token_id\": [3, 4], \"bos_token_id\": null"))
        #expect(listEOS.specialTokens == SpecialTokenIDs(eos: 3))
    }

    @Test func badConfigsAreRefusedNamingTheKey() {
        let base: [String: String] = [
            "model_type": "\"llama\"", "hidden_size": "8", "intermediate_size": "12", "num_attention_heads": "2",
            "num_hidden_layers": "1", "vocab_size": "5",
        ]
        func json(_ changes: [String: String?]) -> Data {
            var d = base
            for (k, v) in changes { d[k] = v }
            return Data(("{" + d.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", ") + "}").utf8)
        }
        let cases: [([String: String?], String)] = [
            (["num_attention_heads": "3"], "num_attention_heads (3) must divide hidden_size (8)"),
            (["num_key_value_heads": "3"], "num_key_value_heads (3) must divide num_attention_heads (2)"),
            (["hidden_act": "\"gelu\""], "hidden_act \"gelu\" is not supported"),
            (["model_type": "\"gemma\""], "model_type \"gemma\" is not supported"),
            (["model_type": nil], "'model_type' is missing"),
            (["architectures": "[\"LlamaModel\"]"], "does not include \"LlamaForCausalLM\""),
            (["hidden_size": nil], "required key 'hidden_size' is missing"),
            (["hidden_size": "\"8\""], "'hidden_size' must be an integer; found \"8\""),
            (["vocab_size": "true"], "'vocab_size' must be an integer; found true"),
            (["vocab_size": "5.5"], "'vocab_size' must be an integer"),
            (["vocab_size": "-1"], "'vocab_size' = -1 is out of range"),
            (["num_hidden_layers": "99999999999"], "out of range"),
            (["rms_norm_eps": "\"small\""], "'rms_norm_eps' must be a finite number"),
            (["rms_norm_eps": "0"], "rms_norm_eps must be a positive number"),
            (["rope_scaling": "{\"rope_type\": \"llama3\", \"factor\": 8.0}"], "rope_scaling \"llama3\" is not supported"),
            (["rope_parameters": "{\"rope_type\": \"yarn\", \"rope_theta\": 10000}"], "rope_type \"yarn\" is not supported"),
            (["rope_theta": "10000", "rope_parameters": "{\"rope_theta\": 20000}"], "disagree"),
            (["mlp_bias": "true"], "'mlp_bias' is true"),
            (["head_dim": "5"], "head_dim 5 must be even for rotary embeddings"),
            (["tie_word_embeddings": "1"], "'tie_word_embeddings' must be true or false"),
        ]
        for (changes, expected) in cases {
            let message = failure { () throws(NumericsError) in try LlamaConfig(huggingFaceJSON: json(changes)) }
            #expect(message.hasPrefix("config.json: "), "\(changes): \(message)")
            #expect(message.contains(expected), "\(changes): \(message)")
        }
        #expect(failure { () throws(NumericsError) in try LlamaConfig(huggingFaceJSON: Data("{\"hidden_size\": 8, \"hidden_size\": 16}".utf8)) }
            .contains("the key \"hidden_size\" appears twice"))
        #expect(failure { () throws(NumericsError) in try LlamaConfig(huggingFaceJSON: Data("{".utf8)) }.contains("not valid JSON"))
    }
}

/// Checkpoint directories made wrong in one way each.
@Suite struct CheckpointValidationTests {
    /// Writes config.json and model.safetensors built from `weights`, with `edit` applied to
    /// the tensors, and returns the load error.
    private func loadError(config: LlamaConfig = ckptConfig, configJSON: Data? = nil,
                           edit: (inout SafeTensorsFile, ModelWeights) throws -> Void) throws -> String {
        let weights = ckptWeights(config)
        var file = SafeTensorsFile(metadata: ["format": "pt"])
        for s in weights.slots { try file.add(s.name, shape: s.shape, values: weights.tensor(s.name)!) }
        try edit(&file, weights)
        let dir = scratchDirectory()
        defer { cleanup(dir) }
        try (configJSON ?? config.huggingFaceJSON()).write(to: dir.appendingPathComponent("config.json"))
        try file.write(to: dir.appendingPathComponent("model.safetensors"))
        return failure { () throws(NumericsError) in try loadCheckpoint(from: dir) }
    }

    @Test func missingTensorIsNamed() throws {
        let message = try loadError { f, _ in f.remove("model.layers.1.mlp.up_proj.weight") }
        #expect(message.contains("no tensor 'model.layers.1.mlp.up_proj.weight' (shape [12, 8] expected"), "\(message)")
    }

    @Test func wrongShapeNamesBothShapes() throws {
        let message = try loadError { f, w in
            f.remove("model.layers.0.self_attn.k_proj.weight")
            try f.add("model.layers.0.self_attn.k_proj.weight", shape: [8, 4], values: w.tensor("model.layers.0.self_attn.k_proj.weight")!)
        }
        #expect(message.contains("'model.layers.0.self_attn.k_proj.weight' has shape [8, 4] in model.safetensors but config.json implies [4, 8]"), "\(message)")
        let vector = try loadError { f, _ in
            f.remove("model.norm.weight")
            try f.add("model.norm.weight", shape: [1, 8], values: [Float](repeating: 1, count: 8))
        }
        #expect(vector.contains("has shape [1, 8] in model.safetensors but config.json implies [8]"), "\(vector)")
    }

    @Test func unexpectedTensorIsNamedButRotaryBuffersAreIgnored() throws {
        let message = try loadError { f, _ in try f.add("model.layers.0.self_attn.q_proj.bias", shape: [8], values: [Float](repeating: 0, count: 8)) }
        #expect(message.contains("tensors a model with this config.json has not: model.layers.0.self_attn.q_proj.bias"), "\(message)")

        // inv_freq buffers (any dtype) are skipped; the rest loads unchanged.
        let weights = ckptWeights()
        var file = SafeTensorsFile(metadata: ["format": "pt"])
        try file.add("model.rotary_emb.inv_freq", shape: [2], values: [1, 0.01])
        for s in weights.slots { try file.add(s.name, shape: s.shape, values: weights.tensor(s.name)!) }
        let dir = scratchDirectory()
        defer { cleanup(dir) }
        try ckptConfig.huggingFaceJSON().write(to: dir.appendingPathComponent("config.json"))
        try file.write(to: dir.appendingPathComponent("model.safetensors"))
        let loaded = try loadCheckpoint(from: dir, acceptNonFinite: true)
        #expect(bits(loaded.weights.data) == bits(weights.data))
        #expect(loaded.lab == nil)
        #expect(loaded.labState == nil)
    }

    @Test func tiedHeadMayBePresentOnlyIfEqual() throws {
        var tied = ckptConfig
        tied.tieWordEmbeddings = true
        let equal = ckptWeights(tied)
        var file = SafeTensorsFile(metadata: ["format": "pt"])
        for s in equal.slots { try file.add(s.name, shape: s.shape, values: equal.tensor(s.name)!) }
        try file.add("lm_head.weight", shape: equal.embedding.shape, values: equal.tensor("model.embed_tokens.weight")!)
        let dir = scratchDirectory()
        defer { cleanup(dir) }
        try tied.huggingFaceJSON().write(to: dir.appendingPathComponent("config.json"))
        try file.write(to: dir.appendingPathComponent("model.safetensors"))
        #expect(bits(try loadCheckpoint(from: dir, acceptNonFinite: true).weights.data) == bits(equal.data))

        let message = try loadError(config: tied) { f, w in
            var head = w.tensor("model.embed_tokens.weight")!
            head[17] += 1
            try f.add("lm_head.weight", shape: w.embedding.shape, values: head)
        }
        #expect(message.contains("lm_head.weight differs from model.embed_tokens.weight (first at element 17"), "\(message)")
        // Untied: lm_head is required.
        let untied = try loadError { f, _ in f.remove("lm_head.weight") }
        #expect(untied.contains("no tensor 'lm_head.weight'"), "\(untied)")
    }

    /// Three heads of the given head_dim 4 make q 12 wide: a valid configuration (as in
    /// transformers) that the file's tensors do not fit; without head_dim, three heads do not
    /// divide the width.
    @Test func badConfigInADirectoryIsRefused() throws {
        let text = String(decoding: ckptConfig.huggingFaceJSON(), as: UTF8.self)
            .replacingOccurrences(of: "\"num_attention_heads\": 2", with: "\"num_attention_heads\": 3")
        let message = try loadError(configJSON: Data(text.utf8)) { _, _ in }
        #expect(message.contains("tensor 'model.layers.0.self_attn.q_proj.weight' has shape [8, 8] in model.safetensors but config.json implies [12, 8]"), "\(message)")
        let withoutHeadDim = text.replacingOccurrences(of: "\"head_dim\": 4,\n", with: "")
        #expect(withoutHeadDim != text)
        let undivided = try loadError(configJSON: Data(withoutHeadDim.utf8)) { _, _ in }
        #expect(undivided.contains("config.json: num_attention_heads (3) must divide hidden_size (8)"), "\(undivided)")
    }

    @Test func missingFilesAreExplained() throws {
        let dir = scratchDirectory()
        defer { cleanup(dir) }
        #expect(failure { () throws(NumericsError) in try loadCheckpoint(from: dir.appendingPathComponent("none")) }
            .contains("does not exist"))
        #expect(failure { () throws(NumericsError) in try loadCheckpoint(from: dir) }.contains("has no config.json"))
        try ckptConfig.huggingFaceJSON().write(to: dir.appendingPathComponent("config.json"))
        #expect(failure { () throws(NumericsError) in try loadCheckpoint(from: dir) }.contains("has no model.safetensors"))
        try Data("{}".utf8).write(to: dir.appendingPathComponent("model.safetensors.index.json"))
        #expect(failure { () throws(NumericsError) in try loadCheckpoint(from: dir) }.contains("model.safetensors.index.json: no \"weight_map\" object"))
        #expect(failure { () throws(NumericsError) in try loadCheckpoint(from: dir.appendingPathComponent("config.json")) }
            .contains("is not a directory"))
    }

    @Test func badLabFilesAreRefused() throws {
        let dir = scratchDirectory()
        defer { cleanup(dir) }
        let target = dir.appendingPathComponent("c")
        try saveCheckpoint(weights: ckptWeights(), lab: LabMetadata(task: "t"), to: target)
        let lab = target.appendingPathComponent("lab.json")
        try Data("{\"format_version\": 99}".utf8).write(to: lab)
        #expect(failure { () throws(NumericsError) in try loadCheckpoint(from: target) }.contains("format_version 99; this lab reads 1…1"))
        try Data("{\"format_version\": 1, \"step\": \"ten\"}".utf8).write(to: lab)
        let message = failure { () throws(NumericsError) in try loadCheckpoint(from: target) }
        #expect(message.contains("lab.json is not valid lab metadata") && message.contains("'step'"), "\(message)")
        try Data("not json".utf8).write(to: lab)
        #expect(failure { () throws(NumericsError) in try loadCheckpoint(from: target) }.contains("lab.json"))
        try FileManager.default.removeItem(at: lab)
        try Data([1, 2, 3]).write(to: target.appendingPathComponent("lab_state.safetensors"))
        #expect(failure { () throws(NumericsError) in try loadCheckpoint(from: target) }.contains("lab_state.safetensors: the file is 3 bytes long"))
    }

    @Test func corruptingAnyHeaderByteIsCaughtOrHarmless() throws {
        let weights = ckptWeights()
        let dir = scratchDirectory()
        defer { cleanup(dir) }
        let target = dir.appendingPathComponent("c")
        try saveCheckpoint(weights: weights, lab: nil, to: target)
        let modelURL = target.appendingPathComponent("model.safetensors")
        let original = try Data(contentsOf: modelURL)
        let headerEnd = 8 + Int(original[0]) + Int(original[1]) << 8 + Int(original[2]) << 16
        var caught = 0, harmless = 0
        for position in stride(from: 0, to: headerEnd, by: 3) {
            for flip: UInt8 in [0x01, 0x80] {
                var bytes = original
                bytes[position] ^= flip
                try bytes.write(to: modelURL)
                do {
                    let loaded = try loadCheckpoint(from: target, acceptNonFinite: true)
                    // Only a change that does not alter the model may go unnoticed (e.g. in
                    // the metadata's value or a padding space turned into another blank).
                    #expect(bits(loaded.weights.data) == bits(weights.data), "flip 0x\(String(flip, radix: 16)) at byte \(position)")
                    harmless += 1
                } catch {
                    caught += 1
                }
            }
        }
        #expect(caught > 10 * harmless, "caught \(caught), harmless \(harmless)")
    }

    @Test func truncatedModelFileIsAnError() throws {
        let dir = scratchDirectory()
        defer { cleanup(dir) }
        let target = dir.appendingPathComponent("c")
        try saveCheckpoint(weights: ckptWeights(), lab: nil, to: target)
        let modelURL = target.appendingPathComponent("model.safetensors")
        let original = try Data(contentsOf: modelURL)
        for cut in [0, 5, 8, 100, original.count / 2, original.count - 1] {
            try original.prefix(cut).write(to: modelURL)
            let message = failure { () throws(NumericsError) in try loadCheckpoint(from: target) }
            #expect(message.hasPrefix("model.safetensors: "), "cut \(cut): \(message)")
        }
    }

    @Test func hugeConfigIsRefusedBeforeAllocating() throws {
        let dir = scratchDirectory()
        defer { cleanup(dir) }
        let json = """
        {"model_type": "llama", "hidden_size": 1048576, "intermediate_size": 1048576, "num_attention_heads": 8,
         "num_hidden_layers": 1000, "vocab_size": 1000000}
        """
        try Data(json.utf8).write(to: dir.appendingPathComponent("config.json"))
        try SafeTensorsFile().write(to: dir.appendingPathComponent("model.safetensors"))
        #expect(failure { () throws(NumericsError) in try loadCheckpoint(from: dir) }
            .contains("more than 2147483648 parameters, the limit for loading"))
        // Dimensions whose parameter count overflows 64 bits.
        let overflowing = """
        {"model_type": "llama", "hidden_size": 2147483648, "intermediate_size": 2147483648,
         "num_attention_heads": 1048576, "num_hidden_layers": 2147483648, "vocab_size": 2147483648}
        """
        try Data(overflowing.utf8).write(to: dir.appendingPathComponent("config.json"))
        #expect(failure { () throws(NumericsError) in try loadCheckpoint(from: dir) }
            .contains("the limit for loading"))
    }

    @Test(arguments: [false, true])
    func theParameterLimitIsExact(tied: Bool) throws {
        var config = ckptConfig
        config.tieWordEmbeddings = tied
        let dir = scratchDirectory()
        defer { cleanup(dir) }
        try saveCheckpoint(weights: ckptWeights(config), lab: nil, to: dir.appendingPathComponent("c"))
        let count = config.parameterCount
        _ = try loadCheckpoint(from: dir.appendingPathComponent("c"), limits: SafeTensorsLimits(maxTotalElements: count), acceptNonFinite: true)
        #expect(failure { () throws(NumericsError) in
            try loadCheckpoint(from: dir.appendingPathComponent("c"), limits: SafeTensorsLimits(maxTotalElements: count - 1))
        }.contains("more than \(count - 1) parameters"))
    }
}

@Suite struct CheckpointAtomicityTests {
    /// Weights whose every value is `fill`, with `theta` as rotary base: a mix of two saves
    /// (config of one, weights of the other) is visible as a mismatch of the two.
    private func marked(_ fill: Float, theta: Float) -> ModelWeights {
        var config = ckptConfig
        config.ropeTheta = theta
        var w = ModelWeights(config: config)
        for i in w.data.indices { w.data[i] = fill }
        return w
    }

    @Test func savingOverACheckpointReplacesItWhole() throws {
        let dir = scratchDirectory()
        defer { cleanup(dir) }
        let target = dir.appendingPathComponent("c")
        var state = SafeTensorsFile()
        try state.add("m", shape: [2], values: [1, 2])
        try saveCheckpoint(weights: marked(1, theta: 10_000), lab: LabMetadata(step: 1), labState: state, to: target)
        try Data("notes\n".utf8).write(to: target.appendingPathComponent("README.md"))
        try saveCheckpoint(weights: marked(2, theta: 20_000), lab: LabMetadata(step: 2), to: target)
        let loaded = try loadCheckpoint(from: target)
        #expect(loaded.weights.config.ropeTheta == 20_000)
        #expect(loaded.weights.data.allSatisfy { $0 == 2 })
        #expect(loaded.lab?.step == 2)
        #expect(loaded.labState == nil)   // the old state does not outlive its checkpoint
        #expect(try String(contentsOf: target.appendingPathComponent("README.md"), encoding: .utf8) == "notes\n")
        #expect(leftovers(in: dir).isEmpty)
    }

    @Test func aSaveThatFailsMidwayLeavesThePreviousCheckpoint() throws {
        let dir = scratchDirectory()
        defer { cleanup(dir) }
        let target = dir.appendingPathComponent("c")
        let first = ckptWeights(seed: 1)
        try saveCheckpoint(weights: first, lab: LabMetadata(task: "first"), to: target)
        let before = try FileManager.default.contentsOfDirectory(atPath: target.path).sorted()

        // lab.json cannot hold NaN: the save fails after config.json and model.safetensors
        // are written (to the staging directory).
        var bad = LabMetadata(task: "second")
        bad.extra["loss"] = .double(.nan)
        let message = failure { () throws(NumericsError) in
            try saveCheckpoint(weights: ckptWeights(seed: 2), lab: bad, to: target)
        }
        #expect(message.contains("cannot save lab.json"), "\(message)")
        // Weights that do not fit their configuration fail before anything is written.
        var short = ckptWeights(seed: 3)
        short.data.removeLast()
        #expect(failure { () throws(NumericsError) in try saveCheckpoint(weights: short, lab: nil, to: target) }
            .contains("the weights hold"))
        // A token id outside the vocabulary.
        #expect(failure { () throws(NumericsError) in
            try saveCheckpoint(weights: first, lab: nil, specialTokens: SpecialTokenIDs(eos: 11), to: target)
        }.contains("eos_token_id 11 is outside the vocabulary 0..<11"))

        let loaded = try loadCheckpoint(from: target, acceptNonFinite: true)
        #expect(bits(loaded.weights.data) == bits(first.data))
        #expect(loaded.lab?.task == "first")
        #expect(try FileManager.default.contentsOfDirectory(atPath: target.path).sorted() == before)
        #expect(leftovers(in: dir).isEmpty)
    }

    @Test func aFileInTheWayIsNotReplaced() throws {
        let dir = scratchDirectory()
        defer { cleanup(dir) }
        let target = dir.appendingPathComponent("c")
        try Data("keep".utf8).write(to: target)
        #expect(failure { () throws(NumericsError) in try saveCheckpoint(weights: ckptWeights(), lab: nil, to: target) }
            .contains("exists and is not a directory"))
        #expect(try String(contentsOf: target, encoding: .utf8) == "keep")
        #expect(leftovers(in: dir).isEmpty)
    }

    @Test(.enabled(if: geteuid() != 0, "permissions do not stop root"))
    func aReadOnlyParentLeavesThePreviousCheckpoint() throws {
        let dir = scratchDirectory()
        defer {
            chmod(dir.path, 0o755)
            cleanup(dir)
        }
        let target = dir.appendingPathComponent("c")
        let first = ckptWeights(seed: 1)
        try saveCheckpoint(weights: first, lab: nil, to: target)
        chmod(dir.path, 0o555)
        #expect(failure { () throws(NumericsError) in try saveCheckpoint(weights: ckptWeights(seed: 2), lab: nil, to: target) }
            .contains("cannot create a temporary directory"))
        chmod(dir.path, 0o755)
        #expect(bits(try loadCheckpoint(from: target, acceptNonFinite: true).weights.data) == bits(first.data))
    }

    /// A reader racing a writer that alternates two checkpoints sees one or the other whole.
    @Test func readersNeverSeeAMixOfTwoSaves() throws {
        let dir = scratchDirectory()
        defer { cleanup(dir) }
        let target = dir.appendingPathComponent("c")
        let a = marked(1, theta: 10_000), b = marked(2, theta: 20_000)
        try saveCheckpoint(weights: a, lab: LabMetadata(step: 1), to: target)
        let done = Flag()
        let readCount = Counter()
        // The writer runs on a thread of its own: a task could wait behind other tests for
        // the cooperative pool's few threads (two on a two-core machine) longer than the reader
        // reads.
        let failure = Box()
        let writer = Thread {
            defer { done.set() }
            for i in 0..<80 {
                do {
                    try saveCheckpoint(weights: i % 2 == 0 ? b : a, lab: LabMetadata(step: i % 2 == 0 ? 2 : 1), to: target)
                } catch {
                    failure.set("\(error)")
                    return
                }
                // Let the reader read each version (and race the next save) before going on,
                // however the threads happen to be scheduled; give up waiting after 5 s.
                let before = readCount.value
                let until = ContinuousClock.now + .seconds(5)
                while readCount.value < before + 2 && ContinuousClock.now < until { usleep(500) }
            }
        }
        writer.start()
        // Read for as long as the writer writes (it may be slow to start when other tests
        // load the machine), with a generous deadline so a stuck writer cannot hang the suite.
        var seen: Set<Float> = [], reads = 0
        let deadline = ContinuousClock.now + .seconds(120)
        while !done.isSet && ContinuousClock.now < deadline {
            reads += 1
            readCount.increment()
            let c: Checkpoint
            do {
                c = try loadCheckpoint(from: target)
            } catch {
                Issue.record("load during saves failed: \(error)")
                break
            }
            let theta = c.weights.config.ropeTheta
            let expected: Float = theta == 10_000 ? 1 : 2
            seen.insert(theta)
            if !c.weights.data.allSatisfy({ $0 == expected }) || c.lab?.step != Int(expected) {
                Issue.record("read \(reads): rope_theta \(theta) with weights \(c.weights.data[0]) and lab step \(String(describing: c.lab?.step))")
                break
            }
        }
        while !done.isSet { usleep(1000) }
        #expect(failure.value == nil)
        #expect(seen == [10_000, 20_000], "the reader saw only \(seen) in \(reads) reads")
        #expect(leftovers(in: dir).isEmpty)
    }
}

/// The writer's error, if any.
private final class Box: @unchecked Sendable {
    private let lock = NSLock()
    private var text: String?
    func set(_ t: String) { lock.lock(); text = t; lock.unlock() }
    var value: String? { lock.lock(); defer { lock.unlock() }; return text }
}

/// A count shared by the reader and the writer.
private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}

/// A flag set by one thread and read by another.
private final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}

// MARK: The Hugging Face fixture

@Suite struct CheckpointFixtureTests {
    @Test func untiedFixtureLoadsWithItsConfigAndShapes() throws {
        let url = fixtures.appendingPathComponent("tiny-llama")
        let loaded = try loadCheckpoint(from: url)
        let c = loaded.weights.config
        #expect(c == LlamaConfig(hiddenSize: 32, intermediateSize: 64, numAttentionHeads: 4, numKeyValueHeads: 2,
                                 numHiddenLayers: 2, vocabSize: 48, rmsNormEps: 1e-5, ropeTheta: 10_000,
                                 maxPositionEmbeddings: 64, tieWordEmbeddings: false))
        #expect(loaded.specialTokens == SpecialTokenIDs(bos: 1, eos: 2, pad: 0))
        #expect(loaded.lab == nil)
        let file = try SafeTensorsFile.read(contentsOf: url.appendingPathComponent("model.safetensors"))
        #expect(Set(file.names) == Set(loaded.weights.slots.map(\.name)))
        #expect(file.count == 21)
        for slot in loaded.weights.slots {
            let t = try file.tensor(slot.name)
            #expect(t.shape == slot.shape, "\(slot.name)")
            #expect(t.storedType == .f32)
            #expect(bits(loaded.weights.tensor(slot.name)!) == bits(t.values), "\(slot.name) landed in the wrong place")
        }
        #expect(loaded.weights.slot("model.layers.1.self_attn.v_proj.weight")?.shape == [16, 32])
        #expect(loaded.weights.slot("model.layers.0.mlp.down_proj.weight")?.shape == [32, 64])
        #expect(loaded.weights.slot("model.norm.weight")?.shape == [32])
        // The fixture's norm weights are not all 1 (the script perturbs them).
        #expect(loaded.weights.tensor("model.norm.weight")!.contains { $0 != 1 })
    }

    @Test(arguments: ["tiny-llama", "tiny-llama-tied"])
    func resavingTheFixtureIsBitExact(name: String) throws {
        let original = try loadCheckpoint(from: fixtures.appendingPathComponent(name))
        let dir = scratchDirectory()
        defer { cleanup(dir) }
        let target = dir.appendingPathComponent(name)
        try saveCheckpoint(original, to: target)
        let again = try loadCheckpoint(from: target)
        #expect(again.weights.config == original.weights.config)
        #expect(bits(again.weights.data) == bits(original.weights.data))
        #expect(again.specialTokens == original.specialTokens)
        #expect(original.weights.config.tieWordEmbeddings == (name == "tiny-llama-tied"))
    }

    @Test func bf16FixtureHoldsTheRoundedFloat32Weights() throws {
        let f32 = try loadCheckpoint(from: fixtures.appendingPathComponent("tiny-llama"))
        let bf16 = try loadCheckpoint(from: fixtures.appendingPathComponent("tiny-llama-bf16"))
        let file = try SafeTensorsFile.read(contentsOf: fixtures.appendingPathComponent("tiny-llama-bf16/model.safetensors"))
        #expect(file.names.allSatisfy { name in file[name]?.storedType == .bf16 })
        #expect(bf16.weights.config == f32.weights.config)
        let rounder = Rounder(format: .bf16)
        #expect(bits(bf16.weights.data) == bits(f32.weights.data.map { rounder.round($0) }))
        #expect(bf16.weights.data != f32.weights.data)
    }
}

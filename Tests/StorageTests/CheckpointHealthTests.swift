import Foundation
import Model
import Numerics
import Storage
import Testing

// Health at the door: a checkpoint whose weights or optimizer state hold NaN or infinity
// is refused when loaded, naming the tensors; config.json keys that are absent take
// transformers' LlamaConfig defaults and are listed.
//
// The files are assembled byte by byte here (header JSON, little-endian codes), not by the
// library's writer, so the codes of NaN and infinity are exactly the ones chosen.

private let healthDirectories = FileManager.default.temporaryDirectory

/// A fresh empty directory, removed by the caller.
private func scratch() -> URL {
    let url = healthDirectories.appendingPathComponent("plab-health-test-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A one-layer model: hidden 4, 2 heads of 2 sharing 1 key/value head, MLP 6, vocabulary 5.
private let healthConfig = """
{"model_type": "llama", "hidden_size": 4, "intermediate_size": 6, "num_attention_heads": 2,
 "num_key_value_heads": 1, "num_hidden_layers": 1, "vocab_size": 5, "rms_norm_eps": 1e-05,
 "rope_theta": 10000.0, "max_position_embeddings": 16, "tie_word_embeddings": false, "hidden_act": "silu"}
"""

/// The tensors of that model with their Hugging Face shapes, in the order Llama stores them.
private let healthTensors: [(name: String, shape: [Int])] = [
    ("model.embed_tokens.weight", [5, 4]),
    ("model.layers.0.input_layernorm.weight", [4]),
    ("model.layers.0.self_attn.q_proj.weight", [4, 4]),
    ("model.layers.0.self_attn.k_proj.weight", [2, 4]),
    ("model.layers.0.self_attn.v_proj.weight", [2, 4]),
    ("model.layers.0.self_attn.o_proj.weight", [4, 4]),
    ("model.layers.0.post_attention_layernorm.weight", [4]),
    ("model.layers.0.mlp.gate_proj.weight", [6, 4]),
    ("model.layers.0.mlp.up_proj.weight", [6, 4]),
    ("model.layers.0.mlp.down_proj.weight", [4, 6]),
    ("model.norm.weight", [4]),
    ("lm_head.weight", [5, 4]),
]

/// A stored number format and the codes of the values the tests place.
struct HealthCodes: CustomStringConvertible, Sendable {
    var dtype: String
    var width: Int              // bytes per element
    var half: UInt64            // 0.5
    var quietNaN: UInt64
    var negativeNaN: UInt64     // sign bit set, a payload
    var signallingNaN: UInt64   // quiet bit clear, a payload
    var plusInf: UInt64
    var minusInf: UInt64
    var description: String { dtype }

    static let f32 = HealthCodes(dtype: "F32", width: 4, half: 0x3F00_0000, quietNaN: 0x7FC0_0000, negativeNaN: 0xFFC0_0001,
                           signallingNaN: 0x7F80_0001, plusInf: 0x7F80_0000, minusInf: 0xFF80_0000)
    static let bf16 = HealthCodes(dtype: "BF16", width: 2, half: 0x3F00, quietNaN: 0x7FC0, negativeNaN: 0xFFC1,
                            signallingNaN: 0x7F81, plusInf: 0x7F80, minusInf: 0xFF80)
    static let f16 = HealthCodes(dtype: "F16", width: 2, half: 0x3800, quietNaN: 0x7E00, negativeNaN: 0xFE01,
                           signallingNaN: 0x7C01, plusInf: 0x7C00, minusInf: 0xFC00)
}

/// A safetensors file: every element 0.5 except the codes placed at (tensor, index).
private func safetensors(_ tensors: [(name: String, shape: [Int])], codes: HealthCodes,
                         placed: [String: [Int: UInt64]] = [:]) -> Data {
    var header: [String] = [], data: [UInt8] = []
    for t in tensors {
        let count = t.shape.reduce(1, *)
        let begin = data.count
        for i in 0..<count {
            let code = placed[t.name]?[i] ?? codes.half
            for b in 0..<codes.width { data.append(UInt8(truncatingIfNeeded: code >> (8 * UInt64(b)))) }
        }
        header.append("\"\(t.name)\": {\"dtype\": \"\(codes.dtype)\", \"shape\": \(t.shape), \"data_offsets\": [\(begin), \(data.count)]}")
    }
    var text = Array(("{" + header.joined(separator: ", ") + "}").utf8)
    while text.count % 8 != 0 { text.append(0x20) }
    let n = UInt64(text.count)
    return Data((0..<8).map { UInt8(truncatingIfNeeded: n >> (8 * UInt64($0))) } + text + data)
}

/// A checkpoint directory of the tiny model with the given files.
private func checkpoint(config: String = healthConfig, model: Data, labState: Data? = nil) throws -> URL {
    let dir = scratch()
    try Data(config.utf8).write(to: dir.appendingPathComponent("config.json"))
    try model.write(to: dir.appendingPathComponent("model.safetensors"))
    if let labState { try labState.write(to: dir.appendingPathComponent("lab_state.safetensors")) }
    return dir
}

@Suite struct CheckpointHealthTests {
    /// NaN (quiet, negative, signalling) and ±inf in F32, BF16 and F16 files: the load is
    /// refused, naming each damaged tensor with its counts, in the model's order.
    @Test(arguments: [HealthCodes.f32, .bf16, .f16])
    func nonFiniteWeightsAreRefusedNamingTensorsAndCounts(codes: HealthCodes) throws {
        let clean = try checkpoint(model: safetensors(healthTensors, codes: codes))
        defer { try? FileManager.default.removeItem(at: clean) }
        let loaded = try loadCheckpoint(from: clean)
        #expect(loaded.weights.data.allSatisfy { $0 == 0.5 }, "a finite checkpoint loads as it is")

        let placed: [String: [Int: UInt64]] = [
            "model.layers.0.mlp.up_proj.weight": [0: codes.quietNaN, 5: codes.negativeNaN, 9: codes.signallingNaN, 3: codes.plusInf],
            "model.norm.weight": [2: codes.minusInf],
            "model.embed_tokens.weight": [19: codes.plusInf],
        ]
        let damaged = try checkpoint(model: safetensors(healthTensors, codes: codes, placed: placed))
        defer { try? FileManager.default.removeItem(at: damaged) }
        let message = failure { () throws(NumericsError) in try loadCheckpoint(from: damaged) }
        #expect(message.hasPrefix("model.safetensors: non-finite weights in 3 tensors: model.embed_tokens.weight (1 +inf), model.layers.0.mlp.up_proj.weight (3 NaN, 1 +inf), model.norm.weight (1 -inf); the checkpoint is damaged or diverged"),
                "\(message)")
        #expect(!message.contains("\n"))
    }

    /// Many damaged tensors: the first four are named, and how many there are in all.
    @Test func manyDamagedTensorsAreCounted() throws {
        var placed: [String: [Int: UInt64]] = [:]
        for t in healthTensors.prefix(6) { placed[t.name] = [0: HealthCodes.f32.quietNaN] }
        let dir = try checkpoint(model: safetensors(healthTensors, codes: .f32, placed: placed))
        defer { try? FileManager.default.removeItem(at: dir) }
        let message = failure { () throws(NumericsError) in try loadCheckpoint(from: dir) }
        #expect(message.contains("non-finite weights in 6 tensors: model.embed_tokens.weight (1 NaN), model.layers.0.input_layernorm.weight (1 NaN), model.layers.0.self_attn.q_proj.weight (1 NaN), model.layers.0.self_attn.k_proj.weight (1 NaN), … (6 in all)"),
                "\(message)")
    }

    /// The optimizer moments in lab_state.safetensors are checked the same way.
    @Test func nonFiniteOptimizerStateIsRefused() throws {
        let moments: [(name: String, shape: [Int])] = [("rl.adam.m", [8]), ("rl.adam.v", [8])]
        let state = safetensors(moments, codes: .f32, placed: ["rl.adam.v": [1: HealthCodes.f32.quietNaN, 6: HealthCodes.f32.signallingNaN, 7: HealthCodes.f32.minusInf]])
        let dir = try checkpoint(model: safetensors(healthTensors, codes: .f32), labState: state)
        defer { try? FileManager.default.removeItem(at: dir) }
        let message = failure { () throws(NumericsError) in try loadCheckpoint(from: dir) }
        #expect(message.hasPrefix("lab_state.safetensors: non-finite values in 1 tensor: rl.adam.v (2 NaN, 1 -inf); the checkpoint is damaged or diverged"),
                "\(message)")
        try safetensors(moments, codes: .f32).write(to: dir.appendingPathComponent("lab_state.safetensors"))
        #expect(try loadCheckpoint(from: dir).labState?["rl.adam.v"]?.values == [Float](repeating: 0.5, count: 8))
    }

    /// To look at a damaged checkpoint as it is, `acceptNonFinite` loads it bit for bit.
    @Test func acceptNonFiniteLoadsTheCodesAsTheyAre() throws {
        let placed: [String: [Int: UInt64]] = ["model.norm.weight": [1: HealthCodes.f32.negativeNaN, 2: HealthCodes.f32.minusInf]]
        let dir = try checkpoint(model: safetensors(healthTensors, codes: .f32, placed: placed))
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = try loadCheckpoint(from: dir, acceptNonFinite: true)
        let slot = c.weights.slots.first { $0.name == "model.norm.weight" }!
        #expect(c.weights.data[slot.offset + 1].bitPattern == 0xFFC0_0001)
        #expect(c.weights.data[slot.offset + 2] == -.infinity)
    }

    /// Keys absent from config.json take transformers' LlamaConfig defaults (transformers
    /// 5.24, models/llama/configuration_llama.py: rms_norm_eps 1e-6, max_position_embeddings
    /// 2048, num_key_value_heads = num_attention_heads, tie_word_embeddings False,
    /// hidden_act "silu"; modeling_rope_utils.py: default_theta 10000.0), and are listed.
    @Test func absentConfigKeysTakeTransformersDefaultsAndAreListed() throws {
        let bare = """
        {"model_type": "llama", "hidden_size": 4, "intermediate_size": 6, "num_attention_heads": 2,
         "num_hidden_layers": 1, "vocab_size": 5}
        """
        let read = try LlamaConfig.huggingFaceConfig(from: Data(bare.utf8))
        #expect(read.config.rmsNormEps == Float(1e-6))
        #expect(read.config.ropeTheta == 10_000)
        #expect(read.config.maxPositionEmbeddings == 2048)
        #expect(read.config.numKeyValueHeads == 2)
        #expect(read.config.tieWordEmbeddings == false)
        #expect(read.defaults.map(\.key) == ["num_key_value_heads", "hidden_act", "max_position_embeddings", "rms_norm_eps",
                                             "tie_word_embeddings", "rope_theta"])
        #expect(read.defaults.map(\.value) == ["2 (= num_attention_heads)", "silu", "2048", "1e-06", "false", "10000"])

        // Every key given: nothing defaulted. The rotary base in rope_parameters counts as given.
        #expect(try LlamaConfig.huggingFaceConfig(from: Data(healthConfig.utf8)).defaults.isEmpty)
        let nested = healthConfig.replacingOccurrences(of: "\"rope_theta\": 10000.0", with: "\"rope_parameters\": {\"rope_theta\": 500000.0, \"rope_type\": \"default\"}")
        #expect(try LlamaConfig.huggingFaceConfig(from: Data(nested.utf8)).defaults.isEmpty)

        // A checkpoint records them, and says so in one line.
        let lacking = healthConfig.replacingOccurrences(of: "\"rms_norm_eps\": 1e-05,", with: "")
            .replacingOccurrences(of: "\"rope_theta\": 10000.0,", with: "")
        let dir = try checkpoint(config: lacking, model: safetensors(healthTensors, codes: .f32))
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = try loadCheckpoint(from: dir)
        #expect(c.configDefaults.map(\.key) == ["rms_norm_eps", "rope_theta"])
        #expect(ConfigDefault.summary(c.configDefaults) == "config.json lacks rms_norm_eps, rope_theta: took transformers' LlamaConfig defaults 1e-06, 10000")
        #expect(ConfigDefault.summary([]) == nil)
    }

    /// A shape that a defaulted key explains: the error says the key was absent.
    @Test func aShapeErrorMentionsTheDefaultsTaken() throws {
        let lacking = healthConfig.replacingOccurrences(of: "\"num_key_value_heads\": 1,", with: "")
        let dir = try checkpoint(config: lacking, model: safetensors(healthTensors, codes: .f32))
        defer { try? FileManager.default.removeItem(at: dir) }
        let message = failure { () throws(NumericsError) in try loadCheckpoint(from: dir) }
        #expect(message.contains("k_proj.weight' has shape [2, 4]"))
        #expect(message.contains("(config.json lacks num_key_value_heads: took transformers' LlamaConfig default 2 (= num_attention_heads))"), "\(message)")
    }
}

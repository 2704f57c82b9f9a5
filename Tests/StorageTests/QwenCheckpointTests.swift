// Qwen2, Qwen3 and Mistral checkpoints: config.json keys and defaults, the refusals, and the
// layout the lab writes (the one transformers loads: scripts/reference/make_qwen_fixture.py
// checks it).

import Foundation
import Model
import Numerics
import Storage
import Testing

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Fixtures")

private func message(_ body: () throws(NumericsError) -> Void) -> String {
    do { try body() } catch { return error.description }
    return "(no error)"
}

private func readConfig(_ text: String) -> String {
    message { () throws(NumericsError) in _ = try LlamaConfig.huggingFaceConfig(from: Data(text.utf8)) }
}

/// A copy of a fixture checkpoint (config.json and model.safetensors) in a fresh temporary
/// directory, its tensors changed by `edit` (nil drops a tensor).
private func editedCopy(of fixture: String, _ edit: (String, SafeTensor) throws -> SafeTensor?) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("plab-qwen-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let source = fixtures.appendingPathComponent(fixture)
    try FileManager.default.copyItem(at: source.appendingPathComponent("config.json"), to: dir.appendingPathComponent("config.json"))
    let original = try SafeTensorsFile.read(contentsOf: source.appendingPathComponent("model.safetensors"))
    var edited = SafeTensorsFile(metadata: original.metadata)
    for name in original.names {
        if let t = try edit(name, original[name]!) { try edited.add(name, t) }
    }
    try edited.write(to: dir.appendingPathComponent("model.safetensors"))
    return dir
}

@Suite struct QwenCheckpointTests {
    /// Loading each checkpoint transformers saved and saving it again writes the lab's
    /// committed copy byte for byte: config.json and model.safetensors, which transformers
    /// loads to the same logits (checked when the fixtures were made). Loading that copy
    /// gives the same configuration and weights.
    @Test(arguments: ["tiny-qwen2", "tiny-qwen3", "tiny-qwen3-bias", "tiny-mistral"])
    func savingTransformersCheckpointWritesTheCheckedCopy(model: String) throws {
        let loaded = try loadCheckpoint(from: fixtures.appendingPathComponent("\(model)-hf"))
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("plab-qwen-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        try saveCheckpoint(weights: loaded.weights, lab: nil, specialTokens: loaded.specialTokens, to: out)
        for file in ["config.json", "model.safetensors"] {
            let written = try Data(contentsOf: out.appendingPathComponent(file))
            let checked = try Data(contentsOf: fixtures.appendingPathComponent("\(model)-lab/\(file)"))
            #expect(written == checked, "\(file) differs from Tests/Fixtures/\(model)-lab/\(file)")
        }
        let again = try loadCheckpoint(from: out)
        #expect(again.weights.data == loaded.weights.data)
        #expect(again.weights.config == loaded.weights.config)
        // A tied model's file has no lm_head.weight.
        let names = try SafeTensorsFile.read(contentsOf: out.appendingPathComponent("model.safetensors")).names
        #expect(names.contains("lm_head.weight") == !loaded.weights.config.tieWordEmbeddings)
    }

    /// Absent keys take each family's defaults (transformers 5.25: Qwen2Config and
    /// Qwen3Config 32 key/value heads, 32768 positions, rms_norm_eps 1e-6, Qwen3's head_dim
    /// 128; MistralConfig 8 key/value heads, 131072 positions), listed with the class named.
    @Test func absentKeysTakeTheFamilysDefaults() throws {
        func bare(_ type: String, heads: Int = 32, extra: String = "") -> String {
            """
            {"model_type": "\(type)", "hidden_size": 64, "intermediate_size": 6, "num_attention_heads": \(heads),
             "num_hidden_layers": 1, "vocab_size": 5\(extra)}
            """
        }
        let qwen2 = try LlamaConfig.huggingFaceConfig(from: Data(bare("qwen2").utf8))
        #expect(qwen2.config.family == .qwen2 && qwen2.config.qkvBias && !qwen2.config.qkNorm)
        #expect(qwen2.config.numKeyValueHeads == 32 && qwen2.config.maxPositionEmbeddings == 32_768)
        #expect(qwen2.config.rmsNormEps == Float(1e-6) && qwen2.config.ropeTheta == 10_000 && qwen2.config.headDim == 2)
        #expect(ConfigDefault.summary(Array(qwen2.defaults.prefix(1)), family: .qwen2)
                == "config.json lacks num_key_value_heads: took transformers' Qwen2Config default 32")
        let qwen3 = try LlamaConfig.huggingFaceConfig(from: Data(bare("qwen3").utf8))
        #expect(qwen3.config.family == .qwen3 && qwen3.config.qkNorm && !qwen3.config.qkvBias && !qwen3.config.outputBias)
        #expect(qwen3.config.headDim == 128 && qwen3.config.qDim == 32 * 128)
        #expect(qwen3.defaults.map(\.key).contains("head_dim"))
        let biased = try LlamaConfig.huggingFaceConfig(from: Data(bare("qwen3", extra: ", \"attention_bias\": true").utf8))
        #expect(biased.config.qkvBias && biased.config.outputBias)
        // Qwen2Config has no attention_bias: transformers ignores the key, and so does the reader.
        let qwen2Key = try LlamaConfig.huggingFaceConfig(from: Data(bare("qwen2", extra: ", \"attention_bias\": true").utf8))
        #expect(!qwen2Key.config.outputBias)
        let mistral = try LlamaConfig.huggingFaceConfig(from: Data(bare("mistral", extra: ", \"sliding_window\": null").utf8))
        #expect(mistral.config.family == .mistral && mistral.config.numKeyValueHeads == 8)
        #expect(mistral.config.maxPositionEmbeddings == 131_072 && mistral.config.attentionExtraTensors == 0)
        // A Llama may have biases (attention_bias) and its own head size too.
        let llama = try LlamaConfig.huggingFaceConfig(from: Data(bare("llama", extra: ", \"attention_bias\": true, \"head_dim\": 4").utf8))
        #expect(llama.config.qkvBias && llama.config.outputBias && llama.config.headDim == 4 && llama.config.qDim == 128)
        // head_dim equal to hidden/heads is the default one: the configuration is the same.
        let same = try LlamaConfig.huggingFaceConfig(from: Data(bare("llama", extra: ", \"head_dim\": 2").utf8))
        let plain = try LlamaConfig.huggingFaceConfig(from: Data(bare("llama").utf8))
        #expect(same.config == plain.config)
    }

    /// What the model cannot compute is refused, naming the key and what is accepted.
    @Test func slidingWindowsAndUnknownFamiliesAreRefused() {
        let base = """
        {"hidden_size": 16, "intermediate_size": 6, "num_attention_heads": 4, "num_key_value_heads": 2,
         "num_hidden_layers": 2, "vocab_size": 5, "max_position_embeddings": 64
        """
        func read(_ type: String, _ extra: String = "") -> String { readConfig(base + ", \"model_type\": \"\(type)\"" + extra + "}") }
        for family in ["qwen2", "qwen3"] {
            #expect(read(family) == "(no error)")
            #expect(read(family, ", \"use_sliding_window\": false, \"sliding_window\": 4096") == "(no error)")
            #expect(read(family, ", \"use_sliding_window\": true").contains("use_sliding_window is true: sliding-window attention is not supported"))
            #expect(read(family, ", \"layer_types\": [\"full_attention\", \"full_attention\"]") == "(no error)")
            #expect(read(family, ", \"layer_types\": [\"full_attention\", \"sliding_attention\"]")
                    .contains("layer_types[1] is \"sliding_attention\": only \"full_attention\" layers are supported"))
            #expect(read(family, ", \"architectures\": [\"LlamaForCausalLM\"]").contains("does not include \"\(family == "qwen2" ? "Qwen2" : "Qwen3")ForCausalLM\""))
        }
        #expect(read("qwen3", ", \"head_dim\": 5").contains("head_dim 5 must be even"))
        #expect(read("qwen3", ", \"head_dim\": 0").contains("'head_dim' must be a positive integer"))
        #expect(read("mistral", ", \"sliding_window\": null") == "(no error)")
        #expect(read("mistral", ", \"sliding_window\": 64") == "(no error)")
        #expect(read("mistral", ", \"sliding_window\": 32")
                .contains("sliding_window is 32: sliding-window attention is not supported; only null or a window of at least max_position_embeddings (64) is accepted"))
        let absent = readConfig(base.replacingOccurrences(of: "\"max_position_embeddings\": 64", with: "\"max_position_embeddings\": 8192")
                                + ", \"model_type\": \"mistral\"}")
        #expect(absent.contains("sliding_window is absent, so MistralConfig's default 4096 applies"), "\(absent)")
        #expect(read("llama", ", \"mlp_bias\": true").contains("'mlp_bias' is true"))
        let unknown = read("gemma2")
        #expect(unknown.contains("model_type \"gemma2\" is not supported; this lab reads \"llama\", \"mistral\", \"mixtral\", \"qwen2\" and \"qwen3\" models"), "\(unknown)")
    }

    /// A checkpoint whose tensors do not fit its config.json is refused, the message naming
    /// the tensor: a missing bias, a q_norm of the wrong size, a bias the family has not.
    @Test func inconsistentTensorsAreRefusedByName() throws {
        func load(_ dir: URL) -> String {
            defer { try? FileManager.default.removeItem(at: dir) }
            return message { () throws(NumericsError) in _ = try loadCheckpoint(from: dir) }
        }
        let noBias = load(try editedCopy(of: "tiny-qwen2-hf") { name, t in name == "model.layers.1.self_attn.k_proj.bias" ? nil : t })
        #expect(noBias.contains("has no tensor 'model.layers.1.self_attn.k_proj.bias' (shape [16] expected from config.json)"), "\(noBias)")
        let narrowNorm = load(try editedCopy(of: "tiny-qwen3-hf") { name, t in
            name == "model.layers.0.self_attn.q_norm.weight" ? try SafeTensor(shape: [8], values: Array(t.values.prefix(8))) : t
        })
        #expect(narrowNorm.contains("tensor 'model.layers.0.self_attn.q_norm.weight' has shape [8] in model.safetensors but config.json implies [12]"), "\(narrowNorm)")
        let noNorm = load(try editedCopy(of: "tiny-qwen3-hf") { name, t in name == "model.layers.1.self_attn.k_norm.weight" ? nil : t })
        #expect(noNorm.contains("has no tensor 'model.layers.1.self_attn.k_norm.weight' (shape [12] expected"), "\(noNorm)")
        #expect(load(try editedCopy(of: "tiny-qwen3-bias-hf") { _, t in t }) == "(no error)")
        // Qwen3 without attention_bias holding o's bias: a tensor the configuration has not.
        let dir = try editedCopy(of: "tiny-qwen3-bias-hf") { _, t in t }
        let config = dir.appendingPathComponent("config.json")
        let text = try String(contentsOf: config, encoding: .utf8)
        try text.replacingOccurrences(of: "\"attention_bias\": true", with: "\"attention_bias\": false")
            .write(to: config, atomically: true, encoding: .utf8)
        let unexpected = load(dir)
        #expect(unexpected.contains("holds tensors a model with this config.json has not") && unexpected.contains("o_proj.bias"), "\(unexpected)")
    }
}

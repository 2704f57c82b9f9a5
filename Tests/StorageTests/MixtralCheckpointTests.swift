// Mixtral checkpoints: config.json keys and defaults, the refusals, and the layout the lab
// writes (the one transformers loads: scripts/reference/make_mixtral_fixture.py checks it).

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

@Suite struct MixtralCheckpointTests {
    /// Loading the checkpoint transformers saved and saving it again writes the lab's
    /// committed copy byte for byte: config.json and model.safetensors, which transformers
    /// loads to the same logits (checked when the fixture was made).
    @Test func savingTransformersCheckpointWritesTheCheckedCopy() throws {
        let loaded = try loadCheckpoint(from: fixtures.appendingPathComponent("tiny-mixtral-hf"))
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("plab-mixtral-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        try saveCheckpoint(weights: loaded.weights, lab: nil, specialTokens: loaded.specialTokens, to: out)
        for file in ["config.json", "model.safetensors"] {
            let written = try Data(contentsOf: out.appendingPathComponent(file))
            let checked = try Data(contentsOf: fixtures.appendingPathComponent("tiny-mixtral-lab/\(file)"))
            #expect(written == checked, "\(file) differs from Tests/Fixtures/tiny-mixtral-lab/\(file)")
        }
        let again = try loadCheckpoint(from: out)
        #expect(again.weights.data == loaded.weights.data)
        #expect(again.weights.config == loaded.weights.config)
    }

    /// Absent keys take MixtralConfig's defaults (transformers 5.24,
    /// models/mixtral/configuration_mixtral.py: num_local_experts 8, num_experts_per_tok 2,
    /// num_key_value_heads 8, rms_norm_eps 1e-5, max_position_embeddings 131072, rotary base
    /// 1e6), listed with MixtralConfig named.
    @Test func absentKeysTakeMixtralDefaults() throws {
        let bare = """
        {"model_type": "mixtral", "hidden_size": 16, "intermediate_size": 6, "num_attention_heads": 8,
         "num_hidden_layers": 1, "vocab_size": 5}
        """
        let read = try LlamaConfig.huggingFaceConfig(from: Data(bare.utf8))
        #expect(read.config.numLocalExperts == 8 && read.config.numExpertsPerTok == 2 && read.config.normTopKProb)
        #expect(read.config.numKeyValueHeads == 8)
        #expect(read.config.rmsNormEps == Float(1e-5))
        #expect(read.config.ropeTheta == 1_000_000)
        #expect(read.config.maxPositionEmbeddings == 131_072)
        #expect(read.defaults.map(\.key) == ["num_key_value_heads", "hidden_act", "max_position_embeddings", "rms_norm_eps",
                                             "tie_word_embeddings", "rope_theta", "num_experts_per_tok", "num_local_experts"])
        #expect(ConfigDefault.summary(Array(read.defaults.prefix(1)), family: .mixtral)
                == "config.json lacks num_key_value_heads: took transformers' MixtralConfig default 8")
    }

    @Test func whatTheSparseMLPCannotComputeIsRefused() {
        let base = """
        {"model_type": "mixtral", "hidden_size": 16, "intermediate_size": 6, "num_attention_heads": 4, "num_key_value_heads": 2,
         "num_hidden_layers": 1, "vocab_size": 5, "num_local_experts": 4, "num_experts_per_tok": 2
        """
        func read(_ extra: String) -> String {
            message { () throws(NumericsError) in _ = try LlamaConfig.huggingFaceConfig(from: Data((base + extra + "}").utf8)) }
        }
        #expect(read("") == "(no error)")
        #expect(read(", \"sliding_window\": null") == "(no error)")
        #expect(read(", \"sliding_window\": 4096").contains("sliding_window 4096 is not supported"))
        #expect(read(", \"router_jitter_noise\": 0.1").contains("router_jitter_noise 0.1 is not supported"))
        #expect(read(", \"num_experts_per_tok\": 5").contains("\"num_experts_per_tok\" appears twice"))
        let tooMany = base.replacingOccurrences(of: "\"num_experts_per_tok\": 2", with: "\"num_experts_per_tok\": 5") + "}"
        let m = message { () throws(NumericsError) in _ = try LlamaConfig.huggingFaceConfig(from: Data(tooMany.utf8)) }
        #expect(m.contains("num_experts_per_tok (top_k = 5) must be 1…4"), "\(m)")
        let wrongClass = base + ", \"architectures\": [\"LlamaForCausalLM\"]}"
        let w = message { () throws(NumericsError) in _ = try LlamaConfig.huggingFaceConfig(from: Data(wrongClass.utf8)) }
        #expect(w.contains("does not include \"MixtralForCausalLM\""), "\(w)")
        let unknown = base.replacingOccurrences(of: "\"mixtral\"", with: "\"qwen3_moe\"") + "}"
        let u = message { () throws(NumericsError) in _ = try LlamaConfig.huggingFaceConfig(from: Data(unknown.utf8)) }
        #expect(u.contains("model_type \"qwen3_moe\" is not supported; this lab reads \"llama\", \"mistral\", \"mixtral\", \"qwen2\" and \"qwen3\" models"), "\(u)")
    }
}

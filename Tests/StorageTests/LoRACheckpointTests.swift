// LoRA adapters in checkpoints: PEFT's adapter_config.json and adapter_model.safetensors
// beside the base model (the layout PEFT loads: scripts/reference/make_lora_fixture.py
// checks it), and the refusals.

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

/// A copy of the PEFT fixture in a fresh temporary directory, changed by `edit`.
private func editedCopy(_ edit: (URL) throws -> Void) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("plab-lora-\(UUID().uuidString)")
    try FileManager.default.copyItem(at: fixtures.appendingPathComponent("tiny-llama-lora-peft"), to: dir)
    try edit(dir)
    return dir
}

private func replaceInConfig(_ dir: URL, _ old: String, _ new: String) throws {
    let url = dir.appendingPathComponent("adapter_config.json")
    let text = try String(contentsOf: url, encoding: .utf8)
    #expect(text.contains(old), "adapter_config.json lacks \(old)")
    try text.replacingOccurrences(of: old, with: new).write(to: url, atomically: true, encoding: .utf8)
}

@Suite struct LoRACheckpointTests {
    /// Loading PEFT's directory and saving it again writes the lab's committed copy byte for
    /// byte, which PEFT loads to the same logits (checked when the fixture was made).
    @Test func savingPEFTsAdapterWritesTheCheckedCopy() throws {
        let loaded = try loadCheckpoint(from: fixtures.appendingPathComponent("tiny-llama-lora-peft"))
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("plab-lora-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        try saveCheckpoint(weights: loaded.weights, lab: nil, specialTokens: loaded.specialTokens, to: out)
        for file in ["config.json", "model.safetensors", "adapter_config.json", "adapter_model.safetensors"] {
            let written = try Data(contentsOf: out.appendingPathComponent(file))
            let checked = try Data(contentsOf: fixtures.appendingPathComponent("tiny-llama-lora-lab/\(file)"))
            #expect(written == checked, "\(file) differs from Tests/Fixtures/tiny-llama-lora-lab/\(file)")
        }
        let again = try loadCheckpoint(from: out)
        #expect(again.weights.data == loaded.weights.data && again.weights.config == loaded.weights.config)
        // The base model alone is the tiny-llama fixture's.
        let base = try loadCheckpoint(from: fixtures.appendingPathComponent("tiny-llama"))
        #expect(Array(loaded.weights.data[0..<base.weights.data.count]) == base.weights.data)
    }

    /// Saving a model without adapters over a checkpoint that had them removes PEFT's files:
    /// a stale adapter must not come back at the next load.
    @Test func aSaveWithoutAdaptersRemovesTheOldOnes() throws {
        let dir = try editedCopy { _ in }
        defer { try? FileManager.default.removeItem(at: dir) }
        let loaded = try loadCheckpoint(from: dir)
        try saveCheckpoint(weights: loaded.weights.mergingAdapters(), lab: nil, to: dir)
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("adapter_config.json").path))
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("adapter_model.safetensors").path))
        #expect(try loadCheckpoint(from: dir).weights.config.lora == nil)
    }

    @Test func badAdaptersAreRefusedByName() throws {
        func loadError(_ edit: (URL) throws -> Void) throws -> String {
            let dir = try editedCopy(edit)
            defer { try? FileManager.default.removeItem(at: dir) }
            return message { () throws(NumericsError) in _ = try loadCheckpoint(from: dir) }
        }
        var m = try loadError { try FileManager.default.removeItem(at: $0.appendingPathComponent("adapter_model.safetensors")) }
        #expect(m.contains("adapter_config.json but no adapter_model.safetensors"), "\(m)")
        m = try loadError { try FileManager.default.removeItem(at: $0.appendingPathComponent("adapter_config.json")) }
        #expect(m.contains("adapter_model.safetensors but no adapter_config.json"), "\(m)")
        m = try loadError { try replaceInConfig($0, "\"r\": 4", "\"r\": 0") }
        #expect(m.contains("LoRA rank r=0 must be 1"), "\(m)")
        m = try loadError { try replaceInConfig($0, "\"q_proj\"", "\"qkv_proj\"") }
        #expect(m.contains("no linear layer 'qkv_proj' to adapt"), "\(m)")
        m = try loadError { try replaceInConfig($0, "\"use_dora\": false", "\"use_dora\": true") }
        #expect(m.contains("use_dora"), "\(m)")
        m = try loadError { try replaceInConfig($0, "\"peft_type\": \"LORA\"", "\"peft_type\": \"IA3\"") }
        #expect(m.contains("only LORA adapters are read"), "\(m)")
        m = try loadError { try replaceInConfig($0, "\"lora_dropout\": 0.0", "\"lora_dropout\": 1.5") }
        #expect(m.contains("lora_dropout is 1.5; a probability in [0, 1) is read"), "\(m)")
        // Rank 2 in the config: the tensors (rank 4) were made for other adapters.
        // The largest rank accepted, far more than the file holds: refused by its shapes
        // before the weights with such adapters are allocated.
        m = try loadError { try replaceInConfig($0, "\"r\": 4", "\"r\": 1024") }
        #expect(m.contains("has shape [4, 32]") && m.contains("needs [1024, 32]"), "\(m)")
        m = try loadError { try replaceInConfig($0, "\"r\": 4", "\"r\": 2") }
        #expect(m.contains("has shape [4, 32]") && m.contains("the adapter was made for another base model"), "\(m)")
        // Targets the tensors do not cover, and tensors the targets do not name.
        m = try loadError { try replaceInConfig($0, "\"q_proj\"", "\"k_proj\"") }
        #expect(m.contains("holds tensors its adapter_config.json does not describe"), "\(m)")
    }

    /// Dropout acts only while PEFT trains: an adapter trained with it loads to the same
    /// weights as without.
    @Test func anAdapterTrainedWithDropoutLoads() throws {
        let dir = try editedCopy { try replaceInConfig($0, "\"lora_dropout\": 0.0", "\"lora_dropout\": 0.05") }
        defer { try? FileManager.default.removeItem(at: dir) }
        let plain = try loadCheckpoint(from: fixtures.appendingPathComponent("tiny-llama-lora-peft"))
        let withDropout = try loadCheckpoint(from: dir)
        #expect(withDropout.weights.config == plain.weights.config)
        #expect(withDropout.weights.data.map(\.bitPattern) == plain.weights.data.map(\.bitPattern))
    }

    /// An adapter whose base model is another shape is refused with the tensor named.
    @Test func anAdapterForAnotherBaseIsRefused() throws {
        let dir = fixtures.appendingPathComponent("tiny-llama-lora-peft")
        let adapter = try SafeTensorsFile.read(contentsOf: dir.appendingPathComponent("adapter_model.safetensors"))
        var config = try loadCheckpoint(from: dir).weights.config
        config.intermediateSize += 8   // a wider MLP: gate_proj's B (and down_proj's A) no longer fit
        var other = ModelWeights(config: config)
        let m = message { () throws(NumericsError) in try other.fillAdapters(from: adapter, label: "adapter_model.safetensors") }
        #expect(m.contains("mlp.gate_proj.lora_B.weight") && m.contains("made for another base model"), "\(m)")
    }
}

import Foundation
import Model
import Numerics
import Storage
import Testing

/// Checkpoints that made the loader misbehave, written while building the checkpoint fuzz
/// target (fuzz/, scripts/fuzz), which reports them as out-of-memory. Each input is also
/// kept in fuzz/regressions/checkpoint/, which scripts/fuzz runs first.
@Suite struct CheckpointFuzzRegressionTests {
    /// A directory holding `config` as config.json and an empty model.safetensors.
    private func directory(config: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("plab-fuzz-regression-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try Data(config.utf8).write(to: url.appendingPathComponent("config.json"))
        try SafeTensorsFile().write(to: url.appendingPathComponent("model.safetensors"))
        return url
    }

    private func message(loading url: URL, limits: SafeTensorsLimits = .default) -> String {
        do {
            _ = try loadCheckpoint(from: url, limits: limits)
            return "loaded"
        } catch {
            return error.description
        }
    }

    /// fuzz/regressions/checkpoint/config-alone-allocates: 150 bytes of config.json and an
    /// empty model.safetensors made the loader zero-fill the whole model (here 6.4 GB) before
    /// finding no tensor in the file. With no limit on the size, a model of 2^51 parameters
    /// shows it: allocating it would trap, checking the file first does not.
    @Test func theWeightsAreAllocatedOnlyOnceTheFileHoldsThem() throws {
        let url = try directory(config: """
            {"model_type": "llama", "hidden_size": 1048576, "intermediate_size": 1, "num_attention_heads": 1,
             "num_hidden_layers": 0, "vocab_size": 1073741824}
            """)
        defer { try? FileManager.default.removeItem(at: url) }
        let unlimited = SafeTensorsLimits(maxTotalElements: .max)
        #expect(message(loading: url, limits: unlimited).contains("has no tensor 'model.embed_tokens.weight'"))
    }

    /// fuzz/regressions/checkpoint/layer-count-names-millions: num_hidden_layers 80,000,000
    /// (2.1e9 parameters, within the limit) made the loader lay out 720 million tensor names
    /// before looking at the file. The count of tensors in the file is checked first.
    @Test func aLayerCountTheFileCannotHoldIsRefusedFirst() throws {
        let url = try directory(config: """
            {"model_type": "llama", "hidden_size": 2, "intermediate_size": 1, "num_attention_heads": 1,
             "num_hidden_layers": 1000, "vocab_size": 1}
            """)
        defer { try? FileManager.default.removeItem(at: url) }
        #expect(message(loading: url) == "config.json has num_hidden_layers 1000 but model.safetensors holds only 0 tensors (9 a layer)")
    }
}

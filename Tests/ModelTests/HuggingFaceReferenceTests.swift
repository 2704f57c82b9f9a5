import Foundation
import Model
import Numerics
import Storage
import Testing

/// The float32 forward against logits that Hugging Face `LlamaForCausalLM` computed on the
/// committed fixture checkpoints (scripts/reference/make_llama_fixture.py; its torch and
/// transformers versions are in the file's metadata).
@Suite struct HuggingFaceReferenceTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// Bound: 5e-5 absolute on log-probabilities. Both sides are float32 with different
    /// summation orders over a few hundred dependent operations (sequences up to 33 long).
    @Test(arguments: ["tiny-llama", "tiny-llama-tied"])
    func logProbabilitiesMatchTransformers(fixture: String) throws {
        let dir = HuggingFaceReferenceTests.fixtures.appendingPathComponent(fixture)
        let checkpoint = try loadCheckpoint(from: dir)
        let reference = try ReferenceLogits.read(contentsOf: dir.appendingPathComponent("logits.safetensors"))
        let model = Transformer(config: checkpoint.weights.config)
        let v = checkpoint.weights.config.vocabSize
        var worst = 0.0, compared = 0
        for seq in reference.sequences {
            #expect(seq.vocabSize == v)
            let result = model.forward(PackedBatch(sequences: [seq.tokens.map(Int32.init)]), weights: checkpoint.weights,
                                       kernel: PlainLinear(weights: checkpoint.weights, backend: PortableBackend()), plan: .fp32)
            for t in 0..<seq.tokens.count {
                // Log-softmax of the reference logits, in Double.
                let row = seq.logits[(t * v)..<((t + 1) * v)].map(Double.init)
                let m = row.max()!
                let lse = m + Foundation.log(row.map { Foundation.exp($0 - m) }.reduce(0, +))
                for j in 0..<v {
                    worst = max(worst, abs(Double(result.logProbs[t * v + j]) - (row[j] - lse)))
                    compared += 1
                }
            }
        }
        #expect(compared > 1000)
        #expect(worst <= 5e-5, "\(fixture): largest |Δ log p| against transformers = \(worst)")
        print("\(fixture): \(compared) log-probabilities, largest difference from transformers \(worst) (\(reference.metadata["transformers_version"] ?? "?"))")
    }

    @Test func referenceLogitsAreReadable() throws {
        for name in ["tiny-llama", "tiny-llama-tied"] {
            let ref = try ReferenceLogits.read(contentsOf: HuggingFaceReferenceTests.fixtures.appendingPathComponent("\(name)/logits.safetensors"))
            #expect(ref.sequences.map(\.tokens.count) == [1, 5, 16, 33])
            #expect(ref.sequences[1].tokens == [1, 5, 9, 13, 2])
            #expect(ref.sequences[3].tokens == (0..<33).map { (7 * $0 + 3) % 48 })
            for s in ref.sequences {
                #expect(s.vocabSize == 48)
                #expect(s.logits.count == s.tokens.count * 48)
                #expect(s.logits.allSatisfy { $0.isFinite })
            }
            #expect(ref.metadata["torch_version"] != nil)
            #expect(ref.metadata["transformers_version"] != nil)
            #expect(ref.metadata["script"] == "scripts/reference/make_llama_fixture.py")
            #expect(ref.metadata["variant"] == (name == "tiny-llama" ? "untied" : "tied"))
        }
    }
}

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
            let difference = largestLogProbDifference(result.logProbs, seq.logits, rows: seq.tokens.count, vocab: v)
            worst = max(worst, difference)
            compared += seq.tokens.count * v
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

    /// A Mixtral checkpoint: the one transformers saved, and the lab's own copy of it (which
    /// transformers loads to the same logits: make_mixtral_fixture.py checks it). The lab's
    /// float32 log-probabilities agree within 1e-4, and every (row, layer) goes to the
    /// experts transformers' router logits choose (softmax, top 2; the fixture's random
    /// router has no near-ties: the closest second and third probabilities are printed).
    @Test(arguments: ["tiny-mixtral-hf", "tiny-mixtral-lab"])
    func mixtralMatchesTransformers(fixture: String) throws {
        let dir = HuggingFaceReferenceTests.fixtures.appendingPathComponent(fixture)
        let checkpoint = try loadCheckpoint(from: dir)
        let config = checkpoint.weights.config
        #expect(config.numLocalExperts == 4 && config.numExpertsPerTok == 2 && config.normTopKProb)
        let logitsFile = HuggingFaceReferenceTests.fixtures.appendingPathComponent("tiny-mixtral-hf/logits.safetensors")
        let reference = try ReferenceLogits.read(contentsOf: logitsFile)
        let routers = try SafeTensorsFile.read(contentsOf: logitsFile)
        let model = Transformer(config: config)
        let v = config.vocabSize, e = config.numLocalExperts
        var worst = 0.0, compared = 0, routed = 0, closest = 1.0
        for (i, seq) in reference.sequences.enumerated() {
            let result = model.forward(PackedBatch(sequences: [seq.tokens.map(Int32.init)]), weights: checkpoint.weights,
                                       kernel: PlainLinear(weights: checkpoint.weights, backend: PortableBackend()), plan: .fp32)
            let difference = largestLogProbDifference(result.logProbs, seq.logits, rows: seq.tokens.count, vocab: v)
            worst = max(worst, difference)
            compared += seq.tokens.count * v
            for l in 0..<config.numHiddenLayers {
                let logits = try routers.tensor("router_logits.\(i).\(l)").values
                for t in 0..<seq.tokens.count {
                    let z = logits[(t * e)..<((t + 1) * e)].map(Double.init)
                    let order = z.indices.sorted { z[$0] > z[$1] }
                    let m = z.max()!, total = z.map { Foundation.exp($0 - m) }.reduce(0, +)
                    let p = order.map { Foundation.exp(z[$0] - m) / total }
                    closest = min(closest, p[1] - p[2])
                    #expect(Array(result.routing!.choice(layer: l, row: t)) == order.prefix(2).map(Int32.init),
                            "sequence \(i) position \(t) layer \(l)")
                    routed += 1
                }
            }
        }
        #expect(compared > 1000 && routed > 100)
        #expect(worst <= 1e-4, "\(fixture): largest |Δ log p| against transformers = \(worst)")
        print("\(fixture): \(compared) log-probabilities, largest difference from transformers \(worst); \(routed) routings equal, closest 2nd–3rd probability gap \(closest)")
    }
}

extension HuggingFaceReferenceTests {
    /// A model with LoRA adapters: the one PEFT saved (base model and adapter in one
    /// directory) and the lab's copy of it (which PEFT loads to the same logits:
    /// make_lora_fixture.py checks it). The lab's float32 log-probabilities, adapters computed
    /// beside the weights or merged into them, agree with PEFT's within 1e-4; the adapters
    /// move them far more than that from the base model's (tiny-llama, the same base).
    @Test(arguments: ["tiny-llama-lora-peft", "tiny-llama-lora-lab"])
    func loraMatchesPEFT(fixture: String) throws {
        let dir = HuggingFaceReferenceTests.fixtures.appendingPathComponent(fixture)
        let checkpoint = try loadCheckpoint(from: dir)
        let config = checkpoint.weights.config
        let lora = try #require(config.lora)
        #expect(lora.rank == 4 && lora.alpha == 8 && lora.targets == [.q, .v, .o, .gate, .down])
        let reference = try ReferenceLogits.read(contentsOf: HuggingFaceReferenceTests.fixtures.appendingPathComponent("tiny-llama-lora-peft/logits.safetensors"))
        let base = try ReferenceLogits.read(contentsOf: HuggingFaceReferenceTests.fixtures.appendingPathComponent("tiny-llama/logits.safetensors"))
        let merged = checkpoint.weights.mergingAdapters()
        var worst = 0.0, worstMerged = 0.0, fromBase = 0.0, compared = 0
        for (seq, baseSeq) in zip(reference.sequences, base.sequences) {
            let batch = PackedBatch(sequences: [seq.tokens.map(Int32.init)])
            let result = Transformer(config: config).forward(batch, weights: checkpoint.weights,
                                                             kernel: PlainLinear(weights: checkpoint.weights, backend: PortableBackend()), plan: .fp32)
            let mergedResult = Transformer(config: merged.config).forward(batch, weights: merged,
                                                                          kernel: PlainLinear(weights: merged, backend: PortableBackend()), plan: .fp32)
            let rows = seq.tokens.count, v = config.vocabSize
            worst = max(worst, largestLogProbDifference(result.logProbs, seq.logits, rows: rows, vocab: v))
            worstMerged = max(worstMerged, largestLogProbDifference(mergedResult.logProbs, seq.logits, rows: rows, vocab: v))
            fromBase = max(fromBase, largestLogProbDifference(result.logProbs, baseSeq.logits, rows: rows, vocab: v))
            compared += rows * v
        }
        #expect(compared > 1000)
        #expect(fromBase > 0.1, "the adapters barely move the model: \(fromBase)")
        #expect(worst <= 1e-4, "\(fixture): largest |Δ log p| against PEFT = \(worst)")
        #expect(worstMerged <= 1e-4, "\(fixture) merged: largest |Δ log p| against PEFT = \(worstMerged)")
        print("\(fixture): \(compared) log-probabilities, largest difference from PEFT \(worst) (merged \(worstMerged)); from the base model \(fromBase)")
    }
}

/// The largest |log p − log softmax(reference logits)| over (rows, V), the reference's
/// log-softmax in Double.
func largestLogProbDifference(_ logProbs: [Float], _ logits: [Float], rows: Int, vocab v: Int) -> Double {
    var worst = 0.0
    for t in 0..<rows {
        let row = logits[(t * v)..<((t + 1) * v)].map(Double.init)
        let m = row.max()!
        let lse = m + Foundation.log(row.map { Foundation.exp($0 - m) }.reduce(0, +))
        for j in 0..<v { worst = max(worst, abs(Double(logProbs[t * v + j]) - (row[j] - lse))) }
    }
    return worst
}

extension HuggingFaceReferenceTests {
    /// Qwen2 (biases on q, k, v; tied embeddings), Qwen3 (per-head q/k norms, head_dim 12
    /// where hidden/heads is 8), Qwen3 with `attention_bias` (o's bias too) and Mistral
    /// (head_dim 16): the checkpoints transformers saved, and the lab's copies of them (which
    /// transformers loads to the same logits: make_qwen_fixture.py checks it). The lab's
    /// float32 log-probabilities agree with transformers' within 1e-4 (as Mixtral's: float32
    /// on both sides, other summation orders, sequences up to 33 long).
    @Test(arguments: ["tiny-qwen2", "tiny-qwen3", "tiny-qwen3-bias", "tiny-mistral"], ["hf", "lab"])
    func qwenAndMistralMatchTransformers(model: String, copy: String) throws {
        let checkpoint = try loadCheckpoint(from: HuggingFaceReferenceTests.fixtures.appendingPathComponent("\(model)-\(copy)"))
        let config = checkpoint.weights.config
        switch model {
        case "tiny-qwen2":
            #expect(config.family == .qwen2 && config.qkvBias && !config.outputBias && !config.qkNorm && config.tieWordEmbeddings)
        case "tiny-qwen3":
            #expect(config.family == .qwen3 && config.qkNorm && !config.qkvBias && config.headDim == 12 && config.qDim == 48)
        case "tiny-qwen3-bias":
            #expect(config.family == .qwen3 && config.qkNorm && config.qkvBias && config.outputBias && config.ropeTheta == 1e6)
        default:
            #expect(config.family == .mistral && !config.qkvBias && !config.qkNorm && config.headDim == 16)
        }
        let reference = try ReferenceLogits.read(contentsOf: HuggingFaceReferenceTests.fixtures
            .appendingPathComponent("\(model)-hf/logits.safetensors"))
        #expect(reference.metadata["script"] == "scripts/reference/make_qwen_fixture.py")
        let transformer = Transformer(config: config)
        let v = config.vocabSize
        var worst = 0.0, compared = 0
        for seq in reference.sequences {
            let result = transformer.forward(PackedBatch(sequences: [seq.tokens.map(Int32.init)]), weights: checkpoint.weights,
                                             kernel: PlainLinear(weights: checkpoint.weights, backend: PortableBackend()), plan: .fp32)
            worst = max(worst, largestLogProbDifference(result.logProbs, seq.logits, rows: seq.tokens.count, vocab: v))
            compared += seq.tokens.count * v
        }
        #expect(compared > 1000)
        #expect(worst <= 1e-4, "\(model)-\(copy): largest |Δ log p| against transformers = \(worst)")
        print("\(model)-\(copy): \(compared) log-probabilities, largest difference from transformers \(worst) (\(reference.metadata["transformers_version"] ?? "?"))")
    }
}

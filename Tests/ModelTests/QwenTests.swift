import Model
import Numerics
import Testing

/// The tiny model as each attention variant: Qwen2 (biases on q, k, v), Qwen3 (per-head q/k
/// norms, a head dimension D = 6 other than C/H = 4, so Q = H·D = 24 ≠ C = 16), Qwen3 with
/// `attention_bias` (biases on q, k, v and o too), and Llama with `attention_bias`.
func tinyVariant(_ name: String, tied: Bool = false) -> LlamaConfig {
    var c = tinyConfig
    c.tieWordEmbeddings = tied
    switch name {
    case "qwen2": c.family = .qwen2
    case "qwen3":
        c.family = .qwen3
        c.explicitHeadDim = 6
    case "qwen3-bias":
        c.family = .qwen3
        c.explicitHeadDim = 6
        c.attentionBias = true
    case "llama-bias": c.attentionBias = true
    default: preconditionFailure("no variant \(name)")
    }
    return c
}

let variants = ["qwen2", "qwen3", "qwen3-bias", "llama-bias"]

@Suite struct AttentionVariantTests {
    /// The tensors are transformers' names and shapes: q (Q, C), o (C, Q), the biases (Q) and
    /// (KV), the norms (D).
    @Test func theLayoutHasTheFamiliesTensors() {
        let qwen2 = tinyVariant("qwen2").parameterShapes
        #expect(qwen2.contains { $0.name == "model.layers.1.self_attn.q_proj.bias" && $0.rows == 1 && $0.cols == 16 })
        #expect(qwen2.contains { $0.name == "model.layers.0.self_attn.v_proj.bias" && $0.cols == 8 })
        #expect(!qwen2.contains { $0.name.contains("o_proj.bias") || $0.name.contains("q_norm") })
        let qwen3 = tinyVariant("qwen3-bias")
        let shapes = qwen3.parameterShapes
        #expect(shapes.contains { $0.name == "model.layers.0.self_attn.q_proj.weight" && $0.rows == 24 && $0.cols == 16 })
        #expect(shapes.contains { $0.name == "model.layers.0.self_attn.o_proj.weight" && $0.rows == 16 && $0.cols == 24 })
        #expect(shapes.contains { $0.name == "model.layers.0.self_attn.k_proj.weight" && $0.rows == 12 })
        #expect(shapes.contains { $0.name == "model.layers.0.self_attn.o_proj.bias" && $0.cols == 16 })
        #expect(shapes.contains { $0.name == "model.layers.1.self_attn.k_norm.weight" && $0.cols == 6 })
        let w = ModelWeights(config: qwen3)
        let layer = w.layer(1)
        #expect(layer.qNorm?.name == "model.layers.1.self_attn.q_norm.weight" && layer.kBias?.shape == [12])
        #expect(layer.gate.name == "model.layers.1.mlp.gate_proj.weight" && w.finalNorm.name == "model.norm.weight")
        #expect(w.slot("model.layers.0.self_attn.q_norm.weight")?.shape == [6])
        #expect(qwen3.parameterCount == w.data.count)
        // A fresh model's biases are 0 and its norm weights 1, as transformers initialises them.
        var fresh = ModelWeights(config: qwen3)
        fresh.initialize(stream: RandomStream(seed: 1, name: "init"))
        #expect(fresh.tensor("model.layers.0.self_attn.q_proj.bias")!.allSatisfy { $0 == 0 })
        #expect(fresh.tensor("model.layers.0.self_attn.k_norm.weight")!.allSatisfy { $0 == 1 })
    }

    @Test func invalidVariantsAreRefused() {
        var c = tinyVariant("qwen3")
        c.explicitHeadDim = 5
        #expect(throws: NumericsError.self) { try c.validate() }
        var biased = tinyVariant("qwen2")
        biased.attentionBias = true
        #expect(throws: NumericsError.self) { try biased.validate() }
        var sparse = tinyVariant("qwen3")
        sparse.numLocalExperts = 4
        #expect(throws: NumericsError.self) { try sparse.validate() }
        for name in variants { #expect(throws: Never.self) { try tinyVariant(name).validate() } }
    }

    /// The float32 forward agrees with the Double reference (bound as for Llama: 2e-5 on
    /// log-probabilities), and the variant's tensors matter: the reference without them
    /// (biases dropped, norm weights ignored) is far off.
    @Test(arguments: variants, [false, true])
    func fp32ForwardMatchesTheDoubleReference(variant: String, tied: Bool) {
        let config = tinyVariant(variant, tied: tied)
        let weights = tinyWeights(config, seed: 5)
        let result = Transformer(config: config).forward(PackedBatch(sequences: tinySequences), weights: weights,
                                                         kernel: PlainLinear(weights: weights, backend: PortableBackend()), plan: .fp32)
        let reference = ReferenceLlama(weights)
        var without = reference.tensors
        for name in without.keys where name.hasSuffix(".bias") { without[name] = without[name]!.map { _ in 0 } }
        for name in without.keys where name.contains("q_norm") || name.contains("k_norm") { without[name] = without[name]!.map { $0 * 3 } }
        let plain = ReferenceLlama(config: config, tensors: without)
        var row = 0, worst = 0.0, apart = 0.0
        for seq in tinySequences {
            let expected = reference.logProbs(seq), other = plain.logProbs(seq)
            for i in 0..<expected.count {
                let got = Double(result.logProbs[row * config.vocabSize + i])
                worst = max(worst, abs(got - expected[i]))
                apart = max(apart, abs(got - other[i]))
            }
            row += seq.count
        }
        #expect(worst <= 2e-5, "\(variant): largest |Δ log p| = \(worst)")
        #expect(apart > 1e-2, "\(variant): the biases and norms barely matter (\(apart))")
    }

    /// Decoding over a KV cache gives the forward's bits on the portable backend, in float32
    /// and with every activation rounded to BF16 (fused norms or not, chunked softmax in both).
    @Test(arguments: variants)
    func decodeMatchesTheForwardBitForBit(variant: String) {
        let config = tinyVariant(variant)
        let weights = tinyWeights(config, seed: 6)
        let model = Transformer(config: config)
        let bf16 = Rounder(format: .bf16)
        let plans = [ForwardPlan.fp32,
                     ForwardPlan(activation: bf16, probabilities: bf16, kvCache: bf16, fusedResidualNorm: true,
                                 fusedSiluMul: true, softmax: .chunked(3), logits: bf16),
                     ForwardPlan(activation: bf16, probabilities: bf16, kvCache: bf16, softmax: .chunked(3))]
        let kernel = PlainLinear(weights: weights, backend: PortableBackend())
        let v = config.vocabSize
        for (p, plan) in plans.enumerated() {
            let full = model.forward(PackedBatch(sequences: tinySequences), weights: weights, kernel: kernel, plan: plan)
            var cache = KVCache(config: config, slots: 2, capacity: 8)
            var decoded = [[Float]](repeating: [], count: 2)
            for pos in 0..<7 {
                let rows = tinySequences.enumerated().compactMap { s, seq in
                    pos < seq.count ? DecodeRow(slot: s, token: seq[pos], position: Int32(pos)) : nil
                }
                let lp = model.decodeStep(rows, cache: &cache, weights: weights, kernel: kernel, plan: plan)
                for (r, row) in rows.enumerated() { decoded[row.slot] += lp[(r * v)..<((r + 1) * v)] }
            }
            #expect((decoded[0] + decoded[1]).map(\.bitPattern) == full.logProbs.map(\.bitPattern), "\(variant) plan \(p)")
        }
    }

    /// Every gradient (the biases', the q and k norms', and every other tensor's) against
    /// central finite differences of the Double reference (bound as for Llama).
    @Test(arguments: variants, [false, true])
    func everyGradientMatchesFiniteDifferences(variant: String, tied: Bool) {
        let config = tinyVariant(variant, tied: tied)
        let weights = tinyWeights(config, seed: 7)
        let loss = RandomLogProbLoss(config: config)
        let grads = loss.gradients(weights)
        var base = ReferenceLlama(weights).tensors
        if tied { base["lm_head.weight"] = nil }
        let checked = expectGradientsMatchFiniteDifferences(weights, grads, base: base, samples: 7) { loss.referenceLoss($0).value }
        #expect(checked > 100)
        // The new tensors' gradients are there and not zero.
        for slot in weights.slots where slot.name.hasSuffix(".bias") || slot.name.contains("_norm.weight") {
            let g = grads.data[slot.offset..<(slot.offset + slot.count)]
            #expect(g.contains { $0 != 0 }, "\(slot.name) has no gradient")
        }
    }

    /// With LoRA adapters the biases and norms are frozen with the rest of the model: no
    /// gradient reaches them, and the adapters' gradients match finite differences.
    @Test func adaptersOnAQwenModelTrainAlone() {
        var config = tinyVariant("qwen3-bias")
        config.lora = LoRASpec(rank: 2, alpha: 4, targets: [.q, .o, .down])
        var weights = tinyWeights(config, seed: 8)
        // B random (PEFT starts it at 0) so the adapters change the output.
        var rng = RandomStream(seed: 8, name: "lora")
        for s in weights.slots where s.name.hasSuffix("lora_B.weight") {
            for i in s.offset..<(s.offset + s.count) { weights.data[i] = Float(rng.nextUnit() - 0.5) }
        }
        let loss = RandomLogProbLoss(config: config)
        let grads = loss.gradients(weights)
        let frozen = grads.trainableRange.lowerBound
        #expect(grads.data[..<frozen].allSatisfy { $0 == 0 })
        let base = ReferenceLlama(weights).tensors
        let checked = expectGradientsMatchFiniteDifferences(weights, grads, base: base, samples: 5,
                                                            only: { $0.name.contains("lora_") }) { loss.referenceLoss($0).value }
        #expect(checked > 20)
    }
}

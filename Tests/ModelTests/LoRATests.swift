import Model
import Numerics
import Testing

/// The tiny model with rank-3 adapters (α = 6) on q, v, o and down.
func tinyLoRAConfig(rank: Int = 3, targets: [LinearKind] = [.q, .v, .o, .down]) -> LlamaConfig {
    var c = tinyConfig
    c.lora = LoRASpec(rank: rank, alpha: 6, targets: targets)
    return c
}

/// The tiny weights with adapters: A as PEFT initialises it, B random (std 0.3) so the
/// adapters change the model.
func tinyLoRAWeights(_ config: LlamaConfig = tinyLoRAConfig(), seed: UInt64 = 1) -> ModelWeights {
    var w = ModelWeights(config: config)
    let base = tinyWeights(config.withoutAdapters, seed: seed)
    w.data.replaceSubrange(0..<base.data.count, with: base.data)
    w.initializeAdapters(stream: RandomStream(seed: seed, name: "lora"))
    var rng = RandomStream(seed: seed, name: "lora B")
    for s in w.slots where s.name.hasSuffix("lora_B.weight") {
        for i in s.offset..<(s.offset + s.count) { w.data[i] = Float((rng.nextUnit() * 2 - 1) * 0.5) }
    }
    return w
}

@Suite struct LoRATests {
    /// PEFT's tensors follow the model's own: A (r, in) and B (out, r) per adapted layer, in
    /// storage order; only they train.
    @Test func theLayoutIsPEFTs() throws {
        let config = tinyLoRAConfig()
        let w = ModelWeights(config: config)
        let names = w.slots.map(\.name)
        #expect(Array(names.prefix(config.baseTensorCount)) == tinyConfig.parameterShapes.map(\.name))
        #expect(Array(names.suffix(8 * 2).prefix(4)) == ["model.layers.0.self_attn.q_proj.lora_A.weight",
                                                         "model.layers.0.self_attn.q_proj.lora_B.weight",
                                                         "model.layers.0.self_attn.v_proj.lora_A.weight",
                                                         "model.layers.0.self_attn.v_proj.lora_B.weight"])
        let (a, b) = try #require(w.adapter(LinearSite(.down, layer: 1)))
        #expect(a.name == "model.layers.1.mlp.down_proj.lora_A.weight" && a.rows == 3 && a.cols == 24)
        #expect(b.name == "model.layers.1.mlp.down_proj.lora_B.weight" && b.rows == 16 && b.cols == 3)
        #expect(w.adapter(LinearSite(.k, layer: 0)) == nil && w.adapter(LinearSite(.lmHead, layer: -1)) == nil)
        // Adapter parameters: per layer r·(16+16) for q and o, r·(16+8) for v, r·(24+16) for down.
        let perLayer = 3 * (32 + 32 + 24 + 40)
        #expect(config.parameterCount == tinyConfig.parameterCount + 2 * perLayer)
        #expect(w.trainableRange == (w.data.count - 2 * perLayer)..<w.data.count)
        #expect(ModelWeights(config: tinyConfig).trainableRange == 0..<tinyConfig.parameterCount)
    }

    @Test func badAdaptersAreRefused() {
        #expect(throws: NumericsError.self) { try tinyLoRAConfig(rank: 0).validate() }
        #expect(throws: NumericsError.self) { try LoRASpec.kinds(["q_proj", "qkv_proj"]) }
        #expect(throws: NumericsError.self) { try tinyLoRAConfig(targets: []).validate() }
        var sparse = tinyMoEConfig()
        sparse.lora = LoRASpec(rank: 2, alpha: 4, targets: [.q])
        #expect(throws: NumericsError.self) { try sparse.validate() }
        #expect(throws: Never.self) { try tinyLoRAConfig().validate() }
        #expect((try? LoRASpec.kinds(["all-linear"])) == [.q, .k, .v, .o, .gate, .up, .down])
    }

    /// PEFT's initialisation (B = 0) leaves the model what it was, bit for bit; A is
    /// uniform within ±1/√in.
    @Test func freshAdaptersChangeNothing() {
        let config = tinyLoRAConfig()
        let base = tinyWeights()
        var w = ModelWeights(config: config)
        w.data.replaceSubrange(0..<base.data.count, with: base.data)
        w.initializeAdapters(stream: RandomStream(seed: 5, name: "lora"))
        let a = w.adapter(LinearSite(.down, layer: 0))!.a
        let values = w.data[a.offset..<(a.offset + a.count)]
        #expect(values.allSatisfy { abs($0) <= 1 / Float(24).squareRoot() } && Set(values).count == a.count)
        let batch = PackedBatch(sequences: tinySequences)
        let adapted = Transformer(config: config).forward(batch, weights: w, kernel: PlainLinear(weights: w, backend: PortableBackend()), plan: .fp32)
        let plain = Transformer(config: tinyConfig).forward(batch, weights: base, kernel: PlainLinear(weights: base, backend: PortableBackend()), plan: .fp32)
        #expect(adapted.logProbs.map(\.bitPattern) == plain.logProbs.map(\.bitPattern))
    }

    /// With trained adapters the float32 forward agrees with the Double reference (PEFT's
    /// layer, written apart) within the dense model's bound, and the merged weights
    /// (W + (α/r)·B·A) give the same model within float32 error.
    @Test func theAdaptedForwardMatchesTheReferenceMergedOrNot() {
        let config = tinyLoRAConfig()
        let w = tinyLoRAWeights(config)
        let batch = PackedBatch(sequences: tinySequences)
        let result = Transformer(config: config).forward(batch, weights: w, kernel: PlainLinear(weights: w, backend: PortableBackend()), plan: .fp32)
        let merged = w.mergingAdapters()
        #expect(merged.config == tinyConfig)
        let mergedResult = Transformer(config: tinyConfig).forward(batch, weights: merged,
                                                                   kernel: PlainLinear(weights: merged, backend: PortableBackend()), plan: .fp32)
        let reference = ReferenceLlama(w)
        let withoutAdapters = ReferenceLlama(zeroingAdapters(w))
        var row = 0, worst = 0.0, worstMerged = 0.0, adapterEffect = 0.0
        for seq in tinySequences {
            let expected = reference.logProbs(seq)
            let base = withoutAdapters.logProbs(seq)
            for i in 0..<expected.count {
                worst = max(worst, abs(Double(result.logProbs[row * config.vocabSize + i]) - expected[i]))
                worstMerged = max(worstMerged, abs(Double(mergedResult.logProbs[row * config.vocabSize + i]) - expected[i]))
                adapterEffect = max(adapterEffect, abs(base[i] - expected[i]))
            }
            row += seq.count
        }
        #expect(adapterEffect > 0.1, "the adapters barely change the model: \(adapterEffect)")
        #expect(worst <= 2e-5, "unmerged: largest |Δ log p| = \(worst)")
        #expect(worstMerged <= 2e-5, "merged: largest |Δ log p| = \(worstMerged)")
    }

    /// A and B's gradients against finite differences of the Double reference; the frozen
    /// model's gradients are exactly zero.
    @Test func adapterGradientsMatchFiniteDifferencesAndTheBaseIsFrozen() {
        let config = tinyLoRAConfig(targets: [.q, .k, .v, .o, .gate, .up, .down])
        let weights = tinyLoRAWeights(config, seed: 2)
        let loss = RandomLogProbLoss(config: config)
        let grads = loss.gradients(weights)
        let frozen = weights.trainableRange.lowerBound
        #expect(grads.data[0..<frozen].allSatisfy { $0 == 0 })
        #expect(grads.data[frozen...].contains { $0 != 0 })
        let checked = expectGradientsMatchFiniteDifferences(weights, grads, base: ReferenceLlama(weights).tensors, samples: 5,
                                                            only: { $0.name.contains("lora_") }) { loss.referenceLoss($0).value }
        #expect(checked >= 2 * 7 * 2 * 5)
    }

    /// Decoding over a KV cache gives the forward's bits with adapters too (one decoder
    /// block for both).
    @Test func decodeMatchesTheForward() {
        let config = tinyLoRAConfig()
        let weights = tinyLoRAWeights(config)
        let model = Transformer(config: config)
        let v = config.vocabSize
        let kernel = PlainLinear(weights: weights, backend: PortableBackend())
        let full = model.forward(PackedBatch(sequences: tinySequences), weights: weights, kernel: kernel, plan: .fp32)
        var cache = KVCache(config: config, slots: 2, capacity: 16)
        var decoded = [[Float]](repeating: [], count: 2)
        for pos in 0..<7 {
            var rows: [DecodeRow] = []
            for (s, seq) in tinySequences.enumerated() where pos < seq.count {
                rows.append(DecodeRow(slot: s, token: seq[pos], position: Int32(pos)))
            }
            let lp = model.decodeStep(rows, cache: &cache, weights: weights, kernel: kernel, plan: .fp32)
            for (r, row) in rows.enumerated() { decoded[row.slot] += lp[(r * v)..<((r + 1) * v)] }
        }
        #expect((decoded[0] + decoded[1]).map(\.bitPattern) == full.logProbs.map(\.bitPattern))
    }
}

/// `w` with its adapters zeroed: its base model, in the adapted layout.
func zeroingAdapters(_ w: ModelWeights) -> ModelWeights {
    var z = w
    for i in z.trainableRange { z.data[i] = 0 }
    return z
}

import Engines
import Mismatch
import Model
import Numerics
import Testing

/// The lab's default model with rank-8 adapters (α 16) on q, v and down, B random so the
/// adapters matter.
func labLoRAModel(seed: UInt64 = 7) -> ModelWeights {
    var config = LlamaConfig.labDefault
    config.lora = LoRASpec(rank: 8, alpha: 16, targets: [.q, .v, .down])
    var w = ModelWeights(config: config)
    let base = labModel(seed: seed)
    w.data.replaceSubrange(0..<base.data.count, with: base.data)
    w.initializeAdapters(stream: RandomStream(seed: seed, name: "lora"))
    var rng = RandomStream(seed: seed, name: "lora B")
    for s in w.slots where s.name.hasSuffix("lora_B.weight") {
        for i in s.offset..<(s.offset + s.count) { w.data[i] = Float((rng.nextUnit() * 2 - 1) * 0.2) }
    }
    return w
}

@Suite struct LoRAEngineTests {
    private func largestDifference(_ policy: Policy) throws -> Float {
        let batch = policy.rollout.generate(prompts: prompts(16), sampling: SamplingSettings(maxNewTokens: 16),
                                            endToken: 2, stream: RandomStream(seed: 5, name: "sampling"))
        let result = try policy.recompute(batch, temperature: 1)
        return result.pairs.flatMap { zip($0.rollout, $0.train).map { abs($0 - $1) } }.max()!
    }

    /// The control experiment with adapters: equal formats, every source off and the adapters
    /// unmerged in both engines give bit-identical log-probabilities; merging them in the
    /// rollout engine (W + (α/r)·B·A rounded to BF16) is then the only difference, and it is
    /// one.
    @Test func unmergedAdaptersAgreeBitForBitAndMergingIsAMismatchSource() throws {
        var pair = Preset.identical.engines(hiddenSize: 64)
        pair.rollout.sources = .none
        #expect(try largestDifference(try Policy(master: labLoRAModel(), engines: pair, backend: PortableBackend())) == 0)
        pair.rollout.sources.loraMerged = true
        let merged = try largestDifference(try Policy(master: labLoRAModel(), engines: pair, backend: PortableBackend()))
        #expect(merged > 1e-4, "merging changed nothing: \(merged)")
    }

    /// Merged weights are the adapted model: under FP32 the merged rollout agrees with the
    /// unmerged training forward within float32 error.
    @Test func mergedWeightsComputeTheAdaptedModel() throws {
        var pair = Preset.fp32.engines(hiddenSize: 64)
        pair.rollout.sources = .none
        pair.training.sources = .none
        pair.rollout.sources.loraMerged = true
        let difference = try largestDifference(try Policy(master: labLoRAModel(), engines: pair, backend: PortableBackend()))
        #expect(difference > 0 && difference < 1e-4, "fp32 merged vs unmerged: \(difference)")
    }

    @Test func theTrainingEngineRefusesMergedAdapters() {
        var pair = Preset.bf16.engines(hiddenSize: 64)
        pair.training.sources.loraMerged = true
        #expect(throws: NumericsError.self) { try Policy(master: labLoRAModel(), engines: pair, backend: PortableBackend()) }
    }

    /// Under an FP8 flow the adapters' products stay in the activation format (BF16): only
    /// the base weights are FP8.
    @Test func adaptersStayInTheActivationFormatUnderFP8() throws {
        let pair = Preset.fp8Unified.engines(hiddenSize: 64)
        let policy = try Policy(master: labLoRAModel(), engines: pair, backend: PortableBackend())
        let site = LinearSite(.q, layer: 0)
        #expect(pair.rollout.forSite(site).weights.format == .e4m3 && pair.rollout.forSite(site).fprop.input.format == .e4m3)
        for part in [LinearPart.loraA, .loraB] {
            let p = pair.rollout.forSite(site.with(part))
            #expect(p.weights.format == .bf16 && p.weights.granularity == .unscaled && p.fprop.input.format == .bf16)
            // The factor the engine holds is the master's rounded to BF16, unscaled.
            let held = try #require(policy.rollout.kernel.quantizedWeights(site.with(part)))
            let slot = site.with(part).slot(in: policy.master)
            let master = Array(policy.master.data[slot.offset..<(slot.offset + slot.count)])
            let rounded = Rounder(format: .bf16).rounded(master)
            #expect(held.values == rounded && held.scales.allSatisfy { $0 == 1 })
        }
    }
}

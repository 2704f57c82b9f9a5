import Engines
import Mismatch
import Model
import Numerics
import Testing

/// The lab's default shape as a Qwen3 model with `attention_bias`: per-head q/k norms, biases
/// on q, k, v and o, and a head dimension of 24 (Q = 96 where C = 64). The biases are random
/// (a fresh model's are 0) and the q/k norm weights around 1 (a fresh model's are 1) so that
/// their rounding matters.
func labQwenModel(seed: UInt64 = 7) -> ModelWeights {
    var config = LlamaConfig.labDefault
    config.family = .qwen3
    config.attentionBias = true
    config.explicitHeadDim = 24
    var w = ModelWeights(config: config)
    w.initialize(std: 0.1, stream: RandomStream(seed: seed, name: "init"))
    var rng = RandomStream(seed: seed, name: "biases")
    for s in w.slots where s.name.hasSuffix(".bias") {
        for i in s.offset..<(s.offset + s.count) { w.data[i] = Float(rng.nextUnit() - 0.5) }
    }
    for s in w.slots where s.name.hasSuffix("q_norm.weight") || s.name.hasSuffix("k_norm.weight") {
        for i in s.offset..<(s.offset + s.count) { w.data[i] = Float(0.8 + 0.4 * rng.nextUnit()) }
    }
    return w
}

@Suite struct AttentionVariantEngineTests {
    /// The control experiment: equal formats and every source off give bit-identical
    /// log-probabilities, the rollout's KV-cache decoding against the training forward.
    @Test func identicalEnginesAgreeBitForBit() throws {
        var pair = Preset.identical.engines(hiddenSize: 64)
        pair.rollout.sources = .none
        let policy = try Policy(master: labQwenModel(), engines: pair, backend: PortableBackend())
        let (stats, _, pairs) = try measure(policy, count: 12, maxNew: 16)
        for p in pairs { #expect(p.rollout.map(\.bitPattern) == p.train.map(\.bitPattern)) }
        #expect(stats.tokens > 50)
    }

    /// Under BF16 the biases and q/k norm weights are stored in BF16 like the other
    /// non-matrix weights, and the engines part as for a Llama model; under FP8 (jet-rl) the
    /// products of the wider q and o run too.
    @Test func theEnginesRoundTheNewTensorsAndRun() throws {
        let master = labQwenModel()
        let policy = try Policy(master: master, engines: Preset.bf16.engines(for: master.config), backend: PortableBackend())
        let engineWeights = try EngineKernel(master: master, profile: policy.engines.training, backend: PortableBackend()).weights
        let bf16 = Rounder(format: .bf16)
        for name in ["model.layers.1.self_attn.o_proj.bias", "model.layers.0.self_attn.q_norm.weight"] {
            var expected = master.tensor(name)!
            expected.withUnsafeMutableBufferPointer { bf16.round($0.baseAddress!, into: $0.baseAddress!, count: $0.count) }
            #expect(engineWeights.tensor(name)! == expected, "\(name) in the engine's weights")
            #expect(expected != master.tensor(name)!)
        }
        let (stats, _, _) = try measure(policy, count: 12, maxNew: 16)
        #expect(stats.meanAbsDlogp > 0)
        let fp8 = try Policy(master: master, engines: Preset.jetRL.engines(for: master.config), backend: PortableBackend())
        let (fp8Stats, _, _) = try measure(fp8, count: 8, maxNew: 8)
        #expect(fp8Stats.meanAbsDlogp.isFinite && fp8Stats.tokens > 0)
        // The flow shows the bias add and the norms as their own steps.
        let flow = policy.engines.rollout.forwardFlow(for: master.config).map(\.name)
        #expect(flow.contains("bias added to q k v o (bias in bf16)"))
        #expect(flow.contains("per-head RMSNorm of q and k, before RoPE"))
        #expect(!policy.engines.rollout.forwardFlow(for: .labDefault).contains { $0.name.contains("bias") })
    }
}

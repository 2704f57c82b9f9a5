// The cost of each FP8 recipe against BF16 emulation: one training step and one rollout per
// recipe, both engines in the recipe.

import Engines
import Model
import Numerics

/// The recipes `plab bench recipes` times, as (name, profile for a model).
public func benchRecipeProfiles(for config: LlamaConfig) -> [(String, PrecisionProfile)] {
    let tile = Preset.fp8Unified.engines(for: config).training.weights.granularity
    guard case .blocks(let g, _) = tile else { preconditionFailure("the fp8 preset has block-scaled weights") }
    let fp8 = PrecisionProfile.fp8(group: g, block: g, sources: .training)
    var fp32Acc = fp8
    for path in [\PrecisionProfile.fprop, \.dgrad, \.wgrad] { fp32Acc[keyPath: path].accumulation = .fp32 }
    var pow2 = fp8
    pow2.weights.powerOfTwoScales = true
    for path in [\PrecisionProfile.fprop.input, \.dgrad.input, \.wgrad.input, \.wgradActivation] { pow2[keyPath: path].powerOfTwoScales = true }
    var tensor = fp8
    for path in [\PrecisionProfile.fprop.input, \.dgrad.input, \.wgrad.input, \.wgradActivation] { tensor[keyPath: path].granularity = .tensor }
    var delayed = tensor
    delayed.scaleRule = .delayedDefault
    return [
        ("bf16", .uniform(.bf16, sources: .training)),
        ("fp8 1x\(g)/\(g)x\(g), hopper accumulation", fp8),
        ("fp8 1x\(g)/\(g)x\(g), fp32 accumulation", fp32Acc),
        ("fp8 hybrid (e5m2 gradients)", .fp8(group: g, block: g, sources: .training, backward: .e5m2)),
        ("fp8 pow2 scales", pow2),
        ("fp8 per-tensor, current", tensor),
        ("fp8 per-tensor, delayed", delayed),
        ("mxfp8", .mxfp8(sources: .training)),
    ]
}

/// One training step (forward and backward over 64 sequences of 8 + 32 tokens) and one
/// rollout of those sequences, per recipe and model size; each figure also as a multiple of
/// the BF16 recipe's time.
public func benchRecipes(sequences: Int = 64, newTokens: Int = 32, backend: any MatmulBackend = LibraryBackend(.openblas),
                         configs: [(String, LlamaConfig)] = benchConfigs, budget: Double = 1) throws -> [BenchResult] {
    var results: [BenchResult] = []
    for (label, config) in configs {
        let (master, prompts) = benchModel(config, sequences: sequences)
        var bf16 = (step: 0.0, rollout: 0.0)
        for (name, profile) in benchRecipeProfiles(for: config) {
            let policy = try Policy(master: master, engines: EnginePair(rollout: profile, training: profile), backend: backend)
            let sampling = SamplingSettings(maxNewTokens: newTokens)
            var batch: RolloutBatch? = nil
            let tRollout = bestTime(budget: budget) {
                batch = policy.rollout.generate(prompts: prompts, sampling: sampling, endToken: -1,
                                                stream: RandomStream(seed: 3, name: "bench-sampling"))
            }
            let packed = PackedBatch(sequences: batch!.sequences)
            let targets = Array(packed.tokens.dropFirst()) + [0]
            let g = [Float](repeating: 1 / Float(packed.rows), count: packed.rows)
            let tStep = bestTime(budget: budget) {
                let fw = policy.training.forward(packed)
                var grads = ModelWeights(config: config)
                policy.training.backward(packed, targets: targets, dLogProb: g, forward: fw, grads: &grads)
            }
            if name == "bf16" { bf16 = (tStep, tRollout) }
            func ratio(_ t: Double, _ base: Double) -> String { name == "bf16" ? "" : String(format: ", %.2fx bf16", t / base) }
            results.append(BenchResult(name: "train step \(label) \(name)", value: tStep * 1e3, unit: "ms",
                                       note: "fwd+bwd over \(packed.rows) tokens\(ratio(tStep, bf16.step))"))
            results.append(BenchResult(name: "rollout \(label) \(name)", value: tRollout * 1e3, unit: "ms",
                                       note: "\(sequences) seqs x \(newTokens) new tokens\(ratio(tRollout, bf16.rollout))"))
        }
    }
    return results
}

import Engines
import Model
import Numerics
import RL
import Testing

/// The small model with rank-4 adapters on every linear layer, pretrained a little on
/// one-digit addition first (so RL steps have gradients), under a preset.
private func adaptedTrainer(_ preset: Preset) throws -> (Trainer, base: [Float]) {
    var weights = ModelWeights(config: smallConfig)
    weights.initialize(std: 0.1, stream: RandomStream(seed: 11, name: "init"))
    var config = smallConfig
    config.lora = LoRASpec(rank: 4, alpha: 8, targets: LoRASpec.modules.map(\.kind))
    var adapted = ModelWeights(config: config)
    adapted.data.replaceSubrange(0..<weights.data.count, with: weights.data)
    adapted.initializeAdapters(stream: RandomStream(seed: 2, name: "lora"))
    let trainer = try Trainer(policy: try makePolicy(preset, weights: adapted), task: try TaskSpec(kind: .addition, size: 1), seed: 3)
    var s = RLSettings()
    s.promptsPerStep = 4
    s.samplesPerPrompt = 4
    s.learningRate = 1e-3
    s.weightDecay = 0.1
    try trainer.setSettings(s)
    return (trainer, weights.data)
}

@Suite struct LoRAStepTests {
    /// Only the adapters train: after pretraining steps and RL steps (weight decay on, so an
    /// update would move any weight it reached) the model's own weights are bit for bit what
    /// they were, the adapters moved in both (B away from zero), and the optimizers kept no
    /// moments for the frozen weights.
    @Test func onlyTheAdaptersTrain() throws {
        let (trainer, base) = try adaptedTrainer(.bf16)
        let frozen = trainer.policy.master.trainableRange.lowerBound
        #expect(frozen == base.count)
        _ = try trainer.pretrain(steps: 2)
        let pretrained = Array(trainer.policy.master.data[frozen...])
        let b = trainer.policy.master.adapter(LinearSite(.down, layer: 1))!.b
        #expect(trainer.policy.master.data[b.offset..<(b.offset + b.count)].contains { $0 != 0 })
        #expect(trainer.pretrainOptimizer.v[0..<frozen].allSatisfy { $0 == 0 } && trainer.pretrainOptimizer.v[frozen...].contains { $0 != 0 })
        var updates = 0
        for _ in 0..<2 { updates += try trainer.step().updates }
        #expect(updates == 2)
        let after = trainer.policy.master
        #expect(Array(after.data[0..<frozen]) == base)
        #expect(Array(after.data[frozen...]) != pretrained)
        #expect(trainer.optimizer.m[0..<frozen].allSatisfy { $0 == 0 } && trainer.optimizer.v[0..<frozen].allSatisfy { $0 == 0 })
    }
}

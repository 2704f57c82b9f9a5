import Engines
import Foundation
import Model
import Numerics
import Testing
import RL

/// Long runs, by hand only (each is minutes): PLAB_RL_LONG=NAME swift test -c release --filter RLLong
@Suite(.serialized) struct RLLong {
    /// Pretraining curve of the base-model recipe: held-out accuracy and sanity-set yield.
    @Test(.enabled(if: environment("PLAB_RL_LONG") == "explore"))
    func explorePretraining() throws {
        let policy = try Policy(master: BaseModel.initialWeights(seed: BaseModel.seed), engines: Preset.fp32.engines(hiddenSize: 64),
                                backend: PortableBackend())
        let trainer = try Trainer(policy: policy, task: BaseModel.task, seed: BaseModel.seed)
        let t0 = Date()
        for block in 1...12 {
            let ms = try trainer.pretrain(steps: 250)
            let loss = ms.suffix(50).reduce(0) { $0 + $1.loss } / 50
            let greedy = try trainer.evaluate(.heldOut, greedy: true)
            let sampled = try trainer.evaluate(.heldOut)
            let snap = trainer.snapshot()
            let report = try trainer.buildSanitySet(candidates: 256, samples: 16)
            try trainer.restore(snap)
            print("explore step \(block * 250) loss \(loss) greedy \(greedy.accuracy) sampled \(sampled.accuracy) kept \(report.kept)/256 hist \(report.histogram) t \(Date().timeIntervalSince(t0))")

        }
    }
}

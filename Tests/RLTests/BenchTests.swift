import Engines
import Foundation
import Model
import Numerics
import Testing
import RL
import Storage

/// Timing of RL steps at the default settings from the base checkpoint, by hand:
///   PLAB_RL_BENCH=1 swift test -c release --filter RLBench
/// Prints, per preset and backend, the median over 10 steps of each phase.
@Suite(.enabled(if: environment("PLAB_RL_BENCH") != nil)) struct RLBench {
    @Test func stepTiming() throws {
        let checkpoint = try loadCheckpoint(from: repositoryRoot.appendingPathComponent("checkpoints/base-addition"))
        for backend in ["portable", "openblas"] {
            for preset in [Preset.fp32, .bf16, .fp16, .fp8Rollout] {
                let policy = try Policy(master: checkpoint.weights, engines: preset.engines(hiddenSize: 64),
                                        backend: try matmulBackend(named: backend))
                let trainer = try Trainer(policy: policy, seed: 1)
                try trainer.restore(from: checkpoint)
                var timings: [StepTiming] = []
                for _ in 0..<10 { timings.append(try trainer.step().timing) }
                func median(_ f: (StepTiming) -> Double) -> String {
                    String(format: "%.3f", timings.map(f).sorted()[timings.count / 2])
                }
                log("bench \(backend) \(preset.rawValue): total \(median(\.total)) s = rollout \(median(\.rollout)) + recompute \(median(\.recompute)) + stats \(median(\.stats)) + forward \(median(\.forward)) + backward \(median(\.backward)) + update \(median(\.update))")
            }
        }
    }
}

import Engines
import Foundation
import Model
import Numerics
import Testing
import RL

/// Timing probes, run by hand: PLAB_RL_BENCH=1 swift test -c release --filter RLBench
@Suite(.enabled(if: environment("PLAB_RL_BENCH") != nil)) struct RLBench {
    @Test func stepTiming() throws {
        for preset in [Preset.fp32, .bf16, .fp16] {
            for backend in ["portable", "openblas"] {
                let policy = try Policy(master: freshWeights(), engines: preset.engines(hiddenSize: 64),
                                        backend: backend == "portable" ? PortableBackend() as any MatmulBackend : OpenBLASBackend())
                let trainer = try Trainer(policy: policy, seed: 1)
                var best = StepTiming()
                best.total = .infinity
                for _ in 0..<3 {
                    let m = try trainer.step()
                    if m.timing.total < best.total { best = m.timing }
                }
                print("bench \(preset.rawValue) \(backend): total \(best.total) rollout \(best.rollout) recompute \(best.recompute) forward \(best.forward) backward \(best.backward) update \(best.update)")
            }
        }
    }
}

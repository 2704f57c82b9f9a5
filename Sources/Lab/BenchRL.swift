// `plab bench rl`: whole RL steps, and where their time goes.

import Foundation
import Engines
import Model
import Numerics
import RL

/// One RL step's wall time, split as the trainer records it (`StepTiming`), for each
/// response length on the lab's default model: GRPO with the lab's defaults (64 prompts ×
/// 8 samples) on `task reversal --size 8 --notes L−10`, every response decoded to its full
/// length L (the end token ignored, as vLLM's `ignore_eos`), so the step's token count is
/// fixed. The figure is the median over `steps` steps after one warm-up step; the parts
/// are that step's.
public func benchRL(lengths: [Int] = [58, 256], presets: [Preset] = [.bf16], steps: Int = 3,
                    backend: any MatmulBackend = LibraryBackend(.openblas),
                    models: [(String, LlamaConfig)] = [("default", .labDefault)]) throws -> [BenchResult] {
    var results: [BenchResult] = []
    for (label, model) in models {
        for length in lengths {
            let spec = try TaskSpec(kind: .reversal, size: 8, notes: length - 10)
            var config = model
            config.maxPositionEmbeddings = max(config.maxPositionEmbeddings, 16 + length)
            let (master, _) = benchModel(config, sequences: 1)
            for preset in presets {
                let policy = try Policy(master: master, engines: preset.engines(for: config), backend: backend)
                let trainer = try Trainer(policy: policy, task: spec, seed: 1)
                trainer.decodesToLongestResponse = true
                _ = try trainer.step()
                var timings: [StepTiming] = []
                for _ in 0..<steps { timings.append(try trainer.step().timing) }
                let median = timings.sorted { $0.total < $1.total }[timings.count / 2]
                let s = trainer.settings
                let tokens = s.promptsPerStep * s.samplesPerPrompt * length
                func ms(_ x: Double) -> String { String(format: "%.0f", x * 1e3) }
                results.append(BenchResult(
                    name: "rl step \(length) tokens \(preset.rawValue)\(label == "default" ? "" : " \(label)")", value: median.total, unit: "s",
                    note: "\(s.promptsPerStep)x\(s.samplesPerPrompt) x \(length) = \(tokens) tokens; ms: rollout \(ms(median.rollout)), "
                        + "recompute \(ms(median.recompute)), stats \(ms(median.stats)), diagnostics \(ms(median.diagnostics)), loss \(ms(median.forward)), "
                        + "backward \(ms(median.backward)), update \(ms(median.update))"))
            }
        }
    }
    return results
}

import JSON
import Engines
import Foundation
import Mismatch
import Model
import Numerics
import Testing
import RL
import Storage

/// Long runs, by hand only (each takes minutes):
///   PLAB_RL_LONG=base PLAB_RL_LOG=/tmp/base.log swift test -c release --filter RLLong
/// base: trains the shipped base model and writes checkpoints/base-addition.
/// sanity: the sanity test from the base checkpoint under PLAB_RL_PRESETS (default
///         "fp16 fp32 bf16"), algorithm PLAB_RL_ALGO (grpo), extra settings PLAB_RL_SET
///         ("lr=3e-4 prompts=64"), PLAB_RL_STEPS steps (400), or PLAB_RL_EXTRA steps after
///         reaching 0.95 if sooner.
@Suite(.serialized) struct RLLong {
    static let baseDirectory = repositoryRoot.appendingPathComponent("checkpoints/base-addition")

    @Test(.enabled(if: environment("PLAB_RL_LONG") == "base"))
    func trainBaseModel() throws {
        let start = Date()
        let (trainer, report) = try BaseModel.train(progress: { m in
            if m.step % 250 == 0 { log("pretrain \(m.step) loss \(m.loss) token_acc \(m.tokenAccuracy) t \(Date().timeIntervalSince(start))") }
        })
        log("sanity \(JSONValue.object(report.json).serialized)")
        for set in [EvalSet.heldOut, .sanity] {
            for greedy in [true, false] {
                log("eval \(JSONValue.object(try trainer.evaluate(set, greedy: greedy).json).serialized)")
            }
        }
        try saveCheckpoint(try trainer.checkpoint(includeOptimizer: false), to: RLLong.baseDirectory)
        log("saved \(RLLong.baseDirectory.path) after \(Date().timeIntervalSince(start)) s")
    }

    @Test(.enabled(if: environment("PLAB_RL_LONG") == "sanity"))
    func sanityRuns() throws {
        let checkpoint = try loadCheckpoint(from: RLLong.baseDirectory)
        let presets = try (environment("PLAB_RL_PRESETS") ?? "fp16 fp32 bf16").split(separator: " ").map { try Preset.parse(String($0)) }
        let algorithm = try Algorithm.parse(environment("PLAB_RL_ALGO") ?? "grpo")
        let maxSteps = Int(environment("PLAB_RL_STEPS") ?? "400")!
        let backend = try matmulBackend(named: environment("PLAB_RL_BACKEND") ?? "portable")
        for preset in presets {
            let policy = try Policy(master: checkpoint.weights, engines: preset.engines(hiddenSize: checkpoint.weights.config.hiddenSize),
                                    backend: backend)
            let trainer = try Trainer(policy: policy, seed: BaseModel.seed)
            try trainer.restore(from: checkpoint)
            // PLAB_RL_SET="lr=1e-3 samples=4": numeric settings by their shell names.
            var s = trainer.settings
            for pair in (environment("PLAB_RL_SET") ?? "").split(separator: " ") {
                let kv = pair.split(separator: "=").map(String.init)
                guard kv.count == 2, let x = Double(kv[1]) else { throw NumericsError.invalidArgument("PLAB_RL_SET: '\(pair)'") }
                switch kv[0] {
                case "lr": s.learningRate = x
                case "samples": s.samplesPerPrompt = Int(x)
                case "prompts": s.promptsPerStep = Int(x)
                case "token_cap": s.tokenCap = x
                case "seq_cap": s.sequenceCap = x
                case "temperature": s.temperature = x
                default: throw NumericsError.invalidArgument("PLAB_RL_SET: '\(kv[0])' is not one of lr samples prompts token_cap seq_cap temperature")
                }
            }
            try trainer.setSettings(s)
            log("run \(preset.rawValue) \(algorithm.rawValue) " + String(describing: trainer.settings))
            let extra = Int(environment("PLAB_RL_EXTRA") ?? "\(maxSteps)")!
            let run = try trainer.sanityRun(preset: preset, algorithm: algorithm, maxSteps: maxSteps, extra: extra, progress: { m in
                log("\(preset.rawValue) \(JSONValue.object(m.json(timing: true)).serialized)")
            })
            log("result \(preset.rawValue) \(algorithm.rawValue) start \(run.startAccuracy) reached \(run.reachedAt.map(String.init) ?? "never") seconds_to_target \(run.secondsToTarget ?? .nan) total_seconds \(run.seconds) peak \(run.peakAccuracy) end \(run.endAccuracy)")
        }
    }
}

extension RLLong {
    /// Rewrites the base checkpoint's lab.json with the current code (weights unchanged).
    @Test(.enabled(if: environment("PLAB_RL_LONG") == "resave"))
    func resaveBase() throws {
        let c = try loadCheckpoint(from: RLLong.baseDirectory)
        let trainer = try Trainer(policy: try makePolicy(.fp32, weights: c.weights), seed: 0)
        try trainer.restore(from: c)
        try saveCheckpoint(try trainer.checkpoint(includeOptimizer: false), to: RLLong.baseDirectory)
    }
}

// Recipes: the shipped base model, and the sanity test of Qi et al. as a run.

import Engines
import Model
import Numerics

/// How the shipped base checkpoint (`checkpoints/base-addition`) is made, reproducibly from
/// a seed; `sessions/base-model.plab` runs the same steps in the shell.
public enum BaseModel {
    public static let seed: UInt64 = 1
    public static let task = TaskSpec.default
    /// Supervised steps: enough for a partly competent model (sampled accuracy about one
    /// half), so that many prompts have pass rates inside [0.2, 0.8].
    public static let pretrainSteps = 2250
    /// The sanity-set filter: candidates from the training pool and samples per candidate.
    public static let sanityCandidates = 1024
    public static let sanitySamples = 16
    /// Standard deviation of the initial weights (Hugging Face's `initializer_range`).
    public static let initStd: Float = 0.02

    /// Fresh weights from a seed: normal(0, std) from the stream "init", norms 1.
    public static func initialWeights(seed: UInt64, config: LlamaConfig = .labDefault, std: Float = initStd) -> ModelWeights {
        var w = ModelWeights(config: config)
        w.initialize(std: std, stream: RandomStream(seed: seed, name: "init"))
        return w
    }

    /// Trains the base model: FP32 in both engines on the portable backend (the same bits
    /// on every machine), fresh weights from `seed`, `steps` pretraining steps on the
    /// default task, then the sanity set filtered from the result.
    public static func train(seed: UInt64 = seed, steps: Int = pretrainSteps, shouldStop: () -> Bool = { false },
                             progress: (PretrainMetrics) -> Void = { _ in }) throws -> (Trainer, SanityReport) {
        let policy = try Policy(master: initialWeights(seed: seed), engines: Preset.fp32.engines(hiddenSize: LlamaConfig.labDefault.hiddenSize),
                                backend: PortableBackend())
        let trainer = try Trainer(policy: policy, task: task, seed: seed)
        try trainer.pretrain(steps: steps, shouldStop: shouldStop, progress: progress)
        let report = try trainer.buildSanitySet(candidates: sanityCandidates, samples: sanitySamples, shouldStop: shouldStop)
        return (trainer, report)
    }
}

/// One run of the sanity test: RL steps on the sanity set under one precision preset until
/// the training accuracy (a moving average) reaches a target or the steps run out.
public struct SanityRun: Sendable {
    public var preset: Preset
    public var algorithm: Algorithm
    /// Accuracy of a fresh sampled pass over the sanity set before training.
    public var startAccuracy: Double
    public var steps: [StepMetrics]
    /// The first step at which the moving average of training accuracy (over `window`
    /// steps) reached the target, if it did, and the seconds taken to get there.
    public var reachedAt: Int?
    public var secondsToTarget: Double?
    public var seconds: Double
    /// Sampled accuracy over the whole sanity set after the run.
    public var endAccuracy: Double
    public var peakAccuracy: Double
}

extension Trainer {
    /// Runs RL steps from the current weights with fresh optimizer state (the settings as
    /// they are, except the algorithm) until the mean training accuracy over the last
    /// `window` steps is at least `target`, then `extra` steps more, or `maxSteps` in all.
    public func sanityRun(preset: Preset, algorithm: Algorithm = .grpo, maxSteps: Int = 400, target: Double = 0.95,
                          window: Int = 10, extra: Int = 0, shouldStop: () -> Bool = { false },
                          progress: (StepMetrics) -> Void = { _ in }) throws -> SanityRun {
        guard sanitySet != nil else { throw NumericsError.invalidArgument("the sanity test needs a sanity set (sanity build)") }
        try policy.setEngines(preset.engines(hiddenSize: policy.config.hiddenSize))
        var s = settings
        s.algorithm = algorithm
        try setSettings(s)
        resetRL()
        let start = ContinuousClock.now
        let before = try evaluate(.sanity, shouldStop: shouldStop)
        var run = SanityRun(preset: preset, algorithm: algorithm, startAccuracy: before.accuracy, steps: [], reachedAt: nil,
                            secondsToTarget: nil, seconds: 0, endAccuracy: .nan, peakAccuracy: 0)
        var stopAt = maxSteps
        for k in 0..<maxSteps where k < stopAt {
            let m = try step(shouldStop: shouldStop)
            run.steps.append(m)
            progress(m)
            let recent = run.steps.suffix(window)
            let mean = recent.reduce(0) { $0 + $1.accuracy } / Double(recent.count)
            run.peakAccuracy = max(run.peakAccuracy, mean)
            if run.reachedAt == nil && recent.count == window && mean >= target {
                run.reachedAt = m.step
                run.secondsToTarget = seconds(since: start)
                stopAt = min(maxSteps, k + 1 + extra)
            }
        }
        run.seconds = seconds(since: start)
        run.endAccuracy = try evaluate(.sanity, shouldStop: shouldStop).accuracy
        return run
    }
}

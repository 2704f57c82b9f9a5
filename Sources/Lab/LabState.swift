// The model, engines and last results a session holds.

import Engines
import Foundation
import Mismatch
import Model
import Numerics
import RL
import Storage

/// The live model and what the engines last produced. Commands replace pieces only after
/// every check has passed, so a failed command leaves it as it was.
public final class LabState {
    public private(set) var policy: Policy
    public private(set) var vocabulary: Vocabulary
    /// The Hugging Face tokenizer that came with the model's checkpoint, if any: sequences
    /// are then typed and shown as text (TextTokens.swift).
    public private(set) var tokenizer: ModelTokenizer?
    /// How the model came to be: "new (seed 0)", "loaded from DIR".
    public private(set) var origin: String
    /// The preset the engines were last set from, or nil once a field or source was changed.
    public var presetName: String?
    /// Training steps taken on this model.
    public var step = 0
    /// How many times the model was replaced (`model new/init/load`): a new model starts a
    /// new run of metrics.
    public private(set) var generation = 0
    /// The last rollout and its recomputation by the training engine.
    public var lastRollout: RolloutBatch?
    public var lastPairs: [TokenLogProbs]?
    /// `step` when the last rollout was made (the model may have trained since).
    public var lastRolloutStep = 0
    /// A sparse model's router disagreement in the last rollout.
    public var lastRouting: RoutingStats?
    /// The last `compare`: each preset's name and the log-probabilities of its rollout.
    public var lastComparison: [(name: String, pairs: [TokenLogProbs])]?
    /// The prompts of the last rollout when it was given as text (each as often as it was
    /// sampled), which `compare` then repeats; nil after a rollout of the task's prompts.
    public var lastTextPrompts: [[Int32]]?
    /// The command that rebuilds this model in a fresh session (nil: the base model, which a
    /// fresh session starts with; or a model changed in ways no command recreates).
    public var restoreCommand: String?
    /// Whether the model can be rebuilt by a command (false once it has been trained here).
    public var isRestorable = true
    /// How many rollouts this model has made (each draws prompts and samples from its own
    /// streams, so repeating a command gives new samples, reproducibly).
    public var rolloutCount = 0
    /// The optional config.json keys the model's checkpoint lacked, with the defaults taken
    /// (empty unless the model was loaded from such a checkpoint).
    public private(set) var configDefaults: [ConfigDefault] = []

    /// Pretraining and RL around the live policy (the same `Policy` object).
    public private(set) var trainer: Trainer
    /// The session's task and the prompt sets its seed draws: what the trainer trains and
    /// evaluates on, and where `rollout` takes its prompts. It changes through `chooseTask`
    /// and `reseed`, which hand it to the trainer; a trainer built or restored for a new model
    /// (`replace`, a checkpoint naming its task) brings the task it was made with.
    public private(set) var task: TaskData

    public init(policy: Policy, vocabulary: Vocabulary, origin: String, presetName: String?, seed: UInt64 = 0) {
        self.policy = policy
        do { trainer = try Trainer(policy: policy, task: .default, seed: seed) } catch {
            preconditionFailure("the default task does not fit the model: \(error)")
        }
        task = trainer.task
        self.vocabulary = vocabulary
        self.origin = origin
        self.presetName = presetName
    }

    /// The standard initialisation scale of the lab's models: 0.1, larger than Hugging Face's
    /// 0.02 because the lab's models are narrow (1/√64 ≈ 0.125) and a flatter start shows less.
    public static let initStd: Float = 0.1

    /// A new model of `config` with weights drawn from `seed`'s "init" stream, engines per
    /// `preset`.
    public static func fresh(config: LlamaConfig, vocabulary: Vocabulary, seed: UInt64, std: Float = initStd,
                             preset: Preset, backend: any MatmulBackend) throws(NumericsError) -> LabState {
        try config.validate()
        var weights = ModelWeights(config: config)
        weights.initialize(std: std, stream: RandomStream(seed: seed, name: "init"))
        let policy = try Policy(master: weights, engines: preset.engines(for: config), backend: backend)
        return LabState(policy: policy, vocabulary: vocabulary, origin: "new (seed \(seed))", presetName: preset.rawValue, seed: seed)
    }

    /// Where the shipped base model lives: `checkpoints/base-addition` in the source tree
    /// plab was built from, or the directory named by PLAB_BASE_MODEL.
    public static var baseModelDirectory: URL {
        if let path = ProcessInfo.processInfo.environment["PLAB_BASE_MODEL"], !path.isEmpty {
            return URL(fileURLWithPath: path)
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("checkpoints/base-addition")
    }

    /// The model a session starts with: the shipped base model (partly competent at the
    /// default task), engines per the `bf16` preset; if it cannot be read, the lab's default
    /// shape with weights from the seed.
    public static func initial(seed: UInt64, backend: any MatmulBackend) -> LabState {
        let dir = baseModelDirectory
        if let checkpoint = try? loadCheckpoint(from: dir), let vocabulary = try? vocabularyOf(checkpoint),
           let policy = try? Policy(master: checkpoint.weights, engines: Preset.bf16.engines(for: checkpoint.weights.config),
                                    backend: backend) {
            let state = LabState(policy: policy, vocabulary: vocabulary, origin: "base model (\(dir.lastPathComponent))",
                                 presetName: Preset.bf16.rawValue, seed: seed)
            state.configDefaults = checkpoint.configDefaults
            // The task and sanity set the base model was made for.
            try? state.trainer.restore(from: checkpoint)
            state.task = state.trainer.task
            return state
        }
        do {
            return try fresh(config: .labDefault, vocabulary: .standard, seed: seed, preset: .bf16, backend: backend)
        } catch {
            preconditionFailure("the default model does not fit its own preset: \(error)")
        }
    }

    /// Switches the session to another task (new prompt sets; the sanity set is dropped).
    public func chooseTask(_ spec: TaskSpec) throws(NumericsError) {
        let data = try TaskData(spec: spec, seed: task.seed)
        try trainer.setTask(data)
        task = data
    }

    /// Draws the task's prompt sets from another seed (the sanity set is kept); nothing to
    /// do when the seed is the task's.
    public func reseed(_ seed: UInt64) throws(NumericsError) {
        guard seed != task.seed else { return }
        let data = try TaskData(spec: task.spec, seed: seed)
        try trainer.setTask(data, keepingSanitySet: true)
        task = data
    }

    /// Replaces the model (and forgets results of the old one); the session's task becomes
    /// the new trainer's.
    public func replace(policy: Policy, vocabulary: Vocabulary, origin: String, step: Int, restoreCommand: String?,
                        trainer newTrainer: Trainer, configDefaults: [ConfigDefault] = [], tokenizer: ModelTokenizer? = nil) {
        trainer = newTrainer
        generation += 1
        task = newTrainer.task
        self.configDefaults = configDefaults
        self.restoreCommand = restoreCommand
        isRestorable = true
        self.policy = policy
        self.vocabulary = vocabulary
        self.tokenizer = tokenizer
        self.origin = origin
        self.step = step
        lastRollout = nil
        lastPairs = nil
        lastRouting = nil
        lastComparison = nil
        lastTextPrompts = nil
        rolloutCount = 0
    }
}

// The trainer: supervised pretraining, evaluation, the sanity set, and the RL step.
//
// One RL step (ARCHITECTURE.md "The path of a command"):
//   prompts (P from the sanity set) × G samples → rollout engine (μ) → rewards → advantages
//   → training engine recomputes π_old → per minibatch: π_θ, loss, ∂L/∂log π_θ
//   → backward in the training precision (× loss scale for FP16) → unscale → inf/NaN check
//   → clip the global norm → AdamW on the FP32 master weights → weight sync (setMaster).
//
// Randomness: every draw comes from a stream named after what it is for and the step it
// belongs to ("rl/rollout/12", "rl/order/3", "pretrain/40", "sanity/0", "eval/heldout"),
// under the trainer's seed. A step's randomness is therefore a function of (seed, step):
// saving the step counters saves the random state.

import Mismatch
import Model
import Engines
import Numerics

/// A long operation stopped by its `shouldStop` at a safe point; `completed` steps (or
/// chunks) finished before it, and the state is as they left it.
public struct TrainingInterrupted: Error, Sendable, Equatable {
    public var completed: Int
    public init(completed: Int) { self.completed = completed }
}

/// Settings of supervised pretraining on demonstrations.
public struct PretrainSettings: Sendable, Hashable, Codable {
    /// Demonstrations per step.
    public var batchSize: Int = 64
    /// Peak learning rate, reached after `warmupSteps` steps of linear warm-up, then
    /// constant (a schedule that does not depend on how many steps are asked for, so
    /// `pretrain 100` twice is `pretrain 200`).
    public var learningRate: Double = 2e-3
    public var warmupSteps: Int = 100
    public var beta1: Double = 0.9
    public var beta2: Double = 0.99
    public var weightDecay: Double = 0.01
    public var gradClip: Double = 1

    public init() {}

    public func validate() throws(NumericsError) {
        guard batchSize >= 1 && batchSize <= 4096 else { throw .invalidArgument("pretrain batch must be between 1 and 4096 (got \(batchSize))") }
        guard learningRate.isFinite && learningRate > 0 && learningRate <= 1 else {
            throw .invalidArgument("pretrain lr must be in (0, 1] (got \(learningRate))")
        }
        guard warmupSteps >= 0 else { throw .invalidArgument("pretrain warmup must be 0 or more (got \(warmupSteps))") }
        guard beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1 else { throw .invalidArgument("pretrain betas must be in [0, 1)") }
        guard weightDecay >= 0 && weightDecay < 1 else { throw .invalidArgument("pretrain weight decay must be in [0, 1)") }
        guard gradClip >= 0 && gradClip.isFinite else { throw .invalidArgument("pretrain grad clip must be 0 (off) or positive") }
    }

    /// The learning rate of step `step` (0-based).
    public func learningRate(at step: Int) -> Double {
        warmupSteps == 0 ? learningRate : learningRate * min(1, Double(step + 1) / Double(warmupSteps))
    }
}

/// Seconds since `start`.
func seconds(since start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}

/// RL and pretraining state around a live policy.
public final class Trainer {
    /// The model and its two engines (owned by the caller; the trainer changes only its
    /// master weights, through `setMaster`).
    public var policy: Policy
    public private(set) var task: TaskData
    public var seed: UInt64 { task.seed }
    public private(set) var settings = RLSettings()
    public private(set) var pretrainSettings = PretrainSettings()
    /// The sanity set (prompts whose base pass rate was in [0.2, 0.8]); RL draws from it.
    public private(set) var sanitySet: [Problem]?
    /// RL steps and pretraining steps taken.
    public internal(set) var stepsTaken = 0
    public internal(set) var pretrainStepsTaken = 0
    public internal(set) var optimizer: AdamW
    public internal(set) var pretrainOptimizer: AdamW
    public internal(set) var scaler: LossScaler
    public internal(set) var pretrainScaler: LossScaler
    /// RL steps in a row that applied no update (inf/NaN); any applied update resets it.
    public internal(set) var skippedInARow = 0
    private var orderCache: [Int: [Int]] = [:]
    /// π_0 of `kl_initial`, in float32 engines (see `resetReference`).
    var reference: Policy?
    /// When set, RL rollouts ignore the end token and decode the longest response the task
    /// allows every time (vLLM's `ignore_eos`): a fixed response length, for benchmarks.
    public var decodesToLongestResponse = false

    /// A trainer for `task` under `seed` around `policy`; fresh optimizer states.
    public init(policy: Policy, task spec: TaskSpec = .default, seed: UInt64) throws(NumericsError) {
        self.policy = policy
        task = try TaskData(spec: spec, seed: seed)
        let n = policy.master.data.count
        optimizer = AdamW(parameterCount: n)
        pretrainOptimizer = AdamW(parameterCount: n)
        scaler = LossScaler(settings: settings.lossScaler)
        pretrainScaler = LossScaler(settings: settings.lossScaler)
        try checkFits(spec, settings)
    }

    /// Trains on `data` from now on: its task, and the prompt sets, prompt orders and
    /// sampling streams of its seed. The sanity set is dropped, unless `keepingSanitySet`
    /// and the task is the same (drawn from another seed, its prompts and answers still
    /// hold: data, not randomness).
    public func setTask(_ data: TaskData, keepingSanitySet: Bool = false) throws(NumericsError) {
        try checkFits(data.spec, settings)
        if !keepingSanitySet || data.spec != task.spec { sanitySet = nil }
        task = data
        orderCache = [:]
    }

    /// Replaces the RL settings after checking them; nothing changes when they are bad.
    public func setSettings(_ new: RLSettings) throws(NumericsError) {
        try new.validate()
        try checkFits(task.spec, new)
        settings = new
        scaler.configure(new.lossScaler)
        pretrainScaler.configure(new.lossScaler)
    }

    public func setPretrainSettings(_ new: PretrainSettings) throws(NumericsError) {
        try new.validate()
        pretrainSettings = new
    }

    /// Replaces the sanity set (e.g. read from a checkpoint).
    public func setSanitySet(_ problems: [Problem]?) throws(NumericsError) {
        if let problems {
            guard !problems.isEmpty else { throw .invalidArgument("the sanity set is empty") }
            // With notes the stored answer holds the demonstration's notes, which are free:
            // it must agree with the solution after the first `|`, as the reward reads it.
            for p in problems {
                guard let solution = task.spec.solve(p.prompt),
                      TaskSpec.reward(response: p.answer, finished: true, answer: solution) == 1 else {
                    throw .invalidArgument("sanity prompt '\(Vocabulary.standard.decode(p.prompt))' is not a \(task.spec.kind.rawValue) problem with that answer")
                }
            }
        }
        sanitySet = problems
        orderCache = [:]
    }

    /// Resets the RL optimizer, scaler and step counter (a new run from the current weights).
    public func resetRL() {
        stepsTaken = 0
        skippedInARow = 0
        optimizer = AdamW(parameterCount: policy.master.data.count)
        scaler = LossScaler(settings: settings.lossScaler)
    }

    /// Replaces every field a snapshot holds (checked by the caller).
    func restoreFields(task: TaskData, state: TrainerState, sanity: [Problem]?, optimizer: AdamW, pretrainOptimizer: AdamW) {
        self.task = task
        if let s = state.settings { settings = s }
        if let p = state.pretrainSettings { pretrainSettings = p }
        stepsTaken = state.step
        pretrainStepsTaken = state.pretrainStep
        var o = optimizer, p = pretrainOptimizer
        o.t = state.adamSteps
        p.t = state.pretrainAdamSteps
        self.optimizer = o
        self.pretrainOptimizer = p
        scaler = state.scaler
        pretrainScaler = state.pretrainScaler
        skippedInARow = 0
        // A no-op on an exact resume; a shared model's scalers follow the loader's settings.
        scaler.configure(settings.lossScaler)
        pretrainScaler.configure(settings.lossScaler)
        sanitySet = sanity
        orderCache = [:]
    }

    func checkFits(_ spec: TaskSpec, _ s: RLSettings) throws(NumericsError) {
        let need = spec.longestPrompt + s.maxResponse(for: spec)
        if need > policy.config.maxPositionEmbeddings {
            throw .invalidArgument("task \(spec.description) with responses up to \(s.maxResponse(for: spec)) tokens needs \(need) positions; the model has \(policy.config.maxPositionEmbeddings)")
        }
    }

    // MARK: Prompts

    /// The prompts RL draws from: the sanity set, or the training pool when there is none.
    public var rlPrompts: [Problem] { sanitySet ?? task.trainPool }

    /// The order of epoch `e` over the RL prompts: a Fisher–Yates shuffle from "rl/order/e".
    private func order(epoch e: Int, count: Int) -> [Int] {
        if let o = orderCache[e], o.count == count { return o }
        var rng = RandomStream(seed: seed, name: "rl/order/\(e)")
        var o = Array(0..<count)
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) {
                let j = Int(rng.next() % UInt64(i + 1))
                o.swapAt(i, j)
            }
        }
        if orderCache.count > 8 { orderCache = [:] }
        orderCache[e] = o
        return o
    }

    /// The prompts of RL step `k` (0-based): positions k·P ..< (k+1)·P of the endless
    /// sequence of shuffled epochs.
    public func prompts(forStep k: Int) -> [Problem] {
        let pool = rlPrompts
        let p = settings.promptsPerStep
        return (0..<p).map { j in
            let position = k * p + j
            let o = order(epoch: position / pool.count, count: pool.count)
            return pool[o[position % pool.count]]
        }
    }

    // MARK: Rollouts

    /// How many sequences `sample` decodes at a time (one KV cache of this many slots).
    public static let samplingChunk = 512

    /// Samples one response per prompt with the rollout engine, in chunks of 512 sequences;
    /// chunk c uses the stream "NAME/c".
    func sample(_ prompts: [[Int32]], sampling: SamplingSettings, streamName: String,
                shouldStop: () -> Bool) throws -> RolloutBatch {
        var all: RolloutBatch? = nil
        let chunk = Trainer.samplingChunk
        for (c, start) in stride(from: 0, to: prompts.count, by: chunk).enumerated() {
            if shouldStop() { throw TrainingInterrupted(completed: c) }
            let part = Array(prompts[start..<min(start + chunk, prompts.count)])
            let b = policy.rollout.generate(prompts: part, sampling: sampling, endToken: Vocabulary.standard.eos,
                                            stream: RandomStream(seed: seed, name: "\(streamName)/\(c)"), shouldStop: shouldStop)
            if shouldStop() { throw TrainingInterrupted(completed: c) }
            if all == nil { all = b; continue }
            all!.prompts += b.prompts
            all!.responses += b.responses
            all!.logMu += b.logMu
            all!.distributions += b.distributions
            all!.finished += b.finished
        }
        guard let all else { throw NumericsError.invalidArgument("no prompts to sample") }
        return all
    }

    func sampling(greedy: Bool = false) -> SamplingSettings {
        SamplingSettings(temperature: settings.temperature, topP: settings.topP, topK: greedy ? 1 : 0,
                         maxNewTokens: settings.maxResponse(for: task.spec))
    }

    // MARK: Backward helpers

    /// Runs the training engine's backward for per-token gradients of log π at temperature
    /// T, and returns the float32 master gradient.
    ///
    /// The engine's backward differentiates log-softmax at temperature 1: ∂L/∂z_j =
    /// g·(1[j = y] − p_j). At temperature T, log π_T = log softmax(z/T), so ∂L/∂z_j =
    /// (g/T)·(1[j = y] − p_T,j): the same backward with the temperature-T log-probabilities
    /// in place of the forward's and g/T in place of g (exact; nothing else reads them).
    public func backward(_ packed: PackedBatch, forward: ForwardResult, targets: [Int32], dLogProb: [Float],
                  temperature: Double, loadBalancingWeight: Double = 0) -> [Float] {
        var fw = forward
        var grad = dLogProb
        if temperature != 1 {
            let v = policy.config.vocabSize
            var lp = fw.logProbs
            for r in 0..<packed.rows {
                let t = temperatureLogProbs(fw.logProbs[(r * v)..<((r + 1) * v)], temperature: temperature)
                for j in 0..<v { lp[r * v + j] = Float(t[j]) }
            }
            fw.logProbs = lp
            let inv = Float(1 / temperature)
            for i in 0..<grad.count { grad[i] *= inv }
        }
        var grads = ModelWeights(config: policy.config)
        policy.training.backward(packed, targets: targets, dLogProb: grad, forward: fw, grads: &grads,
                                 loadBalancingWeight: Float(loadBalancingWeight))
        return grads.data
    }

    /// Whether the training engine's gradients are FP16, so the loss scaler applies.
    public var usesLossScaling: Bool { policy.engines.training.gradient == .fp16 }

}

func formatScale(_ x: Double) -> String {
    if x >= 1, x == x.rounded(), x < 0x1p53 { return "\(Int(x))" }
    return "\(x)"
}

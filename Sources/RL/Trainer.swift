// The trainer: supervised pretraining, evaluation, the sanity set, and the RL step.
//
// One RL step (DESIGN.md "RL"):
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
    public private(set) var stepsTaken = 0
    public private(set) var pretrainStepsTaken = 0
    public private(set) var optimizer: AdamW
    public private(set) var pretrainOptimizer: AdamW
    public private(set) var scaler: LossScaler
    public private(set) var pretrainScaler: LossScaler
    private var orderCache: [Int: [Int]] = [:]

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

    /// Switches to another task (new prompt sets; the sanity set is dropped).
    public func setTask(_ spec: TaskSpec) throws(NumericsError) {
        try checkFits(spec, settings)
        task = try TaskData(spec: spec, seed: seed)
        sanitySet = nil
        orderCache = [:]
    }

    /// Changes the seed: new prompt sets, prompt orders and sampling streams. The sanity set
    /// (data, not randomness) is kept.
    public func setSeed(_ newSeed: UInt64) throws(NumericsError) {
        task = try TaskData(spec: task.spec, seed: newSeed)
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

    /// `set NAME VALUE` for one RL setting.
    public func set(_ name: String, _ value: String) throws(NumericsError) {
        var s = settings
        try s.set(name, value)
        try setSettings(s)
    }

    public func setPretrainSettings(_ new: PretrainSettings) throws(NumericsError) {
        try new.validate()
        pretrainSettings = new
    }

    /// Replaces the sanity set (e.g. read from a checkpoint).
    public func setSanitySet(_ problems: [Problem]?) throws(NumericsError) {
        if let problems {
            guard !problems.isEmpty else { throw .invalidArgument("the sanity set is empty") }
            for p in problems where task.spec.solve(p.prompt) != p.answer {
                throw .invalidArgument("sanity prompt '\(Vocabulary.standard.decode(p.prompt))' is not a \(task.spec.kind.rawValue) problem with that answer")
            }
        }
        sanitySet = problems
        orderCache = [:]
    }

    /// Resets the RL optimizer, scaler and step counter (a new run from the current weights).
    public func resetRL() {
        stepsTaken = 0
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

    // MARK: Evaluation

    /// Accuracy, mean reward and mean response length of one response per prompt on a set
    /// (its first `count` prompts, all when nil): sampled at the RL temperature and top-p
    /// from the stream "eval/SET", or greedy. Without a sanity set, `.sanity` is refused.
    public func evaluate(_ set: EvalSet = .sanity, count: Int? = nil, greedy: Bool = false,
                         shouldStop: () -> Bool = { false }) throws -> EvalResult {
        let problems: [Problem]
        switch set {
        case .sanity:
            guard let s = sanitySet else { throw NumericsError.invalidArgument("no sanity set yet: build one (sanity build) or evaluate the held-out set") }
            problems = s
        case .heldOut: problems = task.heldOut
        case .train: problems = task.trainPool
        }
        if let count, count < 1 { throw NumericsError.invalidArgument("eval needs at least 1 prompt (got \(count))") }
        let chosen = Array(problems.prefix(count ?? problems.count))
        let batch = try sample(chosen.map(\.prompt), sampling: sampling(greedy: greedy),
                               streamName: "eval/\(set.rawValue)", shouldStop: shouldStop)
        var reward = 0.0, right = 0, length = 0
        for (i, p) in chosen.enumerated() {
            let r = TaskSpec.reward(response: batch.responses[i], finished: batch.finished[i], answer: p.answer)
            reward += r
            if r == 1 { right += 1 }
            length += batch.responses[i].count
        }
        let n = Double(chosen.count)
        return EvalResult(set: set, greedy: greedy, n: chosen.count, accuracy: Double(right) / n, reward: reward / n,
                          meanLength: Double(length) / n)
    }

    /// Builds the sanity set as Qi et al. did: the first `candidates` prompts of the
    /// training pool, `samples` responses each (RL temperature and top-p, streams
    /// "sanity/…"), kept when the pass rate lies in [low, high]. Replaces the sanity set
    /// only when at least one prompt is kept.
    @discardableResult
    public func buildSanitySet(candidates: Int = 1024, samples k: Int = 16, low: Double = 0.2, high: Double = 0.8,
                               shouldStop: () -> Bool = { false }) throws -> SanityReport {
        guard candidates >= 1, k >= 1 else { throw NumericsError.invalidArgument("sanity needs at least 1 candidate and 1 sample") }
        guard low >= 0, high <= 1, low <= high else { throw NumericsError.invalidArgument("sanity range must satisfy 0 <= low <= high <= 1 (got [\(low), \(high)])") }
        let pool = Array(task.trainPool.prefix(candidates))
        var prompts: [[Int32]] = []
        for p in pool { for _ in 0..<k { prompts.append(p.prompt) } }
        let batch = try sample(prompts, sampling: sampling(), streamName: "sanity", shouldStop: shouldStop)
        var histogram = [Int](repeating: 0, count: k + 1)
        var kept: [Problem] = []
        var keptRate = 0.0, allRate = 0.0
        for (i, p) in pool.enumerated() {
            var solved = 0
            for j in 0..<k {
                let s = i * k + j
                solved += Int(TaskSpec.reward(response: batch.responses[s], finished: batch.finished[s], answer: p.answer))
            }
            histogram[solved] += 1
            let rate = Double(solved) / Double(k)
            allRate += rate
            if rate >= low - 1e-12 && rate <= high + 1e-12 {
                kept.append(p)
                keptRate += rate
            }
        }
        if !kept.isEmpty { try setSanitySet(kept) }
        return SanityReport(candidates: pool.count, samples: k, low: low, high: high, kept: kept.count,
                            histogram: histogram, keptPassRate: kept.isEmpty ? .nan : keptRate / Double(kept.count),
                            overallPassRate: allRate / Double(pool.count))
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
                  temperature: Double) -> [Float] {
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
        policy.training.backward(packed, targets: targets, dLogProb: grad, forward: fw, grads: &grads)
        return grads.data
    }

    /// Whether the training engine's gradients are FP16, so the loss scaler applies.
    public var usesLossScaling: Bool { policy.engines.training.gradient == .fp16 }

    // MARK: Pretraining

    /// Supervised pretraining: `steps` AdamW steps of cross-entropy on the answer tokens
    /// (<eos> included) of fresh demonstrations, through the training engine in its
    /// precision (loss-scaled when its gradients are FP16). Step k's demonstrations come
    /// from "pretrain/k". `progress` sees each step; `shouldStop` is polled between steps
    /// (throws `TrainingInterrupted` with the steps done).
    @discardableResult
    public func pretrain(steps: Int, shouldStop: () -> Bool = { false },
                         progress: (PretrainMetrics) -> Void = { _ in }) throws -> [PretrainMetrics] {
        guard steps >= 1 else { throw NumericsError.invalidArgument("pretrain needs at least 1 step (got \(steps))") }
        try pretrainSettings.validate()
        var out: [PretrainMetrics] = []
        for done in 0..<steps {
            if shouldStop() { throw TrainingInterrupted(completed: done) }
            let m = try pretrainOneStep()
            out.append(m)
            progress(m)
        }
        return out
    }

    private func pretrainOneStep() throws -> PretrainMetrics {
        let start = ContinuousClock.now
        let s = pretrainSettings
        let demos = task.demonstrations(step: pretrainStepsTaken, count: s.batchSize)
        let packed = PackedBatch(sequences: demos.map(\.demonstration))
        let fw = policy.training.forward(packed)
        let v = policy.config.vocabSize
        var targets = [Int32](repeating: 0, count: packed.rows)
        var dLogProb = [Float](repeating: 0, count: packed.rows)
        var answerRows: [Int] = []
        for (i, d) in demos.enumerated() {
            for j in 0..<d.answer.count {
                let row = packed.starts[i] + d.prompt.count - 1 + j
                targets[row] = d.answer[j]
                answerRows.append(row)
            }
        }
        var loss = 0.0, right = 0
        for row in answerRows {
            let lp = fw.logProbs[(row * v)..<((row + 1) * v)]
            loss -= Double(lp[row * v + Int(targets[row])])
            if lp.indices.max(by: { lp[$0] < lp[$1] || (lp[$0] == lp[$1] && $0 > $1) }) == row * v + Int(targets[row]) { right += 1 }
        }
        let n = Double(answerRows.count)
        loss /= n
        let scale = usesLossScaling ? pretrainScaler.scale : 1
        let lr = s.learningRate(at: pretrainStepsTaken)
        var metrics = PretrainMetrics(step: pretrainStepsTaken + 1, loss: loss, tokenAccuracy: Double(right) / n, gradNorm: .nan,
                                      learningRate: lr, lossScale: scale, skipped: false, wallTime: 0)
        var applied = false
        if loss.isFinite {
            for row in answerRows { dLogProb[row] = Float(-scale / n) }
            var g = backward(packed, forward: fw, targets: targets, dLogProb: dLogProb, temperature: 1)
            if scale != 1 { let inv = Float(1 / scale); for i in 0..<g.count { g[i] *= inv } }
            let finite = g.allSatisfy { $0.isFinite }
            applied = usesLossScaling ? pretrainScaler.update(finite: finite) : finite
            if applied {
                metrics.gradNorm = clipGradients(&g, maxNorm: s.gradClip)
                var w = policy.master
                pretrainOptimizer.update(&w.data, grad: g, settings: AdamWSettings(learningRate: lr, beta1: s.beta1, beta2: s.beta2,
                                                                                    weightDecay: s.weightDecay))
                try policy.setMaster(w)
            } else {
                metrics.gradNorm = globalNorm(g)
            }
        }
        metrics.skipped = !applied
        pretrainStepsTaken += 1
        metrics.wallTime = seconds(since: start)
        return metrics
    }

    // MARK: The RL step

    /// One RL step (see the top of this file). Either completes — weights, optimizer,
    /// scaler and step counter all advanced — or throws with none of them changed. A step
    /// whose gradients hold inf/NaN (or whose forward pass does) still counts, with its
    /// update skipped and the reason in the metrics.
    public func step(shouldStop: () -> Bool = { false }) throws -> StepMetrics {
        try settings.validate()
        try checkFits(task.spec, settings)
        let clockStart = ContinuousClock.now
        var timing = StepTiming()
        let s = settings
        let temperature = s.temperature
        let maxLen = s.maxResponse(for: task.spec)
        let problems = prompts(forStep: stepsTaken)
        let g = s.samplesPerPrompt
        var prompts: [[Int32]] = [], answers: [[Int32]] = []
        for p in problems {
            for _ in 0..<g {
                prompts.append(p.prompt)
                answers.append(p.answer)
            }
        }

        // Rollout.
        var t = ContinuousClock.now
        let batch = policy.rollout.generate(prompts: prompts, sampling: sampling(), endToken: Vocabulary.standard.eos,
                                            stream: RandomStream(seed: seed, name: "rl/rollout/\(stepsTaken)"), shouldStop: shouldStop)
        if shouldStop() { throw TrainingInterrupted(completed: 0) }
        timing.rollout = seconds(since: t)
        let rewards = (0..<batch.count).map {
            TaskSpec.reward(response: batch.responses[$0], finished: batch.finished[$0], answer: answers[$0])
        }
        let advantages = computeAdvantages(rewards: rewards, groupSize: g, mode: s.effectiveAdvantage)
        let tokens = batch.responses.reduce(0) { $0 + $1.count }
        var metrics = StepMetrics(step: stepsTaken + 1, algorithm: s.algorithm, reward: rewards.reduce(0, +) / Double(batch.count),
                                  accuracy: Double(rewards.filter { $0 == 1 }.count) / Double(batch.count),
                                  responseLength: Double(tokens) / Double(batch.count),
                                  truncated: Double(batch.finished.filter { !$0 }.count) / Double(batch.count),
                                  entropy: .nan, mismatch: nil, loss: .nan, gradNorm: .nan,
                                  lossScale: usesLossScaling ? scaler.scale : 1, skipped: false, updatesSkipped: 0, updates: 0,
                                  skipReason: nil, clipFraction: nil, cappedFraction: nil, overflows: scaler.overflows,
                                  underflows: scaler.underflows, timing: timing)

        // π_old: the training engine's recomputation before any update.
        t = ContinuousClock.now
        let old: (pairs: [TokenLogProbs], forward: ForwardResult, packed: PackedBatch)
        do {
            old = try policy.recompute(batch, temperature: temperature)
        } catch {
            // A forward pass with inf/NaN: nothing to learn from; the step counts, skipped.
            metrics.skipped = true
            metrics.updatesSkipped = s.minibatches
            metrics.skipReason = "\(error)"
            stepsTaken += 1
            metrics.timing.total = seconds(since: clockStart)
            return metrics
        }
        timing.recompute = seconds(since: t)
        t = ContinuousClock.now
        metrics.mismatch = try? mismatchStats(old.pairs, options: MismatchOptions(tokenCap: s.tokenCap, sequenceCap: s.sequenceCap))
        metrics.entropy = meanEntropy(old.pairs)
        timing.stats = seconds(since: t)
        if shouldStop() { throw TrainingInterrupted(completed: 0) }

        // Updates, on copies: committed at the end, so a throw leaves everything as it was.
        let before = policy.master
        var opt = optimizer, sc = scaler
        var weights = policy.master
        var appliedNorms = 0.0, skippedNorm: Double? = nil
        let lossConfig = LossConfig(s, maxResponseLength: maxLen)
        let adam = AdamWSettings(learningRate: s.learningRate, beta1: s.beta1, beta2: s.beta2, epsilon: s.adamEpsilon,
                                 weightDecay: s.weightDecay)
        do {
            for m in 0..<s.minibatches {
                let range = (m * batch.count / s.minibatches)..<((m + 1) * batch.count / s.minibatches)
                if range.isEmpty { continue }
                t = ContinuousClock.now
                // π_θ on this minibatch: the recomputation itself for a single minibatch (θ = θ_old).
                let current: (pairs: [TokenLogProbs], forward: ForwardResult, packed: PackedBatch)
                var sub = batch     // (RolloutBatch has no public initialiser: narrow a copy)
                sub.prompts = Array(batch.prompts[range])
                sub.responses = Array(batch.responses[range])
                sub.logMu = Array(batch.logMu[range])
                sub.distributions = Array(batch.distributions[range])
                sub.finished = Array(batch.finished[range])
                if s.minibatches == 1 {
                    current = old
                } else {
                    do { current = try policy.recompute(sub, temperature: temperature) } catch {
                        metrics.updatesSkipped += 1
                        if metrics.skipReason == nil { metrics.skipReason = "\(error)" }
                        continue
                    }
                }
                let responses = range.enumerated().map { (local, i) in
                    ResponseLogProbs(logPi: current.pairs[local].train.map(Double.init), logOld: old.pairs[i].train.map(Double.init),
                                     logMu: batch.logMu[i].map(Double.init), advantage: advantages[i])
                }
                let loss = policyLoss(responses, config: lossConfig)
                if m == 0 {
                    metrics.loss = loss.loss
                    metrics.clipFraction = s.algorithm.usesPPOClip && loss.tokens > 0 ? Double(loss.clippedTokens) / Double(loss.tokens) : nil
                    metrics.cappedFraction = loss.weights > 0 ? Double(loss.cappedWeights) / Double(loss.weights) : nil
                }
                let scale = usesLossScaling ? sc.scale : 1
                if m == 0 { metrics.lossScale = scale }
                let packed = current.packed
                var targets = [Int32](repeating: 0, count: packed.rows)
                var dLogProb = [Float](repeating: 0, count: packed.rows)
                for (local, i) in range.enumerated() {
                    let promptLength = batch.prompts[i].count
                    for (j, token) in batch.responses[i].enumerated() {
                        let row = packed.starts[local] + promptLength - 1 + j
                        targets[row] = token
                        dLogProb[row] = Float(loss.gradients[local][j] * scale)
                    }
                }
                if usesLossScaling { _ = sc.countUnderflow(dLogProb) }
                timing.forward += seconds(since: t)

                t = ContinuousClock.now
                var grad = backward(packed, forward: current.forward, targets: targets, dLogProb: dLogProb, temperature: temperature)
                timing.backward += seconds(since: t)

                t = ContinuousClock.now
                if scale != 1 { let inv = Float(1 / scale); for i in 0..<grad.count { grad[i] *= inv } }
                let finite = loss.loss.isFinite && grad.allSatisfy { $0.isFinite }
                let apply = usesLossScaling ? sc.update(finite: finite) : finite
                if !apply {
                    metrics.updatesSkipped += 1
                    if metrics.skipReason == nil {
                        metrics.skipReason = usesLossScaling ? "inf/NaN in the FP16 gradients at loss scale \(formatScale(scale)); scale now \(formatScale(sc.scale))"
                                                             : "inf/NaN in the gradients"
                    }
                    if skippedNorm == nil { skippedNorm = globalNorm(grad) }
                    timing.update += seconds(since: t)
                    continue
                }
                appliedNorms += clipGradients(&grad, maxNorm: s.gradClip)
                opt.update(&weights.data, grad: grad, settings: adam)
                metrics.updates += 1
                // Later minibatches see the updated policy in the training engine.
                if m + 1 < s.minibatches { try policy.setMaster(weights) }
                timing.update += seconds(since: t)
            }
            t = ContinuousClock.now
            if metrics.updates > 0 { try policy.setMaster(weights) }
            timing.update += seconds(since: t)
        } catch {
            try? policy.setMaster(before)
            throw error
        }
        optimizer = opt
        scaler = sc
        stepsTaken += 1
        metrics.skipped = metrics.updatesSkipped > 0
        // Mean over applied updates; with none, the norm that made the first one skip (inf/NaN).
        metrics.gradNorm = metrics.updates > 0 ? appliedNorms / Double(metrics.updates) : (skippedNorm ?? .nan)
        metrics.overflows = sc.overflows
        metrics.underflows = sc.underflows
        timing.total = seconds(since: clockStart)
        metrics.timing = timing
        return metrics
    }

    /// Mean over response tokens of the entropy of the training engine's distribution.
    private func meanEntropy(_ pairs: [TokenLogProbs]) -> Double {
        var total = 0.0, count = 0
        for p in pairs {
            guard let full = p.full else { continue }
            let v = full.vocabularySize
            for t in 0..<p.count {
                var h = 0.0
                for j in 0..<v {
                    let lp = Double(full.train[t * v + j])
                    if lp > -.infinity { h -= expD(lp) * lp }
                }
                total += h
                count += 1
            }
        }
        return count > 0 ? total / Double(count) : .nan
    }
}

func formatScale(_ x: Double) -> String {
    if x >= 1, x == x.rounded(), x < 0x1p53 { return "\(Int(x))" }
    return "\(x)"
}

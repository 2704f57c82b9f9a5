// The RL step: rollout, rewards, π_old, loss per minibatch, backward, update (the path is
// drawn at the top of Trainer.swift).

import Mismatch
import Model
import Engines
import Numerics

extension Trainer {
    // MARK: The RL step

    /// One RL step (see the top of Trainer.swift). Either completes — weights, optimizer,
    /// scaler and step counter all advanced — or throws with none of them changed. A step
    /// whose gradients hold inf/NaN (or whose forward pass does) still counts, with its
    /// update skipped and the reason in the metrics.
    public func step(shouldStop: () -> Bool = { false }) throws -> StepMetrics {
        try settings.validate()
        try checkFits(task.spec, settings)
        let clockStart = ContinuousClock.now
        let s = settings
        var timing = StepTiming()
        let round = try rolloutRound(s, timing: &timing, shouldStop: shouldStop)
        var metrics = round.metrics(step: stepsTaken + 1, algorithm: s.algorithm,
                                    lossScale: usesLossScaling ? scaler.scale : 1, scaler: scaler)
        // π_old: the training engine's recomputation before any update.
        var t = ContinuousClock.now
        let old: Recomputation
        do {
            // With one minibatch the backward reuses this forward (θ = θ_old); with several,
            // each minibatch's forward is recomputed and this one needs no caches.
            old = try policy.recompute(round.batch, temperature: s.temperature, keepForBackward: s.minibatches == 1,
                                       replay: s.moe.routingReplay == .r3 ? policy.rolloutReplay(round.batch) : nil)
        } catch {
            // A forward pass with inf/NaN: nothing to learn from; the step counts, skipped.
            metrics.skipped = true
            metrics.updatesSkipped = s.minibatches
            metrics.noteSkip("\(error)", cause: .forward)
            stepsTaken += 1
            countSkips(&metrics)
            metrics.timing.total = seconds(since: clockStart)
            return metrics
        }
        timing.recompute = seconds(since: t)
        t = ContinuousClock.now
        metrics.mismatch = try? mismatchStats(old.pairs, options: MismatchOptions(tokenCap: s.tokenCap, sequenceCap: s.sequenceCap))
        metrics.entropy = meanEntropy(old.pairs)
        metrics.routing = old.routing
        if policy.config.isMixtureOfExperts { metrics.loadBalancingLoss = old.forward.loadBalancingLoss }
        timing.stats = seconds(since: t)
        t = ContinuousClock.now
        metrics.diagnostics = diagnostics(old, batch: round.batch, temperature: s.temperature)
        timing.diagnostics = seconds(since: t)
        if shouldStop() { throw TrainingInterrupted(completed: 0) }

        try update(round, old: old, settings: s, metrics: &metrics, timing: &timing)
        stepsTaken += 1
        countSkips(&metrics)
        timing.total = seconds(since: clockStart)
        metrics.timing = timing
        return metrics
    }

    /// The training engine's forward over a batch: per-response log-probabilities, the
    /// forward pass for the backward, and the packed rows.
    typealias Recomputation = (pairs: [TokenLogProbs], forward: ForwardResult, packed: PackedBatch, routing: RoutingStats?)

    /// What the rollout of one step gave: G responses to each of the step's prompts, their
    /// rewards and advantages.
    struct RolloutRound {
        var batch: RolloutBatch
        var rewards: [Double]
        var advantages: [Double]

        func metrics(step: Int, algorithm: Algorithm, lossScale: Double, scaler: LossScaler) -> StepMetrics {
            let n = Double(batch.count)
            let tokens = batch.responses.reduce(0) { $0 + $1.count }
            return StepMetrics(step: step, algorithm: algorithm, reward: rewards.reduce(0, +) / n,
                               accuracy: Double(rewards.filter { $0 == 1 }.count) / n,
                               responseLength: Double(tokens) / n, truncated: Double(batch.finished.filter { !$0 }.count) / n,
                               entropy: .nan, mismatch: nil, loss: .nan, gradNorm: .nan, lossScale: lossScale,
                               skipped: false, updatesSkipped: 0, updates: 0, skipReason: nil, clipFraction: nil,
                               cappedFraction: nil, overflows: scaler.overflows, underflows: scaler.underflows,
                               timing: StepTiming())
        }
    }

    /// Samples G responses to each of this step's prompts with the rollout engine (stream
    /// "rl/rollout/STEP") and scores them.
    func rolloutRound(_ s: RLSettings, timing: inout StepTiming, shouldStop: () -> Bool) throws -> RolloutRound {
        var prompts: [[Int32]] = [], answers: [[Int32]] = []
        for p in self.prompts(forStep: stepsTaken) {
            for _ in 0..<s.samplesPerPrompt {
                prompts.append(p.prompt)
                answers.append(p.answer)
            }
        }
        let t = ContinuousClock.now
        let batch = policy.rollout.generate(prompts: prompts, sampling: sampling(),
                                            endToken: decodesToLongestResponse ? -1 : Vocabulary.standard.eos,
                                            stream: RandomStream(seed: seed, name: "rl/rollout/\(stepsTaken)"), shouldStop: shouldStop)
        if shouldStop() { throw TrainingInterrupted(completed: 0) }
        timing.rollout = seconds(since: t)
        let rewards = (0..<batch.count).map {
            TaskSpec.reward(response: batch.responses[$0], finished: batch.finished[$0], answer: answers[$0])
        }
        let advantages = computeAdvantages(rewards: rewards, groupSize: s.samplesPerPrompt, mode: s.effectiveAdvantage)
        return RolloutRound(batch: batch, rewards: rewards, advantages: advantages)
    }

    /// The updates of one step, one per minibatch, on copies of the weights, optimizer and
    /// scaler that are committed at the end: a throw leaves everything as it was.
    func update(_ round: RolloutRound, old: Recomputation, settings s: RLSettings, metrics: inout StepMetrics,
                timing: inout StepTiming) throws {
        let batch = round.batch
        let before = policy.master
        var opt = optimizer, sc = scaler
        var weights = policy.master
        var appliedNorms = 0.0, skippedNorm: Double? = nil
        let lossConfig = LossConfig(s, maxResponseLength: s.maxResponse(for: task.spec))
        let adam = AdamWSettings(learningRate: s.learningRate, beta1: s.beta1, beta2: s.beta2, epsilon: s.adamEpsilon,
                                 weightDecay: s.weightDecay)
        do {
            for m in 0..<s.minibatches {
                let range = (m * batch.count / s.minibatches)..<((m + 1) * batch.count / s.minibatches)
                if range.isEmpty { continue }
                var t = ContinuousClock.now
                let scale = usesLossScaling ? sc.scale : 1
                if m == 0 { metrics.lossScale = scale }
                guard let part = try minibatchGradient(round, range: range, old: old, single: s.minibatches == 1,
                                                       config: lossConfig, scale: scale, metrics: &metrics) else {
                    metrics.updatesSkipped += 1
                    continue
                }
                if usesLossScaling { _ = sc.countUnderflow(part.dLogProb) }
                timing.forward += seconds(since: t)

                t = ContinuousClock.now
                var grad = backward(part.packed, forward: part.forward, targets: part.targets, dLogProb: part.dLogProb,
                                    temperature: s.temperature, loadBalancingWeight: s.moe.loadBalancing * scale)
                timing.backward += seconds(since: t)

                t = ContinuousClock.now
                if scale != 1 { let inv = Float(1 / scale); for i in 0..<grad.count { grad[i] *= inv } }
                let finite = part.loss.isFinite && grad.allSatisfy { $0.isFinite }
                let apply = usesLossScaling ? sc.update(finite: finite) : finite
                if !apply {
                    metrics.updatesSkipped += 1
                    metrics.noteSkip(usesLossScaling ? "inf/NaN in the FP16 gradients at loss scale \(formatScale(scale)); scale now \(formatScale(sc.scale))"
                                                     : "inf/NaN in the gradients", cause: .gradients)
                    if skippedNorm == nil { skippedNorm = globalNorm(grad) }
                    timing.update += seconds(since: t)
                    continue
                }
                appliedNorms += clipGradients(&grad, maxNorm: s.gradClip)
                opt.update(&weights.data, grad: grad, settings: adam, range: weights.trainableRange)
                metrics.updates += 1
                // Later minibatches see the updated policy in the training engine.
                if m + 1 < s.minibatches { try policy.setMaster(weights) }
                timing.update += seconds(since: t)
            }
            let t = ContinuousClock.now
            if metrics.updates > 0 { try policy.setMaster(weights) }
            timing.update += seconds(since: t)
        } catch {
            try? policy.setMaster(before)
            throw error
        }
        optimizer = opt
        scaler = sc
        metrics.skipped = metrics.updatesSkipped > 0
        // Mean over applied updates; with none, the norm that made the first one skip (inf/NaN).
        metrics.gradNorm = metrics.updates > 0 ? appliedNorms / Double(metrics.updates) : (skippedNorm ?? .nan)
        metrics.overflows = sc.overflows
        metrics.underflows = sc.underflows
    }

    /// One minibatch's loss and the per-row ∂L/∂log π (× the loss scale) for the backward:
    /// π_θ is the recomputation itself when there is a single minibatch (θ = θ_old), else
    /// recomputed now. Nil when that forward holds inf/NaN (noted in the metrics).
    func minibatchGradient(_ round: RolloutRound, range: Range<Int>, old: Recomputation, single: Bool,
                           config: LossConfig, scale: Double, metrics: inout StepMetrics)
        throws -> (loss: Double, packed: PackedBatch, forward: ForwardResult, targets: [Int32], dLogProb: [Float])? {
        let batch = round.batch
        let current: Recomputation
        if single {
            current = old
        } else {
            // Routing replay: R3 the rollout's experts, R2 those of the π_old forward.
            let replay: Routing?
            switch settings.moe.routingReplay {
            case .off: replay = nil
            case .r3: replay = policy.rolloutReplay(batch.subset(range))
            case .r2: replay = old.forward.routing?.rows(old.packed.starts[range.lowerBound]..<old.packed.starts[range.upperBound])
            }
            do { current = try policy.recompute(batch.subset(range), temperature: settings.temperature, replay: replay) } catch {
                metrics.noteSkip("\(error)", cause: .forward)
                return nil
            }
        }
        let responses = range.enumerated().map { (local, i) in
            ResponseLogProbs(logPi: current.pairs[local].train.map(Double.init), logOld: old.pairs[i].train.map(Double.init),
                             logMu: batch.logMu[i].map(Double.init), advantage: round.advantages[i])
        }
        let loss = policyLoss(responses, config: config)
        if range.lowerBound == 0 {
            metrics.loss = loss.loss
            metrics.clipFraction = settings.algorithm.usesPPOClip && loss.tokens > 0 ? Double(loss.clippedTokens) / Double(loss.tokens) : nil
            metrics.cappedFraction = loss.weights > 0 ? Double(loss.cappedWeights) / Double(loss.weights) : nil
            if config.correction.rejection != .none || config.correction.veto > 0 {
                let tokens = loss.tokens + loss.rejectedTokens
                metrics.rejectedFraction = tokens > 0 ? Double(loss.rejectedTokens) / Double(tokens) : 0
                metrics.rejectedSeqFraction = responses.isEmpty ? 0 : Double(loss.rejectedResponses) / Double(responses.count)
                metrics.vetoedFraction = responses.isEmpty ? 0 : Double(loss.vetoedResponses) / Double(responses.count)
            }
        }
        let packed = current.packed
        var targets = [Int32](repeating: 0, count: packed.rows)
        var dLogProb = [Float](repeating: 0, count: packed.rows)
        for (local, i) in range.enumerated() {
            for (j, token) in batch.responses[i].enumerated() {
                let row = packed.row(predicting: j, of: local, after: batch.prompts[i].count)
                targets[row] = token
                dLogProb[row] = Float(loss.gradients[local][j] * scale)
            }
        }
        return (loss.loss, packed, current.forward, targets, dLogProb)
    }

    /// Counts steps that applied no update; from the second in a row on, says why they keep
    /// being skipped and what would cure it.
    private func countSkips(_ m: inout StepMetrics) {
        skippedInARow = m.updates == 0 && m.skipped ? skippedInARow + 1 : 0
        m.skippedInARow = skippedInARow
        if skippedInARow >= 2 { m.skipAdvice = skipAdvice(m) }
    }

    /// Why steps keep being skipped, and the cure; nil while the dynamic loss scale is still
    /// backing off (it skips until the scale fits, by design).
    private func skipAdvice(_ m: StepMetrics) -> String? {
        let lr = "`lr` (now \(settings.learningRate))"
        let reload = "`model load` the last checkpoint and lower \(lr): a skipped step leaves the weights as they are, so a lower lr alone cannot help"
        let prefix = "\(skippedInARow) steps in a row skipped"
        if policy.master.data.contains(where: { !$0.isFinite }) {
            return "\(prefix): the master weights themselves hold inf/NaN; \(reload)"
        }
        switch m.skipCause {
        case .forward?:
            let format = policy.engines.training.activation.name
            return "\(prefix): the non-finite values appear in the forward activations, not in the gradients (the \(format) forward overflows with these weights, which grew too large); \(reload)"
        case .gradients?:
            if usesLossScaling && settings.lossScaler.isStatic {
                return "\(prefix): the FP16 gradients overflow at the static loss scale \(formatScale(scaler.scale)); lower it (`set loss_scale N`) or `set loss_scale dynamic`"
            }
            if usesLossScaling && scaler.scale > settings.lossScaler.minScale { return nil }
            return "\(prefix): the gradients hold inf/NaN although the forward activations are finite\(usesLossScaling ? " (even at loss scale \(formatScale(scaler.scale)))" : ""); \(reload)"
        case nil:
            return nil
        }
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

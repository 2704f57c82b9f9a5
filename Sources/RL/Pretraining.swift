// Supervised pretraining on a task's demonstrations, through the training engine.

import Mismatch
import Model
import Engines
import Numerics

extension Trainer {
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
                let row = packed.row(predicting: j, of: i, after: d.prompt.count)
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
            var g = backward(packed, forward: fw, targets: targets, dLogProb: dLogProb, temperature: 1,
                             loadBalancingWeight: settings.moe.loadBalancing * scale)
            if scale != 1 { let inv = Float(1 / scale); for i in 0..<g.count { g[i] *= inv } }
            let finite = g.allSatisfy { $0.isFinite }
            applied = usesLossScaling ? pretrainScaler.update(finite: finite) : finite
            if applied {
                metrics.gradNorm = clipGradients(&g, maxNorm: s.gradClip)
                var w = policy.master
                pretrainOptimizer.update(&w.data, grad: g, settings: AdamWSettings(learningRate: lr, beta1: s.beta1, beta2: s.beta2,
                                                                                    weightDecay: s.weightDecay),
                                               range: w.trainableRange)
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
}

import JSON
import Engines
import Foundation
import Mismatch
import Model
import Numerics
import RL
import Storage
import Testing

/// One-digit addition on the small model, pretrained until it is right some of the time, so
/// that groups have mixed rewards and RL steps have gradients. Built once.
let smallBase: TrainerSnapshot = {
    let policy = try! makePolicy(.fp32, weights: freshWeights(seed: 11, config: smallConfig))
    let trainer = try! Trainer(policy: policy, task: try! TaskSpec(kind: .addition, size: 1), seed: 3)
    var p = PretrainSettings()
    p.batchSize = 32
    p.learningRate = 3e-3
    p.warmupSteps = 10
    try! trainer.setPretrainSettings(p)
    try! trainer.pretrain(steps: 150)
    var s = RLSettings()
    s.promptsPerStep = 4
    s.samplesPerPrompt = 4
    s.learningRate = 1e-3
    try! trainer.setSettings(s)
    return trainer.snapshot()
}()

/// A trainer restored from `smallBase` under a preset, with settings changed by `configure`.
func smallTrainer(_ preset: Preset = .fp32, configure: (inout RLSettings) -> Void = { _ in }) throws -> Trainer {
    let policy = try makePolicy(preset, weights: freshWeights(seed: 99, config: smallConfig))
    let trainer = try Trainer(policy: policy, task: .default, seed: 42)
    try trainer.restore(smallBase)
    var s = trainer.settings
    configure(&s)
    try trainer.setSettings(s)
    return trainer
}

func bits(_ w: [Float]) -> [UInt32] { w.map(\.bitPattern) }

extension JSONObject {
    /// One line of JSON text.
    var line: String { JSONValue.object(self).serialized }
}

@Suite struct TrainerTests {
    @Test func baseHasMixedRewards() throws {
        let t = try smallTrainer()
        let m = try t.step()
        #expect(m.accuracy > 0.05 && m.accuracy < 0.95, "the fixture must give mixed rewards (accuracy \(m.accuracy))")
        #expect(m.gradNorm > 0 && m.updates == 1 && !m.skipped)
    }

    /// `decodesToLongestResponse` (vLLM's ignore_eos, for benchmarks): every response is the
    /// task's longest, where the trained model ends most of them far earlier.
    @Test func decodingToTheLongestResponseFixesTheLength() throws {
        let t = try smallTrainer()
        let longest = t.settings.maxResponse(for: t.task.spec)
        let normal = try t.step()
        #expect(normal.responseLength < Double(longest))
        t.decodesToLongestResponse = true
        let fixed = try t.step()
        #expect(fixed.responseLength == Double(longest) && fixed.truncated == 1)
    }

    @Test func pretrainingLowersTheLoss() throws {
        let policy = try makePolicy(.fp32, weights: freshWeights(seed: 5, config: smallConfig))
        let t = try Trainer(policy: policy, task: try TaskSpec(kind: .addition, size: 1), seed: 1)
        let ms = try t.pretrain(steps: 60)
        #expect(ms.count == 60 && t.pretrainStepsTaken == 60)
        let first = ms.prefix(5).reduce(0) { $0 + $1.loss } / 5, last = ms.suffix(5).reduce(0) { $0 + $1.loss } / 5
        #expect(last < first * 0.7, "loss \(first) -> \(last)")
    }

    /// Two trainers from the same state take bit-identical steps; another seed differs.
    @Test(arguments: [Preset.fp32, .bf16, .fp16])
    func stepIsDeterministic(preset: Preset) throws {
        let configure: (inout RLSettings) -> Void = { $0.minibatches = 2; $0.algorithm = .tokenTIS }
        let a = try smallTrainer(preset, configure: configure), b = try smallTrainer(preset, configure: configure)
        for _ in 0..<3 {
            let ma = try a.step(), mb = try b.step()
            #expect(ma.json().members == mb.json().members)
        }
        #expect(bits(a.policy.master.data) == bits(b.policy.master.data))
        #expect(bits(a.optimizer.m) == bits(b.optimizer.m) && bits(a.optimizer.v) == bits(b.optimizer.v))
        // The step really moved the weights.
        #expect(bits(a.policy.master.data) != bits(smallBase.weights.data))
    }

    /// Save after k steps, resume in a fresh trainer (other weights, other seed, other
    /// settings), continue: exactly the steps of a run that never stopped.
    @Test(arguments: [Preset.fp32, .fp16])
    func saveAndResumeIsExact(preset: Preset) throws {
        let configure: (inout RLSettings) -> Void = {
            $0.minibatches = 2
            $0.algorithm = .seqMIS
            $0.lossScaler.growthInterval = 2   // the scaler's scale changes during the run
        }
        let straight = try smallTrainer(preset, configure: configure)
        var expected: [String] = []
        for i in 0..<6 {
            // A resumed trainer measures kl_initial from the weights it resumes from (π_0 is
            // not saved); the uninterrupted one is told to do the same at the fourth step.
            if i == 3 { straight.resetReference() }
            expected.append(try straight.step().json().line)
        }

        let first = try smallTrainer(preset, configure: configure)
        var got: [String] = []
        for _ in 0..<3 { got.append(try first.step().json().line) }
        let saved = first.snapshot()
        // In memory.
        let resumed = try Trainer(policy: try makePolicy(preset, weights: freshWeights(seed: 1, config: smallConfig)), seed: 999)
        var faster = resumed.settings
        faster.learningRate = 0.5
        try resumed.setSettings(faster)
        try resumed.restore(saved)
        var inMemory = got
        for _ in 0..<3 { inMemory.append(try resumed.step().json().line) }
        #expect(inMemory == expected)
        #expect(bits(resumed.policy.master.data) == bits(straight.policy.master.data))
        #expect(resumed.scaler == straight.scaler)
        // Through a checkpoint directory.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("plab-rl-\(preset.rawValue)-\(UInt32.random(in: 0...UInt32.max))")
        defer { try? FileManager.default.removeItem(at: dir) }
        try saveCheckpoint(try first.checkpoint(), to: dir)
        let loaded = try loadCheckpoint(from: dir)
        #expect(loaded.lab?.seed == first.seed && loaded.lab?.step == 3)
        let fromDisk = try Trainer(policy: try makePolicy(preset, weights: freshWeights(seed: 2, config: smallConfig)), seed: 7)
        try fromDisk.restore(from: loaded)
        #expect(fromDisk.sanitySet == first.sanitySet && fromDisk.stepsTaken == 3)
        var onDisk = got
        for _ in 0..<3 { onDisk.append(try fromDisk.step().json().line) }
        #expect(onDisk == expected)
        #expect(bits(fromDisk.policy.master.data) == bits(straight.policy.master.data))
        #expect(bits(fromDisk.optimizer.v) == bits(straight.optimizer.v))
    }

    /// Bad settings are refused with a message naming them, and change nothing.
    @Test func badSettingsRejected() throws {
        let t = try smallTrainer()
        let before = t.settings
        // Words the shell refuses before they reach the trainer (`set lr abc`, `set algo ppo2`)
        // are tested in LabTests; here every typed value out of range.
        let cases: [(String, @Sendable (inout RLSettings) -> Void)] = [
            ("lr", { $0.learningRate = -1 }), ("samples", { $0.samplesPerPrompt = 0 }), ("token_cap", { $0.tokenCap = 0.5 }),
            ("seq_cap", { $0.sequenceCap = 0 }), ("prompts", { $0.promptsPerStep = 0 }), ("temperature", { $0.temperature = 0 }),
            ("top_p", { $0.topP = 1.5 }), ("clip_low", { $0.clipLow = 1 }), ("minibatches", { $0.minibatches = 0 }),
            ("minibatches", { $0.minibatches = 17 }), ("lr", { $0.learningRate = .nan }), ("positions", { $0.maxResponseLength = 100 }),
            ("loss_scale", { $0.lossScaler.initialScale = 0 }), ("scale_growth_interval", { $0.lossScaler.growthInterval = 0 }),
        ]
        for (needle, change) in cases {
            var s = t.settings
            change(&s)
            do {
                try t.setSettings(s)
                Issue.record("\(needle): the bad value was accepted")
            } catch {
                #expect("\(error)".contains(needle), "\(needle): \(error)")
            }
            #expect(t.settings == before)
        }
        // The trainer still steps exactly as one that never saw the bad values.
        let clean = try smallTrainer()
        #expect(try t.step().json().members == clean.step().json().members)
    }

    /// Stopping during a step changes nothing.
    @Test func interruptedStepChangesNothing() throws {
        let t = try smallTrainer()
        let w = bits(t.policy.master.data)
        #expect(throws: TrainingInterrupted.self) { try t.step(shouldStop: { true }) }
        // Stop at the last check of a step, after its rollout (counted on an identical trainer).
        var checks = 0
        _ = try smallTrainer().step(shouldStop: { checks += 1; return false })
        #expect(checks > 1)
        var calls = 0
        #expect(throws: TrainingInterrupted.self) { try t.step(shouldStop: { calls += 1; return calls >= checks }) }
        #expect(bits(t.policy.master.data) == w && t.stepsTaken == 0 && t.optimizer.t == 0)
    }

    /// The temperature-T gradient through the engine's backward (log-probabilities at T
    /// substituted, g/T) against finite differences of Σ c_t log π_T(y_t) in the weights.
    ///
    /// Tolerance 3%: the forward is float32 (log-probabilities good to ≈1e-7 relative), h =
    /// 2e-3 on weights of size ≈0.05–1, and the largest gradients checked are ≥ 0.05, so the
    /// difference quotient carries ≈1e-4 of rounding noise and O(h²) curvature error.
    /// Using the temperature-1 backward instead is off by ≈(1/T − 1) = 43% and fails.
    @Test func temperatureGradientMatchesFiniteDifferences() throws {
        let t = try smallTrainer()
        let temperature = 0.7
        let policy = t.policy
        let batch = policy.rollout.generate(prompts: t.prompts(forStep: 0).map(\.prompt),
                                            sampling: SamplingSettings(temperature: temperature, maxNewTokens: 4),
                                            endToken: 2, stream: RandomStream(seed: 1, name: "s"))
        var rng = RandomStream(seed: 2, name: "c")
        let coefficients = batch.responses.map { $0.map { _ in rng.nextUnit() - 0.5 } }
        func loss() throws -> Double {
            let pairs = try policy.recompute(batch, temperature: temperature).pairs
            var l = 0.0
            for (i, p) in pairs.enumerated() { for (j, lp) in p.train.enumerated() { l += coefficients[i][j] * Double(lp) } }
            return l
        }
        func analytic(_ temp: Double) throws -> [Float] {
            let (_, fw, packed, _) = try policy.recompute(batch, temperature: temperature)
            var targets = [Int32](repeating: 0, count: packed.rows), d = [Float](repeating: 0, count: packed.rows)
            for i in 0..<batch.count {
                for (j, tok) in batch.responses[i].enumerated() {
                    let row = packed.starts[i] + batch.prompts[i].count - 1 + j
                    targets[row] = tok
                    d[row] = Float(coefficients[i][j])
                }
            }
            return t.backward(packed, forward: fw, targets: targets, dLogProb: d, temperature: temp)
        }
        let g = try analytic(temperature), naive = try analytic(1)
        let base = policy.master
        let largest = g.indices.sorted { abs(g[$0]) > abs(g[$1]) }.prefix(6)
        var naiveFails = false
        for j in largest {
            let h: Float = 2e-3
            var plus = base, minus = base
            plus.data[j] += h
            minus.data[j] -= h
            try policy.setMaster(plus)
            let lp = try loss()
            try policy.setMaster(minus)
            let lm = try loss()
            let fd = (lp - lm) / Double(2 * h)
            #expect(abs(Double(g[j]) - fd) <= 0.03 * abs(fd), "parameter \(j): backward \(g[j]) vs finite difference \(fd)")
            if abs(Double(naive[j]) - fd) > 0.03 * abs(fd) { naiveFails = true }
        }
        try policy.setMaster(base)
        #expect(naiveFails, "the temperature-1 backward should not pass this test")
    }
}

@Suite struct LossScalerTests {
    @Test func dynamicScaleLogic() {
        var s = LossScaler(settings: LossScalerSettings(initialScale: 65536, growthInterval: 3))
        #expect(s.update(finite: false) == false && s.scale == 32768 && s.overflows == 1)
        #expect(s.update(finite: true) && s.update(finite: true) && s.scale == 32768)
        #expect(s.update(finite: true) && s.scale == 65536 && s.growths == 1)
        // Back-off stops at the minimum.
        var low = LossScaler(settings: LossScalerSettings(initialScale: 2, growthInterval: 3, minScale: 1))
        _ = low.update(finite: false)
        _ = low.update(finite: false)
        #expect(low.scale == 1 && low.backoffs == 2)
        // Static: never changes, still refuses non-finite updates.
        var fixed = LossScaler(settings: LossScalerSettings(initialScale: 1024, growthInterval: 1, isStatic: true))
        #expect(fixed.update(finite: false) == false && fixed.scale == 1024)
        #expect(fixed.update(finite: true) && fixed.scale == 1024)
    }

    /// FP16 training with a scale far too large: every update overflows to inf in the FP16
    /// gradients, is skipped (master weights and optimizer untouched) and halves the scale,
    /// until the scale fits; then updates apply, and after `growthInterval` clean ones the
    /// scale doubles again.
    @Test func forcedOverflowSkipsBacksOffAndRecovers() throws {
        let t = try smallTrainer(.fp16) {
            $0.lossScaler = LossScalerSettings(initialScale: 0x1p40, growthInterval: 3)
        }
        var scale = 0x1p40
        var skipped = 0, applied = 0, grew = false
        for _ in 0..<40 {
            let before = bits(t.policy.master.data), adamSteps = t.optimizer.t
            let m = try t.step()
            #expect(m.lossScale == scale)
            if m.skipped {
                skipped += 1
                #expect(bits(t.policy.master.data) == before, "a skipped step must not touch the master weights")
                #expect(t.optimizer.t == adamSteps)
                #expect(t.scaler.scale == scale / 2)
                #expect(m.skipReason?.contains("inf/NaN") == true)
                #expect(m.json()["skipped"] == .bool(true))
            } else {
                applied += 1
                #expect(bits(t.policy.master.data) != before)
                if t.scaler.scale > scale { grew = true }
            }
            scale = t.scaler.scale
            if grew { break }
        }
        #expect(skipped >= 5, "the first steps must overflow")
        #expect(applied >= 3 && grew, "training must recover and the scale grow again")
        #expect(t.scaler.overflows == skipped)
    }

    /// BF16 and FP32 gradients use no scaler: the reported scale is 1.
    @Test func noScalingOutsideFP16() throws {
        for preset in [Preset.fp32, .bf16] {
            let t = try smallTrainer(preset)
            let m = try t.step()
            #expect(m.lossScale == 1 && !m.skipped && t.scaler.scale == 65536)
        }
    }
}

@Suite struct MetricsTests {
    @Test func stepJSONHasTheInterfaceKeys() throws {
        let t = try smallTrainer(.bf16)
        let m = try t.step()
        let o = m.json()
        #expect(Array(o.keys.prefix(8)) == ["step", "reward", "accuracy", "k3", "mean_abs_dlogp", "grad_norm", "loss_scale", "skipped"])
        for key in ["entropy", "response_length", "k1", "max_abs_dp", "chi2_token", "kl_full_mean", "ess", "clip_frac", "capped_frac"] {
            #expect(o.keys.contains(key), "\(key)")
        }
        #expect(!o.keys.contains("wall_time"))
        #expect(m.json(timing: true).keys.contains("wall_time"))
        #expect(m.mismatch!.meanAbsDlogp > 0, "bf16 engines disagree")
        #expect(m.entropy > 0)
        let e = try t.evaluate(.heldOut, count: 16, greedy: true)
        #expect(Array(e.json.keys.prefix(4)) == ["n", "accuracy", "reward", "mean_length"])
        #expect(e.n == 16)
    }

    @Test func sanitySetFilter() throws {
        let t = try smallTrainer()
        let report = try t.buildSanitySet(candidates: 40, samples: 8)
        #expect(report.histogram.reduce(0, +) == 40)
        #expect(report.kept == report.histogram[2...6].reduce(0, +))   // 2/8 … 6/8 lie in [0.2, 0.8]
        if report.kept > 0 {
            #expect(t.sanitySet?.count == report.kept)
            #expect(report.keptPassRate >= 0.2 && report.keptPassRate <= 0.8)
        }
    }

    /// With notes, a sanity problem's answer holds the demonstration's notes: it is accepted
    /// when what follows its first `|` is the solution, as the reward reads it.
    @Test func sanitySetWithNotes() throws {
        let spec = try TaskSpec(kind: .reversal, size: 3, notes: 4)
        let t = try Trainer(policy: try makePolicy(), task: spec, seed: 3)
        let prompt = tokens("<bos> r : k q z =")
        try t.setSanitySet([Problem(prompt: prompt, answer: tokens("( . ? - | z q k <eos>"))])
        #expect(t.sanitySet?.count == 1)
        #expect(throws: NumericsError.self) {
            try t.setSanitySet([Problem(prompt: prompt, answer: tokens("( . ? - | z q a <eos>"))])
        }
        #expect(throws: NumericsError.self) {
            try t.setSanitySet([Problem(prompt: prompt, answer: tokens("( . ? - z q k <eos>"))])
        }
        #expect(t.sanitySet?.count == 1)
    }
}

@Suite struct BaseCheckpointTests {
    /// The shipped base model loads, carries its sanity set, and is partly competent on it.
    @Test func shippedBaseModel() throws {
        let dir = repositoryRoot.appendingPathComponent("checkpoints/base-addition")
        let checkpoint = try loadCheckpoint(from: dir)
        #expect(checkpoint.weights.config == .labDefault)
        #expect(checkpoint.lab?.seed == BaseModel.seed && checkpoint.lab?.vocabulary == Vocabulary.standard.tokens)
        let policy = try makePolicy(.fp32, weights: checkpoint.weights)
        let trainer = try Trainer(policy: policy, seed: 0)
        try trainer.restore(from: checkpoint)
        #expect(trainer.task.spec == BaseModel.task && trainer.seed == BaseModel.seed)
        let sanity = try #require(trainer.sanitySet)
        #expect(sanity.count >= 64)
        let e = try trainer.evaluate(.sanity)
        #expect(e.accuracy >= 0.2 && e.accuracy <= 0.8, "base accuracy on the sanity set: \(e.accuracy)")
        // Small: weights only, no optimizer moments.
        #expect(checkpoint.labState == nil)
    }
}

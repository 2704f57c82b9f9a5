// Commands for RL fine-tuning: task, eval, step, algo, and the RL settings.

import Engines
import Foundation
import Mismatch
import Numerics
import RL

extension Topic {
    public static let rl = Topic("RL fine-tuning", order: 50)
}

/// The RL settings `set` and `show` carry, beyond those the shell already has (`prompts`,
/// `temperature` and `top_p` are shared with `rollout`). Each is checked by `RLSettings`.
let rlSettingNames = RLSettings.names.filter { !["prompts", "temperature", "top_p"].contains($0) }

extension Setting {
    /// One RL setting, validated by `RLSettings.set` on a default copy.
    static func rl(_ name: String) -> Setting {
        let defaults = RLSettings()
        let value = defaults.values.first { $0.0 == name }!.1
        let initial = name == "loss_scale" ? "dynamic" : value
        return Setting(name: name, kind: .text, default: .text(initial), help: rlSettingHelp[name] ?? "RL setting") { v throws(LabError) in
            var s = RLSettings()
            do { try s.set(name, v.description) } catch let error as NumericsError { throw LabError(error.description) } catch { throw LabError("\(error)") }
        }
    }

    /// All RL settings, in `RLSettings.names` order.
    public static let rlSettings: [Setting] = rlSettingNames.map { Setting.rl($0) }
}

let rlSettingHelp: [String: String] = [
    "algo": "RL algorithm: pg grpo drgrpo gspo token-tis seq-tis seq-mis pg-seq-is (help algo)",
    "samples": "samples per prompt in an RL step (the group size)",
    "lr": "AdamW learning rate",
    "max_len": "longest response in an RL step, or auto (the task's longest answer + 4)",
    "minibatches": "updates per rollout batch (PPO-style; later ones use π_θ ≠ π_old)",
    "clip_low": "PPO clip ε below 1", "clip_high": "PPO clip ε above 1",
    "gspo_clip_low": "GSPO sequence-ratio clip below 1", "gspo_clip_high": "GSPO sequence-ratio clip above 1",
    "token_cap": "cap C of token-level importance weights (TIS)", "seq_cap": "cap C of sequence-level weights (TIS, MIS, PG-Seq-IS)",
    "loss_agg": "loss aggregation: token-mean seq-mean-token-sum seq-mean-token-mean constant",
    "advantage": "advantage: group (normalised), mean (R − mean), raw",
    "grad_clip": "global gradient-norm clip (0: off)", "weight_decay": "AdamW weight decay",
    "beta1": "AdamW β1", "beta2": "AdamW β2", "adam_eps": "AdamW ε",
    "loss_scale": "FP16 loss scale: dynamic, or a number for a static scale",
    "scale_growth_interval": "clean steps before the dynamic loss scale doubles",
]

extension Session {
    /// The trainer around the live model, with the session's seed and RL settings applied.
    func syncedTrainer() throws -> Trainer {
        let trainer = lab.trainer
        if trainer.seed != seed { try trainer.setSeed(seed) }
        var s = trainer.settings
        for name in rlSettingNames {
            var text = settings.text(name)
            if name == "loss_scale", text.hasPrefix("dynamic") { text = "dynamic" }
            try s.set(name, text)
        }
        try s.set("prompts", String(settings.integer("prompts")))
        try s.set("temperature", String(settings.real("temperature")))
        try s.set("top_p", String(settings.real("top_p")))
        if s != trainer.settings { try trainer.setSettings(s) }
        return trainer
    }
}

extension Trainer {
    /// The memory of sampling `prompts` responses of the task (`eval`, `sanity build`),
    /// 512 sequences decoded at a time.
    func samplingEstimate(prompts: Int) -> MemoryEstimate {
        .sampling(policy.config, sequences: prompts, promptLength: task.spec.longestPrompt,
                  maxNew: settings.maxResponse(for: task.spec), chunk: Trainer.samplingChunk)
    }

    /// The memory of one RL step at the current settings: prompts × samples sequences of the
    /// task's longest prompt and max_len new tokens.
    var stepEstimate: MemoryEstimate {
        let s = settings, spec = task.spec
        return .step(policy.config, engines: policy.engines, sequences: s.promptsPerStep * s.samplesPerPrompt,
                     promptLength: spec.longestPrompt, maxNew: s.maxResponse(for: spec), minibatches: s.minibatches)
    }

    /// The memory of one pretraining step: a batch of the task's longest demonstrations.
    var pretrainEstimate: MemoryEstimate {
        .pretrain(policy.config, engines: policy.engines, sequences: pretrainSettings.batchSize,
                  positions: task.spec.longestPrompt + task.spec.longestAnswer)
    }
}

/// Polls Ctrl-C for the trainer's loops.
func stopRequested() -> Bool { Interruption.isRequested }

extension Command {
    /// `task [NAME] [--size N]`, `task show [N]`.
    public static let task = Command(
        name: "task", topic: .rl,
        summary: "show or choose the task (addition, reversal, sorting) and its size",
        details: "Each task has exact programmatic rewards, a seeded prompt set and a held-out set. Sizes: digits of each addend, or the length of the string to reverse or sort. Choosing a task drops the sanity set.",
        arguments: [.positional("NAME", .choice(TaskKind.allCases.map(\.rawValue)), "the task", optional: true),
                    .option("size", .integer(1...96), "digits (addition) or length (reversal, sorting)")],
        subcommands: [taskShow],
        examples: ["task", "task addition --size 3", "task reversal --size 12", "task show 5"],
        reports: true
    ) { context in
        let trainer = try context.session.syncedTrainer()
        if let name = context.arguments.text("NAME") {
            let kind = try TaskKind.parse(name)
            let size = context.arguments.integer("size") ?? TaskSpec.default.maxSize
            try trainer.setTask(try TaskSpec(kind: kind, size: size))
        }
        let spec = trainer.task.spec
        context.report(["task": .string(spec.kind.rawValue), "size": .int(spec.maxSize),
                        "sanity_set": trainer.sanitySet.map { .int($0.count) } ?? .null]) {
            "task: \(spec.description); sanity set: \(trainer.sanitySet.map { "\($0.count) prompts" } ?? "none (eval --heldout)")"
        }
    }

    static let taskShow = Command(
        name: "show", topic: .rl,
        summary: "sample prompts of the task with their answers",
        arguments: [.positional("N", .integer(1...100), "how many (default 5)", optional: true)],
        examples: ["task show", "task show 10"]
    ) { context in
        let trainer = try context.session.syncedTrainer()
        let vocabulary = context.session.lab.vocabulary
        let n = context.arguments.integer("N") ?? 5
        let lines = trainer.task.heldOut.prefix(n).map { "\(vocabulary.decode($0.prompt))  →  \(vocabulary.decode($0.answer))" }
        context.print(lines.joined(separator: "\n"))
    }

    /// `eval [N] [--greedy] [--heldout]`.
    public static let eval = Command(
        name: "eval", topic: .rl,
        summary: "accuracy, reward and response length on the sanity set (or held-out set)",
        details: "Sampled at the sampling temperature by default; --greedy takes the most likely token. JSON: {\"n\", \"accuracy\", \"reward\", \"mean_length\", …}.",
        arguments: [.positional("N", .integer(1...100_000), "how many prompts (default: all of the set)", optional: true),
                    .flag("greedy", "greedy decoding"), .flag("heldout", "the held-out set instead of the sanity set")],
        examples: ["eval", "eval --heldout --greedy", "eval 64 --json"],
        reports: true
    ) { context in
        let session = context.session
        let trainer = try session.syncedTrainer()
        let set: EvalSet = context.arguments.flag("heldout") ? .heldOut : .sanity
        let setSize = set == .heldOut ? trainer.task.heldOut.count : (trainer.sanitySet?.count ?? 0)
        try session.checkMemory(trainer.samplingEstimate(prompts: min(context.arguments.integer("N") ?? setSize, setSize)),
                                advice: "lower N or max_len")
        let result: EvalResult
        do {
            result = try trainer.evaluate(set, count: context.arguments.integer("N"), greedy: context.arguments.flag("greedy"),
                                          shouldStop: stopRequested)
        } catch is TrainingInterrupted { throw Interrupted() }
        context.report(result.json) {
            "\(set.rawValue)\(result.greedy ? " (greedy)" : ""): accuracy \(figure(result.accuracy)) over \(result.n) prompts, reward \(figure(result.reward)), mean length \(figure(result.meanLength))"
        }
    }

    /// `step [N]`: N RL steps.
    public static let step = Command(
        name: "step", topic: .rl,
        summary: "take N RL steps: rollout, rewards, recompute, loss, backward, AdamW, weight sync",
        details: """
        Prompts come from the sanity set (prompts × samples per step), the loss from the algo
        setting (help algo). A step completes or changes nothing; Ctrl-C stops between steps.
        JSON: one object per step with step, reward, accuracy, k3, mean_abs_dlogp, grad_norm,
        loss_scale, skipped, and more. Steps are appended to `history`.
        """,
        arguments: [.positional("N", .integer(1...100_000), "how many steps (default 1)", optional: true)],
        examples: ["step", "step 20", "step 5 --json"],
        reports: true
    ) { context in
        let session = context.session
        let trainer = try session.syncedTrainer()
        let n = context.arguments.integer("N") ?? 1
        try session.checkMemory(trainer.stepEstimate, advice: "lower prompts, samples or max_len")
        var meter = context.progress("step", total: n)
        for i in 0..<n {
            let m: StepMetrics
            do { m = try trainer.step(shouldStop: stopRequested) } catch is TrainingInterrupted { throw Interrupted() }
            session.lab.step = trainer.stepsTaken
            session.lab.isRestorable = false
            var row: [(String, Double)] = [("step", Double(m.step)), ("reward", m.reward), ("accuracy", m.accuracy),
                                           ("length", m.responseLength), ("entropy", m.entropy), ("grad_norm", m.gradNorm),
                                           ("loss_scale", m.lossScale), ("skipped", m.skipped ? 1 : 0)]
            if let s = m.mismatch {
                row += [("k1", s.k1), ("k3", s.k3), ("mean_abs_dlogp", s.meanAbsDlogp), ("max_abs_dp", s.maxAbsDp),
                        ("chi2_token", s.chi2Token), ("kl_full", s.klFullMean ?? .nan), ("ess", s.ess)]
            }
            session.metrics.append(row)
            context.report(m.json()) {
                let mm = m.mismatch
                return "step \(m.step): reward \(figure(m.reward)), accuracy \(figure(m.accuracy)), length \(figure(m.responseLength)), grad \(figure(m.gradNorm)), k3 \(figure(mm?.k3)), mean|Δlogp| \(figure(mm?.meanAbsDlogp))\(m.lossScale != 1 ? ", scale \(figure(m.lossScale))" : "")\(m.skipped ? ", SKIPPED (\(m.skipReason ?? "overflow"))" : "")"
            }
            let t = m.timing
            if t.total > 0 {
                func share(_ x: Double) -> String { "\(Int((100 * x / t.total).rounded()))%" }
                context.volatile("step took \(figure(t.total)) s: rollout \(share(t.rollout)), recompute \(share(t.recompute)), forward+backward \(share(t.forward + t.backward)), update and sync \(share(t.update))")
            }
            try meter.advance(to: i + 1)
        }
        meter.finish()
    }

    /// `algo [NAME]`: the algorithms and their losses.
    public static let algo = Command(
        name: "algo", topic: .rl,
        summary: "the RL algorithms, their loss formulas and what they correct (set algo NAME)",
        details: Algorithm.allCases.map { "\($0.rawValue) — \($0.title)\n  \($0.formula)\n  \($0.explanation)" }.joined(separator: "\n\n"),
        arguments: [.positional("NAME", .choice(Algorithm.allCases.map(\.rawValue)), "one algorithm", optional: true)],
        examples: ["algo", "algo seq-mis", "set algo token-tis"]
    ) { context in
        let chosen = try context.arguments.text("NAME").map { name throws(NumericsError) in try Algorithm.parse(name) }
        let list = chosen.map { [$0] } ?? Algorithm.allCases
        context.print(list.map { "\($0.rawValue) — \($0.title)\n  \($0.formula)\n  \($0.explanation)" }.joined(separator: "\n\n"))
    }
}

extension Command {
    /// `pretrain N`: supervised next-token training on the task's demonstrations.
    public static let pretrain = Command(
        name: "pretrain", topic: .rl,
        summary: "N steps of supervised training on task demonstrations (AdamW, cross-entropy on answers)",
        details: "In the training engine's precision. JSON: the last step's {step, loss, token_accuracy, grad_norm, lr, loss_scale, skipped}.",
        arguments: [.positional("N", .integer(1...1_000_000), "steps")],
        examples: ["pretrain 100", "pretrain 2250"],
        reports: true
    ) { context in
        let session = context.session
        let trainer = try session.syncedTrainer()
        let n = context.arguments.integer("N")!
        try session.checkMemory(trainer.pretrainEstimate, advice: "free memory or use a smaller model")
        var meter = context.progress("pretrain", total: n)
        var done = 0
        let metrics: [PretrainMetrics]
        do {
            metrics = try trainer.pretrain(steps: n, shouldStop: stopRequested) { _ in
                done += 1
                try? meter.advance(to: done)
            }
        } catch is TrainingInterrupted {
            session.lab.isRestorable = false
            throw Interrupted()
        }
        meter.finish()
        session.lab.isRestorable = false
        let last = metrics.last!
        context.report(last.json()) {
            "pretrain: \(n) steps (total \(trainer.pretrainStepsTaken)), loss \(figure(last.loss)), answer-token accuracy \(figure(last.tokenAccuracy))"
        }
    }

    /// `sanity build`: the sanity set, as the FP16 paper built theirs.
    public static let sanity = Command(
        name: "sanity", topic: .rl,
        summary: "the sanity set: prompts the current model solves 20–80% of the time",
        subcommands: [sanityBuild],
        examples: ["sanity", "sanity build"],
        reports: true
    ) { context in
        let trainer = try context.session.syncedTrainer()
        let count = trainer.sanitySet?.count
        context.report(["prompts": count.map { .int($0) } ?? .null]) {
            count.map { "sanity set: \($0) prompts" } ?? "no sanity set (sanity build)"
        }
    }

    static let sanityBuild = Command(
        name: "build", topic: .rl,
        summary: "sample k answers to each candidate prompt and keep those solved in [low, high] of the time",
        arguments: [.option("candidates", .integer(1...100_000), "candidate prompts", default: .integer(1024)),
                    .option("samples", .integer(1...1024), "samples per candidate (k)", default: .integer(16)),
                    .option("low", .real(0...1), "lowest pass rate kept", default: .real(0.2)),
                    .option("high", .real(0...1), "highest pass rate kept", default: .real(0.8))],
        examples: ["sanity build", "sanity build --candidates 256 --samples 8"],
        reports: true
    ) { context in
        let trainer = try context.session.syncedTrainer()
        let a = context.arguments
        try context.session.checkMemory(
            trainer.samplingEstimate(prompts: min(a.integer("candidates")!, trainer.task.trainPool.count) * a.integer("samples")!),
            advice: "lower --candidates or --samples")
        let report: SanityReport
        do {
            report = try trainer.buildSanitySet(candidates: a.integer("candidates")!, samples: a.integer("samples")!,
                                                low: a.real("low")!, high: a.real("high")!, shouldStop: stopRequested)
        } catch is TrainingInterrupted { throw Interrupted() }
        context.session.lab.isRestorable = false
        context.report(report.json) {
            "sanity set: kept \(report.kept) of \(report.candidates) prompts (pass rate in [\(report.low), \(report.high)] over \(report.samples) samples); their mean pass rate \(figure(report.keptPassRate)), all candidates \(figure(report.overallPassRate))"
        }
    }
}

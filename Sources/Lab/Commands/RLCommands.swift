// Commands for RL fine-tuning: task, eval, step, algo, and the RL settings.

import Engines
import Foundation
import JSON
import Numerics
import RL

extension Topic {
    public static let rl = Topic("RL fine-tuning", order: 50)
}

extension Setting {
    /// An RL setting: declared once with its kind, default and help; `apply` puts its typed
    /// value into the trainer's `RLSettings`. A value is also checked by `RLSettings.validate`
    /// on the defaults, which holds the exact ranges and their messages.
    static func rl(_ name: String, _ kind: ValueKind, _ defaultValue: Value, _ help: String,
                   apply: @escaping @Sendable (Value, inout RLSettings) -> Void) -> Setting {
        Setting(name: name, kind: kind, default: defaultValue, help: help, validate: { value throws(LabError) in
            var s = RLSettings()
            apply(value, &s)
            do throws(NumericsError) { try s.validate() } catch { throw LabError(error.description) }
        }, trainer: apply)
    }

    /// The RL settings `set` and `show` carry, beyond those shared with `rollout` (`prompts`,
    /// `temperature`, `top_p`, which also go to the trainer).
    public static let rlSettings: [Setting] = {
        let d = RLSettings()
        let algorithmAliases = ["reinforce": "pg", "ppo": "grpo", "dr-grpo": "drgrpo", "dr.grpo": "drgrpo",
                                "tis": "token-tis", "mis": "seq-mis", "seq-is": "pg-seq-is", "token_tis": "token-tis",
                                "seq_tis": "seq-tis", "seq_mis": "seq-mis", "pg_seq_is": "pg-seq-is"]
        let aggregationAliases = ["drgrpo": "constant", "seq-mean-token-sum-norm": "constant"]
        let advantageAliases = ["group-normalised": "group", "group-normalized": "group", "normalised": "group",
                                "normalized": "group", "std": "group", "mean-only": "mean", "none": "raw"]
        let unit = 0.0...1.0, positive = 0.0...Double.greatestFiniteMagnitude
        return [
            .rl("algo", .named(Algorithm.allCases.map(\.rawValue), aliases: algorithmAliases), .text(d.algorithm.rawValue),
                "RL algorithm: pg grpo drgrpo gspo token-tis seq-tis seq-mis pg-seq-is (help algo)") {
                $1.algorithm = Algorithm(rawValue: $0.description)! },
            .rl("samples", .integer(1...1024), .integer(d.samplesPerPrompt), "samples per prompt in an RL step (the group size)") {
                $1.samplesPerPrompt = $0.integer },
            .rl("lr", .real(unit), .real(d.learningRate), "AdamW learning rate") { $1.learningRate = $0.number },
            .rl("max_len", .keywordOr("auto", .integer(1...8192)), .text("auto"),
                "longest response in an RL step, or auto (the task's longest answer + 4)") {
                $1.maxResponseLength = $0 == .text("auto") ? nil : $0.integer },
            .rl("minibatches", .integer(1...Int.max), .integer(d.minibatches),
                "updates per rollout batch (PPO-style; later ones use π_θ ≠ π_old)") { $1.minibatches = $0.integer },
            .rl("clip_low", .real(unit), .real(d.clipLow), "PPO clip ε below 1") { $1.clipLow = $0.number },
            .rl("clip_high", .real(positive), .real(d.clipHigh), "PPO clip ε above 1") { $1.clipHigh = $0.number },
            .rl("gspo_clip_low", .real(unit), .real(d.gspoClipLow), "GSPO sequence-ratio clip below 1") { $1.gspoClipLow = $0.number },
            .rl("gspo_clip_high", .real(positive), .real(d.gspoClipHigh), "GSPO sequence-ratio clip above 1") { $1.gspoClipHigh = $0.number },
            .rl("token_cap", .real(positive), .real(d.tokenCap), "cap C of token-level importance weights (TIS)") { $1.tokenCap = $0.number },
            .rl("seq_cap", .real(positive), .real(d.sequenceCap), "cap C of sequence-level weights (TIS, MIS, PG-Seq-IS)") {
                $1.sequenceCap = $0.number },
            .rl("loss_agg", .named(LossAggregation.allCases.map(\.rawValue), aliases: aggregationAliases), .text(d.aggregation.rawValue),
                "loss aggregation: token-mean seq-mean-token-sum seq-mean-token-mean constant") {
                $1.aggregation = LossAggregation(rawValue: $0.description)! },
            .rl("advantage", .named(AdvantageMode.allCases.map(\.rawValue), aliases: advantageAliases), .text(d.advantage.rawValue),
                "advantage: group (normalised), mean (R − mean), raw") { $1.advantage = AdvantageMode(rawValue: $0.description)! },
            .rl("grad_clip", .real(positive), .real(d.gradClip), "global gradient-norm clip (0: off)") { $1.gradClip = $0.number },
            .rl("weight_decay", .real(unit), .real(d.weightDecay), "AdamW weight decay") { $1.weightDecay = $0.number },
            .rl("beta1", .real(unit), .real(d.beta1), "AdamW β1") { $1.beta1 = $0.number },
            .rl("beta2", .real(unit), .real(d.beta2), "AdamW β2") { $1.beta2 = $0.number },
            .rl("adam_eps", .real(positive), .real(d.adamEpsilon), "AdamW ε") { $1.adamEpsilon = $0.number },
            .rl("loss_scale", .keywordOr("dynamic", .real(1...0x1p100)), .text("dynamic"),
                "FP16 loss scale: dynamic (starts from 2^16), or a number for a static scale") {
                if $0 == .text("dynamic") {
                    // Dynamic scaling starts from 2^16 whatever static scale was set before.
                    $1.lossScaler.initialScale = LossScalerSettings().initialScale
                    $1.lossScaler.isStatic = false
                } else {
                    $1.lossScaler.initialScale = $0.number
                    $1.lossScaler.isStatic = true
                }
            },
            .rl("rs", .named(RejectionMode.allCases.map(\.rawValue), aliases: RejectionMode.aliases), .text("none"),
                "rejection beside the algorithm (verl rollout_rs): none, token_k1 (icepop), seq_mean_k1 (geo), token/seq_sum/seq_mean _k1/_k2/_k3, seq_max_k2/_k3 (help algo)") {
                $1.correction.rejection = RejectionMode(rawValue: $0.description)! },
            .rl("rs_low", .real(0...1), .real(d.correction.low), "lower ratio bound of the k1 rejections (IcePop 0.5, geo 0.99)") {
                $1.correction.low = $0.number },
            .rl("rs_high", .real(positive), .real(d.correction.high),
                "upper ratio bound of the k1 rejections (IcePop 2, geo 1.01); the largest k2/k3 score otherwise") {
                $1.correction.high = $0.number },
            .rl("veto", .real(0...1), .real(d.correction.veto), "drop a response holding a token with π_old/μ below this (0: off; slime 1e-4)") {
                $1.correction.veto = $0.number },
            .rl("is_batch_norm", .toggle, .toggle(d.correction.batchNormalize),
                "divide the importance weights by their batch mean (verl rollout_is_batch_normalize)") {
                $1.correction.batchNormalize = $0 == .toggle(true) },
            .rl("scale_growth_interval", .integer(1...Int.max), .integer(d.lossScaler.growthInterval),
                "clean steps before the dynamic loss scale doubles") { $1.lossScaler.growthInterval = $0.integer },
            .rl("routing_replay", .named(RoutingReplay.allCases.map(\.rawValue), aliases: ["disabled": "off", "none": "off"]),
                .text(d.moe.routingReplay.rawValue),
                "a sparse model's routing replay: off, r2 (later minibatches reuse π_old's experts), r3 (training replays the rollout's experts)") {
                $1.moe.routingReplay = RoutingReplay(rawValue: $0.description)! },
            .rl("aux_loss", .real(0...100), .real(d.moe.loadBalancing),
                "weight of a sparse model's load-balancing loss (Mixtral's router_aux_loss_coef)") { $1.moe.loadBalancing = $0.number },
        ]
    }()
}

extension Session {
    /// The trainer around the live model, with the session's seed and RL settings applied.
    func syncedTrainer() throws -> Trainer {
        try lab.reseed(seed)
        let trainer = lab.trainer
        var s = trainer.settings
        for setting in settings.definitions { setting.trainer?(settings[setting.name], &s) }
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
        return .step(policy.config, engines: policy.engines, backend: policy.backend, sequences: s.promptsPerStep * s.samplesPerPrompt,
                     promptLength: spec.longestPrompt, maxNew: s.maxResponse(for: spec), minibatches: s.minibatches)
    }

    /// The memory of one pretraining step: a batch of the task's longest demonstrations.
    var pretrainEstimate: MemoryEstimate {
        .pretrain(policy.config, engines: policy.engines, backend: policy.backend, sequences: pretrainSettings.batchSize,
                  positions: task.spec.longestPrompt + task.spec.longestAnswer)
    }
}

/// Polls Ctrl-C for the trainer's loops.
func stopRequested() -> Bool { Interruption.isRequested }

extension Command {
    /// `task [NAME] [--size N] [--notes M]`, `task show [N]`.
    public static let task = Command(
        name: "task", topic: .rl,
        summary: "show or choose the task (addition, reversal, sorting) and its size",
        details: """
        Each task has exact programmatic rewards, a seeded prompt set and a held-out set.
        Sizes: digits of each addend, or the length of the string to reverse or sort.
        With --notes M, a response first writes M free note tokens ( ) , . ? - * and then |
        before the answer; the reward reads only what follows the first |, so the notes are
        free choices the reward does not pin down (long responses that keep their entropy).
        Choosing a task drops the sanity set.
        """,
        arguments: [.positional("NAME", .choice(TaskKind.allCases.map(\.rawValue)), "the task", optional: true),
                    .option("size", .integer(1...96), "digits (addition) or length (reversal, sorting)"),
                    .option("notes", .integer(0...TaskSpec.largestNotes), "free note tokens before the answer (default 0)")],
        subcommands: [taskShow],
        examples: ["task", "task addition --size 3", "task reversal --size 12", "task reversal --size 6 --notes 64", "task show 5"],
        reports: true, restoresState: true
    ) { context in
        let trainer = try context.session.syncedTrainer(), lab = context.session.lab
        if let name = context.arguments.text("NAME") {
            let kind = try TaskKind.parse(name)
            let size = context.arguments.integer("size") ?? TaskSpec.default.maxSize
            try lab.chooseTask(try TaskSpec(kind: kind, size: size, notes: context.arguments.integer("notes") ?? 0))
        } else if context.arguments.has("size") || context.arguments.has("notes") {
            throw LabError("--size and --notes need the task's name (task reversal --size 8 --notes 64)")
        }
        let spec = lab.task.spec
        context.report(["task": .string(spec.kind.rawValue), "size": .int(spec.maxSize), "notes": .int(spec.notes),
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
        let lab = context.session.lab
        _ = try context.session.syncedTrainer()
        let n = context.arguments.integer("N") ?? 5
        let lines = lab.task.heldOut.prefix(n).map { "\(lab.vocabulary.decode($0.prompt))  →  \(lab.vocabulary.decode($0.answer))" }
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
        Steps are appended to `history`, in the current run (help run), which counts its own
        steps. JSON: one object per step with run, step, reward, accuracy, k3,
        mean_abs_dlogp, grad_norm, loss_scale, skipped, and more (model_step: the
        model's steps in all runs).
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
        var advised = false
        for i in 0..<n {
            let m: StepMetrics
            // A new run measures kl_initial from where it starts.
            if session.startsNewRun(trainer) { trainer.resetReference() }
            do { m = try trainer.step(shouldStop: stopRequested) } catch is TrainingInterrupted { throw Interrupted() }
            session.lab.step = trainer.stepsTaken
            session.lab.isRestorable = false
            let known = session.metrics.runs.count
            let run = session.runForStep(trainer)
            let runInfo = session.metrics.runs[run]
            if session.metrics.runs.count > known && !context.json {
                context.print("run \(runInfo.name): " + runInfo.settings.filter { $0.key != "model" }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            }
            let runStep = runInfo.rows + 1
            var row: [(String, Double)] = [("step", Double(runStep)), ("reward", m.reward), ("accuracy", m.accuracy),
                                           ("length", m.responseLength), ("entropy", m.entropy), ("grad_norm", m.gradNorm),
                                           ("loss_scale", m.lossScale), ("skipped", m.skipped ? 1 : 0)]
            if let s = m.mismatch {
                row += [("k1", s.k1), ("k3", s.k3), ("mean_abs_dlogp", s.meanAbsDlogp), ("max_abs_dp", s.maxAbsDp),
                        ("chi2_token", s.chi2Token), ("kl_full", s.klFullMean ?? .nan), ("ess", s.ess),
                        ("ess_seq", s.essSeq ?? .nan), ("is_seq_frac_outside", s.isSeqFracOutside ?? .nan)]
            }
            row += m.diagnostics.fields.map { ($0.0, $0.1 ?? .nan) }
            if let f = m.rejectedFraction {
                row += [("rs_masked_frac", f), ("rs_seq_masked_frac", m.rejectedSeqFraction ?? .nan), ("veto_frac", m.vetoedFraction ?? .nan)]
            }
            if let r = m.routing {
                row += [("router_disagree", r.decisions), ("router_disagree_tokens", r.tokensAnyLayer), ("aux_loss", m.loadBalancingLoss ?? .nan)]
            }
            session.metrics.append(row, run: run)
            var json: JSONObject = ["run": .string(runInfo.name)]
            json.merge(m.json())
            json.set("step", .int(runStep))
            json.set("model_step", .int(m.step))
            context.report(json, timing: m.timing.total > 0 ? "  (\(shortSeconds(m.timing.total)))" : "") {
                let mm = m.mismatch
                return "step \(runStep): reward \(figure(m.reward)), accuracy \(figure(m.accuracy)), length \(figure(m.responseLength)), grad \(figure(m.gradNorm)), k3 \(figure(mm?.k3)), mean|Δlogp| \(figure(mm?.meanAbsDlogp))\(m.routing.map { ", routers differ \(figure($0.decisions * 100))%" } ?? "")\(m.lossScale != 1 ? ", scale \(figure(m.lossScale))" : "")\(m.skipped ? ", SKIPPED (\(m.skipReason ?? "overflow"))" : "")\(m.skippedInARow >= 2 ? ", \(m.skippedInARow) in a row" : "")"
            }
            // Once a command: why steps keep being skipped, and the cure (JSON: skip_advice).
            if let advice = m.skipAdvice, !advised, !context.json {
                context.print(advice)
                advised = true
            }
            try meter.advance(to: i + 1)
        }
        meter.finish()
    }

    /// `algo [NAME]`: the algorithm in use, or choose one (as `set algo NAME` does).
    public static let algo: Command = {
        var command = Command(
            name: "algo", topic: .rl,
            summary: "show the RL algorithm in use, or choose one (help algo NAME: its loss formula)",
            details: "The same as 'set algo NAME'. Algorithms:\n\n" + Algorithm.allCases.map(\.helpText).joined(separator: "\n\n")
                + "\n\n" + correctionsHelp,
            arguments: [.positional("NAME", .text, "the algorithm to use: " + Algorithm.allCases.map(\.rawValue).joined(separator: ", "),
                                    optional: true, complete: { _, _ in Algorithm.allCases.map(\.rawValue) })],
            examples: ["algo", "algo token-tis", "help algo seq-mis"],
            reports: true
        ) { context in
            let session = context.session
            if let name = context.arguments.text("NAME") { try session.settings.set("algo", to: name) }
            let algorithm = Algorithm(rawValue: session.settings.text("algo"))!
            context.report(["algo": .string(algorithm.rawValue), "title": .string(algorithm.title),
                            "formula": .string(algorithm.formula)]) {
                "algo = \(algorithm.rawValue) (\(algorithm.title))\n  \(algorithm.formula)"
            }
        }
        command.explain = { name throws(LabError) in
            do throws(NumericsError) { return try Algorithm.parse(name).helpText } catch { throw LabError(error.description) }
        }
        return command
    }()
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

extension Algorithm {
    /// `token-tis — token-level TIS`, its loss formula and what it corrects.
    var helpText: String { "\(rawValue) — \(title)\n  \(formula)\n  \(explanation)" }
}

/// The corrections beside the algorithm, for `help algo`.
let correctionsHelp = """
Corrections beside the algorithm (set rs, rs_low, rs_high, veto, is_batch_norm), with
l_t = log rho_t = log pi_old(y_t) - log mu(y_t):
  rs token_k1 (icepop)      mask token t unless rs_low <= rho_t <= rs_high (IcePop: 0.5, 2)
  rs seq_sum_k1             mask response i unless rs_low <= exp(sum_t l_t) <= rs_high
  rs seq_mean_k1 (geo)      mask response i unless rs_low <= exp(mean_t l_t) <= rs_high (SkyRL: 0.99, 1.01)
  rs token_k2 / token_k3    mask token t when k > rs_high; k2 = l_t^2/2, k3 = rho_t - 1 - l_t
  rs seq_sum/seq_mean/seq_max _k2/_k3   mask response i when the sum, mean or max of k > rs_high
  veto V                    drop response i if any rho_t < V (slime: 1e-4; 0 is off)
  is_batch_norm on          divide the importance weights by their mean over the minibatch
A masked token adds neither loss nor gradient and leaves the aggregation's counts (verl
removes it from the response mask). Steps report rs_masked_frac (tokens),
rs_seq_masked_frac (responses with a masked token) and veto_frac.
"""

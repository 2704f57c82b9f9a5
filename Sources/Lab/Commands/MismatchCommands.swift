// Commands that run the engines and measure their mismatch: rollout, mismatch, score, trace.

import JSON
import Engines
import Mismatch
import Foundation
import Model
import Numerics
import Storage

extension Setting {
    public static let temperature = Setting(name: "temperature", kind: .real(0.01...100), default: .real(1),
                                            help: "sampling temperature of the rollout engine (π is computed at the same temperature)",
                                            trainer: { $1.temperature = $0.number })
    public static let topP = Setting(name: "top_p", kind: .real(0.001...1), default: .real(1),
                                     help: "nucleus sampling: keep the most likely tokens up to this probability mass",
                                     trainer: { $1.topP = $0.number })
    public static let topK = Setting(name: "top_k", kind: .integer(0...100_000), default: .integer(0),
                                     help: "keep only the k most likely tokens (0: no limit)")
    public static let maxNew = Setting(name: "max_new", kind: .integer(1...4096), default: .integer(32),
                                       help: "longest response in tokens")
    public static let prompts = Setting(name: "prompts", kind: .integer(1...4096), default: .integer(64),
                                        help: "prompts per rollout and per RL step",
                                        trainer: { if case .integer(let n) = $0 { $1.promptsPerStep = n } })
}

extension Session {
    var sampling: SamplingSettings {
        SamplingSettings(temperature: settings.real("temperature"), topP: settings.real("top_p"),
                         topK: settings.integer("top_k"), maxNewTokens: settings.integer("max_new"))
    }
}

/// Prompts for a rollout: the held-out prompts of the session's task (`LabState.task`, not
/// the trainer's), continuing round after round through the set (so `rollout` never samples
/// the prompts RL trains on). For a model whose vocabulary is not the tasks' own, prompts
/// drawn from its vocabulary instead.
func taskPrompts(_ n: Int, lab: LabState, round: Int) -> [[Int32]] {
    let pool = lab.task.heldOut
    guard lab.vocabulary == .standard, !pool.isEmpty else {
        return generalPrompts(n, vocabulary: lab.vocabulary, seed: lab.task.seed, round: round)
    }
    return (0..<n).map { pool[(round * n + $0) % pool.count].prompt }
}

/// Prompts for a rollout when no task applies: <bos> and 3–6 tokens drawn from the
/// vocabulary's ordinary tokens, from the seed's "prompts" stream.
func generalPrompts(_ n: Int, vocabulary: Vocabulary, seed: UInt64, round: Int) -> [[Int32]] {
    var rng = RandomStream(seed: seed, name: "prompts").split("rollout \(round)")
    let specials = Set([vocabulary.bos, vocabulary.eos, vocabulary.pad])
    let ordinary = (0..<Int32(vocabulary.count)).filter { !specials.contains($0) }
    return (0..<n).map { _ in
        [vocabulary.bos] + (0..<(3 + Int(rng.next() % 4))).map { _ in ordinary[Int(rng.next() % UInt64(ordinary.count))] }
    }
}

/// The prompts of rollout round `round` for the session's settings, checked against the
/// model's positions.
func rolloutPrompts(_ n: Int, session: Session, round: Int) throws -> [[Int32]] {
    let prompts = taskPrompts(n, lab: session.lab, round: round)
    try checkPositions(prompts, session: session)
    return prompts
}

/// Refuses prompts whose longest, with max_new tokens after it, exceeds the model's positions.
func checkPositions(_ prompts: [[Int32]], session: Session) throws {
    let limit = session.lab.policy.config.maxPositionEmbeddings
    let longest = (prompts.map(\.count).max() ?? 0) + session.sampling.maxNewTokens
    guard longest <= limit else {
        throw LabError("prompts plus max_new (\(longest) tokens) exceed the model's \(limit) positions; lower max_new")
    }
}

/// The memory a rollout of `prompts` at the session's max_new needs (`MemoryEstimate.rollout`).
func rolloutEstimate(_ prompts: [[Int32]], session: Session) -> MemoryEstimate {
    .rollout(session.lab.policy.config, sequences: prompts.count, promptLength: prompts.map(\.count).max() ?? 0,
             maxNew: session.sampling.maxNewTokens)
}

/// Samples `prompts` with the live rollout engine from the seed's stream of round `round`
/// (Ctrl-C stops it between positions) and recomputes them with the training engine.
func sampleAndRecompute(_ prompts: [[Int32]], session: Session, round: Int) throws -> (RolloutBatch, [TokenLogProbs], RoutingStats?) {
    let lab = session.lab, sampling = session.sampling
    let stream = RandomStream(seed: session.seed, name: "sampling").split("rollout \(round)")
    var interrupted = false
    let batch = lab.policy.rollout.generate(prompts: prompts, sampling: sampling, endTokens: lab.endTokens, stream: stream) {
        interrupted = Interruption.isRequested
        return interrupted
    }
    if interrupted { throw Interrupted() }
    let result = try lab.policy.recompute(batch, temperature: sampling.temperature, keepForBackward: false)
    return (batch, result.pairs, result.routing)
}

/// `0.00123` style: four significant digits, fixed across machines.
func figure(_ x: Double?) -> String {
    guard let x else { return "-" }
    if x == 0 { return "0" }
    if !x.isFinite { return x.isNaN ? "nan" : (x > 0 ? "inf" : "-inf") }
    let magnitude = abs(x)
    if magnitude >= 1e-3 && magnitude < 1e5 { return String(format: "%.4g", x) }
    return String(format: "%.3e", x)
}

/// `0.125×`, `62.1×`: `x` as a multiple of `base` to 3 digits, or `-` when that says
/// nothing: a zero base, a non-finite value, or values of opposite signs (a signed
/// statistic such as k1 crossing zero).
public func ratioText(_ x: Double?, over base: Double?) -> String {
    guard let x, let base, base != 0, x.isFinite, base.isFinite, (x >= 0) == (base > 0) else { return "-" }
    return String(format: "%.3g", x / base) + "×"
}

func mismatchSummary(_ s: MismatchStats) -> String {
    "mismatch: \(s.tokens) tokens, mean|Δlogp| \(figure(s.meanAbsDlogp)), max|Δlogp| \(figure(s.maxAbsDlogp)), k3 \(figure(s.k3)), mean|Δp| \(figure(s.meanAbsDp)), KL(full) \(figure(s.klFullMean)), argmax differs \(figure(s.argmaxDisagree.map { $0 * 100 }))%"
}

extension Command {
    /// `rollout [N]`: sample responses with the rollout engine, recompute them with the
    /// training engine, and summarise the mismatch.
    public static let rollout = Command(
        name: "rollout", topic: .mismatch,
        summary: "sample N prompts with the rollout engine, recompute with the training engine, summarise the mismatch",
        details: """
        Prompts come from the current task's held-out set (or, for a model with another
        vocabulary, from its vocabulary), samples from
        the seed's sampling stream; settings temperature, top_p, top_k, max_new apply. Shows
        a few samples and one line of mismatch statistics; `mismatch` shows them all. With a
        model whose checkpoint has a tokenizer (tokenizer.json), a quoted text is the prompt:
        `rollout "The capital of France is" --samples 8 --tokens`; sequences end at the ids
        generation_config.json names.
        JSON: {"sequences", "tokens", "finished", "samples": [{"prompt", "response", "logp_rollout", "logp_train"}], plus the mismatch keys}.
        """,
        arguments: [.positional("N", .countOrText(1...4096), "number of prompts (default: the prompts setting), or, for a model with a tokenizer, a quoted text prompt", optional: true),
                    .option("samples", .integer(1...4096), "samples of each prompt (default: 1; of a text prompt, the samples setting)"),
                    .flag("tokens", "show the responses token by token, [text|Δ] with Δ = |log μ − log π| of that token")],
        examples: ["rollout", "rollout 64", "rollout 8 --json", "rollout 4 --samples 2 --tokens"],
        reports: true
    ) { context in
        let session = context.session, lab = session.lab
        let count = context.arguments.integer("N")
        let given = count == nil ? context.arguments.text("N") : nil
        var prompts: [[Int32]]
        var samples = context.arguments.integer("samples") ?? 1
        let text = given != nil
        if let given {
            guard lab.tokenizer != nil else {
                throw LabError("rollout: a text prompt needs a model whose checkpoint has \(CheckpointFile.tokenizer); without one, N is a number of prompts 1…4096")
            }
            let prompt = try lab.encodeWords([given])
            guard !prompt.isEmpty else { throw LabError("rollout: the text prompt encodes to no tokens") }
            samples = context.arguments.integer("samples") ?? session.settings.integer("samples")
            prompts = [prompt]
        } else {
            let n = count ?? session.settings.integer("prompts")
            prompts = try rolloutPrompts(n, session: session, round: lab.rolloutCount)
        }
        prompts = prompts.flatMap { Array(repeating: $0, count: samples) }
        try checkPositions(prompts, session: session)
        let levers = [count != nil || given != nil ? "N" : "the prompts setting"] + (samples > 1 ? ["--samples"] : [])
        try session.checkMemory(rolloutEstimate(prompts, session: session),
                                advice: "lower \(levers.joined(separator: ", ")) or max_new")
        var meter = context.progress("rollout", total: 1)
        let (batch, pairs, routing) = try sampleAndRecompute(prompts, session: session, round: lab.rolloutCount)
        let stats = try mismatchStats(pairs)
        try meter.advance(to: 1)
        meter.finish()
        lab.lastRollout = batch
        lab.lastRolloutStep = lab.step
        lab.lastTextPrompts = text ? prompts : nil
        lab.lastPairs = pairs
        lab.lastRouting = routing
        lab.rolloutCount += 1
        let shown = min(samples > 1 ? max(3, min(samples, 8)) : 3, batch.count)
        let byToken = context.arguments.flag("tokens")
        var object = stats.jsonObject
        if let routing { object.merge(routing.json) }
        object["finished"] = .int(batch.finished.filter { $0 }.count)
        object["samples"] = .array((0..<batch.count).map { i in
            .object(["prompt": .array(batch.prompts[i].map { .int(Int($0)) }), "response": .array(batch.responses[i].map { .int(Int($0)) }),
                     "logp_rollout": .array(pairs[i].rollout.map { .float($0) }), "logp_train": .array(pairs[i].train.map { .float($0) })])
        })
        context.report(object) {
            var lines: [String] = []
            for i in 0..<shown {
                let sumMu = pairs[i].rollout.reduce(0.0) { $0 + Double($1) }, sumPi = pairs[i].train.reduce(0.0) { $0 + Double($1) }
                let response = byToken
                    ? lab.bracketed(batch.responses[i], marks: zip(pairs[i].rollout, pairs[i].train).map { figure(abs(Double($0) - Double($1))) })
                    : lab.showText(batch.responses[i])
                lines.append("\(lab.showText(batch.prompts[i])) → \(response)   log μ \(figure(sumMu)), log π \(figure(sumPi))")
            }
            if batch.count > shown { lines.append("… \(batch.count - shown) more") }
            let ends = lab.endTokens.sorted().map { lab.pieces([$0])[0] }.joined(separator: " or ")
            lines.append("\(batch.count) sequences, \(stats.tokens) response tokens, "
                         + (ends.isEmpty ? "no end id (each ran to max_new)" : "\(batch.finished.filter { $0 }.count) ended with \(ends)"))
            lines.append(mismatchSummary(stats))
            if let routing { lines.append(routingSummary(routing)) }
            return lines.joined(separator: "\n")
        }
    }

    /// `mismatch [--by-position]`: every statistic of the last rollout.
    public static let mismatch = Command(
        name: "mismatch", topic: .mismatch,
        summary: "the mismatch statistics of the last rollout (README: Mismatch statistics)",
        details: """
        d = log μ − log π per sampled token. JSON keys: tokens, sequences, k1, k2, k3, mean_abs_dp,
        max_abs_dp, mean_abs_dlogp, max_abs_dlogp, chi2_token, chi2_seq, ppl_rollout, ppl_train,
        kl_full_mean, kl_full_max, argmax_disagree, ess, seq_logratio_slope (and more); with
        --by-position, "positions": [{position, tokens, k3, mean_abs_dlogp, …}].
        """,
        arguments: [.flag("by-position", "the statistics at each response position")],
        examples: ["mismatch", "mismatch --by-position", "mismatch --json"],
        reports: true
    ) { context in
        guard let pairs = context.session.lab.lastPairs else { throw LabError("no rollout yet; run 'rollout' first") }
        let stats = try mismatchStats(pairs)
        let routing = context.session.lab.lastRouting
        if context.arguments.flag("by-position") {
            let rows = try mismatchStatsByPosition(pairs)
            var object = stats.jsonObject
            object["positions"] = .array(rows.map { row in
                var o = row.stats.jsonObject
                o["position"] = .int(row.position)
                return .object(o)
            })
            context.report(object) {
                var table = TextTable(header: ["position", "tokens", "mean|Δlogp|", "max|Δlogp|", "k3", "mean|Δp|", "KL(full)"],
                                      rightAligned: [0, 1, 2, 3, 4, 5, 6])
                for row in rows {
                    let s = row.stats
                    table.add(["\(row.position)", "\(s.tokens)", figure(s.meanAbsDlogp), figure(s.maxAbsDlogp), figure(s.k3),
                               figure(s.meanAbsDp), figure(s.klFullMean)])
                }
                return table.render()
            }
            return
        }
        var object = stats.jsonObject
        if let routing { object.merge(routing.json) }
        context.report(object) { statsTable(stats, routing: routing) }
    }

    /// `compare ENGINES…`: the same rollout under several presets, statistics side by side.
    public static let compare = Command(
        name: "compare", topic: .mismatch,
        summary: "roll out the same prompts under several presets and compare the mismatch side by side",
        details: """
        Each name is a preset (\(Preset.allCases.map(\.rawValue).joined(separator: ", "))) or
        `current` (the engines as they are now). For each, the engines are switched, the same
        prompts — those of the last rollout, so that `compare current` repeats it — are
        sampled from the same seeded stream and recomputed by the training engine (after a
        rollout of a text prompt, that prompt as often as it was sampled); afterwards
        the engines are exactly as before (the same objects, delayed-scaling histories
        included) and the last rollout is unchanged. The last rows count the operand elements
        (activations, gradients) that overflowed their format in each engine during the
        comparison, and the non-zero ones of 8-bit operands that were flushed to zero. --by-position shows mean |Δ log p| at each response position instead.
        JSON: {"engines": [names], "stats": {name: {mismatch keys, overflows_rollout, overflows_train, underflows_rollout, underflows_train}}, "positions": {name: [{position, tokens, mean_abs_dlogp, k3}]}}.
        """,
        arguments: [.variadic("ENGINES", .choice(["current"] + Preset.allCases.map(\.rawValue)), "presets to compare", minimum: 1),
                    .option("prompts", .integer(1...4096), "prompts per rollout (default: the prompts setting)"),
                    .option("prompts-file", .path(.readFile), "the prompts, one a line (text, with a model that has a tokenizer; else its tokens), instead of the task's"),
                    .option("samples", .integer(1...4096), "samples of each prompt (default 1)"),
                    .flag("by-position", "mean |Δ log p| at each response position")],
        examples: ["compare bf16 fp8-rollout fp8-unified", "compare bf16 fp16 --by-position", "compare current identical --json",
                   "compare bf16 fp16 --prompts-file prompts.txt --samples 4"],
        reports: true
    ) { context in
        let session = context.session, lab = session.lab
        let names = context.arguments.texts("ENGINES")
        // The round of the last rollout (so `compare current` repeats it), or of the first.
        let round = max(0, lab.rolloutCount - 1)
        var prompts: [[Int32]]
        if let file = context.arguments.text("prompts-file") {
            if context.arguments.integer("prompts") != nil { throw LabError("compare: --prompts and --prompts-file exclude each other (the file's lines are the prompts)") }
            let lines = try readLines(ofFile: try context.readableFile(file), shownAs: file)
                .filter { !$0.text.trimmingCharacters(in: .whitespaces).isEmpty }
            guard !lines.isEmpty else { throw LabError("compare: \(file) has no prompt (one a line)") }
            guard lines.count <= 4096 else { throw LabError("compare: \(file) has \(lines.count) prompts; at most 4096") }
            prompts = try lines.map { line in
                let words = lab.tokenizer == nil ? line.text.split(separator: " ").map(String.init) : [line.text]
                let ids: [Int32]
                do { ids = try lab.encodeWords(words) } catch { throw LabError("\(file):\(line.number): \(error)") }
                guard !ids.isEmpty else { throw LabError("\(file):\(line.number): the prompt encodes to no tokens") }
                return ids
            }
        } else if context.arguments.integer("prompts") == nil, let repeated = lab.lastTextPrompts {
            // The last rollout was of a text prompt: the same prompt, as often.
            prompts = repeated
        } else {
            let n = context.arguments.integer("prompts") ?? session.settings.integer("prompts")
            prompts = try rolloutPrompts(n, session: session, round: round)
        }
        let samples = context.arguments.integer("samples") ?? 1
        prompts = prompts.flatMap { Array(repeating: $0, count: samples) }
        try checkPositions(prompts, session: session)
        // Each preset in turn: its two engines are built beside the live ones, then the rollout.
        let pairs = try names.map { name throws -> EnginePair in
            name == "current" ? lab.policy.engines : try Preset.parse(name).engines(for: lab.policy.config)
        }
        try session.checkMemory(.larger(pairs.map { pair in
            MemoryEstimate([("engine copies", MemoryEstimate.engineWeights(lab.policy.config, pair, backend: lab.policy.backend))])
                + rolloutEstimate(prompts, session: session)
        }), advice: "lower --prompts (or the prompts setting) or max_new")
        var results: [(name: String, stats: MismatchStats, positions: [PositionMismatchStats], overflows: (Int, Int), underflows: (Int, Int), routing: RoutingStats?)] = []
        var comparison: [(name: String, pairs: [TokenLogProbs])] = []
        var meter = context.progress("compare", total: names.count)
        for (name, pair) in zip(names, pairs) {
            var routing: RoutingStats? = nil
            let (stats, positions, overflows, underflows) = try lab.policy.withEngines(pair) { () throws -> (MismatchStats, [PositionMismatchStats], (Int, Int), (Int, Int)) in
                let (_, pairs, routed) = try sampleAndRecompute(prompts, session: session, round: round)
                routing = routed
                comparison.append((name, pairs))
                func activations(_ counts: [OperandRole: Int]) -> Int {
                    OperandRole.allCases.filter { $0 != .weights }.reduce(0) { $0 + (counts[$1] ?? 0) }
                }
                let r = lab.policy.rollout.kernel.state, t = lab.policy.training.kernel.state
                return (try mismatchStats(pairs), try mismatchStatsByPosition(pairs),
                        (activations(r.overflows), activations(t.overflows)), (activations(r.underflows), activations(t.underflows)))
            }
            results.append((name, stats, positions, overflows, underflows, routing))
            try meter.advance(to: results.count)
        }
        meter.finish()
        lab.lastComparison = comparison
        var stats: JSONObject = [:], positions: JSONObject = [:]
        for r in results {
            var o = r.stats.jsonObject
            o["overflows_rollout"] = .int(r.overflows.0)
            o["overflows_train"] = .int(r.overflows.1)
            o["underflows_rollout"] = .int(r.underflows.0)
            o["underflows_train"] = .int(r.underflows.1)
            if let routing = r.routing { o.merge(routing.json) }
            stats[r.name] = .object(o)
            positions[r.name] = .array(r.positions.map { p in
                .object(["position": .int(p.position), "tokens": .int(p.stats.tokens),
                         "mean_abs_dlogp": .double(p.stats.meanAbsDlogp),
                         "k3": .double(p.stats.k3)])
            })
        }
        var object: JSONObject = ["engines": .array(names.map(JSONValue.string)), "stats": .object(stats)]
        if context.arguments.flag("by-position") { object["positions"] = .object(positions) }
        context.report(object) {
            if context.arguments.flag("by-position") {
                let longestRun = results.map(\.positions.count).max() ?? 0
                var table = TextTable(header: ["position"] + results.flatMap { ["\($0.name) tokens", "mean|Δlogp|"] },
                                      rightAligned: Set(0...(2 * results.count)))
                for i in 0..<longestRun {
                    var row = ["\(i)"]
                    for r in results {
                        if let p = r.positions.first(where: { $0.position == i }) {
                            row += ["\(p.stats.tokens)", figure(p.stats.meanAbsDlogp)]
                        } else {
                            row += ["0", "-"]
                        }
                    }
                    table.add(row)
                }
                return table.render()
            }
            let header = "\(prompts.count) prompts, seed \(session.seed), max_new \(session.sampling.maxNewTokens), temperature \(figure(session.sampling.temperature))\n"
            // Beside the values, each later column as a multiple of the first one's.
            let first = results[0].name
            let ratioNames = results.dropFirst().map { "\($0.name)/\(first)" }
            var table = TextTable(header: ["statistic"] + results.map(\.name) + ratioNames,
                                  rightAligned: Set(1...(2 * results.count - 1)))
            func add(_ label: String, _ values: [Double?], text: (Double?) -> String) {
                table.add([label] + values.map(text) + values.dropFirst().map { ratioText($0, over: values[0]) })
            }
            let rows = results.map { statsRows($0.stats) }
            for (i, (name, _, _)) in rows[0].enumerated() {
                add(name, rows.map { $0[i].1 }, text: figure)
            }
            func count(_ x: Double?) -> String { x.map { String(Int($0)) } ?? "-" }
            add("overflows μ", results.map { Double($0.overflows.0) }, text: count)
            add("overflows π", results.map { Double($0.overflows.1) }, text: count)
            add("flushed to 0 μ", results.map { Double($0.underflows.0) }, text: count)
            add("flushed to 0 π", results.map { Double($0.underflows.1) }, text: count)
            if results.allSatisfy({ $0.routing != nil }) {
                let routed = results.map { routingRows($0.routing!) }
                for (i, (name, _, _)) in routed[0].enumerated() { add(name, routed.map { $0[i].1 }, text: figure) }
            }
            let note = results.count > 1 ? "\n(\(ratioNames[0]): the statistic under \(results[1].name) as a multiple of \(first)'s; 0.125× is 8 times smaller)" : ""
            return header + table.render() + note
        }
    }

    /// `score TOKEN…`: log-probabilities of a given sequence under both engines.
    public static let score = Command(
        name: "score", topic: .mismatch,
        summary: "log-probability of each next token of a sequence under both engines",
        details: """
        Tokens are vocabulary strings, #ID numbers, or words split into single-character tokens;
        with a model whose checkpoint has a tokenizer (tokenizer.json), text: `score "The capital
        of France is Paris"` (encoded with the model's BOS; #ID numbers alone stay ids).
        Entry i is log p(tokens[i+1] | tokens[0…i]) at temperature 1.
        JSON: {"tokens": [ids], "logp_rollout": [...], "logp_train": [...]}.
        """,
        arguments: [.variadic("TOKEN", .text, "the sequence (at least two tokens)", minimum: 1)],
        examples: ["score <bos> 1 2 + 3 4 = 4 6 <eos>", "score <bos> 12+34=46 <eos> --json"],
        reports: true
    ) { context in
        let lab = context.session.lab
        let tokens = try lab.encodeWords(context.arguments.texts("TOKEN"))
        guard tokens.count >= 2 else { throw LabError("score needs at least two tokens (a context and one token to score)") }
        guard tokens.count <= lab.policy.config.maxPositionEmbeddings else {
            throw LabError("\(tokens.count) tokens exceed the model's \(lab.policy.config.maxPositionEmbeddings) positions")
        }
        try context.session.checkMemory(.scoring(lab.policy.config, tokens: tokens.count), advice: "score fewer tokens")
        let (r, t) = lab.policy.score(tokens)
        context.report(["tokens": .array(tokens.map { .int(Int($0)) }), "logp_rollout": .array(r.map { .float($0) }),
                        "logp_train": .array(t.map { .float($0) })]) {
            var table = TextTable(header: ["token", "log μ (rollout)", "log π (train)", "Δ"], rightAligned: [1, 2, 3])
            let shown = lab.tokenizer == nil ? lab.pieces(tokens) : tokens.map { lab.bracketed([$0]) }
            for i in 0..<r.count {
                table.add([shown[i + 1], figure(Double(r[i])), figure(Double(t[i])), figure(Double(r[i]) - Double(t[i]))])
            }
            let total = (r.reduce(0.0) { $0 + Double($1) }, t.reduce(0.0) { $0 + Double($1) })
            table.add(["total", figure(total.0), figure(total.1), figure(total.0 - total.1)])
            return table.render()
        }
    }

    /// `trace [TOKEN…]`: where the engines' hidden states part, layer by layer.
    public static let trace = Command(
        name: "trace", topic: .mismatch,
        summary: "run both engines on the same tokens and show, layer by layer, how far their hidden states drift",
        details: "Default tokens: the first sequence of the last rollout. A sparse model's layers also show the fraction of positions whose routers chose different experts. JSON: {\"tokens\", \"layers\": [{\"name\", \"rel_l2\", \"max_abs\" (, \"router_disagree\")}]}.",
        arguments: [.variadic("TOKEN", .text, "the sequence (default: the last rollout's first)")],
        examples: ["trace", "trace <bos> 12+34=46"],
        reports: true
    ) { context in
        let lab = context.session.lab
        var tokens = try lab.encodeWords(context.arguments.texts("TOKEN"))
        if tokens.isEmpty {
            guard let last = lab.lastRollout, last.count > 0 else { throw LabError("no tokens given and no rollout yet; run 'rollout' or give tokens") }
            tokens = last.sequences[0]
        }
        guard tokens.count <= lab.policy.config.maxPositionEmbeddings else {
            throw LabError("\(tokens.count) tokens exceed the model's \(lab.policy.config.maxPositionEmbeddings) positions")
        }
        try context.session.checkMemory(.scoring(lab.policy.config, tokens: tokens.count), advice: "trace fewer tokens")
        let rows = lab.policy.trace(tokens)
        context.report(["tokens": .array(tokens.map { .int(Int($0)) }),
                        "layers": .array(rows.map { row in
                            var o: JSONObject = ["name": .string(row.name), "rel_l2": .double(row.relativeL2), "max_abs": .double(row.maxAbs)]
                            if let d = row.routerDisagree { o["router_disagree"] = .double(d) }
                            return .object(o)
                        })]) {
            let sparse = rows.contains { $0.routerDisagree != nil }
            var table = TextTable(header: ["stage", "relative L2", "max |Δ|"] + (sparse ? ["routers differ"] : []) + [""],
                                  rightAligned: sparse ? [1, 2, 3] : [1, 2])
            let top = rows.map(\.relativeL2).max() ?? 0
            for row in rows {
                let bar = top > 0 ? String(repeating: "█", count: Int((row.relativeL2 / top * 20).rounded())) : ""
                let routed = sparse ? [row.routerDisagree.map { "\(figure($0 * 100))%" } ?? ""] : []
                table.add([row.name, figure(row.relativeL2), figure(row.maxAbs)] + routed + [bar])
            }
            return "tokens: \(lab.tokenizer == nil ? lab.vocabulary.decode(tokens) : lab.bracketed(tokens))\n" + table.render()
        }
    }
}

func statsTable(_ s: MismatchStats, routing: RoutingStats? = nil) -> String {
    var table = TextTable(header: ["statistic", "value", "meaning"], rightAligned: [1])
    for (name, value, meaning) in statsRows(s) + (routing.map(routingRows) ?? []) { table.add([name, figure(value), meaning]) }
    return table.render()
}

/// A sparse model's router disagreement as `mismatch` and `compare` show it.
func routingRows(_ r: RoutingStats) -> [(String, Double?, String)] {
    [("routers differ", r.decisions, "fraction of (token, layer) decisions with another top-k set"),
     ("… any layer", r.tokensAnyLayer, "fraction of tokens routed differently in at least one layer")]
        + r.layers.enumerated().map { ("… layer \($0.offset)", $0.element, "") }
}

/// `routing: 4.2% of router decisions differ (layers 0–3: …), 12% of tokens in some layer`.
func routingSummary(_ r: RoutingStats) -> String {
    "routing: \(figure(r.decisions * 100))% of router decisions differ (by layer \(r.layers.map { figure($0 * 100) }.joined(separator: " "))), \(figure(r.tokensAnyLayer * 100))% of \(r.tokens) tokens in at least one layer"
}

/// The statistics as `mismatch` shows them: name, value, meaning.
func statsRows(_ s: MismatchStats) -> [(String, Double?, String)] {
    [
        ("tokens", Double(s.tokens), "response tokens in the rollout"),
        ("k1", s.k1, "mean of d = log μ − log π"),
        ("k2", s.k2, "mean of d²/2"),
        ("k3", s.k3, "mean of e^−d − 1 + d (≈ KL[μ‖π])"),
        ("mean |Δp|", s.meanAbsDp, "verl: < 0.005 healthy, > 0.01 a precision problem"),
        ("max |Δp|", s.maxAbsDp, ""),
        ("mean |Δlog p|", s.meanAbsDlogp, "the gap on unlikely tokens too"),
        ("max |Δlog p|", s.maxAbsDlogp, ""),
        ("χ² token", s.chi2Token, "mean (π/μ)² − 1 (a sample estimate: can be below 0)"),
        ("χ² sequence", s.chi2Seq, "mean (Π π/μ)² − 1 (a sample estimate)"),
        ("ppl rollout", s.pplRollout, "exp(−mean log μ)"),
        ("ppl train", s.pplTrain, "exp(−mean log π)"),
        ("KL full mean", s.klFullMean, "exact KL[μ‖π] over the vocabulary, per position"),
        ("KL full max", s.klFullMax, ""),
        ("argmax differs", s.argmaxDisagree, "fraction of positions where the engines' top token differs"),
        ("ESS", s.ess, "effective sample size of π/μ, 1 = perfect"),
        ("outside [1/C, C]", s.isTokenFracOutside, "fraction of token weights beyond the cap"),
        ("slope", s.seqLogratioSlope, "sequence log-ratio per token of length"),
    ]
}

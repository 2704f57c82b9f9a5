// `plot`: the lab's pictures, in the terminal and (with --svg FILE) as standalone SVG.
// Each sub-command turns session data into a `Figure` (module Plot); `show` draws it the
// same way for all of them, writes the SVG, and hands the SVG to `report`.

import Engines
import Foundation
import Mismatch
import Plot

extension Topic {
    public static let plots = Topic("Plots", order: 55)
}

extension Setting {
    /// `unicode on|off`: braille and shades in plots, or plain ASCII.
    public static let unicode = Setting(
        name: "unicode", kind: .toggle, default: .toggle(true),
        help: "draw plots with Unicode braille and shades (off: plain ASCII characters)")

    /// `plot_width auto|N`.
    public static let plotWidth = Setting(
        name: "plot_width", kind: .keywordOr("auto", .integer(40...400)), default: .text("auto"),
        help: "columns of terminal plots: auto (the terminal's width; 80 when not a terminal or while recording) or a number")
}

extension CommandContext {
    /// Draws `figure` for the terminal, writes it as SVG when `--svg FILE` was given, and
    /// gives `report` the SVG in place of the terminal drawing.
    func show(_ figure: some Drawing) throws {
        let session = self.session
        let recording = session.isRecording
        var width = 80
        if case .integer(let n) = session.settings["plot_width"] {
            width = n
        } else if !recording, let columns = session.terminalWidth?() {
            width = max(40, min(400, columns))
        }
        // Colour only on a terminal, and never into a transcript (a replay has no terminal).
        let color = (session.plotColor?() ?? false) && !recording
        let style = TerminalStyle(width: width, height: 16, unicode: session.settings.isOn("unicode"), color: color)
        let svg = figure.svg()
        if let path = arguments.text("svg") {
            try writeFile(Data(svg.utf8), to: path)
        }
        session.reportLog.expectFigure(svg)
        print(figure.terminal(style))
        if let path = arguments.text("svg") { print("wrote \(path)") }
    }
}

/// The `--svg FILE` option every plot takes.
private let svgOption = ArgumentSpec.option("svg", .path(.writeFile), "also write the figure to FILE as standalone SVG")
/// `--compare`: the panels of the last `compare`, one per preset.
private let compareFlag = ArgumentSpec.flag("compare", "one panel (or series) per preset of the last compare")

extension Command {
    /// `plot COLUMN… [--runs A,B] [--log]` and the sub-commands.
    public static let plot = Command(
        name: "plot", topic: .plots,
        summary: "draw metrics over steps (plot reward k3), or the last rollout's mismatch (plot scatter, …)",
        details: """
        plot COLUMN… draws history columns against the run's step, one chart per column and one
        line per run (all runs, or --runs A,B). A column whose values are all positive and span
        more than two decades is drawn on a log scale (said on its axis); --log forces it.
        Every plot fits the terminal's width (plot_width), is drawn in Unicode braille unless
        `set unicode off`, in colour only on a terminal, and --svg FILE writes the same figure as
        standalone SVG. `report FILE.html` gathers the session's plots into one page.
        """,
        arguments: [.variadic("COLUMN", .text, "history columns: reward, accuracy, k3, mean_abs_dlogp, …", minimum: 1,
                              complete: { session, _ in session.metrics.columns }),
                    .option("runs", .text, "only these runs: NAME or NAME,NAME,…"),
                    .flag("log", "a log scale for every column"), svgOption],
        subcommands: [plotScatter, plotSeqRatio, plotPositions, plotHist, plotTrace, plotTokens],
        examples: ["plot reward k3", "plot accuracy --runs bf16-grpo-s0,fp16-grpo-s0 --svg curves.svg"]
    ) { context in
        let metrics = context.session.metrics
        let names = try runNames(context.arguments.text("runs"), in: metrics)
        let columns = context.arguments.texts("COLUMN")
        for column in columns where !metrics.columns.contains(column) {
            throw LabError(metrics.columns.isEmpty ? "no metrics yet (step, accumulate add rows)"
                           : "no column \(LabError.quoted(column, closestAmong: metrics.columns)) in the history (columns: \(metrics.columns.joined(separator: ", ")))")
        }
        let runs = metrics.runs.filter { names?.contains($0.name) ?? true }
        var panels: [Chart] = []
        for column in columns {
            var series: [Series] = []
            for run in runs {
                let rows = metrics.rowIndices(inRuns: [run.name]).map(metrics.row)
                let points = rows.enumerated().compactMap { i, row in row[column].map { (row["step"] ?? Double(i + 1), $0) } }
                if !points.isEmpty { series.append(Series(run.name, x: points.map(\.0), y: points.map(\.1))) }
            }
            guard !series.isEmpty else { throw LabError("no run has values of \(column)") }
            let values = series.flatMap(\.y).filter(\.isFinite)
            let spread = (values.min() ?? 0) > 0 && (values.max() ?? 0) / (values.min() ?? 1) > 100
            let scale: AxisScale = context.arguments.flag("log") || spread ? .log10 : .linear
            panels.append(Chart(title: column, x: Axis("step of the run", integral: true), y: Axis(column, unit: unitOf(column), scale: scale),
                                series: series))
        }
        try context.show(Figure(title: columns.count > 1 ? columns.joined(separator: ", ") + " by step" : nil, panels: panels))
    }

    static let plotScatter = Command(
        name: "scatter", topic: .plots,
        summary: "log π against log μ for every sampled token of the last rollout, with the diagonal",
        details: "Each point is one sampled response token: x its log-probability under the rollout engine (μ), y under the training engine (π). Agreeing engines put every point on the diagonal. --prob draws p against p instead; --compare draws one panel per preset of the last compare.",
        arguments: [.flag("prob", "probabilities instead of log-probabilities"), compareFlag, svgOption],
        examples: ["plot scatter", "plot scatter --compare --svg scatter.svg"]
    ) { context in
        let prob = context.arguments.flag("prob")
        let panels = try pairSets(context).map { name, pairs -> Chart in
            let mu = pairs.flatMap(\.rollout).map(Double.init), pi = pairs.flatMap(\.train).map(Double.init)
            let x = prob ? mu.map(exp) : mu, y = prob ? pi.map(exp) : pi
            let range: ClosedRange<Double>? = prob ? 0...1 : nil
            return Chart(title: name, x: Axis(prob ? "μ(token)" : "log μ(token)", unit: prob ? nil : "nats", range: range),
                         y: Axis(prob ? "π(token)" : "log π(token)", unit: prob ? nil : "nats", range: range),
                         series: [Series("sampled tokens", style: .points, x: x, y: y)], diagonal: true,
                         notes: ["\(mu.count) tokens; on the diagonal the engines agree"])
        }
        try context.show(Figure(title: "Per-token probabilities: training engine π against rollout engine μ", panels: sharingRanges(panels)))
    }

    static let plotSeqRatio = Command(
        name: "seqratio", topic: .plots,
        summary: "each response's log π/μ summed over its tokens, against its length, with the fitted slope",
        details: "The sequence log-ratio Σ_t (log π_t − log μ_t) of each response of the last rollout (or of each preset's, --compare) against its length in tokens, with the least-squares line; its slope is printed per token and per 1K tokens.",
        arguments: [compareFlag, svgOption],
        examples: ["plot seqratio", "plot seqratio --compare"]
    ) { context in
        let panels = try pairSets(context).map { name, pairs -> Chart in
            let lengths = pairs.map { Double($0.count) }
            let ratios = pairs.map { p in zip(p.train, p.rollout).reduce(0.0) { $0 + Double($1.0) - Double($1.1) } }
            var series = [Series("responses", style: .points, x: lengths, y: ratios)]
            var notes: [String] = []
            if let fit = leastSquares(x: lengths, y: ratios) {
                let xs = [lengths.min()!, lengths.max()!]
                series.append(Series("fit", x: xs, y: xs.map { fit.intercept + fit.slope * $0 }))
                notes.append("fitted slope \(figure(fit.slope)) per token (\(figure(fit.slope * 1000)) per 1K tokens)")
            } else {
                notes.append("every response has the same length: no slope")
            }
            return Chart(title: name, x: Axis("response length", unit: "tokens"), y: Axis("Σ log π/μ", unit: "nats"),
                         series: series, notes: notes)
        }
        try context.show(Figure(title: "Sequence log-ratio against response length", panels: sharingRanges(panels)))
    }

    static let plotPositions = Command(
        name: "positions", topic: .plots,
        summary: "mean |Δ log p| (or k3) at each response position of the last rollout",
        arguments: [.positional("STAT", .choice(["dlogp", "k3"]), "mean_abs_dlogp (dlogp, the default) or k3", optional: true),
                    compareFlag, svgOption],
        examples: ["plot positions", "plot positions k3 --compare"]
    ) { context in
        let k3 = context.arguments.text("STAT") == "k3"
        var series: [Series] = []
        for (name, pairs) in try pairSets(context) {
            let positions = try mismatchStatsByPosition(pairs)
            series.append(Series(name, x: positions.map { Double($0.position) },
                                 y: positions.map { k3 ? $0.stats.k3 : $0.stats.meanAbsDlogp }))
        }
        let label = k3 ? "k3" : "mean |Δ log p|"
        let positive = series.flatMap(\.y).allSatisfy { $0 > 0 }
        try context.show(Figure(Chart(title: "\(label) by response position", x: Axis("response position", unit: "tokens"),
                                      y: Axis(label, unit: "nats", scale: positive ? .log10 : .linear), series: series)))
    }

    static let plotHist = Command(
        name: "hist", topic: .plots,
        summary: "the distribution of d = log μ − log π over the last rollout's tokens (log-scaled counts)",
        arguments: [.option("bins", .integer(4...200), "number of bins", default: .integer(41)), compareFlag, svgOption],
        examples: ["plot hist", "plot hist --compare --bins 61"]
    ) { context in
        let sets = try pairSets(context)
        let ds = sets.map { set in set.pairs.flatMap { p in zip(p.rollout, p.train).map { Double($0) - Double($1) } }.filter(\.isFinite) }
        let reach = max(1e-9, ds.flatMap { $0 }.map(abs).max() ?? 1e-9)
        let bins = context.arguments.integer("bins")!
        let edges = (0...bins).map { -reach + 2 * reach * Double($0) / Double(bins) }
        let series = zip(sets, ds).map { set, d -> Series in
            var counts = [Double](repeating: 0, count: bins)
            for x in d { counts[min(bins - 1, Int((x + reach) / (2 * reach) * Double(bins)))] += 1 }
            return Series(set.name, style: sets.count == 1 ? .bars : .stairs, x: edges, y: counts)
        }
        try context.show(Figure(Chart(title: "Distribution of d = log μ − log π", x: Axis("d", unit: "nats"),
                                      y: Axis("tokens", scale: .log10), series: series,
                                      notes: ["\(ds.map(\.count).reduce(0, +)) tokens; a symmetric, narrow peak at 0 is agreement"])))
    }

    static let plotTrace = Command(
        name: "trace", topic: .plots,
        summary: "how far the engines' hidden states drift, stage by stage, on the last rollout's first sequence",
        details: "The relative L2 distance ‖h_rollout − h_train‖/‖h_train‖ after each stage (as `trace` prints), one line per preset given (default: the engines as they are).",
        arguments: [.variadic("PRESET", .choice(["current"] + Preset.allCases.map(\.rawValue)), "presets to draw (default current)"),
                    svgOption],
        examples: ["plot trace", "plot trace bf16 fp16"]
    ) { context in
        let lab = context.session.lab
        guard let last = lab.lastRollout, last.count > 0 else { throw LabError("no rollout yet; run 'rollout' first") }
        let tokens = last.sequences[0]
        try context.session.checkMemory(.scoring(lab.policy.config, tokens: tokens.count), advice: "trace fewer tokens")
        let names = context.arguments.texts("PRESET").isEmpty ? ["current"] : context.arguments.texts("PRESET")
        var series: [Series] = [], stages: [String] = []
        for name in names {
            let pair = name == "current" ? lab.policy.engines : try Preset.parse(name).engines(for: lab.policy.config)
            let rows = try lab.policy.withEngines(pair) { lab.policy.trace(tokens) }
            stages = rows.map(\.name)
            series.append(Series(name, x: rows.indices.map(Double.init), y: rows.map(\.relativeL2)))
        }
        let positive = series.flatMap(\.y).allSatisfy { $0 > 0 }
        let key = stages.enumerated().map { "\($0.offset) \($0.element)" }.joined(separator: ", ")
        try context.show(Figure(Chart(title: "Drift of the hidden state, stage by stage", x: Axis("stage"),
                                      y: Axis("‖h_rollout − h_train‖ / ‖h_train‖", scale: positive ? .log10 : .linear),
                                      series: series, notes: ["stages: " + key])))
    }
}

extension Command {
    static let plotTokens = Command(
        name: "tokens", topic: .plots,
        summary: "one response of the last rollout token by token: each token's text and its |Δ log p|",
        details: """
        Each row is one response token, in the order of the text: its text as the model's
        tokenizer decodes it alone (in brackets, so that spaces show), and a bar of
        |log μ − log π|, where the engines part. SAMPLE is the response (1 = the first the
        rollout printed; default: the one with the largest |Δ log p| at any token). --top N
        keeps the N tokens of largest |Δ log p|, largest first. Without a tokenizer the tokens
        are the vocabulary's strings. The bars are on a log scale; a token where the engines
        agree exactly has none.
        """,
        arguments: [.positional("SAMPLE", .integer(1...Int.max), "which response, 1 = the first (default: the one with the largest |Δ log p|)", optional: true),
                    .option("top", .integer(1...100_000), "only the N tokens of largest |Δ log p|, largest first"), svgOption],
        examples: ["plot tokens", "plot tokens 3", "plot tokens --top 20 --svg tokens.svg"]
    ) { context in
        let lab = context.session.lab
        guard let batch = lab.lastRollout, let pairs = lab.lastPairs, !pairs.isEmpty, batch.count == pairs.count else {
            throw LabError("plot tokens: no rollout of the live model yet; run 'rollout' first (a step keeps its figures, not its samples)")
        }
        let deltas = pairs.map { p in zip(p.rollout, p.train).map { abs(Double($0) - Double($1)) } }
        let chosen: Int
        if let n = context.arguments.integer("SAMPLE") {
            guard n <= pairs.count else { throw LabError("plot tokens: SAMPLE must be 1…\(pairs.count) (the last rollout has \(pairs.count) responses), not \(n)") }
            chosen = n - 1
        } else {
            chosen = deltas.indices.max { (deltas[$0].filter(\.isFinite).max() ?? -1) < (deltas[$1].filter(\.isFinite).max() ?? -1) } ?? 0
        }
        let response = batch.responses[chosen]
        let pair = pairs[chosen]
        let positions = pair.positions ?? Array(pair.rollout.indices)
        guard !positions.isEmpty else { throw LabError("plot tokens: response \(chosen + 1) has no tokens") }
        let pieces = lab.pieces(positions.map { response[$0] })
        var rows = Array(positions.indices)
        let top = context.arguments.integer("top")
        if let top {
            rows = rows.sorted { (deltas[chosen][$0], $1) > (deltas[chosen][$1], $0) }.prefix(top).map { $0 }
        }
        let labels = rows.map { i in
            "[" + LabState.visible(pieces[i]) + "]"
                + (top == nil ? "" : " @\(positions[i] + 1)")
        }
        let values = rows.map { deltas[chosen][$0] }
        let prompt = lab.showText(batch.prompts[chosen])
        let shownPrompt = prompt.count > 60 ? String(prompt.prefix(59)) + "…" : prompt
        let what = top.map { _ in rows.count == 1 ? "the token of largest |Δ log p|" : "the \(rows.count) tokens of largest |Δ log p|" }
            ?? "token by token"
        var notes = ["prompt: " + LabState.visible(shownPrompt),
                     "\(positions.count) response token\(positions.count == 1 ? "" : "s")" + (top == nil ? "" : "; @N is the token's place in the response (1 = first)")]
        let total = deltas[chosen].filter(\.isFinite).reduce(0, +)
        notes.append("sum of |Δ log p| \(figure(total)), largest \(figure(deltas[chosen].filter(\.isFinite).max()))")
        if values.allSatisfy({ $0 == 0 }) {
            notes.append("the engines agree exactly on every token shown (|Δ log p| = 0): no bars, whatever the axis")
        }
        if lab.step != lab.lastRolloutStep {
            let since = lab.step - lab.lastRolloutStep
            notes.append("this rollout was made at step \(lab.lastRolloutStep); the model has taken \(since) step\(since == 1 ? "" : "s") since: 'rollout' samples it again")
        }
        try context.show(LabelledBars(title: "Response \(chosen + 1) of the last rollout, \(what)",
                                      labels: labels, axis: Axis("|log μ − log π|", unit: "nats", scale: .log10),
                                      bars: [.init(lab.presetName ?? "current", values: values)], notes: notes))
    }
}

/// The (name, per-response log-probabilities) sets a rollout plot draws: the last rollout's,
/// or with --compare one per preset of the last compare.
private func pairSets(_ context: CommandContext) throws -> [(name: String, pairs: [TokenLogProbs])] {
    let lab = context.session.lab
    if context.arguments.flag("compare") {
        guard let sets = lab.lastComparison, !sets.isEmpty else { throw LabError("no compare yet; run 'compare bf16 fp16' first") }
        return sets
    }
    guard let pairs = lab.lastPairs, !pairs.isEmpty else { throw LabError("no rollout yet; run 'rollout' first") }
    return [(lab.presetName ?? "current", pairs)]
}

/// Panels side by side are compared by eye: each gets the range of all of them, on both
/// axes (a given range is kept), padded by 5 %.
func sharingRanges(_ panels: [Chart]) -> [Chart] {
    guard panels.count > 1 else { return panels }
    func extent(_ values: [Double]) -> ClosedRange<Double>? {
        let finite = values.filter(\.isFinite)
        guard let lo = finite.min(), let hi = finite.max() else { return nil }
        let pad = hi > lo ? 0.05 * (hi - lo) : max(abs(lo) * 0.1, 1e-9)
        return (lo - pad)...(hi + pad)
    }
    let x = extent(panels.flatMap { $0.series.flatMap(\.x) }), y = extent(panels.flatMap { $0.series.flatMap(\.y) })
    return panels.map { panel in
        var panel = panel
        if panel.x.range == nil { panel.x.range = x }
        if panel.y.range == nil { panel.y.range = y }
        return panel
    }
}

/// The least-squares line through the points; nil when every x is the same.
func leastSquares(x: [Double], y: [Double]) -> (slope: Double, intercept: Double)? {
    let n = Double(x.count)
    guard n > 0 else { return nil }
    let xbar = x.reduce(0, +) / n, ybar = y.reduce(0, +) / n
    var sxx = 0.0, sxy = 0.0
    for (a, b) in zip(x, y) {
        sxx += (a - xbar) * (a - xbar)
        sxy += (a - xbar) * (b - ybar)
    }
    guard sxx > 0 else { return nil }
    return (sxy / sxx, ybar - sxy / sxx * xbar)
}

/// The unit of a history column, where it has one.
/// The unit of a history column or step key, when it has one.
func unitOf(_ column: String) -> String? {
    switch column {
    case "k1", "k3", "kl_full", "kl_full_mean", "kl_initial", "mean_abs_dlogp", "entropy", "tail_mean_abs_dlogp",
         "middle_mean_abs_dlogp", "top_mean_abs_dlogp": return "nats"
    case "length", "response_length": return "tokens"
    default: return nil
    }
}

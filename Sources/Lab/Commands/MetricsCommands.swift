// Commands over the metrics history: history, export.

import JSON
import Foundation

extension Command {
    /// `history [N] [--run A,B] [--all]`, `history clear`.
    public static let history = Command(
        name: "history", topic: .metrics,
        summary: "show the last rows of the metrics history, by run",
        details: """
        Commands that measure append one row of named numbers per measurement, in a run
        (help run). The table fits 100 columns: the first columns that fit are shown and the
        others named; --all shows every column. Under the table, the trend of each shown
        column over the last run's latest 40 rows.
        JSON: {"count": all rows, "shown": rows shown, "columns": [names],
        "runs": [{"name", "rows", "settings"}], "rows": [{"run": name, column: number}]}.
        """,
        arguments: [.positional("N", .integer(1...Int.max), "how many of the last rows to show (default 20)", optional: true),
                    .option("run", .text, "only these runs: NAME or NAME,NAME,…"),
                    .flag("all", "every column, however wide")],
        subcommands: [
            Command(name: "clear", topic: .metrics, summary: "forget every row and run", examples: ["history clear"]) { context in
                let count = context.session.metrics.count
                context.session.metrics.removeAll()
                context.session.currentRun = nil
                context.print("cleared \(count) row\(count == 1 ? "" : "s")")
            },
        ],
        examples: ["history", "history 5 --json", "history --run bf16-grpo-s0,fp16-grpo-s0", "history --all"],
        reports: true
    ) { context in
        let metrics = context.session.metrics
        let names = try runNames(context.arguments.text("run"), in: metrics)
        let selected = metrics.rowIndices(inRuns: names)
        let shown = Array(selected.suffix(context.arguments.integer("N") ?? 20))
        let runsShown = Set(shown.map { metrics.run(ofRow: $0).name })
        context.report(["count": .int(metrics.count), "shown": .int(shown.count),
                        "columns": .array(metrics.columns.map(JSONValue.string)),
                        "runs": .array(metrics.runs.filter { runsShown.contains($0.name) }.map {
                            .object(["name": .string($0.name), "rows": .int($0.rows), "settings": .object($0.settingsJSON)]) }),
                        "rows": .array(shown.map { r in
                            var object: JSONObject = ["run": .string(metrics.run(ofRow: r).name)]
                            object.merge(metrics.jsonObject(metrics.row(r)))
                            return .object(object) })]) {
            guard metrics.count > 0 else { return "no metrics yet (commands that measure, such as step or accumulate, add rows)" }
            guard !shown.isEmpty else { return "no rows in run \(names!.sorted().joined(separator: ", "))" }
            let rows = shown.map(metrics.row)
            // Columns the shown rows have: the RL step's main figures first, then history order.
            let present = metrics.columns.filter { column in rows.contains { $0[column] != nil } }
                .sorted { (historyPriority.firstIndex(of: $0) ?? historyPriority.count, metrics.columns.firstIndex(of: $0)!)
                    < (historyPriority.firstIndex(of: $1) ?? historyPriority.count, metrics.columns.firstIndex(of: $1)!) }
            func table(_ columns: [String]) -> TextTable {
                var table = TextTable(header: ["run"] + columns, rightAligned: Set(1...max(1, columns.count)))
                for (r, row) in zip(shown, rows) {
                    table.add([metrics.run(ofRow: r).name] + columns.map { row[$0].map(metrics.tableText) ?? "" })
                }
                return table
            }
            var columns = present
            if !context.arguments.flag("all") {
                columns = []
                for column in present where table(columns + [column]).width <= historyWidth { columns.append(column) }
            }
            var notes: [String] = []
            if shown.count < selected.count { notes.append("(last \(shown.count) of \(selected.count) rows)") }
            let hidden = present.filter { !columns.contains($0) }
            if !hidden.isEmpty {
                let named = hidden.prefix(5).joined(separator: ", ") + (hidden.count > 5 ? ", …" : "")
                notes.append("(\(hidden.count) more column\(hidden.count == 1 ? "" : "s"): \(named); history --all shows them)")
            }
            let lastRun = metrics.run(ofRow: shown.last!)
            let trendRows = metrics.rowIndices(inRuns: [lastRun.name]).suffix(40).map(metrics.row)
            let trend = sparklines(trendRows, columns: columns.filter { $0 != "step" }, metrics: metrics)
            let trendTitle = trend.isEmpty ? [] : ["trend of \(lastRun.name)\(trendRows.count > 1 ? " (last \(trendRows.count) rows)" : ""):"]
            return ([table(columns).render()] + notes + trendTitle + (trend.isEmpty ? [] : [trend])).joined(separator: "\n")
        }
    }

    /// `export csv|jsonl FILE`.
    public static let export = Command(
        name: "export", topic: .metrics,
        summary: "write the metrics history to a file as CSV or JSON lines",
        details: "CSV: a header (run, the runs' settings such as preset, algo and seed, then the measured columns), one line per row, empty cells where a row lacks a column. JSONL: one object per row, with the same keys.",
        arguments: [
            .positional("FORMAT", .choice(["csv", "jsonl"]), "the file format"),
            .positional("FILE", .path(.writeFile), "the file to write (a regular file is replaced atomically; a device or FIFO written in place)"),
        ],
        subcommands: [exportScale(.verl), exportScale(.slime)],
        examples: ["export csv metrics.csv", "export jsonl metrics.jsonl", "export verl", "export slime --json"]
    ) { context in
        let metrics = context.session.metrics
        let path = context.arguments.text("FILE")!
        let text = context.arguments.text("FORMAT") == "csv" ? metrics.csv() : metrics.jsonl()
        try context.writeFile(Data(text.utf8), to: path)
        context.print("wrote \(metrics.count) row\(metrics.count == 1 ? "" : "s") to \(path)")
    }
}

extension Command {
    /// `export verl`, `export slime`: the current recipe as that framework's settings.
    static func exportScale(_ framework: ScaleFramework) -> Command {
        Command(
            name: framework.rawValue, topic: .metrics,
            summary: "print the current recipe (precisions, FP16 loss scaling, correction, batch, optimizer) as \(framework == .verl ? "verl overrides" : "slime flags")",
            details: """
            One setting a line (\(framework == .verl ? "Hydra key=value" : "--flag value")), '#' lines for notes, and a line
            '# no counterpart: …' for each part of the recipe the framework has no setting for. Key names
            are checked against \(framework.checked). JSON: {"framework", "checked", "settings": [lines],
            "missing": [lines], "lines": [every line]}.
            """,
            examples: ["export \(framework.rawValue)"], reports: true
        ) { context in
            let session = context.session
            let trainer = try session.syncedTrainer()
            let preset = session.presetLabel
            let recipe = ScaleRecipe(rollout: session.lab.policy.engines.rollout, training: session.lab.policy.engines.training,
                                     preset: preset == "custom" ? nil : preset, settings: trainer.settings,
                                     maxResponse: trainer.settings.maxResponse(for: trainer.task.spec))
            let export = ScaleExport(framework, recipe)
            context.report(["framework": .string(framework.rawValue), "checked": .string(framework.checked),
                            "settings": .array(export.settings.map(JSONValue.string)),
                            "missing": .array(export.missing.map(JSONValue.string)),
                            "lines": .array(export.lines.map(JSONValue.string))]) { export.text }
        }
    }
}

/// The widest `history` table shown without `--all`.
let historyWidth = 100

/// The columns `history` shows first, when rows have them: what an RL step is about.
let historyPriority = ["step", "reward", "accuracy", "k3", "mean_abs_dlogp", "grad_norm", "entropy", "length", "loss_scale", "skipped"]

/// `--run A,B`: the set of run names, each checked to exist; nil when not given.
func runNames(_ list: String?, in metrics: MetricsHistory) throws(LabError) -> Set<String>? {
    guard let list else { return nil }
    let names = list.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
    for name in names where metrics.runIndex(named: name) == nil {
        let known = metrics.runs.map(\.name)
        throw LabError(known.isEmpty ? "no run \(name): no runs yet"
                       : "no run \(LabError.quoted(name, closestAmong: known)) (runs: \(known.joined(separator: ", ")))")
    }
    return Set(names)
}

/// One line per column: the trend of its values over `rows` as a sparkline, with the range.
func sparklines(_ rows: [[String: Double]], columns: [String], metrics: MetricsHistory) -> String {
    let bars = Array("▁▂▃▄▅▆▇█")
    let width = columns.map(\.count).max() ?? 0
    return columns.compactMap { column -> String? in
        let values = rows.compactMap { $0[column] }.filter(\.isFinite)
        guard values.count >= 2, let low = values.min(), let high = values.max() else { return nil }
        let line = String(values.map { v -> Character in
            high > low ? bars[min(bars.count - 1, Int((v - low) / (high - low) * Double(bars.count - 1) + 0.5))] : bars[0]
        })
        return "  " + column.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + line + "  " + metrics.tableText(low) + " … " + metrics.tableText(high)
    }.joined(separator: "\n")
}

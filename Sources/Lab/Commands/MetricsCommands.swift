// Commands over the metrics history: history, export.

import JSON
import Foundation

extension Command {
    /// `history [N]`, `history clear`.
    public static let history = Command(
        name: "history", topic: .metrics,
        summary: "show the last rows of the metrics history",
        details: """
        Commands that measure append one row of named numbers per measurement.
        JSON: {"count": total rows, "columns": [names], "rows": [{column: number}]}.
        """,
        arguments: [.positional("N", .integer(1...Int.max), "how many of the last rows to show (default 20)", optional: true)],
        subcommands: [
            Command(name: "clear", topic: .metrics, summary: "forget every row", examples: ["history clear"]) { context in
                let count = context.session.metrics.count
                context.session.metrics.removeAll()
                context.print("cleared \(count) row\(count == 1 ? "" : "s")")
            },
        ],
        examples: ["history", "history 5 --json"],
        reports: true
    ) { context in
        let metrics = context.session.metrics
        let shown = metrics.lastRows(context.arguments.integer("N") ?? 20)
        context.report(["count": .int(metrics.count), "columns": .array(metrics.columns.map(JSONValue.string)),
                        "rows": .array(shown.map { .object(metrics.jsonObject($0)) })]) {
            guard metrics.count > 0 else { return "no metrics yet (commands that measure, such as accumulate, add rows)" }
            var table = TextTable(header: ["row"] + metrics.columns, rightAligned: Set(0...metrics.columns.count))
            for (offset, row) in shown.enumerated() {
                let number = metrics.count - shown.count + offset + 1
                table.add([String(number)] + metrics.columns.map { row[$0].map(metrics.tableText) ?? "" })
            }
            let note = shown.count < metrics.count ? "\n(last \(shown.count) of \(metrics.count) rows)" : ""
            return table.render() + note + "\n" + sparklines(metrics)
        }
    }

    /// `export csv|jsonl FILE`.
    public static let export = Command(
        name: "export", topic: .metrics,
        summary: "write the metrics history to a file as CSV or JSON lines",
        details: "CSV: a header of column names, empty cells where a row lacks a column. JSONL: one object per row.",
        arguments: [
            .positional("FORMAT", .choice(["csv", "jsonl"]), "the file format"),
            .positional("FILE", .path(.writeFile), "the file to write (a regular file is replaced atomically; a device or FIFO written in place)"),
        ],
        examples: ["export csv metrics.csv", "export jsonl metrics.jsonl"]
    ) { context in
        let metrics = context.session.metrics
        let path = context.arguments.text("FILE")!
        let text = context.arguments.text("FORMAT") == "csv" ? metrics.csv() : metrics.jsonl()
        try context.writeFile(Data(text.utf8), to: path)
        context.print("wrote \(metrics.count) row\(metrics.count == 1 ? "" : "s") to \(path)")
    }
}

/// One line per column: the trend of its last 60 values as a sparkline, with the range.
func sparklines(_ metrics: MetricsHistory) -> String {
    let bars = Array("▁▂▃▄▅▆▇█")
    let rows = metrics.lastRows(60)
    let width = metrics.columns.map(\.count).max() ?? 0
    return metrics.columns.compactMap { column -> String? in
        let values = rows.compactMap { $0[column] }.filter(\.isFinite)
        guard values.count >= 2, let low = values.min(), let high = values.max() else { return nil }
        let line = String(values.map { v -> Character in
            high > low ? bars[min(bars.count - 1, Int((v - low) / (high - low) * Double(bars.count - 1) + 0.5))] : bars[0]
        })
        return column.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + line + "  " + metrics.tableText(low) + " … " + metrics.tableText(high)
    }.joined(separator: "\n")
}

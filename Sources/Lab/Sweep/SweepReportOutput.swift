// The report as people read it (tables), as CSV and as one JSON object; the curves as CSV
// or JSON.

import Foundation
import JSON

extension SweepReport {
    /// A first line (the directory, the points by status, the options), the points' table,
    /// and, when the grid has a `seed` key, the groups' table (mean ± sd over seeds).
    public func text() -> String {
        var out: [String] = []
        var counts = ["\(count(.complete)) complete"]
        if count(.incomplete) > 0 { counts.append("\(count(.incomplete)) incomplete") }
        if count(.notRun) > 0 { counts.append("\(count(.notRun)) not run") }
        out.append("sweep \(plan.file): \(points.count) points, \(counts.joined(separator: ", ")); accuracy window \(options.window), threshold \(numberText(options.threshold)), drop \(numberText(options.drop))")
        let heads = columns.map(\.name)
        var table = TextTable(header: plan.keys + ["status"] + heads,
                              rightAligned: Set((plan.keys.count + 1)..<(plan.keys.count + 1 + heads.count)))
        for summary in points {
            let cells = columns.map { column in summary.metrics.map { column.text(column.value($0)) } ?? "" }
            table.add(plan.keys.map { summary.point.values[$0] ?? "" } + [summary.status.rawValue] + cells)
        }
        out.append("")
        out.append(table.render())
        if !groups.isEmpty {
            var grouped = TextTable(header: groupKeys + ["seeds"] + heads,
                                    rightAligned: Set(groupKeys.count..<(groupKeys.count + 1 + heads.count)))
            for group in groups {
                let cells = columns.map { column -> String in
                    guard let s = group.statistic(column) else { return "-" }
                    if column.name == "collapse" { return "\(numberText(s.mean))/\(s.n)" }
                    let text = column.text(s.mean) + (s.sd.map { "±" + column.text($0) } ?? "")
                    return column.name == "reached" ? text + " (\(s.n)/\(group.complete.count))" : text
                }
                grouped.add(groupKeys.map { group.values[$0] ?? "" } + ["\(group.complete.count)/\(group.members.count)"] + cells)
            }
            out.append("")
            out.append("groups: mean ± sd over seed (sd of n − 1; collapse: how many collapsed; reached: mean over the seeds that reached, and how many did)")
            out.append(grouped.render())
        }
        let missing = points.filter { $0.status != .complete }
        if !missing.isEmpty {
            out.append("")
            let indices = missing.map { String($0.point.index) }.joined(separator: ",")
            out.append("not complete: \(missing.count) point\(missing.count == 1 ? "" : "s"); 'plab sweep run' resumes them, or: sbatch --array=\(indices) \(shellQuoted(plan.layout.slurmFile))")
        }
        return out.joined(separator: "\n")
    }

    /// One CSV table: a row per point (`kind` = point) then per group (`kind` = group):
    /// `kind, name, KEYS…, status, n, COLUMN, COLUMN_sd, …`. For a point, n is 1 when it is
    /// complete and the _sd cells are empty; for a group, n is its complete points, each
    /// column its mean and _sd its sample standard deviation, `reached_n` how many reached
    /// and `collapse` how many collapsed. Empty cells where a value is missing.
    public func csv() -> String {
        var header = ["kind", "name"] + plan.keys + ["status", "n"]
        for column in columns {
            header.append(column.name)
            if column.name != "collapse" { header.append(column.name + "_sd") }
            if column.name == "reached" { header.append("reached_n") }
        }
        var lines = [header.map(csvField).joined(separator: ",")]
        func number(_ x: Double?) -> String { x.map { $0.isFinite ? numberText($0) : "" } ?? "" }
        for summary in points {
            var row = ["point", summary.point.name] + plan.keys.map { summary.point.values[$0] ?? "" }
            row += [summary.status.rawValue, summary.metrics == nil ? "0" : "1"]
            for column in columns {
                let value = summary.metrics.flatMap(column.value)
                row.append(number(value))
                if column.name != "collapse" { row.append("") }
                if column.name == "reached" { row.append(summary.metrics == nil ? "" : value == nil ? "0" : "1") }
            }
            lines.append(row.map(csvField).joined(separator: ","))
        }
        for group in groups {
            let name = groupKeys.map { "\($0)=\(group.values[$0] ?? "")" }.joined(separator: ",")
            var row = ["group", name] + plan.keys.map { group.values[$0] ?? "" }
            row += ["\(group.complete.count)/\(group.members.count) complete", String(group.complete.count)]
            for column in columns {
                let s = group.statistic(column)
                row.append(number(s?.mean))
                if column.name != "collapse" { row.append(number(s?.sd)) }
                if column.name == "reached" { row.append(String(s?.n ?? 0)) }
            }
            lines.append(row.map(csvField).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// One JSON object: `directory`, `file`, `keys`, `options`, `points` (each: `name`,
    /// `index`, `values`, `status`, and its columns, null where missing; `collapse` a
    /// boolean) and `groups` (each: `values`, `n`, `complete`, and per column `{mean, sd,
    /// n}`).
    public func json() -> JSONObject {
        var o: JSONObject = ["directory": .string(plan.layout.directory), "file": .string(plan.file),
                             "keys": .array(plan.keys.map { .string($0) })]
        o.set("options", .object(["window": .int(options.window), "threshold": .number(options.threshold), "drop": .number(options.drop)]))
        o.set("points", .array(points.map { summary in
            var p: JSONObject = ["name": .string(summary.point.name), "index": .int(summary.point.index),
                                 "values": .object(stringObject(summary.point.values, keys: plan.keys)),
                                 "status": .string(summary.status.rawValue)]
            for column in columns {
                let value = summary.metrics.flatMap(column.value)
                if column.name == "collapse" {
                    p.set(column.name, summary.metrics?.collapsed.map { .bool($0) } ?? .null)
                } else if column.name == "steps" || column.name == "reached" || column.name == "skipped" {
                    p.set(column.name, value.map { .int(Int($0)) } ?? .null)
                } else {
                    p.set(column.name, .number(value))
                }
            }
            return .object(p)
        }))
        o.set("groups", .array(groups.map { group in
            var g: JSONObject = ["values": .object(stringObject(group.values, keys: groupKeys)),
                                 "n": .int(group.members.count), "complete": .int(group.complete.count)]
            for column in columns {
                guard let s = group.statistic(column) else { g.set(column.name, .null); continue }
                g.set(column.name, .object(["mean": .number(s.mean), "sd": .number(s.sd), "n": .int(s.n)]))
            }
            return .object(g)
        }))
        return o
    }

    private func stringObject(_ values: [String: String], keys: [String]) -> JSONObject {
        var o = JSONObject()
        for key in keys { if let v = values[key] { o.set(key, .string(v)) } }
        return o
    }

    /// The curves as CSV: `KEY,step,METRIC`, one line per curve point.
    public func curvesCSV(groupedBy key: String, metric: CurveMetric) -> String {
        var lines = [[key, "step", metric.name].map(csvField).joined(separator: ",")]
        for series in curves(groupedBy: key, metric: metric) {
            let label = String(series.label.dropFirst(key.count + 3))
            for (step, value) in zip(series.steps, series.values) {
                lines.append([csvField(label), String(step), numberText(value)].joined(separator: ","))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The curves as one JSON object: `key`, `metric`, `window`, `series` (each `label`,
    /// `steps`, `values`).
    public func curvesJSON(groupedBy key: String, metric: CurveMetric) -> JSONObject {
        ["key": .string(key), "metric": .string(metric.name), "window": .int(options.window),
         "series": .array(curves(groupedBy: key, metric: metric).map { series in
             .object(["label": .string(series.label), "steps": .numbers(series.steps), "values": .numbers(series.values)])
         })]
    }
}

/// A CSV field: quoted (with `"` doubled) when it holds a comma, a quote or a newline. The
/// one escaper of every CSV the lab writes (`export csv`, `sweep report --csv`).
func csvField(_ s: String) -> String {
    s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
}

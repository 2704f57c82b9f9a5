import JSON
import Foundation

// The metrics history: rows of named numbers appended by commands, shown by `history`,
// written by `export csv|jsonl FILE`.

/// Rows of named numbers, in the order they were appended. Each row has its own keys; the
/// columns are every key seen, in the order first seen. RL steps append one row per step.
///
///     session.metrics.append(["step": 12, "reward": 0.75, "k3": 1.2e-4])
public struct MetricsHistory: Sendable, Equatable {
    public private(set) var columns: [String] = []
    public private(set) var rows: [[String: Double]] = []

    public init() {}

    public var count: Int { rows.count }

    /// Appends one row; new keys become new columns (in the order given).
    public mutating func append(_ row: KeyValuePairs<String, Double>) {
        append(row.map { ($0.key, $0.value) })
    }

    /// Appends one row; new keys become new columns (in the order given).
    public mutating func append(_ row: [(String, Double)]) {
        var dict: [String: Double] = [:]
        for (key, value) in row {
            if !columns.contains(key) { columns.append(key) }
            dict[key] = value
        }
        rows.append(dict)
    }

    public mutating func removeAll() {
        columns = []
        rows = []
    }

    /// A header line of the columns, then one line per row; missing cells are empty,
    /// NaN is `nan`, infinities `inf`/`-inf`.
    public func csv() -> String {
        var lines = [columns.map(csvField).joined(separator: ",")]
        for row in rows {
            lines.append(columns.map { row[$0].map(cellText) ?? "" }.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// One JSON object per row with the row's keys in column order (non-finite numbers as null).
    public func jsonl() -> String {
        rows.map { jsonObject($0).rendered + "\n" }.joined()
    }

    /// A row as a JSON object with keys in column order.
    func jsonObject(_ row: [String: Double]) -> JSONObject {
        var object = JSONObject()
        for column in columns { if let value = row[column] { object[column] = .number(value) } }
        return object
    }

    /// A number for a table or CSV cell: integers without a fraction, others shortest.
    func cellText(_ x: Double) -> String {
        if x.isNaN { return "nan" }
        if x.isInfinite { return x < 0 ? "-inf" : "inf" }
        return numberText(x)
    }

    /// A number for a table people read: at most 7 significant digits.
    func tableText(_ x: Double) -> String {
        let exact = cellText(x)
        return exact.count <= 10 ? exact : String(format: "%.7g", x)
    }

    private func csvField(_ s: String) -> String {
        s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" })
            ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }
}

import Foundation
import Mismatch

// The metrics history: rows of named numbers appended by commands, shown by `history`,
// written by `export csv|jsonl FILE`.

/// Rows of named numbers, in the order they were appended. Each row has its own keys; the
/// columns are every key seen, in the order first seen. RL steps append one row per step.
///
///     session.metrics.append(["step": 12, "reward": 0.75, "k3": 1.2e-4])
///
/// Stored flat, a row's cells one Double per column known when it was appended (8 bytes a
/// cell: an RL step's row of 15 numbers is 120 bytes), with the few absent cells listed
/// apart. A row of its own dictionary took about 1.7 KB, and `step 10000` grew the process
/// by 30% (BENCHMARKS.md, soak).
public struct MetricsHistory: Sendable, Equatable {
    public private(set) var columns: [String] = []
    /// Row r's cells are cells[starts[r]..<starts[r+1]], column i at starts[r] + i.
    private var cells: [Double] = []
    private var starts: [Int] = [0]
    /// Positions in `cells` of cells a row does not have (its row lacked that column).
    private var absent: Set<Int> = []

    public init() {}

    public var count: Int { starts.count - 1 }

    /// Row `r` (0-based) as column name → value, without the columns it lacks.
    public func row(_ r: Int) -> [String: Double] {
        var out: [String: Double] = [:]
        for i in 0..<(starts[r + 1] - starts[r]) where !absent.contains(starts[r] + i) {
            out[columns[i]] = cells[starts[r] + i]
        }
        return out
    }

    /// Every row, oldest first (see `row`).
    public var rows: [[String: Double]] { (0..<count).map(row) }

    /// The last `n` rows (all of them when there are fewer), oldest first.
    public func lastRows(_ n: Int) -> [[String: Double]] { (max(0, count - n)..<count).map(row) }

    /// Appends one row; new keys become new columns (in the order given).
    public mutating func append(_ row: KeyValuePairs<String, Double>) {
        append(row.map { ($0.key, $0.value) })
    }

    /// Appends one row; new keys become new columns (in the order given).
    public mutating func append(_ row: [(String, Double)]) {
        for (key, _) in row where !columns.contains(key) { columns.append(key) }
        let start = cells.count
        cells.append(contentsOf: repeatElement(0, count: columns.count))
        var given = Set<Int>()
        for (key, value) in row {
            let i = columns.firstIndex(of: key)!
            cells[start + i] = value
            given.insert(i)
        }
        for i in 0..<columns.count where !given.contains(i) { absent.insert(start + i) }
        starts.append(cells.count)
    }

    public mutating func removeAll() {
        columns = []
        cells = []
        starts = [0]
        absent = []
    }

    /// A header line of the columns, then one line per row; missing cells are empty,
    /// NaN is `nan`, infinities `inf`/`-inf`.
    public func csv() -> String {
        var lines = [columns.map(csvField).joined(separator: ",")]
        for r in 0..<count {
            let row = row(r)
            lines.append(columns.map { row[$0].map(cellText) ?? "" }.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// One JSON object per row with the row's keys in column order (non-finite numbers as null).
    public func jsonl() -> String {
        (0..<count).map { jsonObject(row($0)).rendered + "\n" }.joined()
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

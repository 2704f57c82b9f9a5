import JSON
import Foundation

// The metrics history: rows of named numbers appended by commands, shown by `history`,
// written by `export csv|jsonl FILE`.

/// Rows of named numbers, in the order they were appended. Each row has its own keys; the
/// columns are every key seen, in the order first seen. RL steps append one row per step.
///
///     session.metrics.append(["step": 12, "reward": 0.75, "k3": 1.2e-4])
///
/// Stored flat: a row's cells are one Double per column known when it was appended (an RL
/// step's row of 15 numbers is 120 bytes), the few absent cells listed apart, in chunks that
/// are filled and never moved — one growing array would leave each outgrown copy in the
/// heap, which the lab keeps (`configureAllocator`). A dictionary per row took about 1.7 KB:
/// `step 10000` grew the process by 30% (BENCHMARKS.md, soak).
public struct MetricsHistory: Sendable, Equatable {
    public private(set) var columns: [String] = []
    /// Every row's cells in order, `chunkLength` to a chunk; row r's are the cells
    /// starts[r]..<starts[r+1], column i at starts[r] + i.
    private var chunks: [[Double]] = []
    private var starts: [Int] = [0]
    /// Positions of cells a row does not have (its row lacked that column).
    private var absent: Set<Int> = []
    private static let chunkLength = 8192

    public init() {}

    public var count: Int { starts.count - 1 }

    /// Row `r` (0-based) as column name → value, without the columns it lacks.
    public func row(_ r: Int) -> [String: Double] {
        var out: [String: Double] = [:]
        for i in 0..<(starts[r + 1] - starts[r]) {
            let p = starts[r] + i
            if !absent.contains(p) { out[columns[i]] = chunks[p / Self.chunkLength][p % Self.chunkLength] }
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
        var cells = [Double?](repeating: nil, count: columns.count)
        for (key, value) in row { cells[columns.firstIndex(of: key)!] = value }
        var p = starts[starts.count - 1]
        for cell in cells {
            if p % Self.chunkLength == 0 {
                chunks.append([])
                chunks[chunks.count - 1].reserveCapacity(Self.chunkLength)
            }
            chunks[chunks.count - 1].append(cell ?? 0)
            if cell == nil { absent.insert(p) }
            p += 1
        }
        starts.append(p)
    }

    public mutating func removeAll() {
        columns = []
        chunks = []
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

import JSON
import Foundation

// The metrics history: rows of named numbers appended by commands, each row in a named
// run; shown by `history`, written by `export csv|jsonl FILE`.

/// Rows of named numbers, in the order they were appended, each in a run (`RunInfo`). Each
/// row has its own keys; the columns are every key seen, in the order first seen. RL steps
/// append one row per step.
///
///     let run = session.metrics.startRun(RunInfo(name: "bf16-grpo-s0", settings: […]))
///     session.metrics.append(["step": 12, "reward": 0.75, "k3": 1.2e-4], run: run)
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
    /// Every run, in the order started.
    public private(set) var runs: [RunInfo] = []
    /// The run of each row (an index into `runs`).
    private var runOfRow: [Int32] = []

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

    /// The run row `r` belongs to.
    public func run(ofRow r: Int) -> RunInfo { runs[Int(runOfRow[r])] }

    /// The index of the run named `name`, if there is one.
    public func runIndex(named name: String) -> Int? { runs.firstIndex { $0.name == name } }

    /// The rows (0-based) of the runs named, or every row when `names` is nil; oldest first.
    public func rowIndices(inRuns names: Set<String>?) -> [Int] {
        guard let names else { return Array(0..<count) }
        let wanted = Set(runs.indices.filter { names.contains(runs[$0].name) }.map(Int32.init))
        return (0..<count).filter { wanted.contains(runOfRow[$0]) }
    }

    /// Starts a run; returns its index for `append`. Its name must be new (`freshRunName`).
    public mutating func startRun(_ info: RunInfo) -> Int {
        precondition(runIndex(named: info.name) == nil, "run \(info.name) exists")
        runs.append(info)
        return runs.count - 1
    }

    /// `base` if no run has that name, else `base-2`, `base-3`, … (the first free one).
    public func freshRunName(_ base: String) -> String {
        if runIndex(named: base) == nil { return base }
        var n = 2
        while runIndex(named: "\(base)-\(n)") != nil { n += 1 }
        return "\(base)-\(n)"
    }

    /// Appends one row to run `run`; new keys become new columns (in the order given).
    public mutating func append(_ row: KeyValuePairs<String, Double>, run: Int) {
        append(row.map { ($0.key, $0.value) }, run: run)
    }

    /// Appends one row to run `run`; new keys become new columns (in the order given).
    public mutating func append(_ row: [(String, Double)], run: Int) {
        precondition(runs.indices.contains(run), "no run \(run)")
        runs[run].rows += 1
        runOfRow.append(Int32(run))
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
        runs = []
        runOfRow = []
    }

    /// The setting keys of every run, in the order first seen (the run columns of exports).
    public var settingKeys: [String] {
        var keys: [String] = []
        for run in runs { for setting in run.settings where !keys.contains(setting.key) { keys.append(setting.key) } }
        return keys
    }

    /// A header line (`run`, the runs' setting keys, then the columns), then one line per
    /// row; missing cells are empty, NaN is `nan`, infinities `inf`/`-inf`.
    public func csv() -> String {
        let keys = settingKeys
        var lines = [(["run"] + keys + columns).map(csvField).joined(separator: ",")]
        for r in 0..<count {
            let row = row(r), run = run(ofRow: r)
            let described = [run.name] + keys.map { run.value(of: $0) ?? "" }
            lines.append((described.map(csvField) + columns.map { row[$0].map(cellText) ?? "" }).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// One JSON object per row: `run`, the run's settings, then the row's keys in column
    /// order (non-finite numbers as null).
    public func jsonl() -> String {
        (0..<count).map { r in
            let run = run(ofRow: r)
            var object: JSONObject = ["run": .string(run.name)]
            for setting in run.settings { object.set(setting.key, .string(setting.value)) }
            object.merge(jsonObject(row(r)))
            return object.rendered + "\n"
        }.joined()
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

    /// A number for a table people read: an integer below 10^7 exactly, others to 4
    /// significant digits (the exact values are in `export`).
    func tableText(_ x: Double) -> String {
        if x.isFinite && x == x.rounded() && abs(x) < 1e7 { return cellText(x) }
        return figure(x)
    }

}

/// A named stretch of measurements under one setting: an RL run (preset, algorithm, seed,
/// task and model fixed), or one `accumulate`.
public struct RunInfo: Sendable, Equatable {
    /// Unique in the history: `bf16-grpo-s0`, `bf16-grpo-s0-2` on a repeat, or set by `run NAME`.
    public var name: String
    /// What was fixed during the run, in order: `preset = bf16`, `algo = grpo`, …
    public var settings: [RunSetting]
    /// Rows appended to the run so far.
    public internal(set) var rows = 0

    public init(name: String, settings: [RunSetting]) {
        self.name = name
        self.settings = settings
    }

    /// The value of setting `key`, if the run has it.
    public func value(of key: String) -> String? { settings.first { $0.key == key }?.value }

    /// The run's settings as a JSON object.
    public var settingsJSON: JSONObject {
        var object = JSONObject()
        for setting in settings { object.set(setting.key, .string(setting.value)) }
        return object
    }
}

/// One fixed setting of a run.
public struct RunSetting: Sendable, Equatable {
    public var key: String
    public var value: String

    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }
}

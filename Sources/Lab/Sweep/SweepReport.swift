// What a sweep came to: one row per point and one per group of seeds, from the points'
// JSON lines. Every column is defined here once (`SweepColumn.all`); `plab sweep report
// --help` and the README print the same definitions.

import Foundation
import Plot
import JSON

/// How the report's figures are computed.
public struct SweepReportOptions: Sendable, Equatable {
    /// The accuracy a point must reach (its moving average) for `reached`.
    public var threshold = 0.95
    /// `collapse` is set when peak − final is more than this.
    public var drop = 0.1
    /// Steps in the trailing moving average of accuracy (fewer when a run is shorter).
    public var window = 10

    public init(threshold: Double = 0.95, drop: Double = 0.1, window: Int = 10) {
        self.threshold = threshold
        self.drop = drop
        self.window = window
    }
}

/// One RL step of a point, as its `step --json` row says.
public struct StepRecord: Sendable, Equatable {
    public var run: String
    public var step: Int
    public var skipped: Bool
    /// Every number of the row by its key (accuracy, k3, entropy, the diagnostics, …): what
    /// the table's columns and curves of any column read.
    public var values: [String: Double]

    public var accuracy: Double { values["accuracy"]! }
    public var k3: Double? { values["k3"] }
    public var meanAbsDlogp: Double? { values["mean_abs_dlogp"] }

    public init(run: String, step: Int, accuracy: Double, k3: Double?, meanAbsDlogp: Double?, skipped: Bool,
                values: [String: Double] = [:]) {
        self.run = run
        self.step = step
        self.skipped = skipped
        var values = values
        values["accuracy"] = accuracy
        values["k3"] = k3
        values["mean_abs_dlogp"] = meanAbsDlogp
        self.values = values
    }
}

/// The mismatch of one `rollout --json` row: what a sweep over formats, engines or model
/// sizes measures without training.
public struct RolloutRecord: Sendable, Equatable {
    /// Response tokens over responses.
    public var meanLength: Double
    public var k3: Double
    public var meanAbsDlogp: Double
    /// Σ_t KL(μ_t‖π_t) over a response's positions (the exact KL between the engines'
    /// next-token distributions), averaged over responses: the per-sequence mismatch.
    public var seqKLFull: Double?

    public init(meanLength: Double, k3: Double, meanAbsDlogp: Double, seqKLFull: Double?) {
        self.meanLength = meanLength
        self.k3 = k3
        self.meanAbsDlogp = meanAbsDlogp
        self.seqKLFull = seqKLFull
    }
}

/// What a point's JSON lines hold for the report: the steps of its last RL run, the
/// accuracy of its last `eval --json`, and the mismatch of its last `rollout --json`.
public struct PointRecords: Sendable, Equatable {
    public var steps: [StepRecord] = []
    public var evalAccuracy: Double?
    public var rollout: RolloutRecord?

    /// Reads JSON lines: step rows are the objects with `run`, `step`, `accuracy` and
    /// `skipped`; eval rows those with `n`, `accuracy` and `mean_length`; rollout rows those
    /// with `sequences`, `tokens`, `k3` and `mean_abs_dlogp` (and no `step`). Steps of
    /// earlier runs (a session that trains twice) are dropped: the last run is the point's.
    public init(jsonl text: String) {
        var all: [StepRecord] = []
        for line in text.split(separator: "\n") {
            // Numbers read exactly: the nearest double to each literal, as written.
            guard let row = (try? JSONValue(parsing: String(line)))?.objectValue else { continue }
            let number = { (key: String) in row[key]?.doubleValue }
            if row["step"] == nil, let sequences = row["sequences"]?.intValue, sequences > 0,
               let tokens = row["tokens"]?.intValue, let k3 = number("k3"), let dlogp = number("mean_abs_dlogp") {
                rollout = RolloutRecord(meanLength: Double(tokens) / Double(sequences), k3: k3,
                                        meanAbsDlogp: dlogp, seqKLFull: number("seq_kl_full"))
                continue
            }
            guard let accuracy = number("accuracy") else { continue }
            if let run = row["run"]?.stringValue, let step = row["step"]?.intValue, let skipped = row["skipped"]?.boolValue {
                var values: [String: Double] = [:]
                for key in row.keys { if let x = number(key) { values[key] = x } }
                all.append(StepRecord(run: run, step: step, accuracy: accuracy, k3: number("k3"),
                                      meanAbsDlogp: number("mean_abs_dlogp"), skipped: skipped, values: values))
            } else if row["n"]?.intValue != nil, number("mean_length") != nil {
                evalAccuracy = accuracy
            }
        }
        let last = all.last?.run
        steps = all.filter { $0.run == last }
    }
}

/// The figures of one point (see `SweepColumn.all` for their definitions). Those of the RL
/// steps are nil for a point that took none.
public struct PointMetrics: Sendable, Equatable {
    public var steps: Int
    public var start: Double?
    public var peak: Double?
    public var final: Double?
    /// The `step` of the first moving average at or above the threshold; nil if none.
    public var reached: Int?
    public var collapsed: Bool?
    public var k3Mean: Double?
    public var k3Final: Double?
    public var dlogpMean: Double?
    public var dlogpFinal: Double?
    /// Mean over steps of kl_full_mean × response_length (see the column `seq_kl`).
    public var seqKLMean: Double?
    public var skipped: Int?
    public var eval: Double?
    public var rollout: RolloutRecord?

    /// The figures of `records`, or nil when it has no steps, no eval and no rollout.
    public init?(_ records: PointRecords, options: SweepReportOptions) {
        let rows = records.steps
        guard !rows.isEmpty || records.evalAccuracy != nil || records.rollout != nil else { return nil }
        eval = records.evalAccuracy
        rollout = records.rollout
        steps = rows.count
        guard !rows.isEmpty else { return }
        let w = max(1, min(options.window, rows.count))
        let averages = movingAverage(rows.map(\.accuracy), window: w)
        let full = Array(averages[(w - 1)...])  // the averages over w whole steps
        start = full.first!
        peak = full.max()!
        final = full.last!
        reached = full.firstIndex { $0 >= options.threshold }.map { rows[$0 + w - 1].step }
        collapsed = full.max()! - full.last! > options.drop
        func mean(_ values: [Double?]) -> Double? {
            let present = values.compactMap { $0 }
            return present.isEmpty ? nil : present.reduce(0, +) / Double(present.count)
        }
        k3Mean = mean(rows.map(\.k3))
        k3Final = mean(rows.suffix(w).map(\.k3))
        dlogpMean = mean(rows.map(\.meanAbsDlogp))
        dlogpFinal = mean(rows.suffix(w).map(\.meanAbsDlogp))
        seqKLMean = mean(rows.map { row in
            row.values["kl_full_mean"].flatMap { kl in row.values["response_length"].map { kl * $0 } }
        })
        skipped = rows.filter(\.skipped).count
    }
}

/// The trailing moving average of `values`: entry i is the mean of the last `window`
/// values up to i (of all of them while fewer have come).
/// Each window is summed afresh, in order: the figure is the one a reader computes by hand
/// from the JSON lines, with no drift from a running sum.
public func movingAverage(_ values: [Double], window: Int) -> [Double] {
    values.indices.map { i in
        let slice = values[max(0, i - window + 1)...i]
        return slice.reduce(0, +) / Double(slice.count)
    }
}

/// A column of the report: its name, its definition, and its value for a point.
public struct SweepColumn: Sendable {
    public let name: String
    public let definition: String
    public let value: @Sendable (PointMetrics) -> Double?
    /// Shown as an accuracy (3 decimals) rather than as a figure of 4 digits.
    let isAccuracy: Bool

    /// Every column, in order, with its definition.
    public static let all: [SweepColumn] = [
        SweepColumn(name: "steps", definition: "RL steps of the point's last run (rows of `step --json`)", value: { Double($0.steps) }, isAccuracy: false),
        SweepColumn(name: "start", definition: "accuracy at the start: the mean over the first W steps (W = --window, default 10, or all steps of a shorter run)", value: { $0.start }, isAccuracy: true),
        SweepColumn(name: "peak", definition: "the maximum of the W-step trailing moving average of accuracy (over steps W…n)", value: { $0.peak }, isAccuracy: true),
        SweepColumn(name: "final", definition: "accuracy at the end: the mean over the last W steps", value: { $0.final }, isAccuracy: true),
        SweepColumn(name: "reached", definition: "the first step whose W-step moving average of accuracy is at least --threshold (default 0.95); empty if none", value: { $0.reached.map(Double.init) }, isAccuracy: false),
        SweepColumn(name: "collapse", definition: "1 when peak − final > --drop (default 0.1), else 0; for a group, how many seeds collapsed", value: { $0.collapsed.map { $0 ? 1 : 0 } }, isAccuracy: false),
        SweepColumn(name: "k3_mean", definition: "the mean of k3 (the rollout–training mismatch, README \"Mismatch statistics\") over every step", value: { $0.k3Mean }, isAccuracy: false),
        SweepColumn(name: "k3_final", definition: "the mean of k3 over the last W steps", value: { $0.k3Final }, isAccuracy: false),
        SweepColumn(name: "dlogp_mean", definition: "the mean of mean |Δ log p| (|log π − log μ| per token) over every step", value: { $0.dlogpMean }, isAccuracy: false),
        SweepColumn(name: "dlogp_final", definition: "the mean of mean |Δ log p| over the last W steps", value: { $0.dlogpFinal }, isAccuracy: false),
        SweepColumn(name: "seq_kl", definition: "the mean over every step of kl_full_mean × response_length: the exact KL(μ‖π) between the engines' next-token distributions per position, times the mean response length, about the per-sequence KL (Seed 1's sequence-level KL[μ‖π]: 7.64 under BF16, 0.32 under FP16)", value: { $0.seqKLMean }, isAccuracy: false),
        SweepColumn(name: "skipped", definition: "steps whose update was skipped (inf/NaN)", value: { $0.skipped.map(Double.init) }, isAccuracy: false),
        SweepColumn(name: "eval", definition: "accuracy of the point's last `eval --json`, when it has one", value: { $0.eval }, isAccuracy: true),
        SweepColumn(name: "r_length", definition: "of the point's last `rollout --json`, when it has one: response tokens per response", value: { $0.rollout?.meanLength }, isAccuracy: false),
        SweepColumn(name: "r_k3", definition: "of that rollout: k3, the mean over its tokens of ρ − 1 − log ρ with ρ = π/μ", value: { $0.rollout?.k3 }, isAccuracy: false),
        SweepColumn(name: "r_dlogp", definition: "of that rollout: mean |Δ log p| = |log π − log μ| per token", value: { $0.rollout?.meanAbsDlogp }, isAccuracy: false),
        SweepColumn(name: "r_seq_kl", definition: "of that rollout: seq_kl_full, the exact KL(μ‖π) between the engines' next-token distributions summed over a response's positions, averaged over responses", value: { $0.rollout?.seqKLFull }, isAccuracy: false),
    ]

    /// The columns read from RL steps (shown when some point took steps).
    static let stepColumns: Set<String> = ["steps", "start", "peak", "final", "reached", "collapse", "k3_mean", "k3_final",
                                           "dlogp_mean", "dlogp_final", "seq_kl", "skipped"]

    /// The column's text for people.
    func text(_ x: Double?) -> String {
        guard let x else { return "-" }
        if isAccuracy { return String(format: "%.3f", x) }
        if x == x.rounded() && abs(x) < 1e7 { return numberText(x) }
        return figure(x)
    }
}

/// How far a point got.
public enum PointStatus: String, Sendable, Equatable {
    /// Its done marker and JSON lines are in place.
    case complete
    /// It left `.partial` output: it failed, was killed, or is running now.
    case incomplete
    /// Nothing of it yet.
    case notRun = "not run"
}

/// One point's row.
public struct PointSummary: Sendable {
    public var point: PlannedSweep.Point
    public var status: PointStatus
    /// Nil unless complete with at least one step.
    public var metrics: PointMetrics?
    /// Its per-step records (for curves).
    public var records: PointRecords
}

/// A group of points that differ only in their seed: each column's mean and sample
/// standard deviation over the group's complete points.
public struct GroupSummary: Sendable {
    /// The values of every key but `seed`.
    public var values: [String: String]
    public var members: [PointSummary]
    public var complete: [PointMetrics] { members.compactMap(\.metrics) }

    /// Mean and sample standard deviation (n − 1; nil below two values) of `column` over
    /// the complete members that have it; for `collapse`, the mean is the count.
    public func statistic(_ column: SweepColumn) -> (mean: Double, sd: Double?, n: Int)? {
        let xs = complete.compactMap(column.value)
        guard !xs.isEmpty else { return nil }
        let mean = xs.reduce(0, +) / Double(xs.count)
        let sd = xs.count < 2 ? nil : (xs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(xs.count - 1)).squareRoot()
        if column.name == "collapse" { return (xs.reduce(0, +), nil, xs.count) }
        return (mean, sd, xs.count)
    }
}

/// The whole report of a planned sweep.
public struct SweepReport: Sendable {
    public let plan: PlannedSweep
    public let options: SweepReportOptions
    public let points: [PointSummary]
    /// Empty when the grid has no `seed` key.
    public let groups: [GroupSummary]
    /// The columns shown: those of RL steps when some point took steps, `eval` when some
    /// point has an eval, and the rollout's when some point has a rollout.
    public let columns: [SweepColumn]

    /// Reads every point's output in the plan's directory.
    public init(plan: PlannedSweep, options: SweepReportOptions = SweepReportOptions()) {
        self.plan = plan
        self.options = options
        var points: [PointSummary] = []
        for point in plan.points {
            let layout = plan.layout
            let status: PointStatus = layout.isComplete(point.name) ? .complete
                : layout.hasPartialOutput(point.name) ? .incomplete : .notRun
            var records = PointRecords(jsonl: "")
            if status == .complete, let data = FileManager.default.contents(atPath: layout.jsonl(point.name)) {
                records = PointRecords(jsonl: String(decoding: data, as: UTF8.self))
            }
            points.append(PointSummary(point: point, status: status,
                                       metrics: status == .complete ? PointMetrics(records, options: options) : nil,
                                       records: records))
        }
        self.points = points
        var groups: [GroupSummary] = []
        if plan.keys.contains("seed") {
            for summary in points {
                var values = summary.point.values
                values["seed"] = nil
                if let i = groups.firstIndex(where: { $0.values == values }) {
                    groups[i].members.append(summary)
                } else {
                    groups.append(GroupSummary(values: values, members: [summary]))
                }
            }
        }
        self.groups = groups
        let metrics = points.compactMap(\.metrics)
        let anySteps = metrics.contains { $0.steps > 0 }, anyEval = metrics.contains { $0.eval != nil }
        let anyRollout = metrics.contains { $0.rollout != nil }
        columns = SweepColumn.all.filter { column in
            if SweepColumn.stepColumns.contains(column.name) { return anySteps || !(anyEval || anyRollout) }
            if column.name == "eval" { return anyEval }
            if column.name.hasPrefix("r_") { return anyRollout }
            return true
        }
    }

    /// The keys shown in group rows.
    var groupKeys: [String] { plan.keys.filter { $0 != "seed" } }

    /// How many points have each status.
    public func count(_ status: PointStatus) -> Int { points.filter { $0.status == status }.count }
}

// MARK: - Curves (the hook for plots)

/// One curve of a figure: a label and its points.
public struct CurveSeries: Sendable, Equatable {
    public var label: String
    public var steps: [Int]
    public var values: [Double]

    public init(label: String, steps: [Int], values: [Double]) {
        self.label = label
        self.steps = steps
        self.values = values
    }
}

/// A per-step quantity a curve can follow.
public struct CurveMetric: Sendable, Hashable {
    /// A numeric key of the step rows.
    public let name: String
    public init(_ name: String) { self.name = name }

    public static let accuracy = CurveMetric("accuracy")
    public static let k3 = CurveMetric("k3")
    public static let meanAbsDlogp = CurveMetric("mean_abs_dlogp")

    func value(_ record: StepRecord) -> Double? { record.values[name] }
}

extension SweepReport {
    /// One curve per value of `key` (in grid order), over the complete points with that
    /// value: at each step, the mean over those points of their W-step trailing moving
    /// average of `metric` (W = the report's window; fewer steps at the start). Plain
    /// arrays, for a plot or a file.
    public func curves(groupedBy key: String, metric: CurveMetric = .accuracy) -> [CurveSeries] {
        var labels: [String] = []
        for summary in points { if let v = summary.point.values[key], !labels.contains(v) { labels.append(v) } }
        return labels.map { label in
            var sums: [Int: (Double, Int)] = [:]
            for summary in points where summary.status == .complete && summary.point.values[key] == label {
                let rows = summary.records.steps.filter { metric.value($0) != nil }
                let averaged = movingAverage(rows.map { metric.value($0)! }, window: max(1, options.window))
                for (row, y) in zip(rows, averaged) {
                    let (s, n) = sums[row.step] ?? (0, 0)
                    sums[row.step] = (s + y, n + 1)
                }
            }
            let steps = sums.keys.sorted()
            return CurveSeries(label: "\(key) = \(label)", steps: steps, values: steps.map { sums[$0]!.0 / Double(sums[$0]!.1) })
        }
    }
}

extension SweepReport {
    /// The numeric keys of the complete points' step rows, sorted: what `curves` can draw.
    public var curveMetrics: [String] {
        Set(points.filter { $0.status == .complete }.flatMap { $0.records.steps.flatMap(\.values.keys) }).sorted()
    }

    /// The curves of `curves(groupedBy:metric:)` as one chart: a line per value of `key`;
    /// k3, and any quantity whose values are positive and span more than two decades, on a
    /// log scale (as `plot` draws history columns).
    public func curvesFigure(groupedBy key: String, metric: CurveMetric = .accuracy) -> Figure {
        let series = curves(groupedBy: key, metric: metric).map { Series($0.label, x: $0.steps.map(Double.init), y: $0.values) }
        let label = "\(metric.name), \(options.window)-step moving average"
        let values = series.flatMap(\.y).filter(\.isFinite)
        let positive = (values.min() ?? 0) > 0
        let log = positive && (metric == .k3 || (values.max() ?? 0) / (values.min() ?? 1) > 100)
        return Figure(Chart(title: "\(metric.name) by step, by \(key) (mean over its points)",
                            x: Axis("step", integral: true), y: Axis(label, unit: unitOf(metric.name), scale: log ? .log10 : .linear),
                            series: series))
    }
}

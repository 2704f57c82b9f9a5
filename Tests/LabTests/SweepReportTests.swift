import Files
import Foundation
import Testing
import Lab
import Plot

/// A step row as `step --json` writes it (the keys the report reads, and one more).
func stepRow(run: String = "r", step: Int, accuracy: Double, k3: Double? = 0.001, dlogp: Double? = 0.01, skipped: Bool = false) -> String {
    let k3Text = k3.map { "\($0)" } ?? "null", dlogpText = dlogp.map { "\($0)" } ?? "null"
    return "{\"run\":\"\(run)\",\"step\":\(step),\"reward\":\(accuracy),\"accuracy\":\(accuracy),\"k3\":\(k3Text),\"mean_abs_dlogp\":\(dlogpText),\"grad_norm\":1.0,\"loss_scale\":1.0,\"skipped\":\(skipped),\"algo\":\"grpo\"}"
}

/// The report's figures: moving averages, thresholds, collapse, groups of seeds, curves,
/// and the three renderings.
@Suite struct SweepReportTests {
    @Test func theMovingAverageTrailsOverTheWindow() {
        #expect(movingAverage([1, 2, 3, 4, 5], window: 2) == [1, 1.5, 2.5, 3.5, 4.5])
        #expect(movingAverage([1, 2, 3], window: 5) == [1, 1.5, 2])
        #expect(movingAverage([], window: 3) == [])
    }

    @Test func recordsAreTheLastRunsStepsAndTheLastEval() {
        let text = [
            "{\"seed\":1}",
            stepRow(run: "first", step: 1, accuracy: 0.1),
            "{\"n\":8,\"accuracy\":0.25,\"reward\":0.25,\"mean_length\":4}",
            stepRow(run: "second", step: 1, accuracy: 0.5),
            stepRow(run: "second", step: 2, accuracy: 0.75, k3: nil, skipped: true),
            "{\"n\":8,\"accuracy\":0.625,\"reward\":0.625,\"mean_length\":4}",
            "not json",
        ].joined(separator: "\n")
        let records = PointRecords(jsonl: text)
        #expect(records.steps.map(\.step) == [1, 2])
        #expect(records.steps.map(\.run) == ["second", "second"])
        #expect(records.steps[1] == StepRecord(run: "second", step: 2, accuracy: 0.75, k3: nil, meanAbsDlogp: 0.01, skipped: true,
                                               values: ["step": 2, "reward": 0.75, "grad_norm": 1, "loss_scale": 1]))
        #expect(records.evalAccuracy == 0.625)
    }

    @Test func startPeakFinalReachedAndCollapseFollowTheirDefinitions() throws {
        // Accuracy rises to 1 and falls back; window 2. Dyadic values: every average is exact.
        let accuracies = [0.25, 0.5, 0.875, 1.0, 1.0, 0.5, 0.5, 0.5]
        let k3s = [1.0, 2, 3, 4, 5, 6, 7, 8]
        let text = accuracies.indices.map { stepRow(step: $0 + 1, accuracy: accuracies[$0], k3: k3s[$0], dlogp: nil, skipped: $0 == 3) }
        let m = try #require(PointMetrics(PointRecords(jsonl: text.joined(separator: "\n")),
                                          options: SweepReportOptions(threshold: 0.95, drop: 0.1, window: 2)))
        // Moving averages from step 2: 0.375, 0.6875, 0.9375, 1, 0.75, 0.5, 0.5.
        #expect(m.steps == 8)
        #expect(m.start == 0.375)
        #expect(m.peak == 1.0)
        #expect(m.final == 0.5)
        #expect(m.reached == 5)
        #expect(m.collapsed == true)                 // 1 − 0.5 > 0.1
        #expect(m.k3Mean == 4.5 && m.k3Final == 7.5)
        #expect(m.dlogpMean == nil && m.dlogpFinal == nil)
        #expect(m.skipped == 1)
        #expect(m.eval == nil)
        let lower = try #require(PointMetrics(PointRecords(jsonl: text.joined(separator: "\n")),
                                              options: SweepReportOptions(threshold: 0.9375, drop: 0.1, window: 2)))
        #expect(lower.reached == 4)
        let strict = try #require(PointMetrics(PointRecords(jsonl: text.joined(separator: "\n")),
                                               options: SweepReportOptions(threshold: 1.01, drop: 0.6, window: 2)))
        #expect(strict.reached == nil && strict.collapsed == false)
        let short = try #require(PointMetrics(PointRecords(jsonl: text.prefix(3).joined(separator: "\n")), options: SweepReportOptions()))
        #expect(short.start == short.final && short.peak == short.final, "a run shorter than the window is one average")
        #expect(PointMetrics(PointRecords(jsonl: ""), options: SweepReportOptions()) == nil)
    }

    /// A point that only measures (`rollout --json`, no RL steps) has the rollout's figures
    /// and none of the steps'; the last rollout row counts, and a step row is never one.
    @Test func aRolloutOnlyPointHasTheLastRolloutsMismatch() throws {
        let rollout = { (k3: Double, tokens: Int) in
            "{\"tokens\":\(tokens),\"sequences\":8,\"k1\":0.001,\"k3\":\(k3),\"mean_abs_dlogp\":0.03125,\"seq_kl_full\":0.5,\"finished\":8}"
        }
        let text = [rollout(0.25, 100), rollout(0.125, 96)].joined(separator: "\n")
        let m = try #require(PointMetrics(PointRecords(jsonl: text), options: SweepReportOptions()))
        #expect(m.rollout == RolloutRecord(meanLength: 12, k3: 0.125, meanAbsDlogp: 0.03125, seqKLFull: 0.5))
        #expect(m.steps == 0 && m.start == nil && m.final == nil && m.collapsed == nil && m.skipped == nil)
        let column = { (name: String) in SweepColumn.all.first { $0.name == name }! }
        #expect(column("r_length").value(m) == 12 && column("r_seq_kl").value(m) == 0.5)
        #expect(column("final").value(m) == nil && column("collapse").value(m) == nil)
        // A step row carries k3 and mean_abs_dlogp too, but is no rollout.
        let steps = PointRecords(jsonl: stepRow(step: 1, accuracy: 0.5))
        #expect(steps.rollout == nil && steps.steps.count == 1)
        // An RL run followed by a rollout: both kinds of figures.
        let both = try #require(PointMetrics(PointRecords(jsonl: stepRow(step: 1, accuracy: 0.5) + "\n" + rollout(0.25, 80)),
                                             options: SweepReportOptions()))
        #expect(both.final == 0.5 && both.rollout?.meanLength == 10)
    }

    /// A planned 2 presets × 2 seeds sweep whose points' JSON lines are written by the test.
    func plannedSweep(_ dir: URL, accuracies: [String: [Double]], complete: Set<String>) throws -> PlannedSweep {
        let plan = try sweepPlan(twoByTwo, into: dir.path)
        try plan.write()
        for (name, values) in accuracies {
            let text = values.indices.map { stepRow(step: $0 + 1, accuracy: values[$0]) + "\n" }.joined()
            if complete.contains(name) {
                try FileWriting.write(Data(text.utf8), to: plan.layout.jsonl(name))
                try FileWriting.write(Data("{}\n".utf8), to: plan.layout.doneMarker(name))
            } else {
                try FileWriting.write(Data(text.utf8), to: StagedFile.stagingPath(of: plan.layout.jsonl(name)))
            }
        }
        return try PlannedSweep(directory: dir.path)
    }

    @Test func groupsAreMeanAndSampleSDOverSeedsOfTheirCompletePoints() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let plan = try plannedSweep(dir, accuracies: ["preset-bf16_seed-1": [0.2, 0.4], "preset-bf16_seed-2": [0.4, 0.8],
                                                      "preset-fp16_seed-1": [1, 1]],
                                    complete: ["preset-bf16_seed-1", "preset-bf16_seed-2"])
        let report = SweepReport(plan: plan, options: SweepReportOptions(window: 1))
        #expect(report.points.map(\.status) == [.complete, .complete, .incomplete, .notRun])
        #expect(report.points[2].metrics == nil)
        #expect(report.groups.map(\.values) == [["preset": "bf16"], ["preset": "fp16"]])
        let final = SweepColumn.all.first { $0.name == "final" }!
        let s = try #require(report.groups[0].statistic(final))
        #expect(abs(s.mean - 0.6) < 1e-12 && s.n == 2)
        #expect(abs(s.sd! - (0.08).squareRoot()) < 1e-12)  // finals 0.4, 0.8
        #expect(report.groups[1].statistic(final) == nil)
        #expect(!report.columns.contains { $0.name == "eval" })
        #expect(!report.columns.contains { $0.name.hasPrefix("r_") } && report.columns.contains { $0.name == "final" })

        let text = report.text()
        #expect(text.hasPrefix("sweep s.sweep: 4 points, 2 complete, 1 incomplete, 1 not run; accuracy window 1, threshold 0.95, drop 0.1\n"))
        #expect(text.contains("\nnot complete: 2 points; 'plab sweep run' resumes them, or: sbatch --array=2,3 \(plan.layout.slurmFile)"))
        #expect(text.contains("groups: mean ± sd over seed"))

        let csv = report.csv().split(separator: "\n").map(String.init)
        #expect(csv[0] == "kind,name,preset,seed,status,n,steps,steps_sd,start,start_sd,peak,peak_sd,final,final_sd,reached,reached_sd,reached_n,collapse,k3_mean,k3_mean_sd,k3_final,k3_final_sd,dlogp_mean,dlogp_mean_sd,dlogp_final,dlogp_final_sd,seq_kl,seq_kl_sd,skipped,skipped_sd")
        #expect(csv[1] == "point,preset-bf16_seed-1,bf16,1,complete,1,2,,0.2,,0.4,,0.4,,,,0,0,0.001,,0.001,,0.01,,0.01,,,,0,")
        #expect(csv[3] == "point,preset-fp16_seed-1,fp16,1,incomplete,0,,,,,,,,,,,,,,,,,,,,,,,,")
        #expect(csv[5].hasPrefix("group,preset=bf16,bf16,,2/2 complete,2,2,0,0.30000000000000004,"))
        #expect(csv.count == 7)

        let json = try parseJSON(report.json().rendered)
        let points = try #require(json["points"] as? [[String: Any]])
        #expect(points[0]["final"] as? Double == 0.4 && points[0]["collapse"] as? Bool == false)
        #expect(points[0]["reached"] is NSNull && points[2]["final"] is NSNull)
        let groups = try #require(json["groups"] as? [[String: Any]])
        #expect((groups[0]["final"] as? [String: Any])?["n"] as? Int == 2)
        #expect(groups[1]["final"] is NSNull)
    }

    @Test func curvesAreTheMeanMovingAveragePerValueOfAKey() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let names = ["preset-bf16_seed-1", "preset-bf16_seed-2", "preset-fp16_seed-1", "preset-fp16_seed-2"]
        let plan = try plannedSweep(dir, accuracies: ["preset-bf16_seed-1": [0, 1, 1], "preset-bf16_seed-2": [1, 1, 0],
                                                      "preset-fp16_seed-1": [0.5, 0.5, 0.5], "preset-fp16_seed-2": [0.25, 0.25, 0.25]],
                                    complete: Set(names))
        let report = SweepReport(plan: plan, options: SweepReportOptions(window: 2))
        let curves = report.curves(groupedBy: "preset")
        #expect(curves == [CurveSeries(label: "preset = bf16", steps: [1, 2, 3], values: [0.5, 0.75, 0.75]),
                           CurveSeries(label: "preset = fp16", steps: [1, 2, 3], values: [0.375, 0.375, 0.375])])
        #expect(report.curves(groupedBy: "seed").map(\.label) == ["seed = 1", "seed = 2"])
        #expect(report.curvesCSV(groupedBy: "preset", metric: .accuracy).hasPrefix("preset,step,accuracy\nbf16,1,0.5\nbf16,2,0.75\n"))
        let k3 = report.curves(groupedBy: "preset", metric: .k3)
        #expect(k3[0].values.allSatisfy { abs($0 - 0.001) < 1e-15 } && k3[0].values.count == 3)
        // The chart of the curves: a line per value, the same numbers; k3 on a log axis.
        let figure = report.curvesFigure(groupedBy: "preset")
        #expect(figure.panels.count == 1 && figure.panels[0].series.map(\.name) == ["preset = bf16", "preset = fp16"])
        #expect(figure.panels[0].series[0].y == [0.5, 0.75, 0.75] && figure.panels[0].series[0].x == [1, 2, 3])
        #expect(report.curvesFigure(groupedBy: "preset", metric: .k3).panels[0].y.scale == .log10)
        #expect(figure.svg().contains("preset = fp16"))
    }

    /// Curves of any number in the step rows (entropy here, which the table does not read):
    /// the same moving average; a quantity spanning more than two decades on a log axis.
    @Test func curvesOfAnyColumnOfTheStepRows() throws {
        let row = { (step: Int, entropy: Double) in
            "{\"run\":\"r\",\"step\":\(step),\"accuracy\":0.5,\"k3\":0.001,\"skipped\":false,\"entropy\":\(entropy),\"algo\":\"grpo\"}"
        }
        let records = PointRecords(jsonl: [row(1, 2), row(2, 1), row(3, 0.0078125)].joined(separator: "\n"))
        #expect(records.steps.map { $0.values["entropy"] } == [2, 1, 0.0078125])
        #expect(records.steps[0].values["accuracy"] == 0.5 && records.steps[0].values["algo"] == nil)
        // seq_kl: kl_full_mean × response_length per step, averaged over the steps that have both.
        let klRow = { (step: Int, kl: Double, length: Double) in
            "{\"run\":\"r\",\"step\":\(step),\"accuracy\":0.5,\"skipped\":false,\"kl_full_mean\":\(kl),\"response_length\":\(length)}"
        }
        let kl = try #require(PointMetrics(PointRecords(jsonl: [klRow(1, 0.25, 8), klRow(2, 0.5, 16), row(3, 1)].joined(separator: "\n")),
                                           options: SweepReportOptions()))
        #expect(kl.seqKLMean == 5)  // (2 + 8) / 2
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let plan = try sweepPlan(twoByTwo, into: dir.path)
        try plan.write()
        let name = "preset-bf16_seed-1"
        try FileWriting.write(Data(([row(1, 2), row(2, 1), row(3, 0.0078125)].joined(separator: "\n") + "\n").utf8),
                              to: plan.layout.jsonl(name))
        try FileWriting.write(Data("{}\n".utf8), to: plan.layout.doneMarker(name))
        let report = SweepReport(plan: try PlannedSweep(directory: dir.path), options: SweepReportOptions(window: 1))
        #expect(report.curveMetrics == ["accuracy", "entropy", "k3", "step"])
        let curves = report.curves(groupedBy: "preset", metric: CurveMetric("entropy"))
        #expect(curves[0].values == [2, 1, 0.0078125])
        let figure = report.curvesFigure(groupedBy: "preset", metric: CurveMetric("entropy"))
        #expect(figure.panels[0].y.scale == .log10 && figure.panels[0].y.unit == "nats")
        #expect(report.curvesFigure(groupedBy: "preset", metric: .accuracy).panels[0].y.scale == .linear)
    }

    @Test func withoutASeedKeyThereAreNoGroups() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try sweepPlan("# sweep: preset = bf16, fp16\nprecision preset {preset}\n", into: dir.path).write()
        let report = SweepReport(plan: try PlannedSweep(directory: dir.path))
        #expect(report.groups.isEmpty)
        #expect(!report.text().contains("groups:"))
        #expect(report.csv().split(separator: "\n").count == 3)
    }

    @Test func aDirectoryWithoutAPlanIsExplained() {
        #expect(throws: LabError("'/nonexistent' holds no sweep plan (no sweep.json); make one with 'plab sweep plan FILE /nonexistent'")) {
            try PlannedSweep(directory: "/nonexistent")
        }
    }
}

// Sweeps end to end: a tiny grid run by the local runner and by GNU parallel, its report
// checked against the JSON lines, resuming after a deletion and after a kill, Ctrl-C, a
// failed point, and the exit statuses.

import Foundation
import Testing

/// A fresh directory holding `FILE.sweep` with `text`; removed by the caller.
private func sweepFile(_ text: String) throws -> (dir: URL, file: String) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("plab-sweep-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let file = dir.appendingPathComponent("grid.sweep").path
    try text.write(toFile: file, atomically: true, encoding: .utf8)
    return (dir, file)
}

/// 2 presets × 2 seeds, `steps` RL steps each at tiny settings.
private func tinyGrid(steps: Int = 2, seeds: String = "1, 2") -> String {
    """
    # sweep: preset = bf16, fp16
    # sweep: seed = \(seeds)
    set prompts 4
    set samples 2
    precision preset {preset}
    seed {seed}
    step \(steps) --json

    """
}

private let pointNames = ["preset-bf16_seed-1", "preset-bf16_seed-2", "preset-fp16_seed-1", "preset-fp16_seed-2"]

private func contents(_ path: String) -> String? {
    FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
}

private func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

/// The inode and modification time of a file: equal when nothing rewrote it.
private func identity(_ path: String) -> [Int] {
    var st = stat()
    guard stat(path, &st) == 0 else { return [] }
    return [Int(st.st_ino), Int(st.st_mtim.tv_sec), Int(st.st_mtim.tv_nsec)]
}

/// A step row of a point's JSON lines (JSONDecoder: numbers read exactly).
private struct StepRow: Decodable {
    var run: String?
    var accuracy: Double?
    var k3: Double?
    var mean_abs_dlogp: Double?
    var skipped: Bool?
}

/// The step rows of a file of JSON lines.
private func stepRows(_ path: String) throws -> [StepRow] {
    try (contents(path) ?? "").split(separator: "\n").map { try JSONDecoder().decode(StepRow.self, from: Data($0.utf8)) }
        .filter { $0.run != nil }
}

/// `plab sweep report --json`, the parts the tests read.
private struct ReportJSON: Decodable {
    struct Point: Decodable {
        var name: String
        var values: [String: String]
        var status: String
        var steps: Int?
        var start: Double?, peak: Double?, final: Double?
        var reached: Int?
        var collapse: Bool?
        var k3_mean: Double?, k3_final: Double?, dlogp_mean: Double?
        var skipped: Int?
    }
    struct Statistic: Decodable { var mean: Double, sd: Double?, n: Int }
    struct Group: Decodable { var values: [String: String], final: Statistic? }
    var points: [Point]
    var groups: [Group]
}

/// A running `plab` that a test can signal.
private final class Background {
    let process = Process()
    private let out = Pipe(), err = Pipe()

    init(_ arguments: [String]) throws {
        process.executableURL = plabExecutable
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = out
        process.standardError = err
        try process.run()
    }

    /// Waits up to `seconds` for `condition`; false if it never held.
    func waitFor(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return false
    }

    func finish() -> RunResult {
        let stdout = out.fileHandleForReading.readDataToEndOfFile(), stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return RunResult(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                         stderr: String(decoding: stderr, as: UTF8.self))
    }
}

/// The process ids whose parent is `pid` (from /proc).
private func children(of pid: Int32) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { entry -> Int32? in
        guard let child = Int32(entry), let stat = contents("/proc/\(entry)/stat"),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 2 && Int32(fields[1]) == pid ? child : nil
    }
}

/// The processes whose command line holds `text`.
private func processes(mentioning text: String) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { entry -> Int32? in
        guard let pid = Int32(entry), let line = contents("/proc/\(entry)/cmdline") else { return nil }
        return line.replacingOccurrences(of: "\0", with: " ").contains(text) ? pid : nil
    }
}

@Suite(.serialized) struct SweepCLITests {
    @Test func aSmallSweepRunsHereAndItsReportIsTheJSONLinesOwnFigures() throws {
        let (dir, file) = try sweepFile(tinyGrid())
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out").path
        let run = try runPlab(["sweep", "run", file, out, "-j", "2"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.hasPrefix("sweep \(file): 4 points, 4 complete\n"))
        for name in pointNames {
            for suffix in [".jsonl", ".transcript", ".done"] { #expect(exists("\(out)/results/\(name)\(suffix)")) }
            #expect(!exists("\(out)/results/\(name).jsonl.partial"))
            #expect(exists("\(out)/logs/\(name).log"))
        }
        // A point's transcript replays identically.
        let replay = try runPlab(["replay", "\(out)/results/preset-fp16_seed-2.transcript", "--check"])
        #expect(replay.status == 0, "\(replay.stderr)")

        let report = try runPlab(["sweep", "report", out, "--json", "--window", "2", "--threshold", "0.5", "--drop", "0"])
        #expect(report.status == 0, "\(report.stderr)")
        let json = try JSONDecoder().decode(ReportJSON.self, from: Data(report.stdout.utf8))
        #expect(json.points.map(\.name) == pointNames)
        var finals: [String: [Double]] = [:]
        for point in json.points {
            // The figures again, straight from the point's JSON lines: two steps, window 2.
            let rows = try stepRows("\(out)/results/\(point.name).jsonl")
            #expect(rows.count == 2)
            let accuracy = rows.map { $0.accuracy! }, k3 = rows.map { $0.k3! }, dlogp = rows.map { $0.mean_abs_dlogp! }
            let average = (accuracy[0] + accuracy[1]) / 2
            #expect(point.status == "complete")
            #expect(point.steps == 2)
            #expect(point.start == average && point.peak == average && point.final == average, "\(point.name)")
            #expect(point.k3_mean == (k3[0] + k3[1]) / 2 && point.k3_final == point.k3_mean)
            #expect(point.dlogp_mean == (dlogp[0] + dlogp[1]) / 2)
            #expect(point.skipped == rows.filter { $0.skipped! }.count)
            #expect(point.collapse == false)
            #expect(point.reached == (average >= 0.5 ? 2 : nil))
            finals[point.values["preset"]!, default: []].append(average)
        }
        #expect(json.groups.count == 2)
        for group in json.groups {
            let xs = finals[group.values["preset"]!]!
            let final = try #require(group.final)
            #expect(final.n == 2)
            #expect(final.mean == (xs[0] + xs[1]) / 2)
            #expect(abs(final.sd! - abs(xs[0] - xs[1]) / 2.squareRoot()) < 1e-12)
        }
        let table = try runPlab(["sweep", "report", out])
        #expect(table.stdout.contains("groups: mean ± sd over seed"))
        #expect(table.stdout.split(separator: "\n").contains { $0.hasPrefix("fp16    2     complete") })
    }

    @Test func aDeletedPointRunsAgainAloneWithTheSameBytes() throws {
        let (dir, file) = try sweepFile(tinyGrid())
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out").path
        #expect(try runPlab(["sweep", "run", file, out, "-j", "2"]).status == 0)
        let target = "\(out)/results/preset-bf16_seed-2"
        let jsonl = try #require(contents(target + ".jsonl")), transcript = try #require(contents(target + ".transcript"))
        let others = pointNames.filter { $0 != "preset-bf16_seed-2" }.flatMap { name in
            [".jsonl", ".transcript", ".done"].map { "\(out)/results/\(name)\($0)" }
        }
        let before = others.map(identity)
        for suffix in [".jsonl", ".done"] { try FileManager.default.removeItem(atPath: target + suffix) }
        let again = try runPlab(["sweep", "run", file, out, "-j", "2"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout.hasPrefix("sweep \(file): 4 points, 4 complete (3 from before)\n"))
        #expect(again.stderr == "sweep: preset-bf16_seed-2 complete (4/4)\n")
        #expect(others.map(identity) == before, "only the deleted point ran")
        #expect(contents(target + ".jsonl") == jsonl, "the same JSON lines, byte for byte")
        func stable(_ text: String) -> [Substring] { text.split(separator: "\n").filter { !$0.hasPrefix("# date:") } }
        #expect(stable(try #require(contents(target + ".transcript"))) == stable(transcript))
    }

    @Test func gnuParallelRunsJobsTxtUnchangedToTheSameReport() throws {
        let check = try spawnAndWait("/bin/sh", ["-c", "parallel --version 2>/dev/null | head -n 1"], capture: true).output
        guard check.hasPrefix("GNU parallel") else {
            Issue.record("GNU parallel is not installed (found: '\(check.trimmingCharacters(in: .whitespacesAndNewlines))'): run scripts/setup, which installs Debian's 'parallel' package with apt-get")
            return
        }
        let (dir, file) = try sweepFile(tinyGrid())
        defer { try? FileManager.default.removeItem(at: dir) }
        let local = dir.appendingPathComponent("local").path, viaParallel = dir.appendingPathComponent("parallel").path
        #expect(try runPlab(["sweep", "run", file, local, "-j", "2"]).status == 0)
        #expect(try runPlab(["sweep", "plan", file, viaParallel]).status == 0)
        let jobs = viaParallel + "/jobs.txt"
        #expect(try spawnAndWait("/bin/sh", ["-c", "parallel --will-cite -j 2 < '\(jobs)'"]).status == 0)
        for name in pointNames {
            #expect(contents("\(viaParallel)/results/\(name).jsonl") == contents("\(local)/results/\(name).jsonl"), "\(name)")
            #expect(exists("\(viaParallel)/results/\(name).done"))
        }
        for format in [["--json"], ["--csv"], []] {
            let a = try runPlab(["sweep", "report", local] + format).stdout
            let b = try runPlab(["sweep", "report", viaParallel] + format).stdout
            #expect(!a.isEmpty && a.replacingOccurrences(of: local, with: viaParallel) == b, "\(format)")
        }
    }

    @Test func aKilledRunResumesWithoutRerunningWhatFinished() throws {
        let (dir, file) = try sweepFile(tinyGrid(steps: 30, seeds: "1"))
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out").path
        let first = "\(out)/results/preset-bf16_seed-1", second = "\(out)/results/preset-fp16_seed-1"
        let runner = try Background(["sweep", "run", file, out, "-j", "1"])
        let midway = runner.waitFor(120) {
            exists(first + ".done") && (contents(second + ".jsonl.partial")?.contains("\"run\"") ?? false)
        }
        // A power cut: the runner and its point end at once.
        let pids = children(of: runner.process.processIdentifier)
        kill(runner.process.processIdentifier, SIGKILL)
        for pid in pids { kill(pid, SIGKILL) }
        _ = runner.finish()
        try #require(midway, "the first point never finished, or the second never began")
        #expect(!exists(second + ".jsonl") && !exists(second + ".done"), "no output of the killed point under its name")
        let kept = identity(first + ".done")
        let resumed = try runPlab(["sweep", "run", file, out, "-j", "1"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.hasPrefix("sweep \(file): 2 points, 2 complete (1 from before)\n"))
        #expect(identity(first + ".done") == kept)
        #expect(try stepRows(second + ".jsonl").count == 30)
        #expect(!exists(second + ".jsonl.partial"))
    }

    @Test func ctrlCStopsEveryPointAndLeavesNoHalfWrittenOutput() throws {
        let (dir, file) = try sweepFile(tinyGrid(steps: 5000))
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out").path
        let runner = try Background(["sweep", "run", file, out, "-j", "2"])
        let started = runner.waitFor(120) {
            pointNames.contains { contents("\(out)/results/\($0).jsonl.partial")?.contains("\"run\"") ?? false }
        }
        kill(runner.process.processIdentifier, SIGINT)
        let result = runner.finish()
        try #require(started, "no point began")
        #expect(result.status == 130, "\(result.stderr)")
        #expect(result.stderr.contains("stopped; it will run again from its start"))
        #expect(result.stderr.hasSuffix("plab: sweep interrupted; run the same command again to go on\n"))
        let left = (try? FileManager.default.contentsOfDirectory(atPath: "\(out)/results")) ?? []
        #expect(left.isEmpty, "every point was stopped, and what it wrote removed: \(left)")
        #expect(processes(mentioning: out + "/points/").isEmpty, "every point stopped")
    }

    @Test func aFailedPointIsReportedWithItsLogAndTheOthersGoOn() throws {
        let (dir, file) = try sweepFile("""
        # sweep: lr = 1e-4, -5
        set prompts 4
        set samples 2
        set lr {lr}
        step 1 --json

        """)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out").path
        let run = try runPlab(["sweep", "run", file, out, "-j", "1"])
        #expect(run.status == 1)
        #expect(run.stdout.hasPrefix("sweep \(file): 2 points, 1 complete, 1 failed: lr--5\n"))
        #expect(run.stderr.contains("plab: sweep: point lr--5 failed (exit status 1); the end of \(out)/logs/lr--5.log:\n  | plab: error: \(out)/points/lr--5.plab:4: set: lr must be a number"))
        #expect(exists("\(out)/results/lr-1e-4.done"))
        #expect(exists("\(out)/results/lr--5.jsonl.partial") && !exists("\(out)/results/lr--5.jsonl"), "what it wrote stays, as partial")
        let report = try runPlab(["sweep", "report", out])
        #expect(report.stdout.contains("1 complete, 1 incomplete"))
        #expect(report.stdout.contains("sbatch --array=1 "))
    }

    @Test func refusalsAndUsageErrorsHaveTheirExitStatuses() throws {
        let (dir, file) = try sweepFile("# sweep: preset = bf16, fp16\nprecision preset {presett}\n")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out").path
        let bad = try runPlab(["sweep", "plan", file, out])
        #expect(bad.status == 2)
        #expect(bad.stderr == "plab: error: \(file):2: unknown placeholder '{presett}'; did you mean '{preset}'? (the grid's keys: {preset}; a key is declared by '# sweep: KEY = V1, V2')\n")
        #expect(!exists(out))
        try "# sweep: preset = bf16, fp16\nprecision preset {preset}\n".write(toFile: file, atomically: true, encoding: .utf8)
        let plan = try runPlab(["sweep", "plan", file, out])
        #expect(plan.status == 0)
        #expect(plan.stdout.hasPrefix("planned 2 points of \(file) into \(out): points/, jobs.txt, slurm.sh, sweep.json\n"))
        #expect(try runPlab(["sweep", "plan", file, out]).stdout.hasPrefix("\(out) holds this plan already: 2 points, 0 complete; nothing changed\n"))
        try "# sweep: preset = bf16, fp32\nprecision preset {preset}\n".write(toFile: file, atomically: true, encoding: .utf8)
        let changed = try runPlab(["sweep", "run", file, out])
        #expect(changed.status == 2)
        #expect(changed.stderr.contains("holds the plan of another sweep (line 1 was '# sweep: preset = bf16, fp16', now '# sweep: preset = bf16, fp32')"))
        #expect(try runPlab(["sweep", "run", file, out, "-j", "0"]).status == 64)
        #expect(try runPlab(["sweep", "report", out, "--csv", "--json"]).status == 64)
        let notAPlan = try runPlab(["sweep", "report", dir.path])
        #expect(notAPlan.status == 2)
        #expect(notAPlan.stderr.contains("holds no sweep plan (no sweep.json)"))
        // One local runner per directory.
        try "# sweep: preset = bf16, fp16\nprecision preset {preset}\n".write(toFile: file, atomically: true, encoding: .utf8)
        let held = open(out, O_RDONLY | O_DIRECTORY)
        #expect(flock(held, LOCK_EX | LOCK_NB) == 0)
        let second = try runPlab(["sweep", "run", file, out])
        close(held)
        #expect(second.status == 2)
        #expect(second.stderr == "plab: error: another 'plab sweep run' is running the points of \(out); wait for it, or stop it first\n")
        let help = try runPlab(["sweep", "report", "--help"])
        #expect(help.stdout.contains("peak: the maximum of the W-step trailing moving average of accuracy"))
    }
}

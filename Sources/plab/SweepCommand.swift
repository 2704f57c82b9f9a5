// plab sweep plan|run|report: a grid of sessions from one file, run here or under the job
// runners people already use (GNU parallel, Slurm), and one table at the end.

import ArgumentParser
import Files
import Foundation
import JSON
import Lab
import Plot
import Numerics

struct Sweep: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a grid of sessions: plan it, run it here (or under GNU parallel or Slurm), report it.",
        discussion: reflowed("""
        A sweep file is a session with placeholders and a grid in its header:

          # sweep: preset = bf16, fp16
          # sweep: (algo, lr) = (grpo, 3e-4), (seq-mis, 1e-4)
          # sweep: seed = 1, 2, 3
          # sweep-exclude: preset = fp16, algo = seq-mis
          precision preset {preset}
          set algo {algo}
          set lr {lr}
          seed {seed}
          step 300 --json

        Axes multiply in the order written (the first varies slowest); a tie '(K1, K2) = (…),
        (…)' is one axis; an exclusion drops the points matching all its conditions. Each
        point runs in a process of its own on the portable backend, so its results are the
        same bits whichever runner ran it.

        Exit status: 0 done; 1 a point failed, or a file could not be written; 2 the sweep
        file or the directory was refused (FILE:LINE and what is accepted); 64 bad
        arguments; 130 Ctrl-C.

        Example:  plab sweep run sessions/sweep-demo.sweep -j 2 && plab sweep report sweeps/sweep-demo
        """),
        subcommands: [SweepPlanCommand.self, SweepRunCommand.self, SweepReportCommand.self]
    )
}

/// The exit status for a refused sweep file or directory (as `replay` uses 2 for a
/// transcript it cannot read).
let refusedInput: Int32 = 2

/// Prints `plab: error: MESSAGE` and returns exit status 2.
func refused(_ message: String) -> ExitCode {
    writeOut("plab: error: \(message)\n", to: .standardError)
    return ExitCode(refusedInput)
}

/// Reads, checks and plans `file` into `directory`: every point's commands are checked
/// against the lab's commands before anything is written.
func makeSweepPlan(file: String, directory: String, allowMany: Bool) throws -> SweepPlan {
    let sweep: SweepFile, points: [SweepPoint]
    do {
        sweep = try SweepFile(lines: try readLines(ofFile: file), name: file)
        points = try sweep.points(allowMany: allowMany)
        try sweep.validate(points, registry: .standard)
    } catch { throw refused(error.message) }
    return SweepPlan(file: sweep, points: points, directory: directory,
                     workingDirectory: FileManager.default.currentDirectoryPath, executable: plabExecutablePath())
}

/// Writes `plan` into its directory (or finds it there already); exit 2 when the directory
/// holds something else, 1 when a file cannot be written.
func writeSweepPlan(_ plan: SweepPlan) throws -> SweepPlan.Outcome {
    do { return try plan.write() } catch {
        throw error.refused ? refused(error.message) : failure(error.message)
    }
}

/// This executable, absolute and with links resolved, so that jobs run it from anywhere.
func plabExecutablePath() -> String {
    #if os(Linux)
    if let path = FileWriting.realPath("/proc/self/exe") { return path }
    #endif
    if let path = Bundle.main.executablePath, let real = FileWriting.realPath(path) { return real }
    return FileWriting.normalised(CommandLine.arguments[0], from: FileManager.default.currentDirectoryPath)
}

struct SweepPlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Write one session per point, jobs.txt, a Slurm array script and sweep.json into DIR.",
        discussion: reflowed("""
        DIR/points/NAME.plab is each point's session (NAME from its values, e.g.
        preset-bf16_algo-grpo_seed-1); line i of DIR/jobs.txt runs point i-1 on its own:

          cd WORKDIR && exec PLAB run DIR/points/NAME.plab --json --backend portable --output DIR/results/NAME.jsonl --transcript DIR/results/NAME.transcript --done DIR/results/NAME.done 2> DIR/logs/NAME.log

        with absolute paths (WORKDIR is where you planned: relative paths in the sweep file
        mean what they mean here). Outputs appear whole or not at all (written as .partial,
        renamed when the point ends well), and NAME.done marks a complete point. Run the
        jobs with 'plab sweep run', 'parallel -j N < DIR/jobs.txt' (other hosts:
        --sshloginfile, with DIR on a shared file system), or 'sbatch DIR/slurm.sh' (an
        array job, task i runs line i+1). A DIR that holds this same plan is left as it is;
        one that holds anything else is refused.
        """))

    @Argument(help: "The sweep file.")
    var file: String

    @Argument(help: "The directory for the plan and the results (made if missing).")
    var directory: String

    @Flag(help: "Plan more than \(SweepFile.pointLimit) points.")
    var yes = false

    func run() throws {
        let plan = try makeSweepPlan(file: file, directory: directory, allowMany: yes)
        let dir = shellQuoted(directory)
        switch try writeSweepPlan(plan) {
        case .written:
            writeOut("planned \(plan.points.count) points of \(file) into \(directory): points/, jobs.txt, slurm.sh, sweep.json\n")
        case .unchanged:
            let complete = plan.points.filter { plan.layout.isComplete($0.name) }.count
            writeOut("\(directory) holds this plan already: \(plan.points.count) points, \(complete) complete; nothing changed\n")
        }
        writeOut("""
        run here:       plab sweep run \(shellQuoted(file)) \(dir) -j \(PortableBackend.cores)
        GNU parallel:   parallel -j N < \(dir)/jobs.txt
        Slurm:          sbatch \(dir)/slurm.sh
        then:           plab sweep report \(dir)

        """)
    }
}

struct SweepRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Plan (if needed) and run a sweep's points here, N processes at a time.",
        discussion: reflowed("""
        Plans FILE into DIR when DIR holds no plan (default DIR: sweeps/NAME, NAME the file's
        name without its extension); an existing plan must be of this same file. Then runs
        every point that is not complete, N at a time: finished points are skipped, so a
        run stopped by Ctrl-C, a failure or a reboot is resumed by running it again. Each
        point's standard error goes to DIR/logs/NAME.log; a failed point is reported with
        the end of its log and the others go on. With N > 1 each process gets cores/N
        threads (OPENBLAS_NUM_THREADS and PLAB_THREADS), so the processes do not fight over
        the cores. On a terminal a progress line counts points and steps. Ctrl-C stops every
        running point at its next safe point and removes what they left half-done.

        Exit status: 0 every point complete; 1 a point failed; 2 a refused file or
        directory; 130 Ctrl-C.
        """))

    @Argument(help: "The sweep file.")
    var file: String

    @Argument(help: "The directory of the plan (default: sweeps/NAME).")
    var directory: String?

    @Option(name: [.customShort("j"), .customLong("jobs")], help: "Points run at once (default: the cores).")
    var jobs: Int?

    @Flag(help: "Plan more than \(SweepFile.pointLimit) points.")
    var yes = false

    func validate() throws {
        if let jobs, !(1...256).contains(jobs) { throw ValidationError("-j must be in 1…256, not \(jobs)") }
    }

    func run() throws {
        let base = FileWriting.lastComponent(of: file)
        let stem = base.contains(".") ? String(base[..<base.lastIndex(of: ".")!]) : base
        let directory = self.directory ?? "sweeps/\(stem.isEmpty ? "sweep" : stem)"
        let plan = try makeSweepPlan(file: file, directory: directory, allowMany: yes)
        _ = try writeSweepPlan(plan)
        let planned: PlannedSweep
        do { planned = try PlannedSweep(directory: plan.layout.directory) } catch { throw refused(error.message) }
        guard FileManager.default.isExecutableFile(atPath: planned.executable) else {
            throw refused("the plan in \(directory) runs \(planned.executable), which is gone; plan into a new directory")
        }
        let cores = PortableBackend.cores
        let runner = SweepRunner(plan: planned, parallel: jobs ?? cores, cores: cores)
        guard let summary = runner.run() else {
            throw refused("another 'plab sweep run' is running the points of \(directory); wait for it, or stop it first")
        }
        var line = "sweep \(file): \(planned.points.count) points, \(summary.alreadyComplete + summary.completedNow.count) complete"
        if summary.alreadyComplete > 0 { line += " (\(summary.alreadyComplete) from before)" }
        if !summary.failed.isEmpty { line += ", \(summary.failed.count) failed: \(summary.failed.joined(separator: " "))" }
        writeOut(line + "\nreport: plab sweep report \(shellQuoted(directory))\n")
        if summary.interrupted {
            writeOut("plab: sweep interrupted; run the same command again to go on\n", to: .standardError)
            throw ExitCode(130)
        }
        if !summary.failed.isEmpty { throw ExitCode.failure }
    }
}

struct SweepReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "One table of a sweep: a row per point, a row per group of seeds (mean ± sd).",
        discussion: reflowed("""
        Reads DIR/results/*.jsonl (the rows of 'step --json', of the point's last run) of
        the complete points; the others are listed with their status (incomplete: failed,
        killed or running; not run). Groups are the points that differ only in the key
        'seed' (none without such a key): each column's mean ± sample standard deviation
        over the group's complete points. Columns (W = --window):

        \(SweepColumn.all.map { "  \($0.name): \($0.definition)" }.joined(separator: "\n"))

        --csv: one table, kind = point or group, with NAME_sd columns for the groups;
        --json: one object {directory, file, keys, options, points, groups}. --curves KEY:
        instead of the table, the curves of --metric grouped by KEY (the mean over each
        value's points of their W-step moving average, per step), as CSV or with --json;
        with --plot drawn in the terminal, and --svg FILE writes the same chart as SVG.
        """))

    @Argument(help: "The sweep's directory.")
    var directory: String

    @Flag(help: "CSV instead of the table.")
    var csv = false

    @Flag(help: "One JSON object instead of the table.")
    var json = false

    @Option(help: "The accuracy that counts as reached (moving average).")
    var threshold: Double = 0.95

    @Option(help: "Collapse: peak − final above this.")
    var drop: Double = 0.1

    @Option(help: "Steps in the moving average of accuracy (W).")
    var window: Int = 10

    @Option(help: ArgumentHelp("Print the curves grouped by this key instead of the table.", valueName: "KEY"))
    var curves: String?

    @Option(help: "The curves' quantity: any number of the step rows (accuracy, k3, mean_abs_dlogp, entropy, kl_initial, …).")
    var metric: String = "accuracy"

    @Flag(help: "With --curves: draw them in the terminal instead of printing CSV.")
    var plot = false

    @Option(help: ArgumentHelp("With --curves: also write the chart as SVG to FILE.", valueName: "FILE"))
    var svg: String?

    func validate() throws {
        if csv && json { throw ValidationError("choose --csv or --json, not both") }
        if (plot || svg != nil) && curves == nil { throw ValidationError("--plot and --svg draw the curves: give --curves KEY") }
        if plot && json { throw ValidationError("choose --plot or --json, not both") }
        if !(1...100_000).contains(window) { throw ValidationError("--window must be in 1…100000") }
        if !threshold.isFinite || !drop.isFinite { throw ValidationError("--threshold and --drop must be finite numbers") }
    }

    func run() throws {
        let plan: PlannedSweep
        do { plan = try PlannedSweep(directory: directory) } catch { throw refused(error.message) }
        let report = SweepReport(plan: plan, options: SweepReportOptions(threshold: threshold, drop: drop, window: window))
        if let key = curves {
            guard plan.keys.contains(key) else {
                throw refused("--curves: the grid has no key '\(key)'; its keys: \(plan.keys.joined(separator: ", "))")
            }
            let available = report.curveMetrics
            guard available.isEmpty || available.contains(self.metric) else {
                throw refused("--metric: the step rows have no number '\(self.metric)'; they have: \(available.joined(separator: ", "))")
            }
            let metric = CurveMetric(self.metric)
            let figure = report.curvesFigure(groupedBy: key, metric: metric)
            if let svg {
                do { try FileWriting.write(Data(figure.svg().utf8), to: svg) } catch { throw refused(error.message) }
            }
            if plot {
                let color = isatty(1) == 1 && (ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty
                let style = TerminalStyle(width: terminalColumns() ?? 80, height: 16, unicode: localeIsUTF8(), color: color)
                writeOut(figure.terminal(style) + "\n")
            } else {
                writeOut(json ? report.curvesJSON(groupedBy: key, metric: metric).rendered + "\n" : report.curvesCSV(groupedBy: key, metric: metric))
            }
            if let svg { writeOut("wrote \(svg)\n", to: .standardError) }
        } else if csv {
            writeOut(report.csv())
        } else if json {
            writeOut(report.json().rendered + "\n")
        } else {
            writeOut(report.text() + "\n")
        }
    }
}

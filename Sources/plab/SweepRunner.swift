// The local runner of `plab sweep run`: a plan's pending points, N processes at a time.
//
// Each point runs as its line of jobs.txt says (the same program, arguments and working
// directory, so its results are the bits any other runner gets), with its standard error
// in logs/NAME.log. Finished points are skipped; a failed one is reported with the end of
// its log and the others go on. Ctrl-C (or SIGTERM) asks every running point to stop at its
// next safe point, starts nothing more, and removes what the stopped points left half-done;
// a second Ctrl-C repeats the request, which ends them at once.

import Files
import Foundation
import Lab

/// Signals received while the runner runs (SIGINT, SIGTERM): read by its loop.
nonisolated(unsafe) private var sweepSignalsReceived: Int32 = 0

/// What a local run of a sweep came to.
struct SweepRunSummary {
    var completedNow: [String] = []
    var alreadyComplete = 0
    var failed: [String] = []
    var interrupted = false
}

final class SweepRunner {
    private struct Running {
        var point: PlannedSweep.Point
        var process: Process
        var log: OutputFile
        var offset: UInt64 = 0
        var steps = 0
    }

    let plan: PlannedSweep
    let parallel: Int
    /// Threads each process may use when several run at once (OPENBLAS_NUM_THREADS and
    /// PLAB_THREADS); nil leaves the environment as it is (one process at a time).
    let threadsPerProcess: Int?
    private let showProgress = isatty(2) == 1
    private var running: [Running] = []
    private var summary = SweepRunSummary()
    private var stepsOfFinished = 0
    private let started = Date()

    init(plan: PlannedSweep, parallel: Int, cores: Int) {
        self.plan = plan
        self.parallel = parallel
        threadsPerProcess = parallel > 1 ? max(1, cores / parallel) : nil
    }

    /// Runs every point that is not complete; returns what happened, or nil when another
    /// runner holds the directory (two runners would start the same points).
    func run() -> SweepRunSummary? {
        let layout = plan.layout
        // One local runner per directory: a lock on the directory itself, held until return
        // (not inherited by the points: close-on-exec).
        let lock = open(layout.directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard lock >= 0, flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            if lock >= 0 { close(lock) }
            return nil
        }
        defer { close(lock) }
        var pending = plan.points.filter { !layout.isComplete($0.name) }
        summary.alreadyComplete = plan.points.count - pending.count
        stepsOfFinished = plan.points.filter { layout.isComplete($0.name) }.map(\.steps).reduce(0, +)
        installSignalHandlers()
        defer { restoreSignalHandlers() }
        var signalsForwarded: Int32 = 0
        while !pending.isEmpty || !running.isEmpty {
            let signals = sweepSignalsReceived
            if signals > signalsForwarded {
                signalsForwarded = signals
                summary.interrupted = true
                pending.removeAll()
                for child in running where child.process.isRunning { kill(child.process.processIdentifier, SIGINT) }
            }
            while running.count < parallel, !pending.isEmpty {
                start(pending.removeFirst())
            }
            for i in running.indices.reversed() where !running[i].process.isRunning {
                finish(running.remove(at: i))
            }
            drawProgress()
            usleep(100_000)
        }
        clearProgress()
        return summary
    }

    private func start(_ point: PlannedSweep.Point) {
        let job = plan.job(for: point)
        let log: OutputFile
        do { log = try OutputFile.open(forStreaming: job.log) } catch {
            report(failed: point, "cannot open its log: \(error.message)")
            return
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: job.executable)
        process.arguments = job.arguments
        process.currentDirectoryURL = URL(fileURLWithPath: job.workingDirectory)
        var environment = ProcessInfo.processInfo.environment
        if let threads = threadsPerProcess {
            environment["OPENBLAS_NUM_THREADS"] = String(threads)
            environment["PLAB_THREADS"] = String(threads)
        }
        process.environment = environment
        process.standardInput = FileHandle.nullDevice
        let handle = FileHandle(fileDescriptor: log.descriptor, closeOnDealloc: false)
        process.standardOutput = handle
        process.standardError = handle
        do { try process.run() } catch {
            try? log.close()
            report(failed: point, "cannot start \(job.executable): \(error.localizedDescription)")
            return
        }
        running.append(Running(point: point, process: process, log: log))
    }

    private func finish(_ child: Running) {
        try? child.log.close()
        let name = child.point.name
        let layout = plan.layout
        let status = child.process.terminationStatus
        let bySignal = child.process.terminationReason == .uncaughtSignal
        if status == 0 && !bySignal && layout.isComplete(name) {
            summary.completedNow.append(name)
            stepsOfFinished += child.point.steps
            event("\(name) complete (\(summary.completedNow.count + summary.alreadyComplete)/\(plan.points.count))")
        } else if summary.interrupted && (status == 130 || bySignal) {
            for file in [layout.jsonl(name), layout.transcript(name)] { unlink(StagedFile.stagingPath(of: file)) }
            event("\(name) stopped; it will run again from its start")
        } else {
            report(failed: child.point, bySignal ? "ended by signal \(status)" : "exit status \(status)")
        }
    }

    /// Says that `point` failed, with the end of its log.
    private func report(failed point: PlannedSweep.Point, _ why: String) {
        summary.failed.append(point.name)
        let log = plan.layout.log(point.name)
        var text = "plab: sweep: point \(point.name) failed (\(why)); the end of \(log):\n"
        if let data = FileManager.default.contents(atPath: log) {
            let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            let tail = lines.last == "" ? lines.dropLast().suffix(12) : lines.suffix(12)
            text += tail.map { "  | \($0)\n" }.joined()
        }
        clearProgress()
        writeOut(text, to: .standardError)
    }

    private func event(_ text: String) {
        guard !showProgress else { return }  // the progress line says it on a terminal
        writeOut("sweep: \(text)\n", to: .standardError)
    }

    // MARK: Progress

    private var progressVisible = false

    /// `sweep: 3/12 points (2 running, 1 failed) · 412/1200 steps · 1m05s`, on a terminal.
    private func drawProgress() {
        guard showProgress else { return }
        for i in running.indices { countSteps(&running[i]) }
        let total = plan.points.map(\.steps).reduce(0, +)
        let steps = stepsOfFinished + running.map(\.steps).reduce(0, +)
        let complete = summary.completedNow.count + summary.alreadyComplete
        var parts = ["\(running.count) running"]
        if !summary.failed.isEmpty { parts.append("\(summary.failed.count) failed") }
        if summary.interrupted { parts.append("stopping") }
        let elapsed = Int(Date().timeIntervalSince(started))
        let line = "sweep: \(complete)/\(plan.points.count) points (\(parts.joined(separator: ", "))) · \(steps)/\(total) steps · \(elapsed / 60)m\(String(format: "%02d", elapsed % 60))s"
        writeOut("\r\u{1B}[K" + line, to: .standardError)
        progressVisible = true
    }

    private func clearProgress() {
        guard progressVisible else { return }
        writeOut("\r\u{1B}[K", to: .standardError)
        progressVisible = false
    }

    /// Counts the step rows a running point has written so far (its `.partial` JSON lines).
    private func countSteps(_ child: inout Running) {
        let path = StagedFile.stagingPath(of: plan.layout.jsonl(child.point.name))
        guard let handle = FileHandle(forReadingAtPath: path) else { return }
        defer { try? handle.close() }
        guard let size = try? handle.seekToEnd() else { return }
        if size < child.offset { (child.offset, child.steps) = (0, 0) }  // an earlier attempt's, emptied since
        try? handle.seek(toOffset: child.offset)
        guard let data = try? handle.readToEnd(), let last = data.lastIndex(of: 10) else { return }
        let whole = data[data.startIndex...last]
        child.offset += UInt64(whole.count)
        child.steps += whole.split(separator: 10).filter { $0.starts(with: Array("{\"run\":".utf8)) }.count
    }
}

// MARK: - Signals

nonisolated(unsafe) private var previousHandlers: [Int32: sigaction] = [:]

private func installSignalHandlers() {
    sweepSignalsReceived = 0
    for signal in [SIGINT, SIGTERM] {
        var action = sigaction()
        #if os(Linux)
        action.__sigaction_handler.sa_handler = { _ in sweepSignalsReceived += 1 }
        #else
        action.__sigaction_u.__sa_handler = { _ in sweepSignalsReceived += 1 }
        #endif
        sigemptyset(&action.sa_mask)
        action.sa_flags = SA_RESTART
        var old = sigaction()
        sigaction(signal, &action, &old)
        previousHandlers[signal] = old
    }
    // A parent may have started plab with them blocked (the mask is inherited).
    var unblock = sigset_t()
    sigemptyset(&unblock)
    sigaddset(&unblock, SIGINT)
    sigaddset(&unblock, SIGTERM)
    sigprocmask(SIG_UNBLOCK, &unblock, nil)
}

private func restoreSignalHandlers() {
    for (signal, old) in previousHandlers {
        var action = old
        sigaction(signal, &action, nil)
    }
    previousHandlers = [:]
}

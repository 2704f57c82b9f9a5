import Files
import Foundation
import Testing
import Lab

/// A plan of an inline sweep file into `directory`, jobs running /opt/plab from /work.
func sweepPlan(_ text: String, into directory: String, workingDirectory: String = "/work") throws -> SweepPlan {
    let file = try sweep(text)
    return SweepPlan(file: file, points: try file.points(), directory: directory,
                     workingDirectory: workingDirectory, executable: "/opt/plab")
}

let twoByTwo = """
# sweep: preset = bf16, fp16
# sweep: seed = 1, 2
precision preset {preset}
seed {seed}
step 2 --json
"""

/// Planning: names, the jobs' command lines, the Slurm script, sweep.json, and what a plan
/// may write over.
@Suite struct SweepPlanTests {
    @Test func shellQuotingLeavesSafeWordsAndQuotesTheRest() {
        #expect(shellQuoted("/a/b-c_d.e+f=g:h,i@j%k") == "/a/b-c_d.e+f=g:h,i@j%k")
        #expect(shellQuoted("a b") == "'a b'")
        #expect(shellQuoted("it's") == "'it'\\''s'")
        #expect(shellQuoted("$HOME") == "'$HOME'")
        #expect(shellQuoted("") == "''")
    }

    @Test func eachJobIsOneSelfContainedCommandLine() throws {
        let plan = try sweepPlan(twoByTwo, into: "out")
        #expect(plan.layout.directory == "/work/out")
        let job = plan.job(for: plan.points[2])
        #expect(job.shellLine == "cd /work && exec /opt/plab run /work/out/points/preset-fp16_seed-1.plab --json --backend portable"
            + " --output /work/out/results/preset-fp16_seed-1.jsonl --transcript /work/out/results/preset-fp16_seed-1.transcript"
            + " --done /work/out/results/preset-fp16_seed-1.done 2> /work/out/logs/preset-fp16_seed-1.log")
        let lines = plan.jobsText.split(separator: "\n").map(String.init)
        #expect(lines.count == 4)
        #expect(lines == plan.points.map { plan.job(for: $0).shellLine })
        #expect(lines[0].contains("preset-bf16_seed-1") && lines[3].contains("preset-fp16_seed-2"))
    }

    @Test func pathsWithSpacesAndQuotesAreQuoted() throws {
        let plan = try sweepPlan(twoByTwo, into: "my sweep", workingDirectory: "/home/o'brien/lab")
        let line = plan.job(for: plan.points[0]).shellLine
        #expect(line.hasPrefix("cd '/home/o'\\''brien/lab' && exec /opt/plab run '/home/o'\\''brien/lab/my sweep/points/preset-bf16_seed-1.plab'"))
        // sh reads the quoted words back as they were.
        let job = plan.job(for: plan.points[0])
        let words = [job.workingDirectory, job.executable] + job.arguments + [job.log]
        #expect(try shellWords("printf '%s\\n' " + words.map(shellQuoted).joined(separator: " ")) == words)
    }

    @Test func theSlurmScriptIsAnArrayOfOneTaskPerPoint() throws {
        let plan = try sweepPlan(twoByTwo, into: "/scratch/s1")
        let script = plan.slurmScript
        #expect(script.hasPrefix("#!/bin/sh\n#SBATCH --job-name=plab-sweep-s1\n#SBATCH --array=0-3\n"))
        #expect(script.contains("#SBATCH --output=/scratch/s1/logs/slurm-%A_%a.out\n"))
        #expect(script.contains("export OPENBLAS_NUM_THREADS=\"$threads\" PLAB_THREADS=\"$threads\"\n"))
        #expect(script.contains("line=$(sed -n \"$((task + 1))p\" /scratch/s1/jobs.txt)\n"))
        #expect(script.hasSuffix("exec sh -c \"$line\"\n"))
    }

    @Test func theSlurmScriptRunsLineTaskPlusOneOfJobsTxt() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let plan = try sweepPlan(twoByTwo, into: dir.path)
        try plan.write()
        // Jobs that print their line number instead of running plab.
        let jobs = (1...4).map { "echo line-\($0)\n" }.joined()
        try FileWriting.write(Data(jobs.utf8), to: plan.layout.jobsFile)
        for task in 0..<4 {
            let output = try runShell(["sh", plan.layout.slurmFile], environment: ["SLURM_ARRAY_TASK_ID": String(task)])
            #expect(output == "line-\(task + 1)\n")
        }
    }

    @Test func sweepJSONHoldsTheGridAndThePointsAndReadsBack() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let plan = try sweepPlan(twoByTwo + "\n# sweep-exclude: preset = fp16, seed = 2", into: dir.path)
        #expect(try plan.write() == .written)
        let read = try PlannedSweep(directory: dir.path)
        #expect(read.keys == ["preset", "seed"])
        #expect(read.points.map(\.name) == ["preset-bf16_seed-1", "preset-bf16_seed-2", "preset-fp16_seed-1"])
        #expect(read.points[2] == PlannedSweep.Point(index: 2, name: "preset-fp16_seed-1", values: ["preset": "fp16", "seed": "1"], steps: 2))
        #expect(read.executable == "/opt/plab" && read.workingDirectory == "/work" && read.file == "s.sweep")
        #expect(read.source == plan.file.source)
        let session = try String(contentsOfFile: plan.layout.session("preset-fp16_seed-1"), encoding: .utf8)
        #expect(session.contains("\nprecision preset fp16\nseed 1\nstep 2 --json\n# sweep-exclude: preset = fp16, seed = 2\n# sweep point preset-fp16_seed-1: preset = fp16, seed = 1\n"))
        #expect(try String(contentsOfFile: plan.layout.jobsFile, encoding: .utf8) == plan.jobsText)
        #expect(try String(contentsOfFile: plan.layout.slurmFile, encoding: .utf8) == plan.slurmScript)
        for sub in ["results", "logs"] { #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent(sub).path)) }
    }

    @Test func aPlanIsReusedForTheSameFileAndRefusedForAnother() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(try sweepPlan(twoByTwo, into: dir.path).write() == .written)
        let result = dir.appendingPathComponent("results/preset-bf16_seed-1.jsonl").path
        try FileWriting.write(Data("{}\n".utf8), to: result)
        #expect(try sweepPlan(twoByTwo, into: dir.path).write() == .unchanged)
        #expect(FileManager.default.fileExists(atPath: result), "results are kept")
        let changed = twoByTwo.replacingOccurrences(of: "step 2", with: "step 5")
        #expect(throws: SweepPlanError(message: "'\(dir.path)' holds the plan of another sweep (line 5 was 'step 2 --json', now 'step 5 --json'); plan into a new directory, or remove it first", refused: true)) {
            try sweepPlan(changed, into: dir.path).write()
        }
    }

    @Test func aDirectoryHoldingAnythingElseIsRefused() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileWriting.write(Data("mine\n".utf8), to: dir.appendingPathComponent("notes.txt").path)
        do { try sweepPlan(twoByTwo, into: dir.path).write(); Issue.record("planned over notes.txt") } catch let error as SweepPlanError {
            #expect(error.refused)
            #expect(error.message == "cannot plan into '\(dir.path)': it is not empty and holds no sweep plan (notes.txt); give a new or empty directory")
        }
        #expect(try String(contentsOfFile: dir.appendingPathComponent("notes.txt").path, encoding: .utf8) == "mine\n")
        let file = dir.appendingPathComponent("notes.txt").path
        do { try sweepPlan(twoByTwo, into: file).write(); Issue.record("planned into a file") } catch let error as SweepPlanError {
            #expect(error.message == "cannot plan into '\(file)': it is not a directory")
        }
        do { try sweepPlan(twoByTwo, into: "/").write(); Issue.record("planned into /") } catch let error as SweepPlanError {
            #expect(error.refused && error.message.contains("root directory"))
        }
    }

    @Test func aPlanStoppedHalfWayIsPlannedAgain() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let plan = try sweepPlan(twoByTwo, into: dir.path)
        try plan.write()
        try FileManager.default.removeItem(atPath: plan.layout.planFile)
        #expect(try plan.write() == .written)
        #expect(FileManager.default.fileExists(atPath: plan.layout.planFile))
    }
}

/// Runs a program and returns its standard output.
func runShell(_ arguments: [String], environment: [String: String] = [:]) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self)
}

/// The words `sh` makes of `line` (run through printf, one word a line).
func shellWords(_ line: String) throws -> [String] {
    try runShell(["sh", "-c", line]).split(separator: "\n").map(String.init)
}

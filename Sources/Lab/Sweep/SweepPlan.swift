// Planning a sweep: one session per point, one self-contained command line per point
// (jobs.txt, for any job runner), a Slurm array script, and sweep.json (the grid and its
// points), all in one directory:
//
//     DIR/sweep.json                 the sweep file's text, its keys and points (written last)
//     DIR/jobs.txt                   line i+1: the job of point i
//     DIR/slurm.sh                   sbatch array script: task i runs line i+1 of jobs.txt
//     DIR/points/NAME.plab           the point's session
//     DIR/results/NAME.jsonl         its JSON lines     } each under NAME.….partial while it runs,
//     DIR/results/NAME.transcript    its transcript     } renamed when every line ran
//     DIR/results/NAME.done          written last: the point is complete
//     DIR/logs/NAME.log              its standard error
//
// A job is `cd WORKDIR && exec PLAB run DIR/points/NAME.plab --json --backend portable
// --output … --transcript … --done … 2> DIR/logs/NAME.log`, every path absolute: it runs
// the same from any directory, under any runner, and relative paths in the sweep file mean
// what they mean where the plan was made.

import Files
import Foundation
import JSON

/// Where a sweep's files live in its directory.
public struct SweepLayout: Sendable, Equatable {
    /// The directory, absolute.
    public let directory: String

    public init(directory: String) { self.directory = directory }

    public var planFile: String { directory + "/sweep.json" }
    public var jobsFile: String { directory + "/jobs.txt" }
    public var slurmFile: String { directory + "/slurm.sh" }
    public var pointsDirectory: String { directory + "/points" }
    public var resultsDirectory: String { directory + "/results" }
    public var logsDirectory: String { directory + "/logs" }

    public func session(_ name: String) -> String { pointsDirectory + "/\(name).plab" }
    public func jsonl(_ name: String) -> String { resultsDirectory + "/\(name).jsonl" }
    public func transcript(_ name: String) -> String { resultsDirectory + "/\(name).transcript" }
    public func doneMarker(_ name: String) -> String { resultsDirectory + "/\(name).done" }
    public func log(_ name: String) -> String { logsDirectory + "/\(name).log" }

    /// The names a plan puts in its directory: a directory holding nothing else (and no
    /// sweep.json) is a plan that was stopped half-way, and may be planned again.
    static let entries: Set<String> = ["sweep.json", "jobs.txt", "slurm.sh", "points", "results", "logs"]

    /// The job that runs the point `name`: its session on the portable backend, JSON lines,
    /// transcript and done marker into results/, standard error into logs/.
    public func job(for name: String, executable: String, workingDirectory: String) -> SweepJob {
        SweepJob(executable: executable,
                 arguments: ["run", session(name), "--json", "--backend", SweepPlan.backend,
                             "--output", jsonl(name), "--transcript", transcript(name), "--done", doneMarker(name)],
                 workingDirectory: workingDirectory, log: log(name))
    }

    /// Whether `name` finished: its done marker and its JSON lines are both in place.
    public func isComplete(_ name: String) -> Bool {
        FileManager.default.fileExists(atPath: doneMarker(name)) && FileManager.default.fileExists(atPath: jsonl(name))
    }

    /// Whether `name` left output that never completed (`.partial` files: failed, killed,
    /// or running now).
    public func hasPartialOutput(_ name: String) -> Bool {
        FileManager.default.fileExists(atPath: StagedFile.stagingPath(of: jsonl(name)))
    }
}

/// One point's job: the program, its arguments, where it runs and where its errors go.
public struct SweepJob: Sendable, Equatable {
    public var executable: String
    public var arguments: [String]
    public var workingDirectory: String
    public var log: String

    /// The job as one `sh` command line, every word quoted as needed.
    public var shellLine: String {
        "cd \(shellQuoted(workingDirectory)) && exec " + ([executable] + arguments).map(shellQuoted).joined(separator: " ")
            + " 2> " + shellQuoted(log)
    }
}

/// `word` as one `sh` word: as it is when it holds only safe characters, else in single
/// quotes (a `'` inside written `'\''`).
public func shellQuoted(_ word: String) -> String {
    let safe = !word.isEmpty && word.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "/._-+=:,@%".contains($0)) }
    return safe ? word : "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

/// A sweep planned into a directory: the checked file, its points and their jobs.
public struct SweepPlan: Sendable {
    /// The version of sweep.json's layout; a plan of another version is not reused.
    public static let version = 1
    /// Every job runs on this backend: the same bits under every runner and on every machine.
    public static let backend = "portable"

    public let file: SweepFile
    public let points: [SweepPoint]
    public let layout: SweepLayout
    /// The directory jobs run in: where the plan was made.
    public let workingDirectory: String
    /// The plab executable the jobs run, absolute.
    public let executable: String

    /// Plans `file` into `directory` (made absolute from `workingDirectory`).
    public init(file: SweepFile, points: [SweepPoint], directory: String, workingDirectory: String, executable: String) {
        self.file = file
        self.points = points
        layout = SweepLayout(directory: FileWriting.normalised(directory, from: workingDirectory))
        self.workingDirectory = workingDirectory
        self.executable = executable
    }

    /// The job that runs `point`.
    public func job(for point: SweepPoint) -> SweepJob {
        layout.job(for: point.name, executable: executable, workingDirectory: workingDirectory)
    }

    /// jobs.txt: one line per point, in point order.
    public var jobsText: String { points.map { job(for: $0).shellLine + "\n" }.joined() }

    /// slurm.sh: an array job of one task per point; task i runs line i+1 of jobs.txt.
    public var slurmScript: String {
        let sweepName = FileWriting.lastComponent(of: layout.directory)
        return """
        #!/bin/sh
        #SBATCH --job-name=plab-sweep-\(String(sweepName.map { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) ? $0 : "_" }))
        #SBATCH --array=0-\(points.count - 1)
        #SBATCH --ntasks=1
        #SBATCH --cpus-per-task=1
        #SBATCH --output=\(layout.logsDirectory)/slurm-%A_%a.out
        # The sweep \(file.name) (\(points.count) points), planned by plab sweep plan.
        # Task i runs line i+1 of jobs.txt: one point, its outputs in results/, its errors
        # in logs/. Submit with: sbatch \(shellQuoted(layout.slurmFile))
        # Some points only: sbatch --array=2,5 \(shellQuoted(layout.slurmFile))
        set -eu
        threads="${SLURM_CPUS_PER_TASK:-1}"
        export OPENBLAS_NUM_THREADS="$threads" PLAB_THREADS="$threads"
        task="${SLURM_ARRAY_TASK_ID:?slurm.sh runs as an array job: sbatch slurm.sh}"
        line=$(sed -n "$((task + 1))p" \(shellQuoted(layout.jobsFile)))
        [ -n "$line" ] || { echo "slurm.sh: jobs.txt has no line $((task + 1))" >&2; exit 1; }
        exec sh -c "$line"

        """
    }

    /// sweep.json: the sweep file's name and text, where jobs run, the keys, the axes, the
    /// exclusions and every point (index, name, values, planned RL steps).
    public var json: JSONObject {
        var o: JSONObject = [
            "version": .int(SweepPlan.version), "file": .string(file.name), "source": .string(file.source),
            "working_directory": .string(workingDirectory), "plab": .string(executable),
            "backend": .string(SweepPlan.backend), "keys": .array(file.keys.map { .string($0) }),
        ]
        o.set("axes", .array(file.axes.map { axis in
            .object(["keys": .array(axis.keys.map { .string($0) }),
                     "values": .array(axis.values.map { .array($0.map { .string($0) }) }), "line": .int(axis.line)])
        }))
        o.set("exclusions", .array(file.exclusions.map { exclusion in
            var conditions = JSONObject()
            for condition in exclusion.conditions { conditions.set(condition.key, .string(condition.value)) }
            return .object(["where": .object(conditions), "line": .int(exclusion.line)])
        }))
        o.set("points", .array(points.map { point in
            var values = JSONObject()
            for (key, value) in point.assignments { values.set(key, .string(value)) }
            return .object(["index": .int(point.index), "name": .string(point.name), "values": .object(values),
                            "steps": .int(file.steps(for: point))])
        }))
        return o
    }

    /// What writing the plan did.
    public enum Outcome: Sendable, Equatable {
        /// A new plan (or one that had been stopped half-way) was written.
        case written
        /// The directory already held this very plan; nothing was changed.
        case unchanged
    }

    /// Writes the plan into its directory (made if missing). A directory that holds the
    /// plan of this same sweep file is left as it is (its results are kept); one that holds
    /// another sweep's plan, or anything else, is refused: nothing is overwritten that the
    /// plan did not write.
    @discardableResult
    public func write() throws(SweepPlanError) -> Outcome {
        let directory = layout.directory
        func refuse(_ message: String) -> SweepPlanError { SweepPlanError(message: message, refused: true) }
        do { try FileWriting.refuseProtected(directory, as: "a directory for the sweep") } catch { throw refuse(error.message) }
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw refuse("cannot plan into '\(directory)': it is not a directory") }
            if fm.fileExists(atPath: layout.planFile) {
                let existing: PlannedSweep
                do { existing = try PlannedSweep(directory: directory) } catch { throw refuse(error.message) }
                if existing.source == file.source && existing.version == SweepPlan.version { return .unchanged }
                throw refuse("'\(directory)' holds the plan of another sweep (\(existing.difference(from: file))); plan into a new directory, or remove it first")
            }
            let entries = (try? fm.contentsOfDirectory(atPath: directory)) ?? []
            let foreign = entries.filter { !SweepLayout.entries.contains($0) }.sorted()
            if !foreign.isEmpty {
                throw refuse("cannot plan into '\(directory)': it is not empty and holds no sweep plan (\(foreign.prefix(3).joined(separator: ", "))\(foreign.count > 3 ? ", …" : "")); give a new or empty directory")
            }
        }
        for sub in [directory, layout.pointsDirectory, layout.resultsDirectory, layout.logsDirectory] {
            do { try fm.createDirectory(atPath: sub, withIntermediateDirectories: true) } catch {
                throw SweepPlanError(message: "cannot make the directory '\(sub)': \(error.localizedDescription)", refused: false)
            }
        }
        func put(_ text: String, _ path: String) throws(SweepPlanError) {
            do { try FileWriting.write(Data(text.utf8), to: path) } catch { throw SweepPlanError(message: error.message, refused: false) }
        }
        for point in points { try put(file.session(for: point).joined(separator: "\n") + "\n", layout.session(point.name)) }
        try put(jobsText, layout.jobsFile)
        try put(slurmScript, layout.slurmFile)
        try put(json.rendered + "\n", layout.planFile)  // last: its presence says the plan is whole
        return .written
    }
}

/// Why a plan was not written: the directory was refused (it holds something else), or a
/// file could not be written.
public struct SweepPlanError: Error, Sendable, Equatable {
    public var message: String
    public var refused: Bool

    public init(message: String, refused: Bool) {
        self.message = message
        self.refused = refused
    }
}

/// A plan read back from a directory's sweep.json: what `run` and `report` work from.
public struct PlannedSweep: Sendable {
    public struct Point: Sendable, Equatable {
        public var index: Int
        public var name: String
        public var values: [String: String]
        public var steps: Int

        public init(index: Int, name: String, values: [String: String], steps: Int) {
            self.index = index
            self.name = name
            self.values = values
            self.steps = steps
        }
    }

    public let layout: SweepLayout
    public let version: Int
    public let file: String
    public let source: String
    public let workingDirectory: String
    public let executable: String
    public let keys: [String]
    public let points: [Point]

    /// Reads DIR/sweep.json, or explains why it cannot.
    public init(directory: String) throws(LabError) {
        layout = SweepLayout(directory: FileWriting.normalised(directory, from: FileManager.default.currentDirectoryPath))
        let path = layout.planFile
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LabError("'\(directory)' holds no sweep plan (no sweep.json); make one with 'plab sweep plan FILE \(directory)'")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let version = object["version"] as? Int, let file = object["file"] as? String,
              let source = object["source"] as? String, let workingDirectory = object["working_directory"] as? String,
              let executable = object["plab"] as? String, let keys = object["keys"] as? [String],
              let points = object["points"] as? [[String: Any]] else {
            throw LabError("\(path): not a sweep plan plab can read (damaged, or written by another version)")
        }
        var read: [Point] = []
        for point in points {
            guard let index = point["index"] as? Int, let name = point["name"] as? String,
                  let values = point["values"] as? [String: String], let steps = point["steps"] as? Int,
                  !name.isEmpty, !name.contains("/") else {
                throw LabError("\(path): point \(read.count + 1) is damaged")
            }
            read.append(Point(index: index, name: name, values: values, steps: steps))
        }
        self.version = version
        self.file = file
        self.source = source
        self.workingDirectory = workingDirectory
        self.executable = executable
        self.keys = keys
        self.points = read
    }

    /// The job that runs `point`, as jobs.txt has it.
    public func job(for point: Point) -> SweepJob {
        layout.job(for: point.name, executable: executable, workingDirectory: workingDirectory)
    }

    /// The first line where this plan's sweep file and `file` differ, for people.
    func difference(from file: SweepFile) -> String {
        if version != SweepPlan.version { return "planned by another version of plab" }
        let old = source.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let new = file.source.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        for i in 0..<max(old.count, new.count) {
            let a = i < old.count ? old[i] : nil, b = i < new.count ? new[i] : nil
            if a != b { return "line \(i + 1) was '\(a ?? "")', now '\(b ?? "")'" }
        }
        return "the same text"
    }
}

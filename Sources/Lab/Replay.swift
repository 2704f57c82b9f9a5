// Replaying a transcript: run its commands again from its header's state and compare.

import Numerics

/// The outcome of a replay.
public struct ReplayResult: Sendable {
    /// The transcript the replay produced (header of now, then the commands run so far).
    public var transcript: [String]
    /// Nil when every line matched; else the first difference in context, for people.
    public var difference: String?
}

extension Transcript {
    /// A fresh session in the state the header describes: its seed, backend and settings,
    /// then its `# state:` commands. A transcript is a file people share, so a state line
    /// may only run a command that restores state (`Command.restoresState`: model, precision,
    /// engine, set, seed, task); anything else is refused with FILE:LINE before anything
    /// runs. Each state line is passed to `announce` before it runs. `files` is where the
    /// session's paths lead (a replay's scratch directory).
    public func makeSession(name: String, registry: Registry = .standard, files: FileAccess = FileAccess(),
                            announce: (String) -> Void = { _ in }) throws(LabError) -> Session {
        for line in header.state {
            let command: Command
            do throws(LabError) {
                let words = try Words.split(line.text)
                guard !words.isEmpty else { throw LabError("an empty command") }
                let invocation = try registry.parse(words)
                guard !invocation.wantsHelp else { throw LabError("--help restores nothing") }
                command = invocation.command
            } catch {
                throw LabError("\(name):\(line.number): the header's '# state: \(line.text)' cannot run: \(error.message)")
            }
            guard command.restoresState else {
                let allowed = registry.stateCommandPaths.joined(separator: ", ")
                throw LabError("\(name):\(line.number): the header's '# state: \(line.text)' is refused: a state line may only restore state (\(allowed)); a transcript's commands go on 'plab> ' lines, where a replay shows them")
            }
        }
        let session = Session(registry: registry)
        session.files = files
        session.reportsInJSON = header.json
        func apply(_ setting: String, _ value: String, line: Int?) throws(LabError) {
            do { try session.settings.set(setting, to: value) } catch {
                throw LabError("\(name):\(line.map(String.init) ?? "header"): \(error.message)")
            }
        }
        try apply("seed", String(header.seed), line: headerLines["seed"])
        try apply("backend", header.backend, line: headerLines["backend"])
        for line in header.settings {
            let parts = line.text.split(separator: " ", maxSplits: 1).map(String.init)
            guard parts.count == 2 else {
                throw LabError("\(name):\(line.number): expected '# set: NAME VALUE', found '# set: \(line.text)'")
            }
            try apply(parts[0], parts[1], line: line.number)
        }
        for line in header.state {
            announce("\(name):\(line.number): # state: \(line.text)")
            if case .failed(let message) = session.execute(line.text, to: CollectedOutput()) {
                throw LabError("\(name):\(line.number): the header's '# state: \(line.text)' failed: \(message)")
            }
        }
        return session
    }

    /// Runs every command again, in a fresh session with the header's state, and (when
    /// `compare`) compares each command's output with the recorded one, stopping at the
    /// first difference. Volatile lines (`~ `) match any volatile line. Every file the
    /// commands write goes into a scratch directory, removed at the end: a replay writes
    /// nothing else. Throws `LabError` for a header it cannot apply, `Interrupted` when
    /// Ctrl-C stopped a command.
    public func replay(name: String, compare: Bool = true, registry: Registry = .standard,
                       announce: (String) -> Void = { _ in }) throws -> ReplayResult {
        let files = try FileAccess.makeScratch()
        defer { files.removeScratch() }
        let session = try makeSession(name: name, registry: registry, files: files, announce: announce)
        defer { session.stopRecording() }
        var produced: [String] = []
        let writer = TranscriptWriter { produced.append($0) }
        writer.writeHeader(TranscriptHeader(session: session))
        for entry in entries {
            let start = produced.count
            let outcome = session.execute(entry.command, to: writer)
            if outcome == .interrupted { throw Interrupted() }
            guard compare else { continue }
            let got = Array(produced[start...])
            let expected = [ScriptLine(number: entry.line, text: TranscriptWriter.commandPrefix + entry.command)] + entry.output
            if let difference = firstDifference(expected: expected, got: got, name: name) {
                return ReplayResult(transcript: produced, difference: difference)
            }
            if outcome == .quit { break }
        }
        return ReplayResult(transcript: produced, difference: nil)
    }

    private func firstDifference(expected: [ScriptLine], got: [String], name: String) -> String? {
        for i in 0..<max(expected.count, got.count) {
            let e = i < expected.count ? expected[i].text : nil
            let g = i < got.count ? got[i] : nil
            if let e, let g, e == g || (e.hasPrefix(TranscriptWriter.volatilePrefix) && g.hasPrefix(TranscriptWriter.volatilePrefix)) {
                continue
            }
            let lineNumber = i < expected.count ? expected[i].number : (expected.last?.number ?? 0) + 1
            return describeDifference(at: lineNumber, expected: e, got: g, command: expected[0], name: name)
        }
        return nil
    }

    /// The report of a difference: a few recorded lines before it, then expected and got.
    private func describeDifference(at lineNumber: Int, expected: String?, got: String?, command: ScriptLine,
                                    name: String) -> String {
        var out = ["replay of \(name) differs at line \(lineNumber) (in the output of line \(command.number): \(command.text))"]
        let all = allLines
        let width = String(lineNumber).count
        func numbered(_ mark: String, _ number: Int, _ text: String) -> String {
            let n = String(number)
            return "\(mark) \(String(repeating: " ", count: width - n.count))\(n)  \(text)"
        }
        for line in all where line.number < lineNumber && line.number >= lineNumber - 3 {
            out.append(numbered(" ", line.number, line.text))
        }
        out.append(numbered("-", lineNumber, expected ?? "(end of the recorded output)"))
        out.append(numbered("+", lineNumber, got ?? "(end of the output)"))
        out.append("(- recorded, + this run)")
        if let library = FloatLibrary(rawValue: header.backend), let recorded = header.libraries[library],
           recorded != LibraryBackend.description(of: library) {
            out.append("note: this transcript was made with the \(library.rawValue) backend on another build or processor (\(recorded)); this machine has \(LibraryBackend.description(of: library)). The library picks its kernels by CPU and the lab cuts its products by the processor count, so the last bits of matrix products can differ: record with 'set backend portable' to get transcripts that replay on every machine.")
        } else if header.version != plabVersion {
            out.append("note: this transcript was made by plab \(header.version); this is plab \(plabVersion).")
        }
        return out.joined(separator: "\n")
    }

    /// Every command and output line with its number (the header excluded).
    private var allLines: [ScriptLine] {
        entries.flatMap { [ScriptLine(number: $0.line, text: TranscriptWriter.commandPrefix + $0.command)] + $0.output }
    }
}

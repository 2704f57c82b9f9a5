// Transcripts: what a session printed, command by command, with a header that is enough to
// run it again.
//
//     # plab 0.1.0 transcript
//     # date: 2026-01-05T10:00:00Z          (ignored by the replay checker)
//     # seed: 0
//     # backend: portable
//     # openblas: Haswell; OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64; …
//     # onednn: oneDNN 2.6.3 (avx2, OpenMP); …   (the libraries' builds on the recording machine)
//     # json: on                            (only from `plab run --json`: reports in JSON)
//     # set: color off                      (one per setting not at its default)
//     # state: model load ckpt/base         (commands that rebuild other state)
//     plab> cast bf16 1.00390625
//     1.00390625 -> 1.0
//     plab> fromats
//     error: unknown command 'fromats'; did you mean 'formats'? (try 'help')
//
// Output lines that would start with `plab>`, `~ ` or `\` are written with a leading `\`.
// A line starting `~ ` holds a volatile figure (a timing): the checker compares only that
// such a line is there.

import Files
import Numerics
import Foundation

/// The `#` lines at the top of a transcript.
public struct TranscriptHeader: Sendable, Equatable {
    public var version: String
    public var date: String?
    public var seed: Int
    public var backend: String
    /// How each float32 library computes products on the machine that made it
    /// (`LibraryBackend.description(of:)`), to explain differences of `openblas` and `onednn`
    /// transcripts.
    public var libraries: [FloatLibrary: String] = [:]
    /// Settings other than seed and backend that were not at their defaults.
    public var settings: [ScriptLine] = []
    /// Commands that rebuild the rest of the state, from the registry's restorers.
    public var state: [ScriptLine] = []
    /// What no command could rebuild (the restorers that returned nil).
    public var unrestorable: [String] = []
    /// Every reporting command reported in JSON (`plab run --json`): `# json: on`, and a
    /// replay does the same.
    public var json = false

    /// The header of a transcript of `session` as it is now.
    public init(session: Session, date: Date = Date()) {
        version = plabVersion
        self.date = ISO8601DateFormatter().string(from: date)
        seed = session.settings.integer("seed")
        backend = session.settings.text("backend")
        for library in FloatLibrary.allCases { libraries[library] = LibraryBackend.description(of: library) }
        json = session.reportsInJSON
        settings = session.settings.changed
            .filter { $0.name != "seed" && $0.name != "backend" }
            .map { ScriptLine(number: 0, text: "\($0.name) \($0.value)") }
        for restorer in session.registry.restorers {
            if let commands = restorer.commands(session) {
                state += commands.map { ScriptLine(number: 0, text: $0) }
            } else {
                unrestorable.append(restorer.name)
            }
        }
    }

    init(version: String, seed: Int, backend: String) {
        self.version = version
        self.seed = seed
        self.backend = backend
    }

    /// The header's lines, without newlines.
    public var lines: [String] {
        var out = ["# plab \(version) transcript"]
        if let date { out.append("# date: \(date)") }
        out.append("# seed: \(seed)")
        out.append("# backend: \(backend)")
        for library in FloatLibrary.allCases {
            if let build = libraries[library] { out.append("# \(library.rawValue): \(build)") }
        }
        if json { out.append("# json: on") }
        out += settings.map { "# set: \($0.text)" }
        out += state.map { "# state: \($0.text)" }
        return out
    }
}

/// Writes a transcript as the session goes: `plab> COMMAND`, then its output, then
/// `error: MESSAGE` if it failed. Commands that are not transcribed leave no trace.
public final class TranscriptWriter: SessionOutput {
    private let emit: (String) -> Void
    private var active = false

    /// `emit` receives one transcript line at a time, without its newline.
    public init(_ emit: @escaping (String) -> Void) { self.emit = emit }

    public func writeHeader(_ header: TranscriptHeader) {
        header.lines.forEach(emit)
    }

    public func begin(_ line: String, transcribed: Bool) {
        active = transcribed
        if active { emit(TranscriptWriter.commandPrefix + line) }
    }

    public func write(_ text: String, as kind: OutputKind) {
        guard active else { return }
        // A timed line's figure stays out: the transcript keeps what every replay repeats.
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            emit(kind == .volatile ? TranscriptWriter.volatilePrefix + line : TranscriptWriter.escaped(String(line)))
        }
    }

    public func fail(_ message: String) {
        guard active else { return }
        emit("error: " + message.replacingNewlines(with: " "))
    }

    static let commandPrefix = "plab> "
    static let volatilePrefix = "~ "

    /// An output line as written: with a `\` in front if it could be taken for a command,
    /// a volatile line or an escaped line.
    static func escaped(_ line: String) -> String {
        line.hasPrefix("plab>") || line.hasPrefix(volatilePrefix) || line.hasPrefix("\\") ? "\\" + line : line
    }
}

/// The transcript that `record FILE` writes, line by line, straight to the file (each line
/// is handed to the system as it is written, so a crash loses nothing printed).
final class TranscriptRecorder: SessionOutput {
    /// The path as the user gave it.
    let path: String
    private let file: OutputFile
    private var writer: TranscriptWriter!
    /// The first write error; the session stops the recording at the command that met it.
    private(set) var writeError: String?

    /// Opens `file` (the path to write; `path` is how the user named it) by the lab's
    /// writing policy and writes the header; throws if either fails.
    init(path file: String, shownAs path: String, header: TranscriptHeader) throws(LabError) {
        do { self.file = try OutputFile.open(forStreaming: file, shownAs: path) } catch { throw LabError(error.message) }
        self.path = path
        writer = TranscriptWriter { [unowned self] line in self.append(line) }
        writer.writeHeader(header)
        if let writeError { throw LabError(writeError) }
    }

    private func append(_ line: String) {
        guard writeError == nil else { return }
        do { try file.write(Data((line + "\n").utf8)) } catch { writeError = error.message }
    }

    /// Flushes and closes the transcript; throws the first write error, if any.
    func close() throws(LabError) {
        if let writeError { throw LabError(writeError) }
        do {
            try file.sync()
            try file.close()
        } catch { throw LabError(error.message) }
    }

    func begin(_ line: String, transcribed: Bool) { writer.begin(line, transcribed: transcribed) }
    func write(_ text: String, as kind: OutputKind) { writer.write(text, as: kind) }
    func fail(_ message: String) { writer.fail(message) }
}

/// Writes only the JSON reports, one per line (`plab run --json`).
public final class JSONLinesOutput: SessionOutput {
    private let emit: (String) -> Void

    public init(_ emit: @escaping (String) -> Void) { self.emit = emit }

    public func begin(_ line: String, transcribed: Bool) {}
    public func write(_ text: String, as kind: OutputKind) { if kind == .json { emit(text) } }
    public func fail(_ message: String) {}
}

/// A transcript read back: its header and each command with the output recorded under it.
public struct Transcript: Sendable {
    public struct Entry: Sendable {
        public var command: String
        /// The transcript line of `plab> COMMAND`.
        public var line: Int
        /// The output lines as written (still escaped).
        public var output: [ScriptLine]
    }

    public var header: TranscriptHeader
    /// Where the header's seed, backend and settings came from, for errors.
    var headerLines: [String: Int] = [:]
    public var entries: [Entry] = []

    /// Parses a transcript's lines; errors name the file and line.
    public init(lines: [ScriptLine], name: String) throws(LabError) {
        var index = lines.startIndex
        while index < lines.endIndex && lines[index].text.trimmingCharacters(in: .whitespaces).isEmpty { index += 1 }
        let first = index < lines.endIndex ? lines[index] : ScriptLine(number: 1, text: "")
        let words = first.text.split(separator: " ")
        guard words.count == 4, words[0] == "#", words[1] == "plab", words[3] == "transcript" else {
            throw LabError("\(name):\(first.number): not a plab transcript: it should start with '# plab VERSION transcript'")
        }
        var seed: Int?
        var backend: String?
        var libraries: [FloatLibrary: String] = [:]
        var date: String?
        var json = false
        var settings: [ScriptLine] = []
        var state: [ScriptLine] = []
        index += 1
        while index < lines.endIndex, lines[index].text.hasPrefix("#") {
            let line = lines[index]
            index += 1
            let body = line.text.dropFirst().trimmingCharacters(in: .whitespaces)
            guard let colon = body.firstIndex(of: ":") else { continue }  // a comment
            let key = String(body[..<colon])
            let value = body[body.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if let library = FloatLibrary(rawValue: key) {
                libraries[library] = value
                continue
            }
            switch key {
            case "seed":
                guard let n = Int(value), n >= 0 else {
                    throw LabError("\(name):\(line.number): seed must be a non-negative integer, not '\(value)'")
                }
                seed = n
                headerLines["seed"] = line.number
            case "backend":
                backend = value
                headerLines["backend"] = line.number
            case "set": settings.append(ScriptLine(number: line.number, text: value))
            case "state": state.append(ScriptLine(number: line.number, text: value))
            case "date": date = value
            case "json":
                guard value == "on" || value == "off" else {
                    throw LabError("\(name):\(line.number): '# json:' is 'on' or 'off', not '\(value)'")
                }
                json = value == "on"
            default: continue  // keys added by later versions
            }
        }
        guard let seed else { throw LabError("\(name): the header has no '# seed: N' line") }
        guard let backend else { throw LabError("\(name): the header has no '# backend: NAME' line") }
        header = TranscriptHeader(version: String(words[2]), seed: seed, backend: backend)
        header.date = date
        header.libraries = libraries
        header.json = json
        header.settings = settings
        header.state = state
        while index < lines.endIndex {
            let line = lines[index]
            index += 1
            if line.text.hasPrefix(TranscriptWriter.commandPrefix) {
                let command = String(line.text.dropFirst(TranscriptWriter.commandPrefix.count))
                if command.trimmingCharacters(in: .whitespaces).isEmpty {
                    throw LabError("\(name):\(line.number): '\(TranscriptWriter.commandPrefix)' with no command")
                }
                entries.append(Entry(command: command, line: line.number, output: []))
            } else if entries.isEmpty {
                if line.text.trimmingCharacters(in: .whitespaces).isEmpty { continue }
                throw LabError("\(name):\(line.number): expected a '\(TranscriptWriter.commandPrefix)COMMAND' line after the header, found '\(line.text.prefix(60))'")
            } else {
                entries[entries.count - 1].output.append(line)
            }
        }
    }
}

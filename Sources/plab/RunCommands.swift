// plab run FILE, plab replay TRANSCRIPT: sessions and transcripts from the command line.

import ArgumentParser
import Files
import Foundation
import JSON
import Lab

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a session file and print its transcript.",
        discussion: reflowed("""
        One command a line; blank lines and # comments are skipped. Standard output gets the
        transcript (a # header, then 'plab> COMMAND' lines each followed by its output), or
        with --json one JSON object per reporting command and nothing else. Stops at the
        first failing command with 'plab: error: FILE:LINE: MESSAGE' on standard error and
        exit status 1, unless --keep-going (then 1 if any failed). Ctrl-C: status 130.

        Files that must never look complete before they are (a sweep's points): --output
        and --transcript write to FILE.partial as the run goes and rename it to FILE only
        when every line ran; then --done writes its marker. A failed run leaves the
        .partial files (nothing it printed is lost) and no FILE; Ctrl-C removes them.

        Example:  plab run sessions/tour.plab --backend portable > tour.transcript
        Example:  plab run point.plab --json --output point.jsonl --transcript point.transcript --done point.done
        """))

    @Argument(help: "The session file (.plab).")
    var file: String

    @Flag(help: "Print only the JSON reports, one object a line (every reporting command as if given --json).")
    var json = false

    @Flag(name: .customLong("keep-going"), help: "Run every line even after a failure.")
    var keepGoing = false

    @Option(help: "The matrix-product backend to start with: portable, openblas or onednn (default: portable).")
    var backend: String?

    @Option(help: "The seed to start with (default 0).")
    var seed: Int?

    @Option(help: ArgumentHelp("Write what standard output would get to FILE instead (FILE.partial until every line ran).", valueName: "FILE"))
    var output: String?

    @Option(help: ArgumentHelp("Also write the transcript to FILE (FILE.partial until every line ran); with --json it records the JSON reports and replays so.", valueName: "FILE"))
    var transcript: String?

    @Option(help: ArgumentHelp("When every line ran and --output and --transcript are in place, write FILE: a one-line JSON marker that the run is complete.", valueName: "FILE"))
    var done: String?

    func run() throws {
        let lines: [ScriptLine]
        do { lines = try readLines(ofFile: file) } catch { throw failure(error.message) }
        let session = Session()
        do {
            if let backend { try session.settings.set("backend", to: backend) }
            if let seed { try session.settings.set("seed", to: String(seed)) }
        } catch {
            _ = failure(error.message)
            throw ExitCode(usageError)  // a bad option value, as for any other bad argument
        }
        Signals.install(interactive: false)
        if isatty(2) == 1 { session.progressDisplay = TerminalProgress() }
        session.reportsInJSON = json
        let main: RunSink, copy: RunSink?
        do {
            main = try RunSink(output)
            copy = try transcript.map { path throws(FileError) in try RunSink(path) }
        } catch { throw failure(error.message) }
        var sessionOutput: SessionOutput
        if json {
            sessionOutput = JSONLinesOutput(main.emit)
        } else {
            let writer = TranscriptWriter(main.emit)
            writer.writeHeader(TranscriptHeader(session: session))
            sessionOutput = writer
        }
        if let copy {
            let writer = TranscriptWriter(copy.emit)
            writer.writeHeader(TranscriptHeader(session: session))
            sessionOutput = TeeOutput(sessionOutput, writer)
        }
        let sinks = [main] + (copy.map { [$0] } ?? [])
        var failed = false
        for line in lines {
            var outcome = session.execute(line.text, to: sessionOutput)
            if outcome == .done && Interruption.isRequested { outcome = .interrupted }  // Ctrl-C the command did not notice
            if let error = sinks.compactMap(\.failure).first {
                sinks.forEach { $0.keepPartial() }
                throw failure(error.message)
            }
            switch outcome {
            case .done: continue
            case .quit: break
            case .interrupted:
                sinks.forEach { $0.discard() }
                writeOut("plab: interrupted at \(file):\(line.number)\n", to: .standardError)
                throw ExitCode(130)
            case .failed(let message):
                writeOut("plab: error: \(file):\(line.number): \(message)\n", to: .standardError)
                failed = true
                if keepGoing { continue }
            }
            break
        }
        if failed {
            sinks.forEach { $0.keepPartial() }
            throw ExitCode.failure
        }
        do {
            try copy?.commit()
            try main.commit()
            if let done {
                let marker: JSONObject = ["file": .string(file), "lines": .int(lines.count),
                                          "output": output.map { .string($0) } ?? .null,
                                          "transcript": transcript.map { .string($0) } ?? .null]
                try FileWriting.write(Data((marker.rendered + "\n").utf8), to: done)
            }
        } catch { throw failure(error.message) }
    }
}

/// Where `plab run` sends a stream of lines: standard output, or a staged file (written to
/// FILE.partial, renamed to FILE on `commit`). A write failure is kept, not thrown, since
/// the session's outputs cannot throw; the run checks it after every line.
final class RunSink {
    private let file: StagedFile?
    private(set) var failure: FileError?

    init(_ path: String?) throws(FileError) {
        file = try path.map { path throws(FileError) in try StagedFile(path) }
    }

    func emit(_ line: String) {
        guard let file else { writeOut(line + "\n"); return }
        guard failure == nil else { return }
        do { try file.write(line + "\n") } catch { failure = error }
    }

    func commit() throws(FileError) { try file?.commit() }
    func discard() { file?.discard() }
    func keepPartial() { file?.keepPartial() }
}

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a transcript's commands again, from the seed, backend and settings of its header.",
        discussion: reflowed("""
        With --check, compare the new output with the recorded one: exit 0 when identical;
        1 at the first difference, shown on standard error with the lines before it, the
        recorded line (-) and the new one (+); 2 when the transcript cannot be read. Lines
        starting '~ ' (timings) match any such line; the header's date is ignored.
        Without --check, print the new transcript (to bring one up to date).

        Example:  plab replay sessions/tour.transcript --check
        """))

    @Argument(help: "The transcript.")
    var file: String

    @Flag(help: "Compare with the recorded output instead of printing the new transcript.")
    var check = false

    func run() throws {
        let result: ReplayResult
        let transcript: Transcript
        do {
            transcript = try Transcript(lines: try readLines(ofFile: file), name: file)
            Signals.install(interactive: false)
            // State lines run before any command; each is shown first (a transcript is a
            // file people share: it runs nothing it does not show).
            result = try transcript.replay(name: file, compare: check) { writeOut("plab: state: \($0)\n", to: .standardError) }
        } catch let error as LabError {
            writeOut("plab: error: \(error.message)\n", to: .standardError)
            throw ExitCode(2)
        } catch {
            writeOut("plab: interrupted\n", to: .standardError)
            throw ExitCode(130)
        }
        if !check {
            writeOut(result.transcript.map { $0 + "\n" }.joined())
            return
        }
        if let difference = result.difference {
            writeOut(difference + "\n", to: .standardError)
            throw ExitCode.failure
        }
        writeOut("replay of \(file): \(transcript.entries.count) commands, output identical\n")
    }
}

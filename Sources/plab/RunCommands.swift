// plab run FILE, plab replay TRANSCRIPT: sessions and transcripts from the command line.

import ArgumentParser
import Foundation
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

        Example:  plab run sessions/tour.plab --backend portable > tour.transcript
        """))

    @Argument(help: "The session file (.plab).")
    var file: String

    @Flag(help: "Print only the JSON reports, one object a line (every reporting command as if given --json).")
    var json = false

    @Flag(name: .customLong("keep-going"), help: "Run every line even after a failure.")
    var keepGoing = false

    @Option(help: "The matrix-product backend to start with: openblas or portable (default: openblas).")
    var backend: String?

    @Option(help: "The seed to start with (default 0).")
    var seed: Int?

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
        let output: SessionOutput
        if json {
            session.reportsInJSON = true
            output = JSONLinesOutput { writeOut($0 + "\n") }
        } else {
            let writer = TranscriptWriter { writeOut($0 + "\n") }
            writer.writeHeader(TranscriptHeader(session: session))
            output = writer
        }
        var failed = false
        for line in lines {
            switch session.execute(line.text, to: output) {
            case .done: continue
            case .quit: break
            case .interrupted:
                writeOut("plab: interrupted at \(file):\(line.number)\n", to: .standardError)
                throw ExitCode(130)
            case .failed(let message):
                writeOut("plab: error: \(file):\(line.number): \(message)\n", to: .standardError)
                failed = true
                if keepGoing { continue }
            }
            break
        }
        if failed { throw ExitCode.failure }
    }
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

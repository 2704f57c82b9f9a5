import ArgumentParser
import Foundation
import Lab

struct Shell: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open the interactive lab shell (the default).",
        discussion: reflowed("""
        On a terminal: line editing, history (arrows, Ctrl-R; kept in $XDG_DATA_HOME/plab/history),
        Tab completion, Ctrl-C to stop a long command, Ctrl-D or 'quit' to leave.
        When standard input is not a terminal, commands are read line by line without a
        prompt (plab < session.plab); every line runs, errors go to standard error as
        'plab: error: <stdin>:LINE: MESSAGE', and the exit status is 1 if any line failed
        (130 after Ctrl-C). 'plab run FILE' stops at the first error instead.
        """))

    func run() throws {
        let session = Session()
        if isatty(2) == 1 { session.progressDisplay = TerminalProgress() }
        if isatty(1) == 1 {
            session.terminalWidth = { terminalColumns() }
            session.plotColor = { [unowned session] in colorAllowed(on: 1, session: session) }
        }
        if isatty(0) == 1 && isatty(1) == 1 {
            // A terminal whose locale is not UTF-8 gets plain ASCII plots.
            if !localeIsUTF8() { _ = try? session.settings.set("unicode", to: "off") }
            Signals.install(interactive: true)
            runInteractive(session)
        } else {
            Signals.install(interactive: false)
            let status = runPiped(session)
            if status != 0 { throw ExitCode(status) }
        }
    }

    private func runInteractive(_ session: Session) {
        let editor = LineEditor { session.completions(for: $0) }
        let output = TerminalOutput(session: session)
        writeOut("PrecisionLab \(plabVersion) — 'help' lists commands; Tab completes; 'quit' or Ctrl-D leaves.\n")
        loop: while true {
            var prompt = session.prompt
            if colorAllowed(on: 1, session: session) {
                prompt = "\u{01}\(ANSI.boldBlue)\u{02}\(prompt.dropLast())\u{01}\(ANSI.reset)\u{02} "
            }
            switch editor.readLine(prompt: prompt) {
            case .endOfInput:
                writeOut("\n")
                break loop
            case .cancelled:
                continue
            case .line(let line):
                editor.remember(line)
                if session.execute(line, to: output) == .quit { break loop }
            }
        }
    }

    /// Reads commands from standard input until its end; the exit status.
    private func runPiped(_ session: Session) -> Int32 {
        let reader = LineReader(fileDescriptor: 0)
        let output = TerminalOutput(session: session)
        var failed = false
        while let item = reader.next() {
            output.location = "<stdin>:\(reader.lineNumber)"
            guard case .line(let line) = item else {
                output.fail(LineReader.problem(with: item) ?? "unreadable line")
                failed = true
                continue
            }
            switch session.execute(line, to: output) {
            case .done where Interruption.isRequested: return 130  // Ctrl-C the command did not notice
            case .done: continue
            case .failed: failed = true
            case .interrupted: return 130
            case .quit: return failed ? 1 : 0
            }
        }
        return failed ? 1 : 0
    }
}

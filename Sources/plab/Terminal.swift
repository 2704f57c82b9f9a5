// The terminal side of the shell: where output, errors and progress go, colours, Ctrl-C.

import Foundation
import Lab

/// Writes text to standard output or standard error right away (no buffering), so output,
/// errors and the progress line interleave in the order they happen.
///
/// A failure to write standard output ends plab as coreutils end: a closed pipe (`plab run
/// … | head`) quietly, with the status of SIGPIPE (141); any other failure (a full disk, a
/// device error) with `plab: error: standard output: REASON` on standard error and status 1,
/// so no output is lost without a word. A failure to write standard error is ignored: there
/// is nowhere left to say it.
func writeOut(_ text: String, to handle: FileHandle = .standardOutput) {
    let fd = handle.fileDescriptor
    var failure: Int32 = 0
    Array(text.utf8).withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { failure = n < 0 ? errno : EIO; return }
            done += n
        }
    }
    guard failure != 0, fd == STDOUT_FILENO else { return }
    if failure == EPIPE { exit(128 + SIGPIPE) }
    writeOut("plab: error: standard output: \(String(cString: strerror(failure)))\n", to: .standardError)
    exit(EXIT_FAILURE)
}

/// Whether colour may be used on `descriptor`: it is a terminal, NO_COLOR is unset or empty,
/// and the session's `color` setting is on.
func colorAllowed(on descriptor: Int32, session: Session) -> Bool {
    guard isatty(descriptor) == 1, session.settings.isOn("color") else { return false }
    let noColor = ProcessInfo.processInfo.environment["NO_COLOR"] ?? ""
    return noColor.isEmpty
}

enum ANSI {
    static let red = "\u{1B}[31m"
    static let boldBlue = "\u{1B}[1;34m"
    static let dim = "\u{1B}[2m"
    static let reset = "\u{1B}[0m"
}

/// Output of the shell: results on standard output, errors on standard error (in red on
/// a terminal). With a `location` (piped input), errors read `plab: error: <stdin>:3: …`.
final class TerminalOutput: SessionOutput {
    let session: Session
    var location: String?

    init(session: Session) { self.session = session }

    func begin(_ line: String, transcribed: Bool) {}

    func write(_ text: String, as kind: OutputKind) {
        let dim = colorAllowed(on: 1, session: session)
        if case .timed(let tail) = kind {
            writeOut(text + (dim ? ANSI.dim + tail + ANSI.reset : tail) + "\n")
        } else if kind == .volatile && dim {
            writeOut(ANSI.dim + text + ANSI.reset + "\n")
        } else {
            writeOut(text + "\n")
        }
    }

    func fail(_ message: String) {
        if let location {
            writeOut("plab: error: \(location): \(message)\n", to: .standardError)
        } else if colorAllowed(on: 2, session: session) {
            writeOut(ANSI.red + "error:" + ANSI.reset + " \(message)\n", to: .standardError)
        } else {
            writeOut("error: \(message)\n", to: .standardError)
        }
    }
}

/// The progress line on standard error, redrawn in place.
final class TerminalProgress: ProgressDisplay {
    private var visible = false

    func show(_ line: String) {
        writeOut("\r\u{1B}[K" + line, to: .standardError)
        visible = true
    }

    func clear() {
        guard visible else { return }
        writeOut("\r\u{1B}[K", to: .standardError)
        visible = false
    }
}

/// Ctrl-C handling for the whole process.
///
/// A press while a command runs asks it to stop at its next safe point
/// (`Interruption.request()`); a second press before it stops ends plab with status 130.
/// With piped input a press while no command runs ends plab too (status 130). At the
/// interactive prompt the press interrupts the read of the line, which the line editor
/// abandons (the handler is installed without SA_RESTART for that).
enum Signals {
    nonisolated(unsafe) private static var exitWhenIdle = false

    static func install(interactive: Bool) {
        exitWhenIdle = !interactive
        _ = Interruption.isRequested  // initialise the flag before a handler can touch it
        var action = sigaction()
        #if os(Linux)
        action.__sigaction_handler.sa_handler = { _ in Signals.handle() }
        #else
        action.__sigaction_u.__sa_handler = { _ in Signals.handle() }
        #endif
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(SIGINT, &action, nil)
        // A parent may have started plab with SIGINT blocked (the mask is inherited).
        var unblock = sigset_t()
        sigemptyset(&unblock)
        sigaddset(&unblock, SIGINT)
        sigprocmask(SIG_UNBLOCK, &unblock, nil)
    }

    private static func handle() {
        switch Interruption.request() {
        case .willStop: break
        case .alreadyRequested: _exit(130)
        case .nothingRunning: if exitWhenIdle { _exit(130) }
        }
    }
}

/// The width of the terminal on standard output in columns, or nil when it is not one.
func terminalColumns() -> Int? {
    var size = winsize()
    guard ioctl(1, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return nil }
    return Int(size.ws_col)
}

/// Whether the locale's character set is UTF-8: the first of LC_ALL, LC_CTYPE, LANG that is
/// set decides (none set: assumed UTF-8, as on most systems today).
func localeIsUTF8() -> Bool {
    let environment = ProcessInfo.processInfo.environment
    guard let locale = ["LC_ALL", "LC_CTYPE", "LANG"].lazy.compactMap({ environment[$0] }).first(where: { !$0.isEmpty }) else {
        return true
    }
    let lower = locale.lowercased()
    return lower.contains("utf-8") || lower.contains("utf8")
}

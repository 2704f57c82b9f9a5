import Foundation
import Testing

/// tmux, if installed (the interactive test drives plab through it).
let tmuxPath: String? = ["/usr/bin/tmux", "/usr/local/bin/tmux", "/opt/homebrew/bin/tmux"]
    .first { FileManager.default.isExecutableFile(atPath: $0) }

/// plab in a pseudo-terminal: a tmux server of its own, one window running plab.
final class TerminalSession {
    let socket = "plab-test-\(UUID().uuidString.prefix(8))"
    let dataHome: URL

    /// plab with XDG_DATA_HOME set to a scratch directory (`dataHome`); with `homeOnly`,
    /// XDG_DATA_HOME unset and HOME set to that directory instead.
    init(homeOnly: Bool = false) throws {
        dataHome = FileManager.default.temporaryDirectory.appendingPathComponent("plab-pty-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dataHome, withIntermediateDirectories: true)
        let environment = homeOnly ? "-u XDG_DATA_HOME HOME=\(dataHome.path)" : "XDG_DATA_HOME=\(dataHome.path)"
        let command = "env \(environment) NO_COLOR=1 TERM=xterm \(plabExecutable.path)"
        try tmux(["new-session", "-d", "-x", "160", "-y", "50", "-s", "plab", command])
    }

    deinit {
        _ = try? tmux(["kill-server"])
        try? FileManager.default.removeItem(at: dataHome)
    }

    /// Runs a tmux command and waits for it; returns its output when `capture`.
    @discardableResult
    func tmux(_ arguments: [String], capture: Bool = false) throws -> String {
        try spawnAndWait(tmuxPath!, ["-L", socket, "-f", "/dev/null"] + arguments, capture: capture).output
    }

    /// Sends keys (tmux key names: "Enter", "Tab", "Up", "C-c", or literal text).
    func send(_ keys: String...) throws { try tmux(["send-keys", "-t", "plab"] + keys) }

    /// Types text literally.
    func type(_ text: String) throws { try tmux(["send-keys", "-t", "plab", "-l", text]) }

    /// The screen's non-empty lines.
    func screen() throws -> [String] {
        try tmux(["capture-pane", "-p", "-t", "plab", "-S", "-200"], capture: true).split(separator: "\n").map {
            String($0).trimmingCharacters(in: .whitespaces)
        }.filter { !$0.isEmpty }
    }

    /// Waits until `condition` holds for the screen (up to 30 s: the test suite runs other
    /// heavy tests beside this one on few cores); returns the screen.
    @discardableResult
    func waitFor(_ what: String, _ condition: ([String]) -> Bool) throws -> [String] {
        let deadline = Date().addingTimeInterval(30)
        var lines: [String] = []
        while Date() < deadline {
            lines = try screen()
            if condition(lines) { return lines }
            Thread.sleep(forTimeInterval: 0.05)
        }
        Issue.record("timed out waiting for \(what); the screen:\n\(lines.joined(separator: "\n"))")
        return lines
    }

    /// Whether plab still runs (its tmux session ends with it).
    var isRunning: Bool {
        (try? spawnAndWait(tmuxPath!, ["-L", socket, "-f", "/dev/null", "has-session", "-t", "plab"]))?.status == 0
    }
}

/// Runs a program with standard input and error on /dev/null, standard output captured or
/// discarded, signals unblocked, and waits for it. (Not Foundation's Process: a tmux client
/// that starts a server must not leave the server holding a pipe we read to its end.)
func spawnAndWait(_ path: String, _ arguments: [String], capture: Bool = false) throws -> (status: Int32, output: String) {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    var fds: [Int32] = [-1, -1]
    if capture {
        guard pipe(&fds) == 0 else { throw POSIXError(.EMFILE) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        posix_spawn_file_actions_addclose(&actions, fds[1])
    } else {
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var noSignals = sigset_t()
    sigemptyset(&noSignals)
    posix_spawnattr_setsigmask(&attributes, &noSignals)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK))
    let argv = ([path] + arguments).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, path, &actions, &attributes, argv, environ)
    if capture { close(fds[1]) }
    guard spawned == 0 else {
        if capture { close(fds[0]) }
        throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .ENOENT)
    }
    var output = Data()
    if capture {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fds[0], &buffer, buffer.count)
            if n > 0 { output.append(contentsOf: buffer[0..<n]) } else if n < 0 && errno == EINTR { continue } else { break }
        }
        close(fds[0])
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let exited = status & 0x7f == 0
    return (exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), String(decoding: output, as: UTF8.self))
}

/// The interactive shell for real, under a pseudo-terminal: Tab completion, arrow-key
/// history, Ctrl-R, Ctrl-C during a long command and at the prompt, the history file,
/// Ctrl-D.
@Suite(.serialized) struct InteractiveShellTests {
    @Test(.enabled(if: tmuxPath != nil, "tmux is not installed (apt-get install tmux): the pseudo-terminal test is skipped"))
    func tabHistoryAndCtrlCUnderAPseudoTerminal() throws {
        let t = try TerminalSession()
        try t.waitFor("the prompt") { $0.last == "plab>" }

        // State to check later.
        try t.type("seed 7")
        try t.send("Enter")
        try t.waitFor("seed = 7") { $0.contains("seed = 7") }

        // A partial command and Tab.
        try t.type("form")
        try t.send("Tab")
        try t.waitFor("completion of 'form'") { $0.last == "plab> formats" }
        try t.type("e4m3")
        try t.send("Enter")
        try t.waitFor("the e4m3 row") { $0.contains { $0.hasPrefix("e4m3") && $0.contains("448.0") } }

        // Up arrow brings the last line back.
        try t.send("Up")
        try t.waitFor("the recalled line") { $0.last == "plab> formats e4m3" }
        try t.send("Enter")
        try t.waitFor("the table twice") { $0.filter { $0.hasPrefix("e4m3") }.count == 2 }

        // Ctrl-R finds an earlier line.
        try t.send("C-r")
        try t.type("seed")
        try t.send("Enter")
        try t.waitFor("seed 7 again") { $0.filter { $0 == "seed = 7" }.count == 2 }

        // Ctrl-C during a long command: the prompt returns, nothing was half-done.
        try t.type("accumulate 1000000000000")
        try t.send("Enter")
        Thread.sleep(forTimeInterval: 2)
        try t.send("C-c")
        try t.waitFor("the interruption") { $0.contains("error: interrupted") && $0.last == "plab>" }
        try t.type("history")
        try t.send("Enter")
        try t.waitFor("an empty history") { $0.contains { $0.hasPrefix("no metrics yet") } }
        try t.type("seed")
        try t.send("Enter")
        try t.waitFor("the seed kept") { $0.filter { $0 == "seed = 7" }.count == 3 }

        // Ctrl-C at the prompt abandons the line and does not quit.
        try t.type("seed 99")
        try t.send("C-c")
        try t.waitFor("a fresh prompt") { $0.last == "plab>" && $0.contains("plab> seed 99^C") }
        try t.type("seed")
        try t.send("Enter")
        try t.waitFor("the seed still 7") { $0.filter { $0 == "seed = 7" }.count == 4 && $0.last == "plab>" }

        // Ctrl-D leaves (at the prompt: see HistoryFileTests); the history file keeps the lines.
        try t.send("C-d")
        let deadline = Date().addingTimeInterval(20)
        while t.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(!t.isRunning, "plab is still running after Ctrl-D")
        let history = try String(contentsOf: t.dataHome.appendingPathComponent("plab/history"), encoding: .utf8)
        #expect(history.contains("formats") && history.contains("e4m3"))
        #expect(history.contains("accumulate"))
    }
}

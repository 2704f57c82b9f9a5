import Foundation
import Testing

/// The history file under $HOME when XDG_DATA_HOME is unset: plab must follow HOME, not
/// the password database's home directory.
@Suite struct HistoryFileTests {
    @Test(.enabled(if: tmuxPath != nil, "tmux is not installed (apt-get install tmux): the pseudo-terminal test is skipped"))
    func historyGoesUnderHomeWithoutXDGDataHome() throws {
        let t = try TerminalSession(homeOnly: true)
        try t.waitFor("the prompt") { $0.last == "plab>" }
        try t.type("seed 11")
        try t.send("Enter")
        // Ctrl-D only once the prompt is back: typed while the command still runs, the
        // terminal's canonical mode takes it as an end of input that line editing never sees.
        try t.waitFor("seed = 11 and the prompt") { $0.contains("seed = 11") && $0.last == "plab>" }
        try t.send("C-d")
        let deadline = Date().addingTimeInterval(5)
        while t.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        #expect(!t.isRunning, "plab is still running after Ctrl-D")
        let file = t.dataHome.appendingPathComponent(".local/share/plab/history")
        // libedit writes a space as \040.
        let history = (try? String(contentsOf: file, encoding: .utf8))?.replacingOccurrences(of: "\\040", with: " ")
        #expect(history?.contains("seed 11") == true, "no history at $HOME/.local/share/plab/history")
    }
}

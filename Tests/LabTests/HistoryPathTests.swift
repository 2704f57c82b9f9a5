import Lab
import Testing

/// Where the shell's history file goes, as a function of the environment.
@Suite struct HistoryPathTests {
    @Test func historyFileFollowsXDGDataHomeThenHome() {
        let fromPasswords = { "/home/from-passwd" }
        #expect(historyFilePath(environment: ["XDG_DATA_HOME": "/data", "HOME": "/h"], passwordHome: fromPasswords) == "/data/plab/history")
        #expect(historyFilePath(environment: ["HOME": "/h"], passwordHome: fromPasswords) == "/h/.local/share/plab/history")
        // Empty or relative XDG_DATA_HOME is ignored (XDG Base Directory specification).
        #expect(historyFilePath(environment: ["XDG_DATA_HOME": "", "HOME": "/h"], passwordHome: fromPasswords) == "/h/.local/share/plab/history")
        #expect(historyFilePath(environment: ["XDG_DATA_HOME": "data", "HOME": "/h"], passwordHome: fromPasswords) == "/h/.local/share/plab/history")
        // Only without HOME does the password database decide.
        #expect(historyFilePath(environment: [:], passwordHome: fromPasswords) == "/home/from-passwd/.local/share/plab/history")
        #expect(historyFilePath(environment: ["HOME": ""], passwordHome: fromPasswords) == "/home/from-passwd/.local/share/plab/history")
    }
}

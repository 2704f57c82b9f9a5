// Where the shell keeps its line history between sessions.

import Foundation

/// The history file of the interactive shell: `$XDG_DATA_HOME/plab/history` when
/// XDG_DATA_HOME is an absolute path (the XDG Base Directory rules: an empty or relative
/// value is ignored), else `$HOME/.local/share/plab/history`. Only when HOME is unset (or
/// empty) is the home directory taken from the password database (`passwordHome`).
public func historyFilePath(environment: [String: String],
                            passwordHome: () -> String = { NSHomeDirectory() }) -> String {
    let base: String
    if let data = environment["XDG_DATA_HOME"], data.hasPrefix("/") {
        base = data
    } else {
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? passwordHome()
        base = home + "/.local/share"
    }
    return base + "/plab/history"
}

// Line editing on libedit: history (arrows, Ctrl-R search, a file kept between sessions),
// tab completion, and Ctrl-C abandoning the line.

@preconcurrency import CEdit
import Foundation
import Lab

/// What reading a line gave.
enum EditorInput {
    case line(String)
    /// Ctrl-C: the line was abandoned.
    case cancelled
    /// Ctrl-D on an empty line, or the terminal went away.
    case endOfInput
}

/// libedit's readline interface, set up for plab. One per process.
final class LineEditor {
    /// `$XDG_DATA_HOME/plab/history`, by default `$HOME/.local/share/plab/history`
    /// (`historyFilePath(environment:)`).
    static var historyPath: String { historyFilePath(environment: ProcessInfo.processInfo.environment) }

    /// Lines kept in the history file.
    static let historySize: Int32 = 1000

    private let historyFile: String?
    private var lastEntry: String?

    /// The completer the C callback calls: from the line up to the cursor to candidates.
    nonisolated(unsafe) private static var completer: ((String) -> [String])?
    /// Set when Ctrl-C interrupted the reading of a line.
    nonisolated(unsafe) private static var cancelled = false

    init(completer: @escaping (String) -> [String]) {
        LineEditor.completer = completer
        rl_readline_name = UnsafePointer(strdup("plab"))
        rl_catch_signals = 0
        // Keys are read by plab, so that Ctrl-C (a SIGINT that interrupts the read) can
        // abandon the line: libedit then sees the end of input and returns.
        rl_getc_function = { _ in LineEditor.readKey() }
        rl_initialize()
        // Ctrl-R searches the history backwards (as in readline).
        _ = rl_parse_and_bind("bind ^R em-inc-search-prev")
        rl_basic_word_break_characters = UnsafePointer(strdup(" \t"))
        rl_completer_word_break_characters = strdup(" \t")
        rl_attempted_completion_function = { text, start, end in
            rl_attempted_completion_over = 1
            guard let completer = LineEditor.completer, let buffer = rl_line_buffer else { return nil }
            let prefix = String(decoding: UnsafeRawBufferPointer(start: buffer, count: Int(end)), as: UTF8.self)
            let word = text.map { String(cString: $0) } ?? ""
            let candidates = completer(prefix)
            // Complete only where libedit's word is the shell's word (not inside quotes).
            guard !candidates.isEmpty, candidates.allSatisfy({ $0.hasPrefix(word) }) else { return nil }
            let single = candidates.count == 1
            rl_completion_append_character = single && (candidates[0].hasSuffix("/") || candidates[0].hasSuffix("=")) ? 0 : 32
            // libedit reads [substitution, match…, NULL]; a single match appears twice.
            let common = candidates.dropFirst().reduce(candidates[0]) { $0.commonPrefix(with: $1) }
            let list = [common] + candidates
            // Allocated with malloc: libedit frees the array and its strings with free().
            let matches = malloc((list.count + 1) * MemoryLayout<UnsafeMutablePointer<CChar>?>.stride)!
                .bindMemory(to: UnsafeMutablePointer<CChar>?.self, capacity: list.count + 1)
            for (i, candidate) in list.enumerated() { matches[i] = strdup(candidate) }
            matches[list.count] = nil
            return matches
        }
        stifle_history(LineEditor.historySize)
        let path = LineEditor.historyPath
        let directory = (path as NSString).deletingLastPathComponent
        if (try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)) != nil {
            historyFile = path
            _ = read_history(path)
        } else {
            historyFile = nil
        }
    }

    /// One key for libedit: a Unicode scalar read from standard input (UTF-8 decoded
    /// here, as libedit takes the value as a wide character), or -1 at the end of input or
    /// when Ctrl-C interrupted the read.
    private static func readKey() -> Int32 {
        func byte() -> UInt8? {
            var b: UInt8 = 0
            while true {
                let n = read(0, &b, 1)
                if n == 1 { return b }
                if n < 0 && errno == EINTR {
                    if Interruption.isRequested {
                        cancelled = true
                        return nil
                    }
                    continue
                }
                return nil
            }
        }
        guard let first = byte() else { return -1 }
        let length = first < 0x80 ? 1 : first >= 0xF0 ? 4 : first >= 0xE0 ? 3 : first >= 0xC0 ? 2 : 1
        var bytes = [first]
        while bytes.count < length, let next = byte() { bytes.append(next) }
        if cancelled { return -1 }
        guard let scalar = String(decoding: bytes, as: UTF8.self).unicodeScalars.first else { return -1 }
        return Int32(scalar.value)
    }

    /// Shows `prompt` and reads one line with editing. `prompt` may hold colour escapes
    /// wrapped in \u{01}…\u{02} so the editor does not count them as width.
    func readLine(prompt: String) -> EditorInput {
        LineEditor.cancelled = false
        Interruption.clear()
        guard let raw = readline(prompt) else {
            if LineEditor.cancelled {
                writeOut("^C\n")
                return .cancelled
            }
            return .endOfInput
        }
        defer { free(raw) }
        return .line(String(cString: raw))
    }

    /// Adds a line to the history (not blank lines or a repeat of the last one) and saves
    /// the history file, so a crash loses nothing.
    func remember(_ line: String) {
        guard !line.trimmingCharacters(in: .whitespaces).isEmpty, line != lastEntry else { return }
        lastEntry = line
        _ = add_history(line)
        if let historyFile { _ = write_history(historyFile) }
    }
}

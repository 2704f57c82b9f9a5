// Splitting a command line into words.

/// One word of a command line. A quoted word is never taken for an option or a
/// `key=value` assignment.
public struct Word: Sendable, Equatable {
    public var text: String
    public var quoted: Bool

    public init(_ text: String, quoted: Bool = false) {
        self.text = text
        self.quoted = quoted
    }
}

/// The shell's word rules, a small subset of the POSIX shell's:
///
/// - spaces and tabs separate words;
/// - `"…"` groups, with `\"` and `\\` as escapes inside;
/// - `'…'` groups literally;
/// - outside quotes a backslash takes the next character literally (`my\ file`); a
///   backslash at the end of the line stands for itself.
public enum Words {
    /// The words of `line`, or an error for an unterminated quote.
    public static func split(_ line: String) throws(LabError) -> [Word] {
        let scan = scan(line)
        if let open = scan.openQuote {
            throw LabError("unterminated \(open) quote (close it, or escape it with a backslash)")
        }
        return scan.words + (scan.partial.map { [$0] } ?? [])
    }

    /// For completion: the finished words before the cursor and the word being typed at
    /// it (empty when the line ends in a space).
    public static func splitForCompletion(_ prefix: String) -> (words: [Word], partial: String) {
        let scan = scan(prefix)
        return (scan.words, scan.partial?.text ?? "")
    }

    /// Runs over Unicode scalars, not characters: a combining mark after a space, quote or
    /// backslash would otherwise join it into one character that is none of them.
    private static func scan(_ line: String) -> (words: [Word], partial: Word?, openQuote: Unicode.Scalar?) {
        var words: [Word] = []
        var current: Word?
        var quote: Unicode.Scalar?
        var escaped = false
        for c in line.unicodeScalars {
            if escaped {
                current!.text.unicodeScalars.append(c)
                escaped = false
                continue
            }
            if let q = quote {
                if c == q { quote = nil }
                else if c == "\\" && q == "\"" { escaped = true }
                else { current!.text.unicodeScalars.append(c) }
                continue
            }
            switch c {
            case " ", "\t", "\r", "\n":
                if let w = current { words.append(w) }
                current = nil
            case "\"", "'":
                quote = c
                if current == nil { current = Word("", quoted: true) } else { current!.quoted = true }
            case "\\":
                escaped = true
                if current == nil { current = Word("") }
            default:
                if current == nil { current = Word("") }
                current!.text.unicodeScalars.append(c)
            }
        }
        if escaped { current!.text.append("\\") }  // a trailing backslash stands for itself
        return (words, current, quote)
    }
}

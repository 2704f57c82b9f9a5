import Foundation
import Testing
import Lab

/// Lines the fuzz targets (fuzz/, scripts/fuzz) found to crash plab or to break what it
/// promises. Each input is also kept in fuzz/regressions/TARGET/, which scripts/fuzz runs
/// before fuzzing.
@Suite struct ShellFuzzRegressionTests {
    /// fuzz/regressions/commands/record-one-letter-file: checking `record x` trapped in
    /// Foundation (NSString.deletingLastPathComponent of a one-character name).
    @Test func aOneLetterFileNameIsCheckedWithoutTrapping() throws {
        let registry = shellSession().registry
        try registry.validate("record x")
        try registry.validate("export csv y")
        #expect(failure("export csv q/x").contains("no such directory 'q'"))
        #expect(failure("record /nonexistent/x").contains("no such directory '/nonexistent'"))
    }

    /// fuzz/regressions/numbers/quote-before-combining-mark: the words were split by
    /// characters, and a combining mark after a quote, a space or a backslash made one
    /// character with it, so the quote or space was not seen (nor `\r\n` as two spaces).
    @Test func aCombiningMarkDoesNotHideTheQuoteOrSpaceBeforeIt() throws {
        #expect(try Words.split("set x '\u{301}a b'").map(\.text) == ["set", "x", "\u{301}a b"])
        #expect(try Words.split("cast bf16 \u{301}1").map(\.text) == ["cast", "bf16", "\u{301}1"])
        #expect(try Words.split("a \\\u{301}b").map(\.text) == ["a", "\u{301}b"])
        #expect(try Words.split("a\r\nb").map(\.text) == ["a", "b"])
        // Any words, quoted back the POSIX way, split into themselves.
        let words = ["\u{5B7}\u{FFFD}\u{2}", "it's", "'\u{319}", "", "a b", "\u{301}"]
        func quoted(_ word: String) -> String {
            var out = "'"
            for scalar in word.unicodeScalars {
                if scalar == "'" { out += "'\\''" } else { out.unicodeScalars.append(scalar) }
            }
            return out + "'"
        }
        #expect(try Words.split(words.map(quoted).joined(separator: " ")).map(\.text) == words)
    }
}

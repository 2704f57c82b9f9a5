import Numerics
import Testing

/// Inputs the numbers fuzz target (fuzz/, scripts/fuzz) found to break what the format and
/// number parsers promise. Each input is also kept in fuzz/regressions/numbers/, which
/// scripts/fuzz runs first.
@Suite struct NumberFuzzRegressionTests {
    /// fuzz/regressions/numbers/format-name-with-leading-zeros: `e04m3` gave an IEEE-style
    /// format also named "e4m3", and `e8m07` one named "e8m7" that was not bf16. Every
    /// spelling of a format gives that format, and its name reads back as it.
    @Test func everySpellingOfANamedFormatIsThatFormat() throws {
        #expect(try NumberFormat.parse("e04m3") == .e4m3)
        #expect(try NumberFormat.parse("e8m07") == .bf16)
        #expect(try NumberFormat.parse("e+5m2") == .e5m2)
        #expect(try NumberFormat.parse("e8m0000000000000000000000000007") == .bf16)
        for text in ["e05m10", "e3m02", "e8m0", "E8M23", "e4m3fn", "half", "e2m1"] {
            let format = try NumberFormat.parse(text)
            #expect(try NumberFormat.parse(format.name) == format, "\(text) is named \(format.name)")
        }
    }
}

import Testing
import Lab

@Suite struct WordsTests {
    @Test func splitsOnSpaceAndKeepsQuotedWordsTogether() throws {
        let words = try Words.split(#"cast  bf16 "1.5"\#t'a b' "say \"hi\"" my\ file x="" --json"#)
        #expect(words.map(\.text) == ["cast", "bf16", "1.5", "a b", #"say "hi""#, "my file", "x=", "--json"])
        #expect(words.map(\.quoted) == [false, false, true, true, true, false, true, false])
    }

    @Test func emptyQuotesAreAWordAndATrailingBackslashStandsForItself() throws {
        #expect(try Words.split(#"a "" b\"#).map(\.text) == ["a", "", #"b\"#])
    }

    @Test func unterminatedQuoteIsAnError() {
        #expect(throws: LabError.self) { try Words.split(#"source "my file"#) }
        #expect(throws: LabError.self) { try Words.split("cast 'bf16") }
    }

    @Test func completionSplitKeepsThePartialWord() {
        let (words, partial) = Words.splitForCompletion("cast bf")
        #expect(words.map(\.text) == ["cast"])
        #expect(partial == "bf")
        #expect(Words.splitForCompletion("cast ").partial == "")
    }
}

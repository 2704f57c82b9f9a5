import Foundation
import JSON
import Testing
import Tokenizer

/// Each fixture tokenizer against the `tokenizers` library on the test corpus: ids with and
/// without special tokens, decoding with and without them, each id's piece, the vocabulary.
@Suite struct FixtureTests {
    @Test(arguments: Fixtures.names)
    func encodingGivesTheLibrarysIds(name: String) throws {
        let tokenizer = try Fixtures.tokenizer(name)
        let expected = try Fixtures.expected(name)
        #expect(expected.cases.count >= 30)
        for c in expected.cases {
            let plain = tokenizer.encode(c.text, addSpecialTokens: false)
            #expect(plain == c.ids, "\(name), \"\(shown(c.text))\" without special tokens: \(firstDifference(plain, c.ids))")
            let special = tokenizer.encode(c.text, addSpecialTokens: true)
            #expect(special == c.idsWithSpecialTokens,
                    "\(name), \"\(shown(c.text))\" with special tokens: \(firstDifference(special, c.idsWithSpecialTokens))")
        }
    }

    @Test(arguments: Fixtures.names)
    func decodingGivesTheLibrarysText(name: String) throws {
        let tokenizer = try Fixtures.tokenizer(name)
        for c in try Fixtures.expected(name).cases {
            let decoded = tokenizer.decode(c.idsWithSpecialTokens, skipSpecialTokens: false)
            #expect(decoded == c.decoded, "\(name): decoded \"\(shown(decoded))\", expected \"\(shown(c.decoded))\"")
            let skipping = tokenizer.decode(c.idsWithSpecialTokens, skipSpecialTokens: true)
            #expect(skipping == c.decodedSkippingSpecialTokens,
                    "\(name), skipping special tokens: decoded \"\(shown(skipping))\", expected \"\(shown(c.decodedSkippingSpecialTokens))\"")
            let cut = tokenizer.decode(Array(c.idsWithSpecialTokens.dropLast()), skipSpecialTokens: false)
            #expect(cut == c.decodedWithoutLastToken, "\(name), without the last id: decoded \"\(shown(cut))\", expected \"\(shown(c.decodedWithoutLastToken))\"")
            let pieces = tokenizer.pieces(c.idsWithSpecialTokens)
            #expect(pieces == c.pieces, "\(name), pieces of \"\(shown(c.text))\": \(pieces.map(shown)) against \(c.pieces.map(shown))")
        }
    }

    @Test(arguments: Fixtures.names)
    func vocabularyIsTheLibrarys(name: String) throws {
        let tokenizer = try Fixtures.tokenizer(name)
        let expected = try Fixtures.expected(name)
        #expect(tokenizer.vocabularySize == expected.vocabularySize)
        #expect(expected.tokens.count == expected.vocabularySize)
        for (id, token) in expected.tokens.enumerated() {
            #expect(tokenizer.token(for: id) == token, "\(name): token of id \(id)")
            #expect(tokenizer.id(for: token) == expected.idsOfTokens[id], "\(name): id of \"\(shown(token))\"")
        }
        #expect(tokenizer.token(for: expected.vocabularySize) == nil)
        #expect(tokenizer.token(for: -1) == nil)
    }

    /// Ids no token has are passed over when decoding, as the library passes them over.
    @Test(arguments: Fixtures.names)
    func decodingPassesOverUnknownIDs(name: String) throws {
        let tokenizer = try Fixtures.tokenizer(name)
        for c in try Fixtures.expected(name).cases where !c.ids.isEmpty {
            let mixed = [tokenizer.vocabularySize] + c.ids + [-1, tokenizer.vocabularySize + 1000]
            #expect(tokenizer.decode(mixed) == tokenizer.decode(c.ids), "\(name): \"\(shown(c.text))\"")
        }
    }

    /// Special tokens are the ones decoding leaves out: an id is special exactly when
    /// decoding it alone while skipping special tokens gives nothing although its piece is
    /// not empty.
    @Test(arguments: Fixtures.names)
    func specialTokensAreTheOnesSkipped(name: String) throws {
        let tokenizer = try Fixtures.tokenizer(name)
        var specials = 0
        for id in 0..<tokenizer.vocabularySize where !tokenizer.decode([id], skipSpecialTokens: false).isEmpty {
            let skipped = tokenizer.decode([id], skipSpecialTokens: true).isEmpty
            #expect(tokenizer.isSpecial(id) == skipped, "\(name): id \(id) \"\(shown(tokenizer.token(for: id) ?? ""))\"")
            if skipped { specials += 1 }
        }
        #expect(specials >= 1)
    }

    /// Byte-level tokenizers lose nothing: decoding the ids of a text gives the text back,
    /// on the corpus and on random text from every plane (any scalar but surrogates).
    @Test(arguments: Fixtures.lossless)
    func byteLevelDecodingGivesTheTextBack(name: String) throws {
        let tokenizer = try Fixtures.tokenizer(name)
        var texts = try Fixtures.expected(name).cases.map(\.text)
        var state: UInt64 = 0x5EED
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let common: [Unicode.Scalar] = [" ", " ", "\n", "\t", "a", "e", "'", "s", "1", "\u{301}", "\u{200D}", "\u{1F3FD}"]
        for _ in 0..<50 {
            var scalars: [Unicode.Scalar] = []
            for _ in 0..<(next() % 60) {
                switch next() % 4 {
                case 0: scalars.append(common[Int(next() % UInt64(common.count))])
                case 1: scalars.append(Unicode.Scalar(UInt32(next() % 0x80))!)
                case 2: scalars.append(Unicode.Scalar(UInt32(0x80 + next() % 0x780))!)
                default:
                    let v = UInt32(next() % 0x110000)
                    scalars.append(Unicode.Scalar(v) ?? "\u{FFFD}")
                }
            }
            texts.append(String(String.UnicodeScalarView(scalars)))
        }
        for text in texts {
            let ids = tokenizer.encode(text, addSpecialTokens: false)
            let back = tokenizer.decode(ids)
            #expect(Array(back.unicodeScalars) == Array(text.unicodeScalars), "\(name): \"\(shown(text))\" came back as \"\(shown(back))\"")
        }
    }

    /// The fixtures were made by the version of the library they name, and every fixture
    /// exercises what it is there for.
    @Test func fixturesCoverWhatTheyAreFor() throws {
        for name in Fixtures.names {
            let expected = try Fixtures.expected(name)
            #expect(!expected.version.isEmpty)
            #expect(expected.cases.first?.text == "", "\(name): the empty text comes first")
        }
        // Byte fallback: the Llama 2 fixture spells emoji as <0xXX> tokens.
        let llama2 = try Fixtures.tokenizer("llama2")
        let emoji = llama2.encode("👍", addSpecialTokens: false).compactMap { llama2.token(for: $0) }
        #expect(emoji.contains("<0xF0>"))
        // Without it, unknown characters fuse into one <unk>.
        let metaspace = try Fixtures.tokenizer("metaspace")
        let unknown = try #require(metaspace.id(for: "<unk>"))
        #expect(metaspace.encode("👍👍🏽", addSpecialTokens: false).filter { $0 == unknown }.count == 1)
        // Llama's BOS comes from the template.
        #expect(llama2.encode("", addSpecialTokens: true) == [try #require(llama2.id(for: "<s>"))])
    }
}

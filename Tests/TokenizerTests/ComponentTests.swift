import Foundation
import JSON
import Testing
import Tokenizer

/// Single pre-tokenizers and normalizers, each given as its tokenizer.json object, against
/// what the library's `pre_tokenize_str` and `normalize_str` gave on the corpus
/// (components.json): the split patterns with every behavior, inverted or not, ByteLevel,
/// Metaspace and Digits; the Unicode normal forms and Llama's Prepend + Replace.
@Suite struct ComponentTests {
    @Test func preTokenizersSplitAsTheLibraryDoes() throws {
        let components = try Fixtures.components()
        let texts = try strings(components["texts"])
        let cases = try #require(components["pre_tokenizers"]?.arrayValue)
        #expect(cases.count >= 30)
        for item in cases {
            let c = try #require(item.objectValue)
            let configuration = try #require(c["pre_tokenizer"])
            let expected = try #require(c["pieces"]?.arrayValue).map { try strings($0) }
            #expect(expected.count == texts.count)
            for (text, pieces) in zip(texts, expected) {
                let got = try Tokenizer.preTokenize(text, with: configuration)
                #expect(got == pieces, "\(configuration.serialized.prefix(120)) on \"\(shown(text))\": \(got.map(shown)) against \(pieces.map(shown))")
            }
        }
    }

    @Test func normalizersNormalizeAsTheLibraryDoes() throws {
        let components = try Fixtures.components()
        let texts = try strings(components["texts"])
        for item in try #require(components["normalizers"]?.arrayValue) {
            let c = try #require(item.objectValue)
            let configuration = try #require(c["normalizer"])
            for (text, normalized) in zip(texts, try strings(c["normalized"])) {
                let got = try Tokenizer.normalize(text, with: configuration)
                #expect(Array(got.unicodeScalars) == Array(normalized.unicodeScalars),
                        "\(configuration.serialized) on \"\(shown(text))\": \"\(shown(got))\" against \"\(shown(normalized))\"")
            }
        }
    }

    /// GPT-2's byte alphabet against its definition, for all 256 bytes: the printable Latin-1
    /// bytes ("!"…"~", "¡"…"¬", "®"…"ÿ") are themselves; the rest, in byte order, are
    /// U+0100, U+0101, …; and no other scalar stands for a byte.
    @Test func byteAlphabetIsGPT2s() {
        var printable = Set<Int>()
        for range in [0x21...0x7E, 0xA1...0xAC, 0xAE...0xFF] { printable.formUnion(range) }
        #expect(printable.count == 188)
        var shifted: UInt32 = 256
        var seen = Set<UInt32>()
        for byte in 0..<256 {
            let expected: UInt32
            if printable.contains(byte) {
                expected = UInt32(byte)
            } else {
                expected = shifted
                shifted += 1
            }
            let scalar = ByteLevelAlphabet.scalars[byte]
            #expect(scalar.value == expected, "byte \(byte)")
            #expect(ByteLevelAlphabet.byte(for: scalar) == UInt8(byte), "byte \(byte) back")
            seen.insert(scalar.value)
        }
        #expect(shifted == 256 + 68)
        #expect(seen.count == 256)
        // Every other scalar up to well past the alphabet stands for no byte.
        for value in UInt32(0)..<0x1000 where !seen.contains(value) {
            if let scalar = Unicode.Scalar(value) { #expect(ByteLevelAlphabet.byte(for: scalar) == nil, "U+\(String(value, radix: 16))") }
        }
        // The well-known ones.
        #expect(ByteLevelAlphabet.scalars[0x20] == "Ġ")
        #expect(ByteLevelAlphabet.scalars[0x0A] == "Ċ")
    }

    /// The fixtures' byte-level vocabularies hold the whole alphabet, one token per byte, as
    /// the trainer's initial alphabet puts it there.
    @Test func byteLevelVocabulariesHoldTheAlphabet() throws {
        for name in Fixtures.lossless {
            let tokenizer = try Fixtures.tokenizer(name)
            for scalar in ByteLevelAlphabet.scalars {
                #expect(tokenizer.id(for: String(scalar)) != nil, "\(name): \(scalar)")
            }
        }
    }
}

import Foundation
import JSON
import Testing
import Tokenizer

// The committed fixtures of scripts/reference/make_tokenizer_fixture.py: tokenizers trained by
// the `tokenizers` library, and what that library makes of a test corpus with them.

enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures/tokenizers")

    /// Every tokenizer directory the script writes.
    static let names = ["gpt2", "gpt2-split", "llama3", "qwen2", "llama2", "metaspace"]

    /// The byte-level tokenizers for which decoding gives back exactly the text encoded: no
    /// normalizer, no added token that strips whitespace, no prefix space (gpt2-split's
    /// ByteLevel puts a space in front of every piece its Split cuts, as the library does).
    static let lossless = ["gpt2", "llama3"]

    static func url(_ name: String, _ file: String) -> URL {
        directory.appendingPathComponent(name).appendingPathComponent(file)
    }

    static func tokenizer(_ name: String) throws -> Tokenizer {
        try Tokenizer(contentsOf: url(name, "tokenizer.json"))
    }

    /// A fixture file read as JSON.
    static func json(_ name: String, _ file: String) throws -> JSONValue {
        try JSONValue(parsing: Data(contentsOf: url(name, file)))
    }

    /// The tokenizer.json of a fixture as a JSON object, for tests that change it.
    static func configuration(_ name: String) throws -> JSONObject {
        try #require(json(name, "tokenizer.json").objectValue)
    }

    /// expected.json of a fixture.
    static func expected(_ name: String) throws -> Expected {
        try Expected(#require(json(name, "expected.json").objectValue))
    }

    /// components.json (at the top of the fixtures' directory).
    static func components() throws -> JSONObject {
        try #require(JSONValue(parsing: Data(contentsOf: directory.appendingPathComponent("components.json"))).objectValue)
    }
}

/// What the library gave for one text.
struct ExpectedCase {
    var text: String
    var ids: [Int]
    var idsWithSpecialTokens: [Int]
    var decoded: String
    var decodedSkippingSpecialTokens: String
    /// The decoding of `idsWithSpecialTokens` but its last id.
    var decodedWithoutLastToken: String
    var pieces: [String]
}

/// expected.json: the library's version, vocabulary and cases.
struct Expected {
    var version: String
    var vocabularySize: Int
    var tokens: [String]
    var idsOfTokens: [Int?]
    var cases: [ExpectedCase]

    init(_ o: JSONObject) throws {
        version = try #require(o["tokenizers_version"]?.stringValue)
        vocabularySize = try #require(o["vocab_size"]?.intValue)
        tokens = try #require(o["tokens"]?.arrayValue).map { try #require($0.stringValue) }
        idsOfTokens = try #require(o["ids_of_tokens"]?.arrayValue).map(\.intValue)
        cases = try #require(o["cases"]?.arrayValue).map { item in
            let c = try #require(item.objectValue)
            return ExpectedCase(
                text: try #require(c["text"]?.stringValue),
                ids: try integers(c["ids"]),
                idsWithSpecialTokens: try integers(c["ids_with_special_tokens"]),
                decoded: try #require(c["decoded"]?.stringValue),
                decodedSkippingSpecialTokens: try #require(c["decoded_skipping_special_tokens"]?.stringValue),
                decodedWithoutLastToken: try #require(c["decoded_without_last_token"]?.stringValue),
                pieces: try strings(c["pieces"]))
        }
    }
}

func integers(_ value: JSONValue?) throws -> [Int] {
    try #require(value?.arrayValue).map { try #require($0.intValue) }
}

func strings(_ value: JSONValue?) throws -> [String] {
    try #require(value?.arrayValue).map { try #require($0.stringValue) }
}

/// A text shown with its scalars escaped, for messages: "a\u{301} b".
func shown(_ text: String) -> String {
    text.unicodeScalars.map { u in
        u.isASCII && u.value >= 0x20 && u.value < 0x7F ? String(u) : "\\u{\(String(u.value, radix: 16))}"
    }.joined()
}

/// Where two id lists first differ, with a few ids of each from there, for messages.
func firstDifference(_ got: [Int], _ expected: [Int]) -> String {
    let k = zip(got, expected).prefix { $0 == $1 }.count
    if k == got.count && k == expected.count { return "equal" }
    return "first difference at \(k): got \(Array(got[k...].prefix(8))) (\(got.count) ids), expected \(Array(expected[k...].prefix(8))) (\(expected.count) ids)"
}

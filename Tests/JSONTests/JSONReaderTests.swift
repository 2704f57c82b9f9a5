import JSON
import Testing

@Suite struct JSONReaderTests {
    func read(_ text: String) throws -> JSONValue { try JSONValue(parsing: text) }

    /// The error a text gives, as it is printed; "" when it reads.
    func failure(_ bytes: [UInt8], maxDepth: Int = JSONReader.defaultMaxDepth) -> String {
        do {
            _ = try JSONReader.read(bytes, maxDepth: maxDepth)
            return ""
        } catch {
            return error.description
        }
    }

    func failure(_ text: String) -> String { failure(Array(text.utf8)) }

    @Test func whatTheWriterWritesReadsBackEqualAndWritesTheSameText() throws {
        var rng = SplitMix64(state: 11)
        func scalar() -> JSONValue {
            switch rng.next() % 8 {
            case 0: return .null
            case 1: return .bool(rng.next() % 2 == 0)
            case 2: return .int(Int(bitPattern: UInt(rng.next())) >> Int(rng.next() % 64))
            case 3: return .double(Double(bitPattern: rng.next() & ~(0x7FF << 52) | (UInt64(rng.next() % 2046 + 1) << 52)))
            case 4: return .float(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()) & ~(0xFF << 23) | (UInt32(rng.next() % 254 + 1) << 23)))
            case 5: return .double(-0.0)
            default:
                let pool: [Unicode.Scalar] = ["a", "\"", "\\", "/", "\n", "\u{0}", "\u{1F}", "\u{7F}", "é", "☃", "😀", "\u{FFFF}", "\u{10FFFF}"]
                return .string(String(String.UnicodeScalarView((0..<(rng.next() % 6)).map { _ in pool[Int(rng.next() % UInt64(pool.count))] })))
            }
        }
        func value(_ depth: Int) -> JSONValue {
            guard depth < 4 else { return scalar() }
            switch rng.next() % 4 {
            case 0: return .array((0..<(rng.next() % 4)).map { _ in value(depth + 1) })
            case 1:
                var o = JSONObject()
                for k in 0..<(rng.next() % 4) { o["k\(k)\(rng.next() % 3 == 0 ? "é" : "")"] = value(depth + 1) }
                return .object(o)
            default: return scalar()
            }
        }
        for _ in 0..<500 {
            let v = value(0)
            let text = v.serialized
            let back = try read(text)
            #expect(back == v, "\(text)")
            #expect(back.serialized == text)
        }
    }

    @Test func escapesAndSurrogates() throws {
        #expect(try read(#""\"\\\/\b\f\n\r\t""#) == .string("\"\\/\u{08}\u{0C}\n\r\t"))
        #expect(try read(#""\u0041\u00e9\u2603\u0000""#) == .string("Aé☃\u{0}"))
        #expect(try read(#""\uD83D\uDE00 \ud83d\ude00""#) == .string("😀 😀"))
        #expect(try read(#""\uDBFF\uDFFF""#) == .string("\u{10FFFF}"))
        #expect(try read("\"é☃😀\"") == .string("é☃😀"))   // raw UTF-8
        #expect(failure(#""\uDE00""#) == #"line 1, column 2 (byte 1): a lone low surrogate \uDE00; it must follow a high surrogate (\uD800–\uDBFF)"#)
        #expect(failure(#""\uD83D""#) == #"line 1, column 2 (byte 1): a lone high surrogate \uD83D; it must be followed by a low surrogate escape (\uDC00–\uDFFF)"#)
        #expect(failure(#""\uD83Dx""#) == #"line 1, column 2 (byte 1): a lone high surrogate \uD83D; it must be followed by a low surrogate escape (\uDC00–\uDFFF)"#)
        #expect(failure(#""\uD83D\u0041""#) == #"line 1, column 2 (byte 1): a lone high surrogate \uD83D, followed by \u0041 instead of a low surrogate (\uDC00–\uDFFF)"#)
        #expect(failure(#""\uD83D\uD83D""#).contains("followed by \\uD83D instead of a low surrogate"))
    }

    @Test func numbersKeepTheirTextAndIntegersStayExact() throws {
        let zero = try #require(try read("0").literal)
        #expect(zero.text == "0" && zero.isInteger && zero.int == 0 && zero.double.bitPattern == 0)
        let minusZero = try #require(try read("-0").literal)
        #expect(minusZero.text == "-0" && minusZero.int == 0 && minusZero.uint64 == 0)
        #expect(minusZero.double == 0 && minusZero.double.sign == .minus)
        // 2^53 + 1: exact as an integer, though its nearest Double is 2^53.
        let big = try read("9007199254740993")
        #expect(big.intValue == 9_007_199_254_740_993 && big.doubleValue == 9_007_199_254_740_992)
        #expect(big.serialized == "9007199254740993" && big == .int(9_007_199_254_740_993) && big != .int(9_007_199_254_740_992))
        let max = try read("18446744073709551615")
        #expect(max.uint64Value == UInt64.max && max.intValue == nil)
        #expect(try read("-1").uint64Value == nil && read("18446744073709551616").uint64Value == nil)
        // A fraction or an exponent makes a number that is not written as an integer.
        for text in ["3.0", "3e0", "1.5e3"] {
            let n = try read(text)
            #expect(n.intValue == nil && n.literal?.isInteger == false && n.serialized == text, "\(text)")
        }
        #expect(try read("1.5E+3").doubleValue == 1500 && read("-2.5e-3").doubleValue == -0.0025)
        // Overflow is refused; underflow gives the nearest Double, the text kept.
        #expect(failure("1e400") == "line 1, column 1 (byte 0): the number 1e400 is beyond the largest 64-bit float (about 1.8e308)")
        #expect(failure("[-1e400]") == "line 1, column 2 (byte 1): the number -1e400 is beyond the largest 64-bit float (about 1.8e308)")
        let tiny = try read("1e-400")
        #expect(tiny.doubleValue == 0 && tiny.serialized == "1e-400")
        #expect(try read("1.7976931348623157e308").doubleValue == .greatestFiniteMagnitude)
        // A value read equals the value written the same way.
        #expect(try read("0.001") == .double(0.001) && read("0.1") == .float(0.1) && read("1.0") == .double(1))
        #expect(try read("1") != .double(1) && read("0.1") != .double(Double(Float(0.1))))
        #expect(JSONNumber("9007199254740993")?.int == 9_007_199_254_740_993)
        #expect(JSONNumber("01") == nil && JSONNumber(" 1") == nil && JSONNumber("\"1\"") == nil && JSONNumber("1e999") == nil)
    }

    @Test func accessorsReadOnlyTheirKind() throws {
        let v = try read(#"{"b":true,"s":"x","a":[1],"n":null,"i":7,"d":2.5}"#)
        let o = try #require(v.objectValue)
        #expect(o.keys == ["b", "s", "a", "n", "i", "d"])
        #expect(o["b"]?.boolValue == true && o["b"]?.intValue == nil && o["b"]?.doubleValue == nil)
        #expect(o["s"]?.stringValue == "x" && o["s"]?.intValue == nil)
        #expect(o["a"]?.arrayValue == [.int(1)] && o["a"]?.objectValue == nil)
        #expect(o["n"]?.isNull == true && o["i"]?.isNull == false)
        #expect(o["i"]?.intValue == 7 && o["i"]?.doubleValue == 7 && o["d"]?.intValue == nil && o["d"]?.doubleValue == 2.5)
        #expect(v.stringValue == nil && v.arrayValue == nil)
    }

    @Test func duplicateKeysAreRefused() throws {
        #expect(failure(#"{"a":1,"a":2}"#) == #"line 1, column 8 (byte 7): the key "a" appears twice in one object; keys must be unique"#)
        // The same key however it is written: compared after unescaping.
        do {
            _ = try JSONValue(parsing: #"{"w":1, "\u0077":2}"#)
            Issue.record("a repeated key was read")
        } catch {
            #expect(error.duplicateKey == "w" && error.offset == 8)
        }
        // The same name in different objects is no repetition.
        #expect(try read(#"{"a":{"a":1},"b":[{"a":2},{"a":3}]}"#).serialized == #"{"a":{"a":1},"b":[{"a":2},{"a":3}]}"#)
    }

    @Test func malformedTextsSayWhereAndWhatWasExpected() {
        let value = "expected a value (an object, array, string, number, true, false or null)"
        let cases: [(String, String)] = [
            ("", "line 1, column 1 (byte 0): expected a value; found the end of the text"),
            ("   ", "line 1, column 4 (byte 3): expected a value; found the end of the text"),
            ("{", "line 1, column 2 (byte 1): expected an object key (a string in double quotes); found the end of the text"),
            ("{\"a\" 1}", "line 1, column 6 (byte 5): expected ':' after the object key; found '1'"),
            ("{\"a\":1,}", "line 1, column 8 (byte 7): expected an object key (a string in double quotes); found '}'"),
            ("{\"a\":1 \"b\":2}", "line 1, column 8 (byte 7): expected ',' or '}' after an object member; found '\"'"),
            ("{a:1}", "line 1, column 2 (byte 1): expected an object key (a string in double quotes); found 'a'"),
            ("{\"a\":1", "line 1, column 7 (byte 6): expected ',' or '}' in the object; found the end of the text"),
            ("[1,]", "line 1, column 4 (byte 3): \(value); found ']'"),
            ("[1 2]", "line 1, column 4 (byte 3): expected ',' or ']' after an array element; found '2'"),
            ("[1", "line 1, column 3 (byte 2): expected ',' or ']' in the array; found the end of the text"),
            ("[1] 2", "line 1, column 5 (byte 4): expected the end of the text after the value; found '2'"),
            ("01", "line 1, column 2 (byte 1): expected '.', 'e' or the end of the number after a leading 0 (JSON numbers have no leading zeros); found '1'"),
            ("-", "line 1, column 2 (byte 1): expected a digit after '-'; found the end of the text"),
            ("-a", "line 1, column 2 (byte 1): expected a digit after '-'; found 'a'"),
            ("1.", "line 1, column 3 (byte 2): expected a digit after the decimal point; found the end of the text"),
            ("1e+", "line 1, column 4 (byte 3): expected a digit in the exponent; found the end of the text"),
            (".5", "line 1, column 1 (byte 0): \(value); found '.'"),
            ("+1", "line 1, column 1 (byte 0): \(value); found '+'"),
            ("NaN", "line 1, column 1 (byte 0): \(value); found 'N'"),
            ("'a'", "line 1, column 1 (byte 0): \(value); found '''"),
            ("tru", "line 1, column 4 (byte 3): expected 'true'; found the end of the text"),
            ("nul1", "line 1, column 4 (byte 3): expected 'null'; found '1'"),
            ("fals e", "line 1, column 5 (byte 4): expected 'false'; found ' '"),
            ("\"abc", "line 1, column 5 (byte 4): expected '\"' to end the string that begins at byte 0; found the end of the text"),
            ("\"a\nb\"", "line 1, column 3 (byte 2): expected a character or '\"' in the string; found a line feed (U+000A), which must be written as an escape"),
            ("\"a\u{1}\"", "line 1, column 3 (byte 2): expected a character or '\"' in the string; found the control character U+0001, which must be written as an escape"),
            ("\"\\x\"", "line 1, column 3 (byte 2): expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX after '\\'; found 'x'"),
            ("\"\\u12G4\"", "line 1, column 6 (byte 5): expected four hexadecimal digits after \\u; found 'G'"),
            ("\"\\", "line 1, column 3 (byte 2): expected an escape after '\\'; found the end of the text"),
            ("{\n  \"a\": tru\n}", "line 2, column 11 (byte 12): expected 'true'; found a line feed (U+000A)"),
            ("[\"é☃\", x]", "line 1, column 8 (byte 10): \(value); found 'x'"),
            ("[1]\r\n\t é", "line 2, column 3 (byte 7): expected the end of the text after the value; found 'é'"),
        ]
        for (text, expected) in cases {
            #expect(failure(text) == expected, "\(text)")
        }
    }

    @Test func onlyWellFormedUTF8IsRead() {
        let cases: [([UInt8], String)] = [
            ([0xEF, 0xBB, 0xBF, 0x31], "line 1, column 1 (byte 0): a byte-order mark starts the text; JSON text is UTF-8 without one"),
            ([0x22, 0xC3, 0x28, 0x22], "line 1, column 2 (byte 1): invalid UTF-8 in the string: the byte 0xC3 (not UTF-8)"),
            ([0x22, 0x80, 0x22], "line 1, column 2 (byte 1): invalid UTF-8 in the string: the byte 0x80 (not UTF-8)"),
            ([0x22, 0xC0, 0xAF, 0x22], "line 1, column 2 (byte 1): invalid UTF-8 in the string: the byte 0xC0 (not UTF-8)"),          // overlong '/'
            ([0x22, 0xE0, 0x80, 0xAF, 0x22], "line 1, column 2 (byte 1): invalid UTF-8 in the string: the byte 0xE0 (not UTF-8)"),    // overlong
            ([0x22, 0xED, 0xA0, 0x80, 0x22], "line 1, column 2 (byte 1): invalid UTF-8 in the string: the byte 0xED (not UTF-8)"),    // U+D800
            ([0x22, 0xF4, 0x90, 0x80, 0x80, 0x22], "line 1, column 2 (byte 1): invalid UTF-8 in the string: the byte 0xF4 (not UTF-8)"), // past U+10FFFF
            ([0x22, 0xE2, 0x98, 0x22], "line 1, column 2 (byte 1): invalid UTF-8 in the string: the byte 0xE2 (not UTF-8)"),         // cut short
            ([0x5B, 0xFF, 0x5D], "line 1, column 2 (byte 1): expected a value (an object, array, string, number, true, false or null); found the byte 0xFF (not UTF-8)"),
        ]
        for (bytes, expected) in cases {
            #expect(failure(bytes) == expected, "\(bytes)")
        }
        // The longest sequences of each length at the edges of the valid ranges read.
        for scalar: Unicode.Scalar in ["\u{80}", "\u{7FF}", "\u{800}", "\u{D7FF}", "\u{E000}", "\u{FFFF}", "\u{10000}", "\u{10FFFF}"] {
            #expect(failure(Array("\"\(scalar)\"".utf8)) == "", "\(scalar.value)")
        }
    }

    @Test func nestingIsLimited() throws {
        func nested(_ n: Int) -> String { String(repeating: "[", count: n) + String(repeating: "]", count: n) }
        #expect(failure(nested(JSONReader.defaultMaxDepth)) == "")
        #expect(failure(nested(JSONReader.defaultMaxDepth + 1))
            == "line 1, column 129 (byte 128): arrays and objects nest more than 128 deep here (the limit)")
        #expect(failure(Array(#"{"a":[{"b":1}]}"#.utf8), maxDepth: 2) == "line 1, column 7 (byte 6): arrays and objects nest more than 2 deep here (the limit)")
        #expect(failure(Array(#"{"a":[1]}"#.utf8), maxDepth: 2) == "")
        // A hostile depth is refused, not a crash.
        #expect(failure(String(repeating: "[", count: 1_000_000)).contains("nest more than 128 deep"))
    }
}

extension JSONValue {
    /// The literal of a number the reader gave; nil for anything else.
    var literal: JSONNumber? { if case .number(let n) = self { n } else { nil } }
}

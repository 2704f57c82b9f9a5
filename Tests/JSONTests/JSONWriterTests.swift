import JSON
import Foundation


import Testing

@Suite struct JSONWriterTests {
    func parse(_ text: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])
    }

    @Test func scalars() {
        #expect(JSONValue.null.serialized == "null")
        #expect(JSONValue.bool(true).serialized == "true" && JSONValue.bool(false).serialized == "false")
        #expect(JSONValue.int(-42).serialized == "-42" && JSONValue.int(Int.max).serialized == "9223372036854775807")
        #expect(JSONValue.double(0.1).serialized == "0.1")
        #expect(JSONValue.double(1).serialized == "1.0")
        #expect(JSONValue.double(-0.0).serialized == "-0.0")
        #expect(JSONValue.float(0.1).serialized == "0.1")             // not 0.10000000149011612
        #expect(JSONValue.double(Double(Float(0.1))).serialized == "0.10000000149011612")
        for x in [Double.nan, .infinity, -.infinity] {
            #expect(JSONValue.double(x).serialized == "null" && JSONValue.number(x) == .null)
            #expect(JSONValue.float(Float(x)).serialized == "null")
        }
        #expect(JSONValue.number(nil as Double?) == .null && JSONValue.number(nil as Int?) == .null)
        #expect(JSONValue.number(2.5 as Double?) == .double(2.5) && JSONValue.number(Float(2.5)) == .float(2.5))
    }

    @Test func numbersAreShortestRoundTripAndValidJSON() throws {
        var rng = SplitMix64(state: 3)
        var samples: [Double] = [.leastNonzeroMagnitude, .leastNormalMagnitude, .greatestFiniteMagnitude, 1e-5, 1e16, 123456789012345680,
                                 0.1 + 0.2, -1.5e300, 1 / 3]
        for _ in 0..<2000 { samples.append(Double(bitPattern: rng.next() & ~(0x7FF << 52)  | (UInt64(rng.next() % 2046 + 1) << 52))) }
        for x in samples {
            let text = JSONWriter.format(x)
            #expect(Double(text)?.bitPattern == x.bitPattern, "\(text)")
            // Shortest: dropping the last significant digit no longer round-trips (checked by
            // the standard library's algorithm; spot-check the grammar and parse instead).
            #expect(text.range(of: #"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$"#, options: .regularExpression) != nil, "\(text)")
            let parsed = try parse("[\(text)]") as? [Any]
            #expect(parsed?.count == 1)
        }
        for x: Float in [0.1, .leastNonzeroMagnitude, .greatestFiniteMagnitude, .leastNormalMagnitude, -7.25] {
            let text = JSONWriter.format(x)
            #expect(Float(text)?.bitPattern == x.bitPattern, "\(text)")
        }
    }

    @Test func stringsAreEscaped() throws {
        let s = "a\"b\\c/d\ne\rf\tg\u{08}h\u{0C}i\u{01}j\u{1F}k\u{7F}é☃😀"
        let text = JSONValue.string(s).serialized
        #expect(text == "\"a\\\"b\\\\c/d\\ne\\rf\\tg\\bh\\fi\\u0001j\\u001fk\u{7F}é☃😀\"")
        #expect(try parse(text) as? String == s)
    }

    @Test func objectsKeepTheirOrder() throws {
        var o: JSONObject = ["zeta": 1, "alpha": [true, nil, "x"], "mid": ["inner": 2.5]]
        o["beta"] = .int(3)
        o["zeta"] = .string("replaced")          // in place
        #expect(o.keys == ["zeta", "alpha", "mid", "beta"])
        let text = JSONValue.object(o).serialized
        #expect(text == #"{"zeta":"replaced","alpha":[true,null,"x"],"mid":{"inner":2.5},"beta":3}"#)
        let parsed = try #require(try parse(text) as? [String: Any])
        #expect(parsed["beta"] as? Int == 3 && parsed["zeta"] as? String == "replaced")
        o["alpha"] = nil
        #expect(o.keys == ["zeta", "mid", "beta"] && o["alpha"] == nil && o["mid"] != nil)
        var p = JSONObject([JSONMember("a", 1), JSONMember("b", 2)])
        p.merge(["b": 20, "c": 30])
        p.set("d", .numbers([1.5, .nan]))
        #expect(JSONValue.object(p).serialized == #"{"a":1,"b":20,"c":30,"d":[1.5,null]}"#)
        #expect(JSONValue.array([]).serialized == "[]" && JSONValue.object(JSONObject()).serialized == "{}")
        #expect(JSONValue.numbers([1, 2] as [Int]).serialized == "[1,2]")
        #expect(JSONValue.numbers([Float(0.1), .infinity]).serialized == "[0.1,null]")
        let literal: JSONValue = ["k": 1.25, "s": "t", "n": nil]
        #expect("\(literal)" == #"{"k":1.25,"s":"t","n":null}"#)
        #expect(literal.rendered == literal.serialized && p.rendered == JSONValue.object(p).serialized)
    }
}


/// A seeded 64-bit stream (SplitMix64) for sampling bit patterns.
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

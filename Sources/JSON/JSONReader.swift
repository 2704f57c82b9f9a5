// A strict JSON reader (RFC 8259) for the JSON files the lab reads: config.json, lab.json and
// safetensors headers. It gives the same `JSONValue` the writer writes.
//
// What it accepts, and what it refuses:
// - The text is UTF-8 (RFC 8259 §8.1). Invalid UTF-8 (a stray continuation byte, an overlong
//   form, a surrogate encoded in UTF-8, a code point past U+10FFFF) and a byte-order mark are
//   errors.
// - Whitespace is space, tab, line feed and carriage return. Any value may be the whole text
//   (RFC 8259 §2); nothing but whitespace may follow it.
// - Strings: U+0000–U+001F must be escaped; the escapes are the eight of §7 and `\uXXXX`. A
//   high-surrogate escape must be followed at once by a low one (`\uD83D\uDE00` is 😀); a lone
//   surrogate, high or low, is an error: it is not a character, and a String cannot hold it.
// - Numbers follow the grammar exactly: no leading zeros, no `+`, no `.5` or `1.`, no NaN or
//   Infinity. Each is kept as its literal text with its nearest Double (`JSONNumber`), so an
//   integer stays exact at any size that fits an Int or a UInt64 (9007199254740993 is itself,
//   not 2^53), and a number read and written again is the same text. A number beyond the
//   largest Double (1e400) is an error: the writer cannot have written it, and no caller could
//   use it. One below the smallest (1e-400) reads as the nearest Double, ±0, its text kept.
// - An object may not name a key twice. JSON leaves duplicates to the implementation (§4), and
//   readers differ (the first wins, or the last); a file that means two things is refused
//   rather than read one way here and another elsewhere. Keys are compared as Swift strings
//   (after unescaping, up to canonical equivalence), the way `JSONObject` looks them up, so
//   `"w"` and `"\u0077"` are the same key.
// - Arrays and objects nest at most `maxDepth` deep (128 by default), so a hostile file cannot
//   exhaust the stack.
// An error names the place (line, column, byte offset) and what was expected there.

/// A JSON number as it was written: its literal text, and the nearest Double.
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible {
    /// The literal, exactly as in the text (RFC 8259 number grammar).
    public let text: String
    /// The nearest Double to the literal (finite: the reader refuses overflow).
    public let double: Double

    init(text: String, double: Double) {
        self.text = text
        self.double = double
    }

    /// An integer, exactly (`JSONValue.int` holds those that fit an Int).
    public init(_ value: some BinaryInteger) {
        self.init(text: String(value), double: Double(value))
    }

    /// The number a literal denotes; nil when `text` is not one JSON number (or overflows a
    /// Double).
    public init?(_ text: String) {
        guard case .number(let n)? = try? JSONReader.read(Array(text.utf8)), n.text == text else { return nil }
        self = n
    }

    /// Whether the literal is an integer: no fraction, no exponent (`3`, not `3.0` or `3e0`).
    public var isInteger: Bool { !text.utf8.contains { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") } }

    /// The value, exactly, when the literal is an integer in Int's range; else nil.
    public var int: Int? { isInteger ? Int(text) : nil }

    /// The value, exactly, when the literal is an integer in UInt64's range (`-0` is 0);
    /// else nil.
    public var uint64: UInt64? {
        guard isInteger else { return nil }
        return text == "-0" ? 0 : UInt64(text)
    }

    public var description: String { text }
}

extension JSONValue {
    /// Reads one JSON text (see JSONReader.swift for what is accepted).
    public init(parsing bytes: some Sequence<UInt8>, maxDepth: Int = JSONReader.defaultMaxDepth) throws(JSONReadError) {
        self = try JSONReader.read(Array(bytes), maxDepth: maxDepth)
    }

    /// Reads one JSON text given as a string.
    public init(parsing text: String, maxDepth: Int = JSONReader.defaultMaxDepth) throws(JSONReadError) {
        self = try JSONReader.read(Array(text.utf8), maxDepth: maxDepth)
    }

    /// Whether the value is `null`.
    public var isNull: Bool { if case .null = self { true } else { false } }
    /// The boolean, or nil for anything else.
    public var boolValue: Bool? { if case .bool(let b) = self { b } else { nil } }
    /// The string, or nil for anything else.
    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    /// The elements of an array, or nil for anything else.
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { a } else { nil } }
    /// The object, or nil for anything else.
    public var objectValue: JSONObject? { if case .object(let o) = self { o } else { nil } }

    /// An integer written as one (`3`; not `3.0`, `3e0` or `true`) that fits an Int; else nil.
    public var intValue: Int? {
        switch self {
        case .int(let i): return i
        case .number(let n): return n.int
        default: return nil
        }
    }

    /// An integer written as one that fits a UInt64; else nil.
    public var uint64Value: UInt64? {
        switch self {
        case .int(let i): return UInt64(exactly: i)
        case .number(let n): return n.uint64
        default: return nil
        }
    }

    /// Any number (not a boolean) as a Double: the nearest one to a literal; else nil.
    public var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        case .float(let f): return Double(f)
        case .number(let n): return n.double
        default: return nil
        }
    }
}

/// Why a JSON text was refused, and where.
public struct JSONReadError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What was wrong: "expected ':' after an object key; found '}'".
    public var message: String
    /// The byte offset of the fault from the start of the text (0-based).
    public var offset: Int
    /// The line (1-based; lines end at line feeds).
    public var line: Int
    /// The column (1-based, in characters: Unicode scalars).
    public var column: Int
    /// The key, when the fault is a key an object names twice (for callers that say so in
    /// their own words).
    public var duplicateKey: String?

    /// "line 1, column 8 (byte 7)".
    public var place: String { "line \(line), column \(column) (byte \(offset))" }

    /// "line 1, column 8 (byte 7): expected ':' after an object key; found '}'".
    public var description: String { "\(place): \(message)" }
}

/// The strict JSON reader (the rules are at the top of this file).
public enum JSONReader {
    /// How deep arrays and objects may nest unless the caller says otherwise.
    public static let defaultMaxDepth = 128

    /// Reads one JSON text.
    public static func read(_ bytes: [UInt8], maxDepth: Int = defaultMaxDepth) throws(JSONReadError) -> JSONValue {
        var parser = Parser(bytes: bytes, maxDepth: maxDepth)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) {
            throw parser.error(at: 0, "a byte-order mark starts the text; JSON text is UTF-8 without one")
        }
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        if parser.i < bytes.count {
            throw parser.error("expected the end of the text after the value; found \(parser.found())")
        }
        return value
    }
}

private extension UInt8 {
    static let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
    var isDigit: Bool { self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9") }
}

private struct Parser {
    let bytes: [UInt8]
    let maxDepth: Int
    var i = 0

    init(bytes: [UInt8], maxDepth: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
    }

    // MARK: Values

    mutating func value(depth: Int) throws(JSONReadError) -> JSONValue {
        skipWhitespace()
        guard i < bytes.count else { throw error("expected a value; found \(found())") }
        switch bytes[i] {
        case UInt8(ascii: "{"): return try object(depth: depth + 1)
        case UInt8(ascii: "["): return try array(depth: depth + 1)
        case .quote: return .string(try string())
        case UInt8(ascii: "t"): try word("true"); return .bool(true)
        case UInt8(ascii: "f"): try word("false"); return .bool(false)
        case UInt8(ascii: "n"): try word("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default:
            throw error("expected a value (an object, array, string, number, true, false or null); found \(found())")
        }
    }

    mutating func word(_ w: String) throws(JSONReadError) {
        for (k, b) in w.utf8.enumerated() where i + k >= bytes.count || bytes[i + k] != b {
            throw error(at: i + k, "expected '\(w)'; found \(found(at: i + k))")
        }
        i += w.utf8.count
    }

    mutating func enter(_ depth: Int) throws(JSONReadError) {
        if depth > maxDepth {
            throw error("arrays and objects nest more than \(maxDepth) deep here (the limit)")
        }
        i += 1
    }

    mutating func array(depth: Int) throws(JSONReadError) -> JSONValue {
        try enter(depth)
        var items: [JSONValue] = []
        skipWhitespace()
        if i < bytes.count && bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
        while true {
            items.append(try value(depth: depth))
            skipWhitespace()
            guard i < bytes.count else { throw error("expected ',' or ']' in the array; found \(found())") }
            switch bytes[i] {
            case UInt8(ascii: ","): i += 1
            case UInt8(ascii: "]"): i += 1; return .array(items)
            default: throw error("expected ',' or ']' after an array element; found \(found())")
            }
        }
    }

    mutating func object(depth: Int) throws(JSONReadError) -> JSONValue {
        try enter(depth)
        var members: [JSONMember] = []
        var keys = Set<String>()
        skipWhitespace()
        if i < bytes.count && bytes[i] == UInt8(ascii: "}") { i += 1; return .object(JSONObject()) }
        while true {
            skipWhitespace()
            guard i < bytes.count, bytes[i] == .quote else {
                throw error("expected an object key (a string in double quotes); found \(found())")
            }
            let keyStart = i
            let key = try string()
            guard keys.insert(key).inserted else {
                var e = error(at: keyStart, "the key \(JSONValue.string(key).serialized) appears twice in one object; keys must be unique")
                e.duplicateKey = key
                throw e
            }
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else {
                throw error("expected ':' after the object key; found \(found())")
            }
            i += 1
            members.append(JSONMember(key, try value(depth: depth)))
            skipWhitespace()
            guard i < bytes.count else { throw error("expected ',' or '}' in the object; found \(found())") }
            switch bytes[i] {
            case UInt8(ascii: ","): i += 1
            case UInt8(ascii: "}"): i += 1; return .object(JSONObject(distinctMembers: members))
            default: throw error("expected ',' or '}' after an object member; found \(found())")
            }
        }
    }

    // MARK: Numbers

    mutating func number() throws(JSONReadError) -> JSONNumber {
        let start = i
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard i < bytes.count, bytes[i].isDigit else { throw error("expected a digit after '-'; found \(found())") }
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
            if i < bytes.count && bytes[i].isDigit {
                throw error("expected '.', 'e' or the end of the number after a leading 0 (JSON numbers have no leading zeros); found \(found())")
            }
        } else {
            skipDigits()
        }
        if i < bytes.count && bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard i < bytes.count, bytes[i].isDigit else { throw error("expected a digit after the decimal point; found \(found())") }
            skipDigits()
        }
        if i < bytes.count && (bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E")) {
            i += 1
            if i < bytes.count && (bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-")) { i += 1 }
            guard i < bytes.count, bytes[i].isDigit else { throw error("expected a digit in the exponent; found \(found())") }
            skipDigits()
        }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        guard let d = Double(text), d.isFinite else {
            throw error(at: start, "the number \(text.count > 40 ? String(text.prefix(37)) + "..." : text) is beyond the largest 64-bit float (about 1.8e308)")
        }
        return JSONNumber(text: text, double: d)
    }

    mutating func skipDigits() {
        while i < bytes.count && bytes[i].isDigit { i += 1 }
    }

    // MARK: Strings

    /// A string starting at the opening quote under `i`.
    mutating func string() throws(JSONReadError) -> String {
        let open = i
        i += 1
        var out: [UInt8] = []
        var run = i
        while true {
            guard i < bytes.count else {
                throw error("expected '\"' to end the string that begins at byte \(open); found \(found())")
            }
            let b = bytes[i]
            if b == .quote {
                out.append(contentsOf: bytes[run..<i])
                i += 1
                return String(decoding: out, as: UTF8.self)
            } else if b == .backslash {
                out.append(contentsOf: bytes[run..<i])
                try escape(into: &out)
                run = i
            } else if b < 0x20 {
                throw error("expected a character or '\"' in the string; found \(found()), which must be written as an escape")
            } else if b < 0x80 {
                i += 1
            } else {
                guard let n = utf8SequenceLength(at: i) else { throw error("invalid UTF-8 in the string: \(found())") }
                i += n
            }
        }
    }

    /// An escape at the backslash under `i`; appends the UTF-8 of what it stands for.
    mutating func escape(into out: inout [UInt8]) throws(JSONReadError) {
        i += 1
        guard i < bytes.count else { throw error("expected an escape after '\\'; found \(found())") }
        let c = bytes[i]
        i += 1
        switch c {
        case .quote, .backslash, UInt8(ascii: "/"): out.append(c)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            let start = i - 2
            var code = try hex4()
            if (0xDC00...0xDFFF).contains(code) {
                throw error(at: start, "a lone low surrogate \(escapeText(code)); it must follow a high surrogate (\\uD800–\\uDBFF)")
            }
            if (0xD800...0xDBFF).contains(code) {
                guard i + 1 < bytes.count, bytes[i] == .backslash, bytes[i + 1] == UInt8(ascii: "u") else {
                    throw error(at: start, "a lone high surrogate \(escapeText(code)); it must be followed by a low surrogate escape (\\uDC00–\\uDFFF)")
                }
                i += 2
                let low = try hex4()
                guard (0xDC00...0xDFFF).contains(low) else {
                    throw error(at: start, "a lone high surrogate \(escapeText(code)), followed by \(escapeText(low)) instead of a low surrogate (\\uDC00–\\uDFFF)")
                }
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
            }
            out.append(contentsOf: Unicode.Scalar(code)!.utf8)
        default:
            i -= 1
            throw error("expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX after '\\'; found \(found())")
        }
    }

    mutating func hex4() throws(JSONReadError) -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard i < bytes.count, let d = hexDigit(bytes[i]) else {
                throw error("expected four hexadecimal digits after \\u; found \(found())")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    func hexDigit(_ b: UInt8) -> UInt32? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt32(b - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt32(b - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return UInt32(b - UInt8(ascii: "A") + 10)
        default: return nil
        }
    }

    func escapeText(_ code: UInt32) -> String {
        let hex = String(code, radix: 16, uppercase: true)
        return "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }

    /// The length of the well-formed UTF-8 sequence at `k` (Unicode Table 3-7), or nil.
    func utf8SequenceLength(at k: Int) -> Int? {
        let b0 = bytes[k]
        let n: Int
        var second: ClosedRange<UInt8> = 0x80...0xBF
        switch b0 {
        case 0xC2...0xDF: n = 2
        case 0xE0: n = 3; second = 0xA0...0xBF
        case 0xE1...0xEC, 0xEE...0xEF: n = 3
        case 0xED: n = 3; second = 0x80...0x9F
        case 0xF0: n = 4; second = 0x90...0xBF
        case 0xF1...0xF3: n = 4
        case 0xF4: n = 4; second = 0x80...0x8F
        default: return nil
        }
        guard k + n <= bytes.count, second.contains(bytes[k + 1]) else { return nil }
        for j in 2..<n where !(0x80...0xBF).contains(bytes[k + j]) { return nil }
        return n
    }

    // MARK: Places and messages

    mutating func skipWhitespace() {
        while i < bytes.count {
            switch bytes[i] {
            case 0x20, 0x09, 0x0A, 0x0D: i += 1
            default: return
            }
        }
    }

    /// What stands at `k`, for a message: "'}'", "the end of the text", "a line feed (U+000A)",
    /// "'é'", "the byte 0xFF (not UTF-8)".
    func found(at k: Int? = nil) -> String {
        let k = k ?? i
        guard k < bytes.count else { return "the end of the text" }
        let b = bytes[k]
        switch b {
        case 0x0A: return "a line feed (U+000A)"
        case 0x0D: return "a carriage return (U+000D)"
        case 0x09: return "a tab (U+0009)"
        case 0..<0x20, 0x7F: return "the control character U+00\(b < 0x10 ? "0" : "")\(String(b, radix: 16, uppercase: true))"
        case 0x20..<0x7F: return "'\(Character(Unicode.Scalar(b)))'"
        default:
            if let n = utf8SequenceLength(at: k) { return "'\(String(decoding: bytes[k..<(k + n)], as: UTF8.self))'" }
            return "the byte 0x\(String(b, radix: 16, uppercase: true)) (not UTF-8)"
        }
    }

    func error(_ message: String) -> JSONReadError { error(at: i, message) }

    func error(at offset: Int, _ message: String) -> JSONReadError {
        let offset = min(offset, bytes.count)
        let lineStart = bytes[..<offset].lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
        let line = bytes[..<offset].reduce(1) { $1 == 0x0A ? $0 + 1 : $0 }
        // Characters before the fault on its line: bytes that do not continue a sequence.
        let column = bytes[lineStart..<offset].reduce(1) { ($1 & 0xC0) == 0x80 ? $0 : $0 + 1 }
        return JSONReadError(message: message, offset: offset, line: line, column: column)
    }
}

// The lab's JSON value and its deterministic writer, for every `--json` output and every
// JSON file the lab writes (JSONReader.swift reads them back).
//
// Foundation's JSONEncoder does not promise the same text everywhere (key order, number
// formatting, escaping of "/"), and transcripts must replay byte for byte. Here:
// - objects keep their keys in the order they were built (no sorting, no hashing);
// - a Double is printed as the shortest decimal that parses back to the same Double (Swift's
//   own `description`, which is computed by the standard library, not by the C library), a
//   Float as the shortest decimal that parses back to the same Float, an Int exactly;
// - NaN and ±infinity, which JSON cannot represent, are written as `null`;
// - strings escape `"`, `\` and the control characters U+0000–U+001F (as \n, \r, \t, \b, \f
//   or \u00XX) and nothing else;
// - output is one line with no spaces: `{"a":1,"b":[true,null]}`.

/// A JSON value with ordered object keys.
///
/// Numbers come in four cases: the three the lab writes from typed values (`int`, `double`,
/// `float`) and the one the reader gives (`number`, the literal as written). Two numbers are
/// equal when they are written the same way, so a value read back equals the value written:
/// `.double(0.001)` equals the literal `0.001` read back, `.int(3)` does not equal
/// `.double(3)` (`3` against `3.0`), and NaN and the infinities, all written `null`, equal
/// each other. The accessors (`intValue`, `doubleValue`, …) read any of the four.
public enum JSONValue: Sendable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int)
    /// Written as the shortest round-trip decimal; non-finite → `null`.
    case double(Double)
    /// Written as the shortest decimal that round-trips through Float; non-finite → `null`.
    case float(Float)
    /// A number as the reader found it: written back as the same text.
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// A Double, or `null` if absent or not finite.
    public static func number(_ value: Double?) -> JSONValue {
        guard let v = value, v.isFinite else { return .null }
        return .double(v)
    }

    /// A Float, or `null` if absent or not finite.
    public static func number(_ value: Float?) -> JSONValue {
        guard let v = value, v.isFinite else { return .null }
        return .float(v)
    }

    /// An Int, or `null` if absent.
    public static func number(_ value: Int?) -> JSONValue {
        guard let v = value else { return .null }
        return .int(v)
    }

    /// An array of Doubles (non-finite entries become `null`).
    public static func numbers(_ values: [Double]) -> JSONValue { .array(values.map { .number($0) }) }
    /// An array of Floats (non-finite entries become `null`).
    public static func numbers(_ values: [Float]) -> JSONValue { .array(values.map { .number($0) }) }
    /// An array of Ints.
    public static func numbers(_ values: [Int]) -> JSONValue { .array(values.map { .int($0) }) }

    /// The value as one line of JSON text.
    public var serialized: String {
        var out = ""
        JSONWriter.write(self, to: &out)
        return out
    }

    /// Same as `serialized`.
    public var rendered: String { serialized }

    public var description: String { serialized }
}

extension JSONValue: Equatable {
    /// Structural equality; numbers are equal when their JSON text is (see the type's note).
    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.string(x), .string(y)): return x == y
        case let (.array(x), .array(y)): return x == y
        case let (.object(x), .object(y)): return x == y
        default:
            guard let x = a.numberText, let y = b.numberText else { return false }
            return x == y
        }
    }

    /// The JSON text of a number (`null` for a non-finite one); nil for anything else.
    var numberText: String? {
        switch self {
        case .int(let i): return String(i)
        case .double(let d): return JSONWriter.format(d)
        case .float(let f): return JSONWriter.format(f)
        case .number(let n): return n.text
        default: return nil
        }
    }
}

/// One key and its value in a `JSONObject`.
public struct JSONMember: Sendable, Equatable {
    public var key: String
    public var value: JSONValue
    public init(_ key: String, _ value: JSONValue) {
        self.key = key
        self.value = value
    }
}

/// A JSON object whose keys keep the order in which they were added.
public struct JSONObject: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    public private(set) var members: [JSONMember] = []

    public init() {}

    public init(_ members: [JSONMember]) {
        for m in members { self[m.key] = m.value }
    }

    /// Members whose keys the caller knows to be distinct (the reader checks them).
    init(distinctMembers: [JSONMember]) {
        members = distinctMembers
    }

    /// Dictionary literals keep their source order: `["a": .int(1), "b": .null]`.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        for (k, v) in elements { self[k] = v }
    }

    /// The keys, in order.
    public var keys: [String] { members.map(\.key) }

    /// Reading gives the value for `key`, or nil. Setting replaces an existing key's value in
    /// place, appends a new key at the end, and removes the key when given nil.
    public subscript(key: String) -> JSONValue? {
        get { members.first { $0.key == key }?.value }
        set {
            if let i = members.firstIndex(where: { $0.key == key }) {
                if let v = newValue { members[i].value = v } else { members.remove(at: i) }
            } else if let v = newValue {
                members.append(JSONMember(key, v))
            }
        }
    }

    /// Appends or replaces `key` (see the subscript).
    public mutating func set(_ key: String, _ value: JSONValue) { self[key] = value }

    /// The object as one line of JSON text.
    public var serialized: String { JSONValue.object(self).serialized }
    /// Same as `serialized`.
    public var rendered: String { serialized }

    /// Appends the members of `other` in their order (replacing keys already present).
    public mutating func merge(_ other: JSONObject) {
        for m in other.members { self[m.key] = m.value }
    }
}

extension JSONValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        var o = JSONObject()
        for (k, v) in elements { o[k] = v }
        self = .object(o)
    }
}

/// Types that have one canonical JSON form.
public protocol JSONRepresentable {
    var json: JSONValue { get }
}

/// The writer behind `JSONValue.serialized`.
public enum JSONWriter {
    /// Appends `value` as JSON text to `out`.
    public static func write(_ value: JSONValue, to out: inout String) {
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += format(d)
        case .float(let f): out += format(f)
        case .number(let n): out += n.text
        case .string(let s): writeString(s, to: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                write(item, to: &out)
            }
            out += "]"
        case .object(let object):
            out += "{"
            for (i, m) in object.members.enumerated() {
                if i > 0 { out += "," }
                writeString(m.key, to: &out)
                out += ":"
                write(m.value, to: &out)
            }
            out += "}"
        }
    }

    /// The JSON text of a Double: the shortest decimal that parses back to the same Double
    /// (e.g. `0.1`, `1.0`, `-0.0`, `1e-05`, `1.5e+300`), or `null` if not finite.
    public static func format(_ x: Double) -> String {
        x.isFinite ? x.description : "null"
    }

    /// The JSON text of a Float: the shortest decimal that parses back to the same Float
    /// (`Float(0.1)` gives `0.1`), or `null` if not finite.
    public static func format(_ x: Float) -> String {
        x.isFinite ? x.description : "null"
    }

    /// Appends `s` as a quoted, escaped JSON string.
    public static func writeString(_ s: String, to out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }
}

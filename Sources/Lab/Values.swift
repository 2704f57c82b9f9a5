// Typed values: what an argument or a setting accepts, parsed once with a uniform error.

import JSON
import Files
import Foundation
import Numerics

/// What a command argument or a setting accepts. Parsing a word against a kind gives a
/// `Value` or an error that says what would have been accepted.
public enum ValueKind: Sendable {
    /// An integer in the range.
    case integer(ClosedRange<Int>)
    /// A finite decimal number in the range.
    case real(ClosedRange<Double>)
    /// One of the names (compared exactly; the closest is suggested on a typo).
    case choice([String])
    /// `on` or `off` (also accepted: true/false, yes/no, 1/0).
    case toggle
    /// A number format: fp32 bf16 fp16 e4m3 e5m2 or any eXmY.
    case format
    /// One of the names, or an alias standing for one (`tis` for `token-tis`); the value is
    /// the name the alias stands for.
    case named([String], aliases: [String: String])
    /// The keyword (`auto`, `dynamic`), or a value of the other kind.
    indirect case keywordOr(String, ValueKind)
    /// A path to a file or directory, checked when the command uses it.
    case path(PathUse)
    /// Any word.
    case text
    /// A count in the range as an unquoted word, or any quoted text (`rollout 8`, `rollout
    /// "The capital of France is"`): a mistyped count (`6a4`) is refused, not read as text.
    case countOrText(ClosedRange<Int>)

    /// How a path is going to be used, which decides what is checked up front.
    public enum PathUse: Sendable {
        /// An existing, readable regular file.
        case readFile
        /// A file that can be created or overwritten: its directory exists.
        case writeFile
        /// An existing directory.
        case directory
    }

    /// What the kind accepts, for errors and help: "an integer in 0…100".
    public var accepted: String {
        switch self {
        case .integer(let r):
            if r.upperBound == Int.max { return r.lowerBound == 0 ? "a non-negative integer" : "an integer ≥ \(r.lowerBound)" }
            return "an integer in \(r.lowerBound)…\(r.upperBound)"
        case .real(let r):
            if r.upperBound == .greatestFiniteMagnitude { return "a number ≥ \(numberText(r.lowerBound))" }
            return "a number in \(numberText(r.lowerBound))…\(numberText(r.upperBound))"
        case .choice(let names), .named(let names, _): return "one of " + names.joined(separator: ", ")
        case .keywordOr(let keyword, let kind): return "\(keyword) or \(kind.accepted)"
        case .toggle: return "on or off"
        case .format: return "a number format (\(NumberFormat.acceptedNames))"
        case .path(.readFile): return "a readable file"
        case .path(.writeFile): return "a file path in an existing directory"
        case .path(.directory): return "an existing directory"
        case .text: return "a word"
        case .countOrText(let r): return "an integer in \(r.lowerBound)…\(r.upperBound), or a quoted text"
        }
    }

    /// A short placeholder for usage lines: `N`, `X`, `on|off`, `FORMAT`, `FILE`.
    var placeholder: String {
        switch self {
        case .integer: return "N"
        case .real: return "X"
        case .choice(let names), .named(let names, _): return names.joined(separator: "|")
        case .keywordOr(let keyword, let kind): return "\(keyword)|\(kind.placeholder)"
        case .toggle: return "on|off"
        case .format: return "FORMAT"
        case .path(.directory): return "DIR"
        case .path: return "FILE"
        case .text: return "WORD"
        case .countOrText: return "N|\"TEXT\""
        }
    }

    /// Parses `word` (`quoted`: it was written in quotes), or explains in one line why not
    /// (the caller prefixes the argument's name).
    public func parse(_ word: String, quoted: Bool = false) throws(ValueError) -> Value {
        switch self {
        case .countOrText(let range):
            if quoted { return .text(word) }
            guard let n = Int(word), range.contains(n) else { throw ValueError(word: word, kind: self) }
            return .integer(n)
        case .integer(let range):
            guard let n = Int(word), range.contains(n) else { throw ValueError(word: word, kind: self) }
            return .integer(n)
        case .real(let range):
            guard let x = Double(word), x.isFinite, range.contains(x) else { throw ValueError(word: word, kind: self) }
            return .real(x)
        case .named(let names, let aliases):
            let lowered = word.lowercased()
            if names.contains(lowered) { return .text(lowered) }
            if let name = aliases[lowered] { return .text(name) }
            throw ValueError(word: word, kind: self, suggestion: closestMatch(to: lowered, among: names))
        case .keywordOr(let keyword, let kind):
            if word.lowercased() == keyword { return .text(keyword) }
            do { return try kind.parse(word) } catch { throw ValueError(word: word, kind: self) }
        case .choice(let names):
            guard names.contains(word) else {
                throw ValueError(word: word, kind: self, suggestion: closestMatch(to: word, among: names))
            }
            return .text(word)
        case .toggle:
            switch word.lowercased() {
            case "on", "true", "yes", "1": return .toggle(true)
            case "off", "false", "no", "0": return .toggle(false)
            default: throw ValueError(word: word, kind: self, suggestion: closestMatch(to: word, among: ["on", "off"]))
            }
        case .format:
            do { return .format(try NumberFormat.parse(word)) } catch { throw ValueError(message: error.description) }
        case .path:
            // Checked where the command uses it (`CommandContext.readableFile` and the like),
            // through the session's `FileAccess`: a replay maps paths into its scratch directory.
            guard !word.isEmpty else { throw ValueError(message: "an empty path; give a file name") }
            return .text(expandTilde(word))
        case .text:
            return .text(word)
        }
    }

    /// The values worth offering for completion (files are completed by the completer).
    var candidates: [String] {
        switch self {
        case .choice(let names), .named(let names, _): return names
        case .keywordOr(let keyword, _): return [keyword]
        case .toggle: return ["on", "off"]
        case .format: return NumberFormat.named.map(\.name)
        default: return []
        }
    }
}

/// A word that a `ValueKind` refused.
public struct ValueError: Error, Sendable {
    /// The whole explanation when the kind has its own (formats, files), else nil.
    public var message: String?
    var word = ""
    var accepted = ""
    var suggestion: String?

    init(word: String, kind: ValueKind, suggestion: String? = nil) {
        self.word = word
        self.accepted = kind.accepted
        self.suggestion = suggestion
    }

    init(message: String) { self.message = message }

    /// `seed must be a non-negative integer, not 'x'` — or the kind's own message.
    public func describe(as name: String) -> String {
        if let message { return message }
        let hint = suggestion.map { "; did you mean '\($0)'?" } ?? ""
        return "\(name) must be \(accepted), not '\(word)'\(hint)"
    }
}

/// A parsed argument or setting value.
public enum Value: Sendable, Equatable, CustomStringConvertible {
    case integer(Int)
    case real(Double)
    case text(String)
    case toggle(Bool)
    case format(NumberFormat)

    /// The value as `set` accepts it back and `show` prints it.
    public var description: String {
        switch self {
        case .integer(let n): return String(n)
        case .real(let x): return numberText(x)
        case .text(let s): return s
        case .toggle(let on): return on ? "on" : "off"
        case .format(let f): return f.name
        }
    }

    /// A number's value (an integer as a Double); a programming error for other kinds.
    public var number: Double {
        switch self {
        case .integer(let n): return Double(n)
        case .real(let x): return x
        default: preconditionFailure("not a number: \(self)")
        }
    }

    /// An integer's value; a programming error for other kinds.
    public var integer: Int {
        guard case .integer(let n) = self else { preconditionFailure("not an integer: \(self)") }
        return n
    }

    /// The value in a JSON report.
    public var json: JSONValue {
        switch self {
        case .integer(let n): return .int(n)
        case .real(let x): return .number(x)
        case .text(let s): return .string(s)
        case .toggle(let on): return .bool(on)
        case .format(let f): return .string(f.name)
        }
    }
}

/// `~/x` → `$HOME/x`; other paths unchanged.
func expandTilde(_ path: String) -> String {
    guard path == "~" || path.hasPrefix("~/") else { return path }
    return NSHomeDirectory() + path.dropFirst()
}

/// Why `path` cannot be used as `use`, or nil when it can.
func pathProblem(_ path: String, _ use: ValueKind.PathUse) -> String? {
    let fm = FileManager.default
    var isDirectory: ObjCBool = false
    let exists = fm.fileExists(atPath: path, isDirectory: &isDirectory)
    switch use {
    case .readFile:
        if !exists { return "no such file" }
        if isDirectory.boolValue { return "it is a directory" }
        if !fm.isReadableFile(atPath: path) { return "permission denied" }
    case .writeFile:
        do { _ = try FileWriting.target(path) } catch { return error.message }
    case .directory:
        if !exists { return "no such directory" }
        if !isDirectory.boolValue { return "not a directory" }
    }
    return nil
}

// Typed values: what an argument or a setting accepts, parsed once with a uniform error.

import Foundation
import Mismatch
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
    /// A path to a file or directory, checked before the command runs.
    case path(PathUse)
    /// Any word.
    case text

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
        case .choice(let names): return "one of " + names.joined(separator: ", ")
        case .toggle: return "on or off"
        case .format: return "a number format (\(NumberFormat.acceptedNames))"
        case .path(.readFile): return "a readable file"
        case .path(.writeFile): return "a file path in an existing directory"
        case .path(.directory): return "an existing directory"
        case .text: return "a word"
        }
    }

    /// A short placeholder for usage lines: `N`, `X`, `on|off`, `FORMAT`, `FILE`.
    var placeholder: String {
        switch self {
        case .integer: return "N"
        case .real: return "X"
        case .choice(let names): return names.joined(separator: "|")
        case .toggle: return "on|off"
        case .format: return "FORMAT"
        case .path(.directory): return "DIR"
        case .path: return "FILE"
        case .text: return "WORD"
        }
    }

    /// Parses `word`, or explains in one line why not (the caller prefixes the argument's name).
    public func parse(_ word: String) throws(ValueError) -> Value {
        switch self {
        case .integer(let range):
            guard let n = Int(word), range.contains(n) else { throw ValueError(word: word, kind: self) }
            return .integer(n)
        case .real(let range):
            guard let x = Double(word), x.isFinite, range.contains(x) else { throw ValueError(word: word, kind: self) }
            return .real(x)
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
        case .path(let use):
            let path = expandTilde(word)
            if let problem = pathProblem(path, use) { throw ValueError(message: "cannot use '\(word)': \(problem)") }
            return .text(path)
        case .text:
            return .text(word)
        }
    }

    /// The values worth offering for completion (files are completed by the completer).
    var candidates: [String] {
        switch self {
        case .choice(let names): return names
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

/// The directory a path names its file in: what comes before its last `/` (`/` itself for
/// `/x`), or `.` for a bare name. (Not `NSString.deletingLastPathComponent`, which traps on
/// a one-character name such as `x` in the Foundation of Swift 6.3 on Linux.)
func parentDirectory(of path: String) -> String {
    var trimmed = Substring(path)
    while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
    guard let slash = trimmed.lastIndex(of: "/") else { return "." }
    return slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
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
        if exists && isDirectory.boolValue { return "it is a directory" }
        if exists && !fm.isWritableFile(atPath: path) { return "permission denied" }
        let dir = parentDirectory(of: path)
        var parentIsDirectory: ObjCBool = false
        if !fm.fileExists(atPath: dir, isDirectory: &parentIsDirectory) || !parentIsDirectory.boolValue {
            return "no such directory '\(dir)'"
        }
        if !exists && !fm.isWritableFile(atPath: dir) { return "directory '\(dir)' is not writable" }
    case .directory:
        if !exists { return "no such directory" }
        if !isDirectory.boolValue { return "not a directory" }
    }
    return nil
}

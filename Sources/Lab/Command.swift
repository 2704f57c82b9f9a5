// Commands as values: a name, a topic, arguments with types, help with an example, and a
// function that runs. The parser, help and completion read these values; a new command is
// a new value, registered in Registry.swift.

import Numerics

/// A heading under which `help` lists commands. Topics sort by `order`, then name.
public struct Topic: Sendable, Hashable {
    public var name: String
    public var order: Int

    public init(_ name: String, order: Int) {
        self.name = name
        self.order = order
    }

    public static let numbers = Topic("Numbers", order: 10)
    public static let settings = Topic("Settings", order: 80)
    public static let metrics = Topic("Metrics", order: 85)
    public static let session = Topic("Session", order: 90)
}

/// One argument of a command: a positional word, an option, a flag, or `key=value` pairs.
public struct ArgumentSpec: Sendable {
    public enum Style: Sendable {
        /// A word in its place; `optional` ones may be left out.
        case positional(optional: Bool)
        /// The rest of the positional words, at least `minimum` of them.
        case variadic(minimum: Int)
        /// `--name VALUE` (or `--name=VALUE`); nil default means "absent unless given".
        case option(default: Value?)
        /// `--name`, on when present.
        case flag
        /// Words `key=value` with keys from the table, at least `minimum` of them.
        case assignments(keys: [(key: String, kind: ValueKind)], minimum: Int)
    }

    /// Upper case for positionals (`FORMAT`), the option's name without dashes for options
    /// and flags (`rounding`). Commands read values back by this name.
    public var name: String
    public var kind: ValueKind
    public var help: String
    public var style: Style
    /// Completion candidates for this argument given the words typed before it; when nil,
    /// the kind's own (names, formats, files).
    public var complete: (@Sendable (Session, [String]) -> [String])?

    /// A positional argument, e.g. `.positional("FORMAT", .format, "the format to round to")`.
    public static func positional(_ name: String, _ kind: ValueKind, _ help: String, optional: Bool = false,
                                  complete: (@Sendable (Session, [String]) -> [String])? = nil) -> ArgumentSpec {
        ArgumentSpec(name: name, kind: kind, help: help, style: .positional(optional: optional), complete: complete)
    }

    /// The remaining positional words, e.g. `.variadic("VALUE", .text, "numbers to round", minimum: 1)`.
    public static func variadic(_ name: String, _ kind: ValueKind, _ help: String, minimum: Int = 0,
                                complete: (@Sendable (Session, [String]) -> [String])? = nil) -> ArgumentSpec {
        ArgumentSpec(name: name, kind: kind, help: help, style: .variadic(minimum: minimum), complete: complete)
    }

    /// `--name VALUE`, e.g. `.option("rounding", .choice(["nearest", "zero"]), "…", default: .text("nearest"))`.
    public static func option(_ name: String, _ kind: ValueKind, _ help: String, default value: Value? = nil) -> ArgumentSpec {
        ArgumentSpec(name: name, kind: kind, help: help, style: .option(default: value))
    }

    /// `--name` alone, e.g. `.flag("bits", "print the encoding in hex")`.
    public static func flag(_ name: String, _ help: String) -> ArgumentSpec {
        ArgumentSpec(name: name, kind: .toggle, help: help, style: .flag)
    }

    /// `key=value` words, e.g. `.assignments("FIELD=FORMAT", keys: [("weights", .format)], "…")`.
    public static func assignments(_ name: String, keys: [(key: String, kind: ValueKind)], _ help: String,
                                   minimum: Int = 1) -> ArgumentSpec {
        ArgumentSpec(name: name, kind: .text, help: help, style: .assignments(keys: keys, minimum: minimum))
    }

    public var isOption: Bool {
        switch style {
        case .option, .flag: return true
        default: return false
        }
    }

    var isPositional: Bool {
        switch style {
        case .positional, .variadic: return true
        default: return false
        }
    }

    /// How the argument appears in a usage line: `FORMAT`, `[N]`, `VALUE…`, `[--seed N]`.
    var usage: String {
        switch style {
        case .positional(let optional): return optional ? "[\(name)]" : name
        case .variadic(let minimum): return minimum > 0 ? "\(name)…" : "[\(name)…]"
        case .option: return "[--\(name) \(kind.placeholder)]"
        case .flag: return "[--\(name)]"
        case .assignments(_, let minimum): return minimum > 0 ? "\(name)…" : "[\(name)…]"
        }
    }
}

/// A shell command. Build one with the memberwise initialiser and list it in
/// `Registry.standard`; the parser, `help`, completion and `--json` follow from the value.
public struct Command: Sendable {
    /// What the command does when it runs: reads its arguments from the context, acts on
    /// `context.session`, writes through the context. Throwing `LabError` reports a failure
    /// (the session's settings are restored); `Interrupted` (from `Interruption.check()`
    /// or a progress meter) reports an interruption.
    public typealias Run = @Sendable (CommandContext) throws -> Void

    public var name: String
    /// Other names that run the same command (`exit` for `quit`); not listed in help.
    public var aliases: [String] = []
    public var topic: Topic
    /// One line for the `help` list.
    public var summary: String
    /// More paragraphs for `help NAME`, or empty.
    public var details: String = ""
    public var arguments: [ArgumentSpec] = []
    public var subcommands: [Command] = []
    /// Complete lines a user could type, shown by `help NAME` (at least one).
    public var examples: [String] = []
    /// A reporting command takes `--json` and then prints one JSON object on one line.
    public var reports: Bool = false
    /// Whether the command and its output go into transcripts; false for commands about
    /// the transcript itself (`record`) and for `quit`.
    public var transcribed: Bool = true
    /// Left out of `help` and completion (kept for tests and scripts).
    public var hidden: Bool = false
    /// Whether the settings are put back when the command fails. False only for commands
    /// that run other lines (`source`): each of those lines is undone or kept on its own.
    public var atomic: Bool = true
    /// Whether the command only restores state (a model, the engines' precision, a setting,
    /// the task): the only kind a transcript header's `# state:` line may run, since a
    /// transcript is a file people share and replay.
    public var restoresState: Bool = false
    /// Nil for a command that only groups sub-commands.
    public var run: Run?
    /// `help COMMAND WORD` for a word that is a value of the command's argument rather than
    /// a sub-command (`help algo token-tis`): its description, or a `LabError` naming what
    /// is accepted.
    public var explain: (@Sendable (String) throws(LabError) -> String)?

    public init(name: String, aliases: [String] = [], topic: Topic, summary: String, details: String = "",
                arguments: [ArgumentSpec] = [], subcommands: [Command] = [], examples: [String] = [],
                reports: Bool = false, transcribed: Bool = true, hidden: Bool = false, atomic: Bool = true,
                restoresState: Bool = false, run: Run?) {
        self.name = name
        self.aliases = aliases
        self.topic = topic
        self.summary = summary
        self.details = details
        self.arguments = arguments
        self.subcommands = subcommands
        self.examples = examples
        self.reports = reports
        self.transcribed = transcribed
        self.hidden = hidden
        self.atomic = atomic
        self.restoresState = restoresState
        self.run = run
    }

    /// The arguments the parser accepts: the declared ones plus `--json` when reporting.
    public var allArguments: [ArgumentSpec] {
        reports ? arguments + [.flag("json", "print one JSON object on one line instead of text")] : arguments
    }

    var options: [ArgumentSpec] { allArguments.filter(\.isOption) }

    /// `cast FORMAT VALUE… [--rounding …] [--json]` for the command reached by `path`.
    func usage(path: String) -> String {
        var lines: [String] = []
        if run != nil { lines.append(([path] + allArguments.map(\.usage)).joined(separator: " ")) }
        for sub in subcommands where !sub.hidden {
            lines.append(sub.usage(path: path + " " + sub.name))
        }
        return lines.joined(separator: "\n")
    }
}

/// The arguments of one invocation, typed and range-checked, read back by name.
public struct ParsedArguments: Sendable {
    var values: [String: [Value]] = [:]
    var flags: Set<String> = []
    /// The `key=value` words in the order given.
    public internal(set) var assignments: [(key: String, value: Value)] = []

    public init() {}

    /// Whether the argument was given (or has a default).
    public func has(_ name: String) -> Bool { values[name] != nil || flags.contains(name) }
    /// The flag's state.
    public func flag(_ name: String) -> Bool { flags.contains(name) }
    /// The value, if given or defaulted.
    public func value(_ name: String) -> Value? { values[name]?.first }
    /// Every value of a variadic argument.
    public func list(_ name: String) -> [Value] { values[name] ?? [] }
    /// Every value of a variadic argument, as text.
    public func texts(_ name: String) -> [String] { list(name).map(\.description) }

    public func integer(_ name: String) -> Int? {
        if case .integer(let n)? = value(name) { return n }
        return nil
    }

    public func real(_ name: String) -> Double? {
        switch value(name) {
        case .real(let x)?: return x
        case .integer(let n)?: return Double(n)
        default: return nil
        }
    }

    public func text(_ name: String) -> String? { value(name)?.description }

    public func format(_ name: String) -> NumberFormat? {
        if case .format(let f)? = value(name) { return f }
        return nil
    }
}

// Typed settings: `set NAME VALUE`, `show`.

import Numerics
import RL

/// A setting the session keeps: its name, what it accepts, its default and one line of help.
/// Modules add theirs (temperature, top_p, …) by defining a `Setting` and listing it in
/// `Registry.standard`; `set`, `show`, completion, help and transcript headers follow.
public struct Setting: Sendable {
    public var name: String
    public var kind: ValueKind
    public var defaultValue: Value
    public var help: String
    /// A check beyond the kind, run before the value is stored (nil: none).
    public var validate: (@Sendable (Value) throws(LabError) -> Void)?
    /// Where the value goes in the trainer's settings, typed (nil: the session reads it
    /// itself). The trainer receives values, never text to parse again.
    public var trainer: (@Sendable (Value, inout RLSettings) -> Void)?

    public init(name: String, kind: ValueKind, default defaultValue: Value, help: String,
                validate: (@Sendable (Value) throws(LabError) -> Void)? = nil,
                trainer: (@Sendable (Value, inout RLSettings) -> Void)? = nil) {
        self.name = name
        self.kind = kind
        self.defaultValue = defaultValue
        self.help = help
        self.validate = validate
        self.trainer = trainer
    }
}

/// The current value of every registered setting. A value type: the session snapshots it
/// before each command and puts it back if the command fails.
public struct SettingsStore: Sendable {
    /// The settings, in the order `show` lists them.
    public let definitions: [Setting]
    private var values: [String: Value]

    public init(_ definitions: [Setting]) {
        self.definitions = definitions
        values = Dictionary(uniqueKeysWithValues: definitions.map { ($0.name, $0.defaultValue) })
    }

    public var names: [String] { definitions.map(\.name) }

    /// The definition called `name`, or an error with the closest name.
    public func definition(_ name: String) throws(LabError) -> Setting {
        guard let setting = definitions.first(where: { $0.name == name }) else {
            throw LabError("unknown setting \(LabError.quoted(name, closestAmong: names)) (settings: \(names.joined(separator: ", ")))")
        }
        return setting
    }

    /// The value of a registered setting (a programming error if it is not registered).
    public subscript(name: String) -> Value {
        guard let value = values[name] else { preconditionFailure("no setting '\(name)' is registered") }
        return value
    }

    /// Parses `text` as the setting's kind, checks it, and stores it; returns the value.
    /// Nothing changes when it throws.
    @discardableResult
    public mutating func set(_ name: String, to text: String) throws(LabError) -> Value {
        let setting = try definition(name)
        let value: Value
        do { value = try setting.kind.parse(text) } catch { throw LabError(error.describe(as: name)) }
        try setting.validate?(value)
        values[name] = value
        return value
    }

    public func integer(_ name: String) -> Int {
        guard case .integer(let n) = self[name] else { preconditionFailure("setting '\(name)' is not an integer") }
        return n
    }

    public func real(_ name: String) -> Double {
        switch self[name] {
        case .real(let x): return x
        case .integer(let n): return Double(n)
        default: preconditionFailure("setting '\(name)' is not a number")
        }
    }

    public func text(_ name: String) -> String { self[name].description }

    public func isOn(_ name: String) -> Bool {
        guard case .toggle(let on) = self[name] else { preconditionFailure("setting '\(name)' is not on/off") }
        return on
    }

    public func format(_ name: String) -> NumberFormat {
        guard case .format(let f) = self[name] else { preconditionFailure("setting '\(name)' is not a format") }
        return f
    }

    /// Settings whose value differs from the default, in `show` order.
    public var changed: [(name: String, value: Value)] {
        definitions.compactMap { values[$0.name] != $0.defaultValue ? ($0.name, values[$0.name]!) : nil }
    }
}

extension Setting {
    /// The seed every random stream of the session derives from.
    public static let seed = Setting(
        name: "seed", kind: .integer(0...Int.max), default: .integer(0),
        help: "seed of every random stream (sampling, stochastic rounding, initialisation)")

    /// The matrix-product backend (ARCHITECTURE.md "Determinism").
    public static let backend = Setting(
        name: "backend", kind: .choice(["onednn", "openblas", "portable"]), default: .text("portable"),
        help: "matrix products: portable (the lab's own kernel: same bits on every machine), openblas or onednn (those libraries' float32 products: faster, last bits depend on the CPU)")

    /// Colour on the terminal (never in transcripts, files or with NO_COLOR).
    public static let color = Setting(
        name: "color", kind: .toggle, default: .toggle(true),
        help: "colour the prompt and errors on a terminal (never with NO_COLOR set)")
}

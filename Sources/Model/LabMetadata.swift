// What the lab keeps beside a model in a checkpoint's lab.json (Checkpoint.swift has the
// directory's layout).

import Files
import Foundation
import Numerics
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: Lab metadata

/// A JSON value, for lab state that has no fixed schema (`LabMetadata.extra`).
///
/// Numbers are doubles, as in JavaScript: integers are exact up to 2^53; store larger
/// ones (e.g. 64-bit seeds) as strings or in `LabMetadata.seed`.
public enum LabValue: Sendable, Hashable, Codable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([LabValue])
    case object([String: LabValue])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let d = try? c.decode(Double.self) { self = .number(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([LabValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: LabValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }
}

extension LabValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
                    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral,
                    ExpressibleByDictionaryLiteral {
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: LabValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, LabValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}

/// What the lab stores beside the model in `lab.json`.
///
/// The fixed fields are those every session needs; `extra` holds anything else as JSON
/// (settings, metrics history, any `Codable` value through `setExtra`/`extra(_:as:)`).
/// Large numeric state (optimizer moments) goes in the checkpoint's `labState` tensors.
public struct LabMetadata: Sendable, Hashable, Codable {
    /// The lab.json layout version this code writes; it reads this one and older.
    public static let currentFormatVersion = 1

    /// The layout version of the lab.json this came from (`currentFormatVersion` when new).
    public var formatVersion: Int
    /// The token strings, index = token id.
    public var vocabulary: [String]?
    /// The task's name.
    public var task: String?
    /// The session's root seed (exact: written as a JSON integer).
    public var seed: UInt64?
    /// Training steps taken.
    public var step: Int?
    /// Free-form state, keyed by name.
    public var extra: [String: LabValue]

    /// Lab metadata; every field is optional.
    public init(vocabulary: [String]? = nil, task: String? = nil, seed: UInt64? = nil, step: Int? = nil,
                extra: [String: LabValue] = [:]) {
        self.formatVersion = Self.currentFormatVersion
        self.vocabulary = vocabulary
        self.task = task
        self.seed = seed
        self.step = step
        self.extra = extra
    }

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version", vocabulary, task, seed, step, extra
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        formatVersion = try c.decode(Int.self, forKey: .formatVersion)
        vocabulary = try c.decodeIfPresent([String].self, forKey: .vocabulary)
        task = try c.decodeIfPresent(String.self, forKey: .task)
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed)
        step = try c.decodeIfPresent(Int.self, forKey: .step)
        extra = try c.decodeIfPresent([String: LabValue].self, forKey: .extra) ?? [:]
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(formatVersion, forKey: .formatVersion)
        try c.encodeIfPresent(vocabulary, forKey: .vocabulary)
        try c.encodeIfPresent(task, forKey: .task)
        try c.encodeIfPresent(seed, forKey: .seed)
        try c.encodeIfPresent(step, forKey: .step)
        if !extra.isEmpty { try c.encode(extra, forKey: .extra) }
    }

    /// Stores any `Encodable` value under `key` in `extra`.
    public mutating func setExtra<T: Encodable>(_ key: String, _ value: T) throws(NumericsError) {
        do {
            let data = try JSONEncoder().encode(value)
            extra[key] = try JSONDecoder().decode(LabValue.self, from: data)
        } catch {
            throw .invalidArgument("lab metadata '\(key)': the value cannot be stored as JSON (\(error)); numbers must be finite")
        }
    }

    /// Reads `extra[key]` back as a `Decodable` type; nil when the key is absent.
    public func extra<T: Decodable>(_ key: String, as type: T.Type) throws(NumericsError) -> T? {
        guard let value = extra[key] else { return nil }
        do {
            let data = try JSONEncoder().encode(value)
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw .invalidArgument("lab metadata '\(key)' does not hold a \(T.self): \(error)")
        }
    }
}


// What the lab keeps beside a model in a checkpoint's lab.json (Checkpoint.swift has the
// directory's layout).
//
// lab.json is one JSON object on one line, written by the lab's JSON writer and read by its
// strict reader: `format_version`, then `vocabulary`, `task`, `seed`, `step` when present,
// then `extra` (free-form state, its keys in the order they were set) when not empty.
// Unknown keys are ignored when reading, so a newer lab may add fields.

import Foundation
import JSON
import Numerics

/// What the lab stores beside the model in `lab.json`.
///
/// The fixed fields are those every session needs; `extra` holds anything else as JSON
/// (settings, metrics history, any `Codable` value through `setExtra`/`extra(_:as:)`).
/// Large numeric state (optimizer moments) goes in the checkpoint's `labState` tensors.
public struct LabMetadata: Sendable, Equatable {
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
    /// Free-form state, keyed by name. Numbers must be finite to be saved.
    public var extra: JSONObject

    /// Lab metadata; every field is optional.
    public init(vocabulary: [String]? = nil, task: String? = nil, seed: UInt64? = nil, step: Int? = nil,
                extra: JSONObject = [:]) {
        self.formatVersion = Self.currentFormatVersion
        self.vocabulary = vocabulary
        self.task = task
        self.seed = seed
        self.step = step
        self.extra = extra
    }

    // MARK: lab.json

    /// The lab.json object (see the top of this file for its layout).
    public var json: JSONObject {
        var o: JSONObject = ["format_version": .int(formatVersion)]
        if let vocabulary { o["vocabulary"] = .array(vocabulary.map { .string($0) }) }
        if let task { o["task"] = .string(task) }
        if let seed { o["seed"] = .number(JSONNumber(seed)) }
        if let step { o["step"] = .int(step) }
        if !extra.members.isEmpty { o["extra"] = .object(extra) }
        return o
    }

    /// The lab.json bytes: the object on one line and a line feed. Fails when a number in
    /// `extra` is not finite (JSON cannot hold NaN or an infinity).
    public func encoded() throws(NumericsError) -> Data {
        if let path = Self.firstNonFinite(in: .object(extra), at: "") {
            throw .invalidArgument("lab metadata '\(path)' holds a number that is not finite; numbers in lab metadata must be finite")
        }
        return Data((JSONValue.object(json).serialized + "\n").utf8)
    }

    /// Reads lab.json. The error says what is wrong and at which key, without the file's name.
    public init(decoding data: Data) throws(NumericsError) {
        let parsed: JSONValue
        do throws(JSONReadError) {
            parsed = try JSONValue(parsing: data)
        } catch {
            throw .invalidArgument("not valid JSON: \(error)")
        }
        guard let o = parsed.objectValue else { throw .invalidArgument("expected a JSON object; found \(CheckpointIO.describe(parsed))") }
        func field<T>(_ key: String, _ what: String, _ read: (JSONValue) -> T?) throws(NumericsError) -> T? {
            guard let v = o[key], !v.isNull else { return nil }
            guard let t = read(v) else { throw .invalidArgument("'\(key)' must be \(what); found \(CheckpointIO.describe(v))") }
            return t
        }
        guard let version = try field("format_version", "an integer", \.intValue) else {
            throw .invalidArgument("the key 'format_version' is missing (the layout version, an integer)")
        }
        formatVersion = version
        vocabulary = try field("vocabulary", "a list of strings") { v in
            v.arrayValue.flatMap { list in
                let tokens = list.compactMap(\.stringValue)
                return tokens.count == list.count ? tokens : nil
            }
        }
        task = try field("task", "a string", \.stringValue)
        seed = try field("seed", "an integer in 0…\(UInt64.max)", \.uint64Value)
        step = try field("step", "an integer", \.intValue)
        extra = try field("extra", "an object", \.objectValue) ?? JSONObject()
    }

    /// The path of the first double or float in `value` that is not finite ("loss",
    /// "history.reward.2"), or nil.
    private static func firstNonFinite(in value: JSONValue, at path: String) -> String? {
        func joined(_ key: String) -> String { path.isEmpty ? key : path + "." + key }
        switch value {
        case .double(let d): return d.isFinite ? nil : path
        case .float(let f): return f.isFinite ? nil : path
        case .array(let items):
            for (i, item) in items.enumerated() {
                if let p = firstNonFinite(in: item, at: joined(String(i))) { return p }
            }
            return nil
        case .object(let object):
            for m in object.members {
                if let p = firstNonFinite(in: m.value, at: joined(m.key)) { return p }
            }
            return nil
        default: return nil
        }
    }

    // MARK: Typed extra state

    /// Stores any `Encodable` value under `key` in `extra` (as Foundation's JSONEncoder
    /// writes it, keys sorted).
    public mutating func setExtra<T: Encodable>(_ key: String, _ value: T) throws(NumericsError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data: Data
        do {
            data = try encoder.encode(value)
        } catch {
            throw .invalidArgument("lab metadata '\(key)': the value cannot be stored as JSON (\(error)); numbers must be finite")
        }
        do throws(JSONReadError) {
            extra[key] = try JSONValue(parsing: data)
        } catch {
            throw .invalidArgument("lab metadata '\(key)': the encoded value does not read back as JSON: \(error)")
        }
    }

    /// Reads `extra[key]` back as a `Decodable` type; nil when the key is absent.
    public func extra<T: Decodable>(_ key: String, as type: T.Type) throws(NumericsError) -> T? {
        guard let value = extra[key] else { return nil }
        do {
            return try JSONDecoder().decode(T.self, from: Data(value.serialized.utf8))
        } catch {
            throw .invalidArgument("lab metadata '\(key)' does not hold a \(T.self): \(error)")
        }
    }
}

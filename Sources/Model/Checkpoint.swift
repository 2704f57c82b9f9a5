// Checkpoints: a directory that Hugging Face `LlamaForCausalLM.from_pretrained` loads,
// plus what the lab adds.
//
//     config.json              Hugging Face LlamaConfig keys
//     model.safetensors        the parameters, Hugging Face names, F32 ("format": "pt")
//     lab.json                 optional: vocabulary, task, seed, step, free-form extra state
//     lab_state.safetensors    optional: named float arrays (optimizer moments, …)
//
// Atomicity. A save builds the complete new directory beside the destination (a hidden
// sibling `.NAME.plab-save-…`), flushes every file to disk, then swaps it into place with
// one atomic rename (over a missing destination) or an atomic exchange (over an existing
// one: `renameat2(RENAME_EXCHANGE)` on Linux, `renamex_np(RENAME_SWAP)` on macOS), and
// finally deletes the old directory. Guarantees:
// - a crash at any point leaves under the destination name either the complete old
//   checkpoint or the complete new one, never a partial file or a mix of the two (at worst
//   a hidden `.NAME.plab-save-PID-…` sibling is left behind, which nothing reads and the
//   next save into the same directory removes once process PID is gone);
// - a save that fails (bad input, disk full, no permission) leaves the old checkpoint as
//   it was and removes what it had written;
// - a concurrent `loadCheckpoint` opens the directory once, opens every file through that
//   handle, and then checks that the path still names the same directory: so it reads
//   all old files or all new ones (open files stay readable after the swap deletes them);
//   if the directory was replaced while it opened them, it starts again;
// - files in the destination that are not the checkpoint's own (a README, tokenizer files)
//   are carried over into the new directory (hard links, or copies).
// Where the file system cannot exchange two directories, the save falls back to two
// renames; between them the destination is briefly absent (a reader then gets a "no
// checkpoint" error, never a mix), and a crash there leaves the old checkpoint under the
// hidden name `.NAME.plab-old-…` beside it.

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

// MARK: Configuration

/// Special token ids recorded in config.json (`bos_token_id`, `eos_token_id`, `pad_token_id`).
public struct SpecialTokenIDs: Sendable, Hashable, Codable {
    public var bos: Int?
    public var eos: Int?
    public var pad: Int?

    /// Token ids; each optional.
    public init(bos: Int? = nil, eos: Int? = nil, pad: Int? = nil) {
        self.bos = bos
        self.eos = eos
        self.pad = pad
    }
}

extension LlamaConfig {
    /// Reads a Hugging Face `config.json` of a Llama model (see `huggingFaceConfig(from:)`).
    public init(huggingFaceJSON data: Data) throws(NumericsError) {
        self = try LlamaConfig.huggingFaceConfig(from: data).config
    }

    /// Reads a Hugging Face `config.json`: the configuration and the special token ids.
    ///
    /// Required: `model_type` "llama", `hidden_size`, `intermediate_size`,
    /// `num_attention_heads`, `num_hidden_layers`, `vocab_size`. Optional, with Hugging
    /// Face's defaults: `num_key_value_heads` (= heads), `rms_norm_eps` (1e-6), the rotary
    /// base from `rope_parameters.rope_theta` (transformers 5) or `rope_theta` (older;
    /// both must agree when both are given; default 10000), `max_position_embeddings`
    /// (2048), `tie_word_embeddings` (false), `hidden_act` (must be "silu"). Refused
    /// because this model cannot compute them: rotary scaling other than "default",
    /// `attention_bias`/`mlp_bias` true, a `head_dim` other than hidden_size/heads. An
    /// `eos_token_id` list gives its first id. Other keys are ignored. `defaults` lists the
    /// optional keys that were absent, with the value taken, in transformers' field order.
    public static func huggingFaceConfig(from data: Data) throws(NumericsError)
        -> (config: LlamaConfig, specialTokens: SpecialTokenIDs, defaults: [ConfigDefault]) {
        func fail(_ message: String) -> NumericsError { .invalidArgument("config.json: \(message)") }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw fail("not valid JSON (\(error.localizedDescription))")
        }
        guard let json = object as? [String: Any] else { throw fail("expected a JSON object of configuration keys") }
        if let dup = CheckpointIO.firstDuplicateKey(in: Array(data)) {
            throw fail("the key \(CheckpointIO.quoted(dup)) appears twice")
        }

        func present(_ key: String) -> Any? {
            guard let v = json[key], !(v is NSNull) else { return nil }
            return v
        }
        func integer(_ key: String, default value: Int? = nil) throws(NumericsError) -> Int {
            guard let raw = present(key) else {
                if let value { return value }
                throw fail("the required key '\(key)' is missing (a positive integer)")
            }
            guard let v = CheckpointIO.jsonInteger(raw) else {
                throw fail("'\(key)' must be an integer; found \(CheckpointIO.describe(raw))")
            }
            // Bounds that keep every product of two dimensions far from overflowing.
            guard (0...(1 << 31)).contains(v) else {
                throw fail("'\(key)' = \(v) is out of range; expected 0…\(1 << 31)")
            }
            return v
        }
        func number(_ value: Any?, _ key: String) throws(NumericsError) -> Float {
            guard let d = CheckpointIO.jsonNumber(value), d.isFinite, abs(d) <= Double(Float.greatestFiniteMagnitude) else {
                throw fail("'\(key)' must be a finite number; found \(CheckpointIO.describe(value))")
            }
            return Float(d)
        }
        func string(_ key: String) throws(NumericsError) -> String? {
            guard let raw = present(key) else { return nil }
            guard let s = raw as? String else { throw fail("'\(key)' must be a string; found \(CheckpointIO.describe(raw))") }
            return s
        }
        func flag(_ key: String) throws(NumericsError) -> Bool? {
            guard let raw = present(key) else { return nil }
            guard let b = CheckpointIO.jsonBool(raw) else { throw fail("'\(key)' must be true or false; found \(CheckpointIO.describe(raw))") }
            return b
        }
        func tokenID(_ key: String) throws(NumericsError) -> Int? {
            guard var raw = present(key) else { return nil }
            if let list = raw as? [Any] {
                guard let first = list.first else { return nil }
                raw = first
            }
            guard let v = CheckpointIO.jsonInteger(raw) else {
                throw fail("'\(key)' must be an integer token id (or a list of them); found \(CheckpointIO.describe(raw))")
            }
            return v
        }

        guard let modelType = try string("model_type") else {
            throw fail("'model_type' is missing; this lab reads \"llama\" models")
        }
        guard modelType == "llama" else {
            throw fail("model_type \(CheckpointIO.quoted(modelType)) is not supported; this lab reads \"llama\" models")
        }
        if let raw = present("architectures") {
            guard let list = raw as? [Any], list.contains(where: { ($0 as? String) == "LlamaForCausalLM" }) else {
                throw fail("architectures \(CheckpointIO.describe(raw)) does not include \"LlamaForCausalLM\" (the only one read)")
            }
        }
        let act = try string("hidden_act") ?? ConfigDefault.hiddenAct
        guard act == "silu" else {
            throw fail("hidden_act \(CheckpointIO.quoted(act)) is not supported; the MLP is SwiGLU with \"silu\"")
        }
        for key in ["attention_bias", "mlp_bias"] where try flag(key) == true {
            throw fail("'\(key)' is true, but this model has no bias terms; only false is accepted")
        }

        let hidden = try integer("hidden_size")
        let heads = try integer("num_attention_heads")

        // Rotary embeddings: the plain ("default") kind only; the base in either place.
        var theta: Float?
        if let raw = present("rope_parameters") {
            guard let params = raw as? [String: Any] else {
                throw fail("'rope_parameters' must be an object {rope_theta, rope_type}")
            }
            if let type = params["rope_type"] ?? params["type"], !(type is NSNull) {
                guard (type as? String) == "default" else {
                    throw fail("rope_parameters.rope_type \(CheckpointIO.describe(type)) is not supported; only \"default\" rotary embeddings are")
                }
            }
            if let t = params["rope_theta"], !(t is NSNull) { theta = try number(t, "rope_parameters.rope_theta") }
        }
        if let raw = present("rope_scaling") {
            let type = (raw as? [String: Any]).flatMap { $0["rope_type"] ?? $0["type"] } as? String
            guard type == "default" else {
                throw fail("rope_scaling \(CheckpointIO.describe(type ?? raw)) is not supported; only unscaled (\"default\") rotary embeddings are")
            }
        }
        if let raw = present("rope_theta") {
            let top = try number(raw, "rope_theta")
            if let theta, theta != top {
                throw fail("rope_theta (\(top)) and rope_parameters.rope_theta (\(theta)) disagree; they must be equal")
            }
            theta = top
        }

        let config = LlamaConfig(
            hiddenSize: hidden,
            intermediateSize: try integer("intermediate_size"),
            numAttentionHeads: heads,
            numKeyValueHeads: try integer("num_key_value_heads", default: heads),
            numHiddenLayers: try integer("num_hidden_layers"),
            vocabSize: try integer("vocab_size"),
            rmsNormEps: try present("rms_norm_eps").map { (v) throws(NumericsError) in try number(v, "rms_norm_eps") }
                ?? ConfigDefault.rmsNormEps,
            ropeTheta: theta ?? ConfigDefault.ropeTheta,
            maxPositionEmbeddings: try integer("max_position_embeddings", default: ConfigDefault.maxPositionEmbeddings),
            tieWordEmbeddings: try flag("tie_word_embeddings") ?? ConfigDefault.tieWordEmbeddings)
        // What was taken for absent keys, in the order of transformers' LlamaConfig fields.
        var defaults: [ConfigDefault] = []
        if present("num_key_value_heads") == nil {
            defaults.append(ConfigDefault(key: "num_key_value_heads", value: "\(heads) (= num_attention_heads)"))
        }
        if present("hidden_act") == nil { defaults.append(ConfigDefault(key: "hidden_act", value: ConfigDefault.hiddenAct)) }
        if present("max_position_embeddings") == nil {
            defaults.append(ConfigDefault(key: "max_position_embeddings", value: "\(ConfigDefault.maxPositionEmbeddings)"))
        }
        if present("rms_norm_eps") == nil { defaults.append(ConfigDefault(key: "rms_norm_eps", value: "1e-06")) }
        if present("tie_word_embeddings") == nil { defaults.append(ConfigDefault(key: "tie_word_embeddings", value: "false")) }
        if theta == nil { defaults.append(ConfigDefault(key: "rope_theta", value: "10000")) }
        do throws(NumericsError) {
            try config.validate()
        } catch {
            throw fail(error.description)
        }
        if let raw = present("head_dim") {
            guard let d = CheckpointIO.jsonInteger(raw), d == config.headDim else {
                throw fail("head_dim \(CheckpointIO.describe(raw)) differs from hidden_size/num_attention_heads = \(config.headDim); only that head size is supported")
            }
        }
        let tokens = SpecialTokenIDs(bos: try tokenID("bos_token_id"), eos: try tokenID("eos_token_id"),
                                     pad: try tokenID("pad_token_id"))
        return (config, tokens, defaults)
    }

    /// The Hugging Face `config.json` text for this configuration: every LlamaConfig key,
    /// the rotary base both as `rope_theta` (transformers 4) and in `rope_parameters`
    /// (transformers 5), the dtype both as `torch_dtype` and `dtype`. Keys are sorted and
    /// numbers written as the shortest decimal that reads back to the same float32.
    public func huggingFaceJSON(specialTokens: SpecialTokenIDs = SpecialTokenIDs()) -> Data {
        var entries: [(String, String)] = [
            ("architectures", "[\"LlamaForCausalLM\"]"),
            ("attention_bias", "false"),
            ("attention_dropout", "0.0"),
            ("dtype", "\"float32\""),
            ("head_dim", "\(headDim)"),
            ("hidden_act", "\"silu\""),
            ("hidden_size", "\(hiddenSize)"),
            ("intermediate_size", "\(intermediateSize)"),
            ("max_position_embeddings", "\(maxPositionEmbeddings)"),
            ("mlp_bias", "false"),
            ("model_type", "\"llama\""),
            ("num_attention_heads", "\(numAttentionHeads)"),
            ("num_hidden_layers", "\(numHiddenLayers)"),
            ("num_key_value_heads", "\(numKeyValueHeads)"),
            ("rms_norm_eps", "\(rmsNormEps)"),
            ("rope_parameters", "{\"rope_theta\": \(ropeTheta), \"rope_type\": \"default\"}"),
            ("rope_theta", "\(ropeTheta)"),
            ("tie_word_embeddings", tieWordEmbeddings ? "true" : "false"),
            ("torch_dtype", "\"float32\""),
            ("vocab_size", "\(vocabSize)"),
        ]
        if let id = specialTokens.bos { entries.append(("bos_token_id", "\(id)")) }
        if let id = specialTokens.eos { entries.append(("eos_token_id", "\(id)")) }
        if let id = specialTokens.pad { entries.append(("pad_token_id", "\(id)")) }
        entries.sort { $0.0 < $1.0 }
        let body = entries.map { "  \"\($0.0)\": \($0.1)" }.joined(separator: ",\n")
        return Data(("{\n" + body + "\n}\n").utf8)
    }

    /// The number of parameters, or nil if it does not fit in an Int (checked arithmetic,
    /// unlike `parameterCount`, so it is safe on configurations read from a file).
    var checkedParameterCount: Int? {
        func product(_ factors: Int...) -> Int? {
            var p = 1
            for f in factors {
                let (r, o) = p.multipliedReportingOverflow(by: f)
                if o { return nil }
                p = r
            }
            return p
        }
        let c = hiddenSize, kv = numKeyValueHeads * (hiddenSize / max(numAttentionHeads, 1))
        let terms = [product(2, c), product(2, c, c), product(2, kv, c), product(3, intermediateSize, c)]
        var layer = 0
        for term in terms {
            guard let term else { return nil }
            let (s, o) = layer.addingReportingOverflow(term)
            if o { return nil }
            layer = s
        }
        guard let layers = product(layer, numHiddenLayers),
              let heads = product(tieWordEmbeddings ? 1 : 2, vocabSize, c) else { return nil }
        let (a, o1) = layers.addingReportingOverflow(heads)
        let (total, o2) = a.addingReportingOverflow(c)
        return o1 || o2 ? nil : total
    }
}

/// An optional config.json key that was absent, and the value the loader took for it.
///
/// The values are the defaults of transformers' `LlamaConfig` (transformers 5:
/// `models/llama/configuration_llama.py`, and `default_theta` in `modeling_rope_utils.py`
/// for the rotary base), so a checkpoint lacking them computes what
/// `LlamaForCausalLM.from_pretrained` would.
public struct ConfigDefault: Sendable, Hashable, Codable {
    /// The config.json key.
    public var key: String
    /// The value taken, as transformers prints it: `1e-06`, `10000`, `2048`.
    public var value: String

    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }

    /// transformers' `LlamaConfig` defaults (`num_key_value_heads` defaults to
    /// `num_attention_heads`).
    public static let rmsNormEps: Float = 1e-6
    public static let ropeTheta: Float = 10_000
    public static let maxPositionEmbeddings = 2048
    public static let tieWordEmbeddings = false
    public static let hiddenAct = "silu"

    /// "config.json lacks rms_norm_eps, rope_theta: took transformers' LlamaConfig defaults
    /// 1e-06, 10000"; nil when nothing was taken.
    public static func summary(_ defaults: [ConfigDefault]) -> String? {
        guard !defaults.isEmpty else { return nil }
        return "\(CheckpointFile.config) lacks \(defaults.map(\.key).joined(separator: ", ")): took transformers' LlamaConfig default\(defaults.count == 1 ? "" : "s") \(defaults.map(\.value).joined(separator: ", "))"
    }
}

// MARK: Checkpoint

/// The file names of a checkpoint directory.
public enum CheckpointFile {
    public static let config = "config.json"
    public static let model = "model.safetensors"
    public static let lab = "lab.json"
    public static let labState = "lab_state.safetensors"
}

/// A model with what the lab keeps beside it: the contents of a checkpoint directory.
public struct Checkpoint: Sendable {
    /// The parameters (and through them the configuration).
    public var weights: ModelWeights
    /// lab.json; nil for a plain Hugging Face model.
    public var lab: LabMetadata?
    /// lab_state.safetensors: named float arrays (optimizer state, …); nil when absent.
    public var labState: SafeTensorsFile?
    /// Token ids from config.json.
    public var specialTokens: SpecialTokenIDs
    /// The optional config.json keys a loaded checkpoint lacked, with the defaults taken
    /// (empty for a checkpoint built in memory).
    public var configDefaults: [ConfigDefault] = []

    /// A checkpoint value.
    public init(weights: ModelWeights, lab: LabMetadata? = nil, labState: SafeTensorsFile? = nil,
                specialTokens: SpecialTokenIDs = SpecialTokenIDs()) {
        self.weights = weights
        self.lab = lab
        self.labState = labState
        self.specialTokens = specialTokens
    }

    /// Tensor names of rotary-embedding buffers that some exporters save; they are
    /// recomputed from the configuration, so loading skips them.
    public static func isIgnoredTensor(_ name: String) -> Bool {
        name.hasSuffix("rotary_emb.inv_freq") || name.hasSuffix("rotary_emb.original_inv_freq")
    }
}

/// Saves a checkpoint directory atomically (see the guarantees at the top of this file).
///
/// Writes config.json (with the special token ids), model.safetensors (F32, Hugging Face
/// names, without `lm_head.weight` when the embeddings are tied), lab.json when `lab` is
/// given and lab_state.safetensors when `labState` is given. Creates missing parent
/// directories. Fails without touching the destination if the weights do not fit their
/// configuration or a token id is outside the vocabulary. Refuses an empty path, `/`, the
/// working directory and its ancestors, and an existing directory that is neither empty
/// nor a checkpoint (it holds config.json) or that holds sub-directories: a save replaces
/// a checkpoint, never another tree. Removes the temporary directories that interrupted
/// saves into the same parent directory left behind (those whose process is gone). `label`
/// is the path as the user gave it, for messages.
public func saveCheckpoint(weights: ModelWeights, lab: LabMetadata?, labState: SafeTensorsFile? = nil,
                           specialTokens: SpecialTokenIDs = SpecialTokenIDs(),
                           to directory: URL, shownAs label: String? = nil) throws(NumericsError) {
    let config = weights.config
    do throws(NumericsError) {
        try config.validate()
    } catch {
        throw .invalidArgument("cannot save: the configuration is invalid: \(error.description)")
    }
    let expected = weights.slots.reduce(0) { $0 + $1.count }
    guard weights.data.count == expected, weights.slots.map(\.name) == config.parameterShapes.map(\.name) else {
        throw .invalidArgument("cannot save: the weights hold \(weights.data.count) values but their configuration needs \(expected)")
    }
    for (key, id) in [("bos", specialTokens.bos), ("eos", specialTokens.eos), ("pad", specialTokens.pad)] {
        if let id, !(0..<config.vocabSize).contains(id) {
            throw .invalidArgument("cannot save: \(key)_token_id \(id) is outside the vocabulary 0..<\(config.vocabSize)")
        }
    }

    do throws(FileError) {
        try FileWriting.refuseProtected(directory.path, as: "a checkpoint directory", shownAs: label ?? directory.path)
    } catch {
        throw .invalidArgument(error.message)
    }
    let destination = directory.standardizedFileURL.resolvingSymlinksInPath()
    let parent = destination.deletingLastPathComponent()
    let name = destination.lastPathComponent
    let shown = label ?? destination.path
    let fm = FileManager.default
    do {
        try fm.createDirectory(at: parent, withIntermediateDirectories: true)
    } catch {
        throw .invalidArgument("cannot create the directory \(parent.path) to hold the checkpoint: \(error.localizedDescription)")
    }
    var isDirectory: ObjCBool = false
    let exists = fm.fileExists(atPath: destination.path, isDirectory: &isDirectory)
    if exists && !isDirectory.boolValue {
        throw .invalidArgument("\(shown) exists and is not a directory; a checkpoint is a directory")
    }
    if exists { try CheckpointIO.checkReplaceable(destination.path, shownAs: shown) }
    CheckpointIO.removeLeftovers(in: parent.path)

    let staging = parent.appendingPathComponent(".\(name)\(CheckpointIO.stagingMarker)\(getpid())-\(UUID().uuidString)")
    guard mkdir(staging.path, 0o755) == 0 else {
        throw .invalidArgument("cannot create a temporary directory beside \(destination.path) (the parent directory must be writable): \(String(cString: strerror(errno)))")
    }
    do throws(NumericsError) {
        func file(_ fileName: String) -> String { staging.appendingPathComponent(fileName).path }
        try CheckpointIO.writeNewFile(config.huggingFaceJSON(specialTokens: specialTokens), to: file(CheckpointFile.config))

        var model = SafeTensorsFile(metadata: ["format": "pt"])
        for slot in weights.slots {
            let values = Array(weights.data[slot.offset..<(slot.offset + slot.count)])
            try model.add(slot.name, shape: slot.shape, values: values)
        }
        try CheckpointIO.writeNewFile(model.encoded(), to: file(CheckpointFile.model))

        if let lab {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let data: Data
            do {
                data = try encoder.encode(lab)
            } catch {
                throw NumericsError.invalidArgument("cannot save lab.json: \(error) (numbers in lab metadata must be finite)")
            }
            try CheckpointIO.writeNewFile(data + Data("\n".utf8), to: file(CheckpointFile.lab))
        }
        if let labState {
            try CheckpointIO.writeNewFile(labState.encoded(), to: file(CheckpointFile.labState))
        }
        if exists { try CheckpointIO.carryOver(from: destination.path, to: staging.path) }
        CheckpointIO.syncDirectory(staging.path)
        try CheckpointIO.install(staging.path, at: destination.path)
    } catch {
        try? fm.removeItem(at: staging)
        throw error
    }
    CheckpointIO.syncDirectory(parent.path)
}

/// Saves a checkpoint value (see `saveCheckpoint(weights:lab:labState:specialTokens:to:)`).
public func saveCheckpoint(_ checkpoint: Checkpoint, to directory: URL, shownAs label: String? = nil) throws(NumericsError) {
    try saveCheckpoint(weights: checkpoint.weights, lab: checkpoint.lab, labState: checkpoint.labState,
                       specialTokens: checkpoint.specialTokens, to: directory, shownAs: label)
}

/// Loads a checkpoint directory: any Hugging Face Llama checkpoint with F32, BF16 or F16
/// tensors in model.safetensors, plus lab.json and lab_state.safetensors when present.
///
/// Every tensor the configuration implies must be present with its shape; rotary
/// `inv_freq` buffers are skipped; any other tensor is an error naming it. With tied
/// embeddings `lm_head.weight` may be absent, or must equal the embedding exactly.
/// Weights and lab_state arrays must be finite: a NaN or an infinity (in F32, BF16 or F16)
/// is refused with the tensors named and their NaN, +inf and −inf counted, unless
/// `acceptNonFinite` (to inspect a damaged checkpoint as it is). Absent optional
/// config.json keys take transformers' defaults and are listed in `configDefaults`.
/// Returns a complete new value or throws: nothing the caller holds is changed.
///
/// `admit`, if given, sees the configuration from config.json and the size in bytes of
/// lab_state.safetensors (0 when there is none) before any tensor is read; it throws to
/// refuse the checkpoint (the lab checks that the model fits in memory).
public func loadCheckpoint(from directory: URL, limits: SafeTensorsLimits = .default,
                           acceptNonFinite: Bool = false,
                           admit: ((LlamaConfig, _ optimizerStateBytes: Int) throws(NumericsError) -> Void)? = nil)
    throws(NumericsError) -> Checkpoint {
    // Open every file through one directory handle, then check that the path still names
    // that directory: if so, the files opened (and those found absent) are one save's,
    // and stay readable whatever happens to the path afterwards. If a save replaced the
    // directory meanwhile, open the new one.
    for _ in 0..<5 {
        let handle = try CheckpointIO.OpenDirectory(path: directory.path)
        let files: CheckpointIO.CheckpointFiles
        do throws(NumericsError) {
            files = try CheckpointIO.CheckpointFiles(handle)
        } catch {
            if handle.wasReplaced() { continue }
            throw error
        }
        if handle.wasReplaced() { continue }
        return try CheckpointIO.load(files, limits: limits, acceptNonFinite: acceptNonFinite, admit: admit)
    }
    throw .invalidArgument("\(directory.path) was replaced five times while being opened; is something saving to it in a loop?")
}

// MARK: Health

/// The NaNs and infinities of one tensor.
public struct NonFiniteCount: Sendable, Hashable {
    public var tensor: String
    public var nan = 0
    public var positiveInfinity = 0
    public var negativeInfinity = 0

    /// The counts of `values`; nil when every value is finite.
    public init?(tensor: String, _ values: UnsafeBufferPointer<Float>) {
        self.tensor = tensor
        for v in values where !v.isFinite {
            if v.isNaN { nan += 1 } else if v > 0 { positiveInfinity += 1 } else { negativeInfinity += 1 }
        }
        if nan + positiveInfinity + negativeInfinity == 0 { return nil }
    }

    /// "model.norm.weight (3 NaN, 1 +inf)".
    public var description: String {
        let parts = [(nan, "NaN"), (positiveInfinity, "+inf"), (negativeInfinity, "-inf")].filter { $0.0 > 0 }
        return "\(tensor) (\(parts.map { "\($0.0) \($0.1)" }.joined(separator: ", ")))"
    }
}

// MARK: Reference logits

/// The reference logits written by `scripts/reference/make_llama_fixture.py` beside a
/// fixture checkpoint (`logits.safetensors`): token sequences and, for each position,
/// the next-token logits Hugging Face computed in float32.
public struct ReferenceLogits: Sendable {
    /// One token sequence and its logits.
    public struct TokenSequence: Sendable {
        /// The input token ids.
        public let tokens: [Int]
        /// Row-major (tokens.count × vocabSize): row t = logits after tokens[0...t].
        public let logits: [Float]
        /// The vocabulary size V (the row length).
        public let vocabSize: Int
    }

    /// The sequences, in order (`input_ids.0`/`logits.0`, `input_ids.1`/`logits.1`, …).
    public let sequences: [TokenSequence]
    /// The file's metadata: versions of torch and transformers, script, seed.
    public let metadata: [String: String]

    /// Reads a reference logits file: pairs `input_ids.<i>` [T] (token ids as exact F32
    /// integers) and `logits.<i>` [T, V], for i = 0, 1, … without gaps.
    public static func read(contentsOf url: URL) throws(NumericsError) -> ReferenceLogits {
        let file = try SafeTensorsFile.read(contentsOf: url)
        var sequences: [TokenSequence] = []
        while let ids = file["input_ids.\(sequences.count)"] {
            let i = sequences.count
            guard ids.shape.count == 1 else {
                throw .invalidArgument("\(url.lastPathComponent): input_ids.\(i) has shape \(ids.shape); expected [T]")
            }
            var tokens: [Int] = []
            for v in ids.values {
                guard v >= 0, v < 0x1p24, v == v.rounded() else {
                    throw .invalidArgument("\(url.lastPathComponent): input_ids.\(i) holds \(v), not a token id (a non-negative integer below 2^24)")
                }
                tokens.append(Int(v))
            }
            let logits = try file.tensor("logits.\(i)")
            guard logits.shape.count == 2, logits.shape[0] == tokens.count, logits.shape[1] >= 1 else {
                throw .invalidArgument("\(url.lastPathComponent): logits.\(i) has shape \(logits.shape); expected [\(tokens.count), V]")
            }
            sequences.append(TokenSequence(tokens: tokens, logits: logits.values, vocabSize: logits.shape[1]))
        }
        guard !sequences.isEmpty else {
            throw .invalidArgument("\(url.lastPathComponent): no input_ids.0 tensor; expected pairs input_ids.<i>, logits.<i>")
        }
        return ReferenceLogits(sequences: sequences, metadata: file.metadata)
    }
}

// MARK: Plumbing

extension CheckpointIO {
    /// Names a save does not carry over from the directory it replaces: the checkpoint's
    /// own files and any other copy of the weights (sharded safetensors, PyTorch pickles).
    static func isCheckpointOwned(_ name: String) -> Bool {
        if [CheckpointFile.config, CheckpointFile.model, CheckpointFile.lab, CheckpointFile.labState,
            "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"].contains(name) {
            return true
        }
        return (name.hasPrefix("model-") && name.hasSuffix(".safetensors"))
            || (name.hasPrefix("pytorch_model-") && name.hasSuffix(".bin"))
    }

    /// The part of a staging directory's name after `.NAME`; then the saving process's id.
    static let stagingMarker = ".plab-save-"
    static let asideMarker = ".plab-old-"

    /// Refuses to replace a directory that is not a checkpoint: one that is neither empty
    /// nor holds config.json, or that holds a sub-directory (a save never copies a tree).
    static func checkReplaceable(_ path: String, shownAs label: String) throws(NumericsError) {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: path) } catch {
            throw .invalidArgument("cannot list \(label) to replace it: \(error.localizedDescription)")
        }
        guard !names.isEmpty else { return }
        guard names.contains(CheckpointFile.config) else {
            throw .invalidArgument("\(label) is a directory that is not a checkpoint (it has no \(CheckpointFile.config)); a save replaces only a checkpoint or an empty directory: give a new name")
        }
        for entry in names.sorted() {
            var st = stat()
            if lstat(path + "/" + entry, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
                throw .invalidArgument("\(label) holds the directory '\(entry)'; a save replaces a checkpoint's files and never copies a tree: move it out or give a new name")
            }
        }
    }

    /// Removes the `.NAME.plab-save-PID-…` directories in `parent` left by saves whose
    /// process no longer runs (a crash, a kill, a double Ctrl-C), whatever NAME they were
    /// saving, and the `.NAME.plab-old-PID-…` ones whose NAME is back in place (while NAME
    /// is missing, the old copy is the only checkpoint left, and stays).
    static func removeLeftovers(in parent: String) {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: parent) else { return }
        for entry in entries where entry.hasPrefix(".") {
            for marker in [stagingMarker, asideMarker] {
                guard let range = entry.range(of: marker) else { continue }
                let name = String(entry[entry.index(after: entry.startIndex)..<range.lowerBound])
                let rest = entry[range.upperBound...]
                guard !name.isEmpty, let dash = rest.firstIndex(of: "-"), let pid = pid_t(rest[..<dash]), pid > 0 else { continue }
                if marker == asideMarker && !FileManager.default.fileExists(atPath: parent + "/" + name) { continue }
                if kill(pid, 0) != 0 && errno == ESRCH { removeQuietly(parent + "/" + entry) }
            }
        }
    }

    /// Links (or copies) the files of `old` that are not the checkpoint's own into `new`
    /// (a README, tokenizer files); `checkReplaceable` has made sure there is no directory.
    static func carryOver(from old: String, to new: String) throws(NumericsError) {
        let fm = FileManager.default
        let names: [String]
        do {
            names = try fm.contentsOfDirectory(atPath: old)
        } catch {
            throw .invalidArgument("cannot list \(old) to keep its other files: \(error.localizedDescription)")
        }
        for entry in names where !isCheckpointOwned(entry) {
            let source = old + "/" + entry, target = new + "/" + entry
            var st = stat()
            guard lstat(source, &st) == 0, (st.st_mode & S_IFMT) != S_IFDIR else {
                throw .invalidArgument("cannot keep \(source) in the new checkpoint: it is a directory")
            }
            if link(source, target) == 0 { continue }
            do {
                try fm.copyItem(atPath: source, toPath: target)
            } catch {
                throw .invalidArgument("cannot keep \(source) in the new checkpoint: \(error.localizedDescription)")
            }
        }
    }

    /// Moves the finished staging directory to `destination`, atomically replacing what is
    /// there, and deletes the replaced directory.
    static func install(_ staging: String, at destination: String) throws(NumericsError) {
        if rename(staging, destination) == 0 { return }
        let renameError = errno
        // rename(2) replaces only an empty directory; otherwise exchange the two.
        guard renameError == ENOTEMPTY || renameError == EEXIST else {
            throw .invalidArgument("cannot move the new checkpoint into place at \(destination): \(String(cString: strerror(renameError)))")
        }
        if exchange(staging, destination) {
            removeQuietly(staging)   // now the old checkpoint
            return
        }
        // No atomic exchange on this file system: two renames, with the destination absent
        // for a moment in between.
        let aside = FileWriting.parentDirectory(of: destination) + "/."
            + FileWriting.lastComponent(of: destination) + asideMarker + "\(getpid())-" + UUID().uuidString
        guard rename(destination, aside) == 0 else {
            throw .invalidArgument("cannot move the old checkpoint at \(destination) aside: \(String(cString: strerror(errno)))")
        }
        guard rename(staging, destination) == 0 else {
            let message = String(cString: strerror(errno))
            _ = rename(aside, destination)
            throw .invalidArgument("cannot move the new checkpoint into place at \(destination): \(message)")
        }
        removeQuietly(aside)
    }

    /// Exchanges two paths atomically; false if the system or file system cannot.
    static func exchange(_ a: String, _ b: String) -> Bool {
        #if os(Linux)
        typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
        guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "renameat2") else { return false }
        let renameat2 = unsafeBitCast(symbol, to: RenameAt2.self)
        let renameExchange: UInt32 = 1 << 1   // RENAME_EXCHANGE in <linux/fs.h>
        return renameat2(AT_FDCWD, a, AT_FDCWD, b, renameExchange) == 0
        #elseif canImport(Darwin)
        return renamex_np(a, b, UInt32(RENAME_SWAP)) == 0
        #else
        return false
        #endif
    }

    static func removeQuietly(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// A directory opened once, so that every file of a checkpoint is read from it even if
    /// the path is given to another directory meanwhile.
    final class OpenDirectory {
        let fd: Int32
        let path: String
        let device: UInt64, inode: UInt64

        init(path: String) throws(NumericsError) {
            let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else {
                let e = errno
                if e == ENOENT { throw .invalidArgument("no checkpoint at \(path): the directory does not exist") }
                if e == ENOTDIR { throw .invalidArgument("\(path) is not a directory; a checkpoint is a directory holding \(CheckpointFile.config) and \(CheckpointFile.model)") }
                throw .invalidArgument("cannot open the checkpoint directory \(path): \(String(cString: strerror(e)))")
            }
            var st = stat()
            _ = fstat(fd, &st)
            self.fd = fd
            self.path = path
            self.device = UInt64(st.st_dev)
            self.inode = UInt64(st.st_ino)
        }

        deinit { close(fd) }

        /// Whether the path now names another directory (or nothing).
        func wasReplaced() -> Bool {
            var st = stat()
            guard stat(path, &st) == 0 else { return true }
            return UInt64(st.st_dev) != device || UInt64(st.st_ino) != inode
        }

        /// Whether the directory holds an entry of that name.
        func has(_ name: String) -> Bool {
            var st = stat()
            return fstatat(fd, name, &st, 0) == 0
        }

        /// Opens a file of the directory; nil if there is none of that name.
        func openFile(_ name: String) throws(NumericsError) -> OpenFile? {
            try OpenFile(path: name, relativeTo: fd, label: name, missingOK: true)
        }

        /// The entries, for messages.
        func listing() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
        }
    }

    /// Reads a whole small file (JSON), refusing one larger than `limit` bytes.
    static func readSmall(_ file: OpenFile, limit: Int) throws(NumericsError) -> Data {
        guard file.size <= limit else {
            throw .invalidArgument("\(file.label) is \(file.size) bytes, more than the \(limit) accepted for it")
        }
        return try file.readAll()
    }

    /// The files of one checkpoint, opened (or found absent) through one directory handle.
    struct CheckpointFiles {
        let directory: OpenDirectory
        let config, model, lab, labState: OpenFile?

        init(_ directory: OpenDirectory) throws(NumericsError) {
            self.directory = directory
            config = try directory.openFile(CheckpointFile.config)
            model = try directory.openFile(CheckpointFile.model)
            lab = try directory.openFile(CheckpointFile.lab)
            labState = try directory.openFile(CheckpointFile.labState)
        }
    }

    static func load(_ files: CheckpointFiles, limits: SafeTensorsLimits,
                     acceptNonFinite: Bool = false,
                     admit: ((LlamaConfig, Int) throws(NumericsError) -> Void)? = nil) throws(NumericsError) -> Checkpoint {
        let dir = files.directory
        guard let configFile = files.config else {
            throw .invalidArgument("\(dir.path) has no \(CheckpointFile.config); a checkpoint directory holds \(CheckpointFile.config) and \(CheckpointFile.model) (found: \(listed(dir.listing())))")
        }
        let (config, tokens, defaults) = try LlamaConfig.huggingFaceConfig(from: try readSmall(configFile, limit: 16 << 20))
        guard let count = config.checkedParameterCount, count <= limits.maxTotalElements else {
            throw .invalidArgument("config.json describes a model of more than \(limits.maxTotalElements) parameters, the limit for loading")
        }
        try admit?(config, files.labState?.size ?? 0)

        guard let modelFile = files.model else {
            let hint = dir.has("model.safetensors.index.json")
                ? " (found model.safetensors.index.json: sharded checkpoints are not read; merge the shards into one file)"
                : dir.has("pytorch_model.bin") ? " (found pytorch_model.bin: only safetensors weights are read)" : ""
            throw .invalidArgument("\(dir.path) has no \(CheckpointFile.model)\(hint)")
        }
        let tensors = try SafeTensorsFile.parse(modelFile.source(), limits: limits,
                                                include: { !Checkpoint.isIgnoredTensor($0) })
        // Every tensor is checked before the weights are allocated (the file holds them then),
        // and the layout's names only once the file can hold that many: a few bytes of
        // config.json must not make the loader fill gigabytes with zeros, or name millions
        // of layers.
        guard config.numHiddenLayers <= tensors.count else {
            throw .invalidArgument("config.json has num_hidden_layers \(config.numHiddenLayers) but \(CheckpointFile.model) holds only \(tensors.count) tensors (9 a layer)")
        }
        let slots = ModelWeights.layout(of: config)
        let expected = Set(slots.map(\.name))
        let tiedHead = config.tieWordEmbeddings ? "lm_head.weight" : nil
        let unexpected = tensors.names.filter { !expected.contains($0) && $0 != tiedHead }
        if !unexpected.isEmpty {
            throw .invalidArgument("\(CheckpointFile.model) holds tensors a Llama model with this config.json has not: \(listed(unexpected))")
        }
        for slot in slots {
            guard let t = tensors[slot.name] else {
                throw .invalidArgument("\(CheckpointFile.model) has no tensor '\(slot.name)' (shape \(slot.shape) expected from config.json)")
            }
            guard t.shape == slot.shape else {
                let defaults = ConfigDefault.summary(defaults).map { " (\($0))" } ?? ""
                throw .invalidArgument("tensor '\(slot.name)' has shape \(t.shape) in \(CheckpointFile.model) but config.json implies \(slot.shape)\(defaults)")
            }
        }
        var weights = ModelWeights(config: config)
        for slot in weights.slots {
            let t = tensors[slot.name]!
            weights.data.withUnsafeMutableBufferPointer { dst in
                t.values.withUnsafeBufferPointer { src in
                    (dst.baseAddress! + slot.offset).update(from: src.baseAddress!, count: slot.count)
                }
            }
        }
        if let tiedHead, let head = tensors[tiedHead] {
            let embedding = weights.embedding
            guard head.shape == embedding.shape else {
                throw .invalidArgument("tie_word_embeddings is true but lm_head.weight has shape \(head.shape), not the embedding's \(embedding.shape)")
            }
            if let i = head.values.indices.first(where: { head.values[$0].bitPattern != weights.data[embedding.offset + $0].bitPattern }) {
                throw .invalidArgument("tie_word_embeddings is true but lm_head.weight differs from model.embed_tokens.weight (first at element \(i): \(head.values[i]) vs \(weights.data[embedding.offset + i])); drop lm_head.weight or set tie_word_embeddings to false")
            }
        }

        var lab: LabMetadata?
        if let labFile = files.lab {
            let data = try readSmall(labFile, limit: limits.maxHeaderBytes)
            do {
                lab = try JSONDecoder().decode(LabMetadata.self, from: data)
            } catch {
                throw .invalidArgument("\(CheckpointFile.lab) is not valid lab metadata: \(describeDecodingError(error))")
            }
            if let version = lab?.formatVersion, version > LabMetadata.currentFormatVersion || version < 1 {
                throw .invalidArgument("\(CheckpointFile.lab) has format_version \(version); this lab reads 1…\(LabMetadata.currentFormatVersion)")
            }
        }
        var labState: SafeTensorsFile?
        if let stateFile = files.labState {
            labState = try SafeTensorsFile.parse(stateFile.source(), limits: limits, include: nil)
        }

        // Health, once every file is known to be well formed: no NaN or infinity.
        if !acceptNonFinite {
            // (A tied lm_head.weight equals the embedding bit for bit: counted there.)
            let counts = weights.data.withUnsafeBufferPointer { data in
                weights.slots.compactMap { slot in
                    NonFiniteCount(tensor: slot.name, UnsafeBufferPointer(rebasing: data[slot.offset..<(slot.offset + slot.count)]))
                }
            }
            try refuseNonFinite(counts, in: CheckpointFile.model, what: "weights")
            if let state = labState {
                let counts = state.names.compactMap { name in
                    state[name]!.values.withUnsafeBufferPointer { NonFiniteCount(tensor: name, $0) }
                }
                try refuseNonFinite(counts, in: CheckpointFile.labState, what: "values")
            }
        }
        var checkpoint = Checkpoint(weights: weights, lab: lab, labState: labState, specialTokens: tokens)
        checkpoint.configDefaults = defaults
        return checkpoint
    }

    /// Refuses a file whose tensors hold non-finite values: one line naming the file, the
    /// tensors (the first four) and what each holds.
    static func refuseNonFinite(_ counts: [NonFiniteCount], in file: String, what: String) throws(NumericsError) {
        guard !counts.isEmpty else { return }
        let tensors = listed(counts.map(\.description), limit: 4)
        throw .invalidArgument("\(file): non-finite \(what) in \(counts.count) tensor\(counts.count == 1 ? "" : "s"): \(tensors); the checkpoint is damaged or diverged (only finite \(what) are loaded)")
    }

    /// A short account of a JSONDecoder error: which key, what went wrong.
    static func describeDecodingError(_ error: any Error) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            keys.isEmpty ? "the top level" : "'" + keys.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".") + "'"
        }
        switch error as? DecodingError {
        case .keyNotFound(let key, let context)?:
            return "the key '\(key.stringValue)' is missing at \(path(context.codingPath))"
        case .typeMismatch(let type, let context)?:
            return "\(path(context.codingPath)) should be \(type)"
        case .valueNotFound(let type, let context)?:
            return "\(path(context.codingPath)) is null; expected \(type)"
        case .dataCorrupted(let context)?:
            return "\(context.debugDescription) at \(path(context.codingPath))"
        default:
            return "\(error)"
        }
    }
}

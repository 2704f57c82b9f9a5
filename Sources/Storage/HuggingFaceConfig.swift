// A checkpoint's config.json: the keys of Hugging Face's LlamaConfig, MistralConfig,
// MixtralConfig, Qwen2Config and Qwen3Config read and written, with the defaults
// transformers takes for absent keys (Checkpoint.swift has the directory's layout).

import Files
import Foundation
import Model
import JSON
import Numerics
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
    /// `model_type` is one of `ModelFamily`'s:
    /// - "llama": `attention_bias` true puts biases on q, k, v and o; `mlp_bias` must be false.
    /// - "mistral": Llama's computation under MistralConfig's keys and defaults (8 key/value
    ///   heads, 131072 positions); its `sliding_window` (default 4096) must be null or at
    ///   least `max_position_embeddings`, where the window never cuts a sequence.
    /// - "mixtral": the sparse MLP of `MixtralConfig` (`num_local_experts`, default 8,
    ///   `num_experts_per_tok`, default 2, top-k weights always renormalised;
    ///   `sliding_window` must be null and `router_jitter_noise` 0; defaults
    ///   `rms_norm_eps` 1e-5, rotary base 1e6, 8 key/value heads, 131072 positions).
    /// - "qwen2": biases on q, k and v (Qwen2Config: 32 key/value heads, 32768 positions).
    /// - "qwen3": per-head RMSNorm of q and k before RoPE, `head_dim` (default 128) and
    ///   `attention_bias` (biases on q, k, v and o; default false) (Qwen3Config: 32
    ///   key/value heads, 32768 positions).
    /// Qwen2 and Qwen3 must not use their sliding window (`use_sliding_window` false, every
    /// `layer_types` entry "full_attention").
    /// Required: `hidden_size`, `intermediate_size`,
    /// `num_attention_heads`, `num_hidden_layers`, `vocab_size`. Optional, with Hugging
    /// Face's defaults: `num_key_value_heads` (= heads), `rms_norm_eps` (1e-6), the rotary
    /// base from `rope_parameters.rope_theta` (transformers 5) or `rope_theta` (older;
    /// both must agree when both are given; default 10000), `max_position_embeddings`
    /// (2048), `tie_word_embeddings` (false), `hidden_act` (must be "silu"), `head_dim`
    /// (hidden_size/heads, except Qwen3's). Refused because this model cannot compute
    /// them: rotary scaling other than "default", `mlp_bias` true. An
    /// `eos_token_id` list gives its first id. Other keys are ignored. `defaults` lists the
    /// optional keys that were absent, with the value taken, in transformers' field order.
    public static func huggingFaceConfig(from data: Data) throws(NumericsError)
        -> (config: LlamaConfig, specialTokens: SpecialTokenIDs, defaults: [ConfigDefault]) {
        func fail(_ message: String) -> NumericsError { .invalidArgument("config.json: \(message)") }
        let parsed: JSONValue
        do throws(JSONReadError) {
            parsed = try JSONValue(parsing: data)
        } catch {
            if let key = error.duplicateKey { throw fail("the key \(CheckpointIO.quoted(key)) appears twice (the second time at \(error.place))") }
            throw fail("not valid JSON: \(error)")
        }
        guard let json = parsed.objectValue else { throw fail("expected a JSON object of configuration keys") }

        func present(_ key: String) -> JSONValue? {
            guard let v = json[key], !v.isNull else { return nil }
            return v
        }
        func integer(_ key: String, default value: Int? = nil) throws(NumericsError) -> Int {
            guard let raw = present(key) else {
                if let value { return value }
                throw fail("the required key '\(key)' is missing (a positive integer)")
            }
            guard let v = raw.intValue else {
                throw fail("'\(key)' must be an integer; found \(CheckpointIO.describe(raw))")
            }
            // Bounds that keep every product of two dimensions far from overflowing.
            guard (0...(1 << 31)).contains(v) else {
                throw fail("'\(key)' = \(v) is out of range; expected 0…\(1 << 31)")
            }
            return v
        }
        func number(_ value: JSONValue?, _ key: String) throws(NumericsError) -> Float {
            guard let d = value?.doubleValue, d.isFinite, abs(d) <= Double(Float.greatestFiniteMagnitude) else {
                throw fail("'\(key)' must be a finite number; found \(CheckpointIO.describe(value))")
            }
            return Float(d)
        }
        func string(_ key: String) throws(NumericsError) -> String? {
            guard let raw = present(key) else { return nil }
            guard let s = raw.stringValue else { throw fail("'\(key)' must be a string; found \(CheckpointIO.describe(raw))") }
            return s
        }
        func flag(_ key: String) throws(NumericsError) -> Bool? {
            guard let raw = present(key) else { return nil }
            guard let b = raw.boolValue else { throw fail("'\(key)' must be true or false; found \(CheckpointIO.describe(raw))") }
            return b
        }
        func tokenID(_ key: String) throws(NumericsError) -> Int? {
            guard var raw = present(key) else { return nil }
            if let list = raw.arrayValue {
                guard let first = list.first else { return nil }
                raw = first
            }
            guard let v = raw.intValue else {
                throw fail("'\(key)' must be an integer token id (or a list of them); found \(CheckpointIO.describe(raw))")
            }
            return v
        }

        guard let modelType = try string("model_type") else {
            throw fail("'model_type' is missing; this lab reads \(ModelFamily.known)")
        }
        guard let family = ModelFamily(rawValue: modelType) else {
            throw fail("model_type \(CheckpointIO.quoted(modelType)) is not supported; this lab reads \(ModelFamily.known)")
        }
        if let raw = present("architectures") {
            guard let list = raw.arrayValue, list.contains(where: { $0.stringValue == family.architecture }) else {
                throw fail("architectures \(CheckpointIO.describe(raw)) does not include \"\(family.architecture)\" (the one read for model_type \"\(modelType)\")")
            }
        }
        let defaultsOf = family.defaults
        let act = try string("hidden_act") ?? ConfigDefault.hiddenAct
        guard act == "silu" else {
            throw fail("hidden_act \(CheckpointIO.quoted(act)) is not supported; the MLP is SwiGLU with \"silu\"")
        }
        // The attention's biases: a key of LlamaConfig and Qwen3Config only (transformers'
        // other families ignore it, and so does this reader).
        var attentionBias = false
        if family == .llama || family == .qwen3 { attentionBias = try flag("attention_bias") ?? false }
        if family == .llama, try flag("mlp_bias") == true {
            throw fail("'mlp_bias' is true, but the MLP here has no bias terms; only false is accepted")
        }
        // Sliding-window attention is not computed: attention is over the whole sequence.
        if family == .qwen2 || family == .qwen3 {
            if try flag("use_sliding_window") == true {
                throw fail("use_sliding_window is true: sliding-window attention is not supported (attention here is over the whole sequence); only false is accepted")
            }
            if let raw = present("layer_types") {
                guard let list = raw.arrayValue, list.allSatisfy({ $0.stringValue != nil }) else {
                    throw fail("'layer_types' must be a list of strings; found \(CheckpointIO.describe(raw))")
                }
                if let i = list.firstIndex(where: { $0.stringValue != "full_attention" }) {
                    throw fail("layer_types[\(i)] is \(CheckpointIO.describe(list[i])): only \"full_attention\" layers are supported (no sliding window)")
                }
            }
        }

        let hidden = try integer("hidden_size")
        let heads = try integer("num_attention_heads")

        // Rotary embeddings: the plain ("default") kind only; the base in either place.
        var theta: Float?
        if let raw = present("rope_parameters") {
            guard let params = raw.objectValue else {
                throw fail("'rope_parameters' must be an object {rope_theta, rope_type}")
            }
            if let type = params["rope_type"] ?? params["type"], !type.isNull {
                guard type.stringValue == "default" else {
                    throw fail("rope_parameters.rope_type \(CheckpointIO.describe(type)) is not supported; only \"default\" rotary embeddings are")
                }
            }
            if let t = params["rope_theta"], !t.isNull { theta = try number(t, "rope_parameters.rope_theta") }
        }
        if let raw = present("rope_scaling") {
            let type = raw.objectValue.flatMap { $0["rope_type"] ?? $0["type"] }
            guard type?.stringValue == "default" else {
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

        let positions = try integer("max_position_embeddings", default: defaultsOf.maxPositionEmbeddings)
        if family == .mistral {
            // A window at least as long as the longest sequence never cuts one.
            let window: Int? = try present("sliding_window") == nil ? (json["sliding_window"] == nil ? 4096 : nil)
                : integer("sliding_window")
            if let window, window < positions {
                let given = json["sliding_window"] == nil ? "sliding_window is absent, so MistralConfig's default 4096 applies" : "sliding_window is \(window)"
                throw fail("\(given): sliding-window attention is not supported; only null or a window of at least max_position_embeddings (\(positions)) is accepted")
            }
        }
        var experts = 0, topK = 2
        if family == .mixtral {
            experts = try integer("num_local_experts", default: 8)
            topK = try integer("num_experts_per_tok", default: 2)
            guard experts >= 1 else { throw fail("num_local_experts is \(experts); a Mixtral model has at least 1 expert") }
            if let raw = present("sliding_window") {
                throw fail("sliding_window \(CheckpointIO.describe(raw)) is not supported; attention here is over the whole sequence (null)")
            }
            if let raw = present("router_jitter_noise"), raw.doubleValue != 0 {
                throw fail("router_jitter_noise \(CheckpointIO.describe(raw)) is not supported; only 0 (no noise on the router's input)")
            }
        }
        // The head dimension: given, Qwen3's default, or hidden_size/heads (stored as nil
        // then, so that a configuration does not change by being written and read again).
        func headDim() throws(NumericsError) -> Int? {
            let given: Int
            if let raw = present("head_dim") {
                guard let d = raw.intValue, d >= 1 else {
                    throw fail("'head_dim' must be a positive integer; found \(CheckpointIO.describe(raw))")
                }
                given = d
            } else if let d = defaultsOf.headDim {
                given = d
            } else {
                return nil
            }
            return heads >= 1 && hidden % heads == 0 && given == hidden / heads ? nil : given
        }
        let config = LlamaConfig(
            hiddenSize: hidden,
            intermediateSize: try integer("intermediate_size"),
            numAttentionHeads: heads,
            numKeyValueHeads: try integer("num_key_value_heads", default: defaultsOf.keyValueHeads ?? heads),
            numHiddenLayers: try integer("num_hidden_layers"),
            vocabSize: try integer("vocab_size"),
            rmsNormEps: try present("rms_norm_eps").map { (v) throws(NumericsError) in try number(v, "rms_norm_eps") }
                ?? defaultsOf.rmsNormEps,
            ropeTheta: theta ?? defaultsOf.ropeTheta,
            maxPositionEmbeddings: positions,
            tieWordEmbeddings: try flag("tie_word_embeddings") ?? ConfigDefault.tieWordEmbeddings,
            numLocalExperts: experts, numExpertsPerTok: topK, normTopKProb: true,
            family: family, attentionBias: attentionBias, headDim: try headDim())
        // What was taken for absent keys, in the order of transformers' configuration fields.
        var defaults: [ConfigDefault] = []
        if present("num_key_value_heads") == nil {
            defaults.append(ConfigDefault(key: "num_key_value_heads",
                                          value: defaultsOf.keyValueHeads.map { "\($0)" } ?? "\(heads) (= num_attention_heads)"))
        }
        if present("head_dim") == nil, let d = defaultsOf.headDim { defaults.append(ConfigDefault(key: "head_dim", value: "\(d)")) }
        if present("hidden_act") == nil { defaults.append(ConfigDefault(key: "hidden_act", value: ConfigDefault.hiddenAct)) }
        if present("max_position_embeddings") == nil {
            defaults.append(ConfigDefault(key: "max_position_embeddings", value: "\(defaultsOf.maxPositionEmbeddings)"))
        }
        if present("rms_norm_eps") == nil { defaults.append(ConfigDefault(key: "rms_norm_eps", value: defaultsOf.rmsNormEpsText)) }
        if present("tie_word_embeddings") == nil { defaults.append(ConfigDefault(key: "tie_word_embeddings", value: "false")) }
        if theta == nil { defaults.append(ConfigDefault(key: "rope_theta", value: defaultsOf.ropeThetaText)) }
        if family == .mixtral {
            if present("num_experts_per_tok") == nil { defaults.append(ConfigDefault(key: "num_experts_per_tok", value: "2")) }
            if present("num_local_experts") == nil { defaults.append(ConfigDefault(key: "num_local_experts", value: "8")) }
        }
        do throws(NumericsError) {
            try config.validate()
        } catch {
            throw fail(error.description)
        }
        let tokens = SpecialTokenIDs(bos: try tokenID("bos_token_id"), eos: try tokenID("eos_token_id"),
                                     pad: try tokenID("pad_token_id"))
        return (config, tokens, defaults)
    }

    /// The Hugging Face `config.json` text for this configuration: every key of its family's
    /// configuration class (`checkpointFamily`), the rotary base both as `rope_theta`
    /// (transformers 4) and in `rope_parameters` (transformers 5), the dtype both as
    /// `torch_dtype` and `dtype`. Keys are sorted and numbers written as the shortest decimal
    /// that reads back to the same float32. A sparse model is written as Mixtral's
    /// (`MixtralForCausalLM`, its expert keys and `router_aux_loss_coef`), which requires
    /// renormalised top-k weights; Mistral, Qwen2 and Qwen3 with their sliding window off.
    public func huggingFaceJSON(specialTokens: SpecialTokenIDs = SpecialTokenIDs(), routerAuxLossCoef: Double = 0.001) -> Data {
        let family = checkpointFamily
        var entries: [(String, String)] = [
            ("architectures", "[\"\(family.architecture)\"]"),
            ("attention_dropout", "0.0"),
            ("dtype", "\"float32\""),
            ("head_dim", "\(headDim)"),
            ("hidden_act", "\"silu\""),
            ("hidden_size", "\(hiddenSize)"),
            ("intermediate_size", "\(intermediateSize)"),
            ("max_position_embeddings", "\(maxPositionEmbeddings)"),
            ("model_type", "\"\(family.rawValue)\""),
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
        switch family {
        case .llama: entries += [("attention_bias", attentionBias ? "true" : "false"), ("mlp_bias", "false")]
        case .mistral: entries.append(("sliding_window", "null"))
        case .qwen2, .qwen3:
            entries += [("max_window_layers", "\(numHiddenLayers)"), ("sliding_window", "null"), ("use_sliding_window", "false")]
            if family == .qwen3 { entries.append(("attention_bias", attentionBias ? "true" : "false")) }
        case .mixtral: break
        }
        if family == .mixtral {
            entries += [("num_local_experts", "\(numLocalExperts)"), ("num_experts_per_tok", "\(numExpertsPerTok)"),
                        ("output_router_logits", "false"), ("router_aux_loss_coef", JSONValue.number(routerAuxLossCoef).serialized),
                        ("router_jitter_noise", "0.0"), ("sliding_window", "null")]
        }
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
        let d = explicitHeadDim ?? hiddenSize / max(numAttentionHeads, 1)
        let c = hiddenSize, q = product(numAttentionHeads, d), kv = product(numKeyValueHeads, d)
        let experts = max(numLocalExperts, 1)
        guard let q, let kv else { return nil }
        let terms = [product(2, c), product(2, q, c), product(2, kv, c), product(3, intermediateSize, c, experts),
                     isMixtureOfExperts ? product(numLocalExperts, c) : 0,
                     qkvBias ? q : 0, qkvBias ? kv : 0, qkvBias ? kv : 0,   // biases and per-head norms
                     outputBias ? c : 0, qkNorm ? product(2, d) : 0]
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

/// The Hugging Face spelling of each model family (`ModelFamily`, Model's): the architecture
/// class, the configuration class, and transformers' defaults for absent keys.
extension ModelFamily {
    /// "\"llama\", \"mistral\", … and \"qwen3\" models", for errors.
    static var known: String {
        let names = allCases.map { "\"\($0.rawValue)\"" }
        return names.dropLast().joined(separator: ", ") + " and " + names.last! + " models"
    }

    /// The model class transformers loads a checkpoint of this family with.
    public var architecture: String {
        switch self {
        case .llama: return "LlamaForCausalLM"
        case .mistral: return "MistralForCausalLM"
        case .mixtral: return "MixtralForCausalLM"
        case .qwen2: return "Qwen2ForCausalLM"
        case .qwen3: return "Qwen3ForCausalLM"
        }
    }

    /// transformers' configuration class of this family, whose defaults absent keys take.
    public var configClass: String {
        switch self {
        case .llama: return "LlamaConfig"
        case .mistral: return "MistralConfig"
        case .mixtral: return "MixtralConfig"
        case .qwen2: return "Qwen2Config"
        case .qwen3: return "Qwen3Config"
        }
    }

    struct Defaults {
        var rmsNormEps: Float
        var rmsNormEpsText: String
        var ropeTheta: Float
        var ropeThetaText: String
        var maxPositionEmbeddings: Int
        /// nil: num_attention_heads.
        var keyValueHeads: Int?
        /// nil: hidden_size / num_attention_heads.
        var headDim: Int? = nil
    }

    /// transformers 5's defaults (`models/*/configuration_*.py`; the rotary base is
    /// `default_theta`, 10000 unless the class sets its own).
    var defaults: Defaults {
        switch self {
        case .llama:
            return Defaults(rmsNormEps: ConfigDefault.rmsNormEps, rmsNormEpsText: "1e-06", ropeTheta: ConfigDefault.ropeTheta,
                            ropeThetaText: "10000", maxPositionEmbeddings: ConfigDefault.maxPositionEmbeddings, keyValueHeads: nil)
        case .mistral:
            return Defaults(rmsNormEps: 1e-6, rmsNormEpsText: "1e-06", ropeTheta: 10_000, ropeThetaText: "10000",
                            maxPositionEmbeddings: 131_072, keyValueHeads: 8)
        case .mixtral:
            return Defaults(rmsNormEps: 1e-5, rmsNormEpsText: "1e-05", ropeTheta: 1_000_000, ropeThetaText: "1000000.0",
                            maxPositionEmbeddings: 131_072, keyValueHeads: 8)
        case .qwen2:
            return Defaults(rmsNormEps: 1e-6, rmsNormEpsText: "1e-06", ropeTheta: 10_000, ropeThetaText: "10000",
                            maxPositionEmbeddings: 32_768, keyValueHeads: 32)
        case .qwen3:
            return Defaults(rmsNormEps: 1e-6, rmsNormEpsText: "1e-06", ropeTheta: 10_000, ropeThetaText: "10000",
                            maxPositionEmbeddings: 32_768, keyValueHeads: 32, headDim: 128)
        }
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
    /// 1e-06, 10000" (the family's configuration class: MixtralConfig, Qwen2Config, …); nil
    /// when nothing was taken.
    public static func summary(_ defaults: [ConfigDefault], family: ModelFamily = .llama) -> String? {
        guard !defaults.isEmpty else { return nil }
        return "\(CheckpointFile.config) lacks \(defaults.map(\.key).joined(separator: ", ")): took transformers' \(family.configClass) default\(defaults.count == 1 ? "" : "s") \(defaults.map(\.value).joined(separator: ", "))"
    }
}


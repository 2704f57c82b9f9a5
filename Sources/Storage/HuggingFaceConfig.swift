// A checkpoint's config.json: Hugging Face LlamaConfig keys read and written, with the
// defaults transformers takes for absent keys (Checkpoint.swift has the directory's layout).

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
    /// `model_type` "llama", or "mixtral" (the sparse MLP of `MixtralConfig`:
    /// `num_local_experts`, default 8, `num_experts_per_tok`, default 2, top-k weights
    /// always renormalised; `sliding_window` must be null and `router_jitter_noise` 0; its
    /// defaults are Mixtral's: `rms_norm_eps` 1e-5, rotary base 1e6, 8 key/value heads,
    /// 131072 positions).
    /// Required: `hidden_size`, `intermediate_size`,
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
        for key in ["attention_bias", "mlp_bias"] where try flag(key) == true {
            throw fail("'\(key)' is true, but this model has no bias terms; only false is accepted")
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
            maxPositionEmbeddings: try integer("max_position_embeddings", default: defaultsOf.maxPositionEmbeddings),
            tieWordEmbeddings: try flag("tie_word_embeddings") ?? ConfigDefault.tieWordEmbeddings,
            numLocalExperts: experts, numExpertsPerTok: topK, normTopKProb: true)
        // What was taken for absent keys, in the order of transformers' configuration fields.
        var defaults: [ConfigDefault] = []
        if present("num_key_value_heads") == nil {
            defaults.append(ConfigDefault(key: "num_key_value_heads",
                                          value: defaultsOf.keyValueHeads.map { "\($0)" } ?? "\(heads) (= num_attention_heads)"))
        }
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
        if let raw = present("head_dim") {
            guard let d = raw.intValue, d == config.headDim else {
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
    /// A sparse model is written as Mixtral's (`MixtralForCausalLM`, its expert keys and
    /// `router_aux_loss_coef`), which requires renormalised top-k weights.
    public func huggingFaceJSON(specialTokens: SpecialTokenIDs = SpecialTokenIDs(), routerAuxLossCoef: Double = 0.001) -> Data {
        let family: ModelFamily = isMixtureOfExperts ? .mixtral : .llama
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
        if family == .llama { entries += [("attention_bias", "false"), ("mlp_bias", "false")] }
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
        let c = hiddenSize, kv = numKeyValueHeads * (hiddenSize / max(numAttentionHeads, 1))
        let experts = max(numLocalExperts, 1)
        let terms = [product(2, c), product(2, c, c), product(2, kv, c), product(3, intermediateSize, c, experts),
                     isMixtureOfExperts ? product(numLocalExperts, c) : 0]
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

/// The Hugging Face model types read and written: the `model_type`, the architecture class,
/// and transformers' defaults for absent keys.
public enum ModelFamily: String, Sendable, CaseIterable {
    case llama, mixtral

    /// "\"llama\" and \"mixtral\" models", for errors.
    static var known: String { "\"llama\" and \"mixtral\" models" }

    public var architecture: String { self == .llama ? "LlamaForCausalLM" : "MixtralForCausalLM" }

    struct Defaults {
        var rmsNormEps: Float
        var rmsNormEpsText: String
        var ropeTheta: Float
        var ropeThetaText: String
        var maxPositionEmbeddings: Int
        /// nil: num_attention_heads.
        var keyValueHeads: Int?
    }

    /// transformers 5's `LlamaConfig` and `MixtralConfig` defaults.
    var defaults: Defaults {
        switch self {
        case .llama:
            return Defaults(rmsNormEps: ConfigDefault.rmsNormEps, rmsNormEpsText: "1e-06", ropeTheta: ConfigDefault.ropeTheta,
                            ropeThetaText: "10000", maxPositionEmbeddings: ConfigDefault.maxPositionEmbeddings, keyValueHeads: nil)
        case .mixtral:
            return Defaults(rmsNormEps: 1e-5, rmsNormEpsText: "1e-05", ropeTheta: 1_000_000, ropeThetaText: "1000000.0",
                            maxPositionEmbeddings: 131_072, keyValueHeads: 8)
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
    /// 1e-06, 10000" (MixtralConfig for a sparse model); nil when nothing was taken.
    public static func summary(_ defaults: [ConfigDefault], sparse: Bool = false) -> String? {
        guard !defaults.isEmpty else { return nil }
        return "\(CheckpointFile.config) lacks \(defaults.map(\.key).joined(separator: ", ")): took transformers' \(configClass(sparse: sparse)) default\(defaults.count == 1 ? "" : "s") \(defaults.map(\.value).joined(separator: ", "))"
    }

    /// The transformers configuration class whose defaults are taken.
    public static func configClass(sparse: Bool) -> String { sparse ? "MixtralConfig" : "LlamaConfig" }
}


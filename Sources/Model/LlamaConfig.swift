// The shape of a Llama-style decoder, with Hugging Face's names.

import Numerics

/// A Llama-style decoder's configuration, the keys of Hugging Face's `LlamaConfig`.
///
/// Dimensions used in shape comments throughout the model:
/// B = batch, T = time (sequence length), C = hidden size, H = attention heads,
/// Hkv = key/value heads, D = head dimension (C/H unless given), Q = H·D the width of the
/// queries and of the attention output, F = intermediate (MLP) size, V = vocabulary,
/// E = experts of a sparse MLP, K = experts per token.
///
/// The family (`ModelFamily`) decides the attention's extra tensors: Qwen2 adds biases to
/// the q, k and v projections; Qwen3 normalises each head of q and k (RMSNorm over D with
/// its own weight) after the projection and before RoPE, and with `attentionBias` adds
/// biases to q, k, v and o (as Llama's `attention_bias` does). Mistral computes what Llama
/// does.
///
/// With `numLocalExperts` > 0 every layer's MLP is a sparse mixture of experts as in
/// Hugging Face's `MixtralConfig`: E SwiGLU experts of width F and a router (E, C); each
/// token goes to the K experts with the largest router probabilities.
public struct LlamaConfig: Sendable, Hashable, Codable {
    public var hiddenSize: Int                 // C
    public var intermediateSize: Int           // F
    public var numAttentionHeads: Int          // H
    public var numKeyValueHeads: Int           // Hkv (H a multiple of it: grouped-query attention)
    public var numHiddenLayers: Int            // L
    public var vocabSize: Int                  // V
    public var rmsNormEps: Float
    public var ropeTheta: Float
    public var maxPositionEmbeddings: Int
    public var tieWordEmbeddings: Bool
    public var numLocalExperts: Int            // E (0: the dense SwiGLU MLP)
    public var numExpertsPerTok: Int           // K
    /// Whether the K chosen probabilities are divided by their sum (Mixtral: always).
    public var normTopKProb: Bool
    /// LoRA adapters on the linear layers (nil: none). Their tensors follow the model's own
    /// in the layout (`adapterShapes`); with adapters only they train.
    public var lora: LoRASpec?
    /// The Hugging Face family the model is read as and written as; it decides which
    /// attention tensors exist beside Llama's (`qkvBias`, `outputBias`, `qkNorm`).
    public var family: ModelFamily
    /// Biases on all four attention projections (`attention_bias` of Llama and Qwen3).
    public var attentionBias: Bool
    /// The head dimension D when it is given (`head_dim`); nil: C/H.
    public var explicitHeadDim: Int?

    public init(hiddenSize: Int, intermediateSize: Int, numAttentionHeads: Int, numKeyValueHeads: Int? = nil,
                numHiddenLayers: Int, vocabSize: Int, rmsNormEps: Float = 1e-5, ropeTheta: Float = 10_000,
                maxPositionEmbeddings: Int = 256, tieWordEmbeddings: Bool = false,
                numLocalExperts: Int = 0, numExpertsPerTok: Int = 2, normTopKProb: Bool = true, lora: LoRASpec? = nil,
                family: ModelFamily = .llama, attentionBias: Bool = false, headDim: Int? = nil) {
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numAttentionHeads = numAttentionHeads
        self.numKeyValueHeads = numKeyValueHeads ?? numAttentionHeads
        self.numHiddenLayers = numHiddenLayers
        self.vocabSize = vocabSize
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.tieWordEmbeddings = tieWordEmbeddings
        self.numLocalExperts = numLocalExperts
        self.numExpertsPerTok = numExpertsPerTok
        self.normTopKProb = normTopKProb
        self.lora = lora
        self.family = family
        self.attentionBias = attentionBias
        self.explicitHeadDim = headDim
    }

    /// Whether the MLPs are sparse mixtures of experts.
    public var isMixtureOfExperts: Bool { numLocalExperts > 0 }
    /// The family a checkpoint of this model is written as: Mixtral's when the MLP is
    /// sparse (a model made with experts is Mixtral's block), else `family`.
    public var checkpointFamily: ModelFamily { isMixtureOfExperts ? .mixtral : family }
    /// Whether q, k and v have biases (Qwen2; any family with `attentionBias`).
    public var qkvBias: Bool { family == .qwen2 || attentionBias }
    /// Whether o has a bias (`attentionBias`).
    public var outputBias: Bool { attentionBias }
    /// Whether each head of q and k is RMS-normalised before RoPE (Qwen3).
    public var qkNorm: Bool { family == .qwen3 }
    /// The attention's tensors beyond the four projection weights: q, k, v biases, o's
    /// bias, the q and k norms' weights.
    public var attentionExtraTensors: Int { (qkvBias ? 3 : 0) + (outputBias ? 1 : 0) + (qkNorm ? 2 : 0) }

    /// Parameter tensors per decoder layer: norms, q, k, v, o, the attention's biases and
    /// norms, and gate, up, down (dense) or the router and each expert's gate, up, down.
    public var tensorsPerLayer: Int { 6 + attentionExtraTensors + (isMixtureOfExperts ? 1 + 3 * numLocalExperts : 3) }

    /// D: `head_dim` when given, else C / H.
    public var headDim: Int { explicitHeadDim ?? hiddenSize / numAttentionHeads }
    /// Width of the queries and of the attention output, Q = H · D (C unless D is given).
    public var qDim: Int { numAttentionHeads * headDim }
    /// Width of the key and value projections, Hkv · D.
    public var kvDim: Int { numKeyValueHeads * headDim }

    /// Checks that the shapes fit together; the error names the offending setting.
    public func validate() throws(NumericsError) {
        func need(_ ok: Bool, _ message: @autoclosure () -> String) throws(NumericsError) {
            if !ok { throw .invalidArgument(message()) }
        }
        try need(hiddenSize >= 1 && intermediateSize >= 1 && numHiddenLayers >= 0 && vocabSize >= 1,
                 "hidden_size, intermediate_size and vocab_size must be at least 1 and num_hidden_layers at least 0")
        if let d = explicitHeadDim {
            try need(numAttentionHeads >= 1 && d >= 2 && d <= 1 << 16, "head_dim (\(d)) must be 2…65536 with at least one attention head")
            try need(d % 2 == 0, "head_dim \(d) must be even for rotary embeddings")
        } else {
            try need(numAttentionHeads >= 1 && hiddenSize % numAttentionHeads == 0,
                     "num_attention_heads (\(numAttentionHeads)) must divide hidden_size (\(hiddenSize))")
            try need(headDim % 2 == 0, "head dimension hidden_size/num_attention_heads = \(headDim) must be even for rotary embeddings")
        }
        try need(numKeyValueHeads >= 1 && numAttentionHeads % numKeyValueHeads == 0,
                 "num_key_value_heads (\(numKeyValueHeads)) must divide num_attention_heads (\(numAttentionHeads))")
        try need(rmsNormEps > 0 && rmsNormEps.isFinite, "rms_norm_eps must be a positive number")
        try need(ropeTheta > 1 && ropeTheta.isFinite, "rope_theta must be greater than 1")
        try need(maxPositionEmbeddings >= 1, "max_position_embeddings must be at least 1")
        try need(numLocalExperts >= 0 && numLocalExperts <= 256, "num_local_experts (\(numLocalExperts)) must be 0 (a dense MLP) … 256")
        try need(!isMixtureOfExperts || family == .llama || family == .mixtral,
                 "a sparse MLP (num_local_experts \(numLocalExperts)) is Mixtral's; the \(family.rawValue) family has a dense one")
        try need(family != .mixtral || isMixtureOfExperts, "a mixtral model has a sparse MLP: num_local_experts must be at least 1")
        try need(!attentionBias || family == .llama || family == .qwen3,
                 "attention_bias (biases on q, k, v and o) belongs to the llama and qwen3 families, not \(family.rawValue)")
        if isMixtureOfExperts {
            try need(numExpertsPerTok >= 1 && numExpertsPerTok <= numLocalExperts,
                     "num_experts_per_tok (top_k = \(numExpertsPerTok)) must be 1…\(numLocalExperts), the number of experts")
        }
        try lora?.validate(for: self)
    }

    /// The model's parameter tensors: Hugging Face names and (rows, cols) shapes, in the
    /// order they are stored. Linear weights are (out, in) as in PyTorch: y = x·Wᵀ.
    public var parameterShapes: [(name: String, rows: Int, cols: Int)] {
        var out: [(String, Int, Int)] = [("model.embed_tokens.weight", vocabSize, hiddenSize)]
        for l in 0..<numHiddenLayers {
            let p = "model.layers.\(l)."
            out += [
                (p + "input_layernorm.weight", 1, hiddenSize),
                (p + "self_attn.q_proj.weight", qDim, hiddenSize),
                (p + "self_attn.k_proj.weight", kvDim, hiddenSize),
                (p + "self_attn.v_proj.weight", kvDim, hiddenSize),
                (p + "self_attn.o_proj.weight", hiddenSize, qDim),
                (p + "post_attention_layernorm.weight", 1, hiddenSize),
            ]
            // The attention's extra tensors, in `LayerSlots`' order.
            if qkvBias {
                out += [(p + "self_attn.q_proj.bias", 1, qDim), (p + "self_attn.k_proj.bias", 1, kvDim),
                        (p + "self_attn.v_proj.bias", 1, kvDim)]
            }
            if outputBias { out.append((p + "self_attn.o_proj.bias", 1, hiddenSize)) }
            if qkNorm { out += [(p + "self_attn.q_norm.weight", 1, headDim), (p + "self_attn.k_norm.weight", 1, headDim)] }
            if isMixtureOfExperts {
                // Mixtral's names: w1 the gate projection, w3 the up projection, w2 the down.
                let m = p + "block_sparse_moe."
                out.append((m + "gate.weight", numLocalExperts, hiddenSize))
                for e in 0..<numLocalExperts {
                    out += [(m + "experts.\(e).w1.weight", intermediateSize, hiddenSize),
                            (m + "experts.\(e).w3.weight", intermediateSize, hiddenSize),
                            (m + "experts.\(e).w2.weight", hiddenSize, intermediateSize)]
                }
            } else {
                out += [(p + "mlp.gate_proj.weight", intermediateSize, hiddenSize),
                        (p + "mlp.up_proj.weight", intermediateSize, hiddenSize),
                        (p + "mlp.down_proj.weight", hiddenSize, intermediateSize)]
            }
        }
        out.append(("model.norm.weight", 1, hiddenSize))
        if !tieWordEmbeddings { out.append(("lm_head.weight", vocabSize, hiddenSize)) }
        return out + adapterShapes
    }

    /// Total number of parameters (adapters included).
    public var parameterCount: Int { parameterShapes.reduce(0) { $0 + $1.rows * $1.cols } }
}

/// The Hugging Face model families: each one's `model_type`. Their spelling in config.json
/// (keys, defaults, architecture class) is Storage's.
public enum ModelFamily: String, Sendable, Hashable, Codable, CaseIterable {
    case llama, mistral, mixtral, qwen2, qwen3
}

extension LlamaConfig {
    /// The lab's default model: 4 layers, width 64, 4 heads sharing 2 key/value heads,
    /// SwiGLU width 176, over the standard 50-token vocabulary (≈ 190 K parameters).
    public static let labDefault = LlamaConfig(hiddenSize: 64, intermediateSize: 176, numAttentionHeads: 4,
                                               numKeyValueHeads: 2, numHiddenLayers: 4, vocabSize: Vocabulary.standard.count,
                                               rmsNormEps: 1e-5, ropeTheta: 10_000, maxPositionEmbeddings: 256)
}

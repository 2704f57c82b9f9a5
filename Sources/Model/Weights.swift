// The model's parameters in one flat float32 buffer.

import Numerics

/// Where one parameter tensor lives in the flat buffer.
public struct TensorSlot: Sendable, Hashable {
    public let name: String   // Hugging Face name, e.g. "model.layers.0.self_attn.q_proj.weight"
    public let rows: Int      // 1 for vectors (norm weights, biases)
    public let cols: Int
    public let offset: Int
    public var count: Int { rows * cols }
    /// Whether the tensor is a vector: a norm's weight or a bias.
    public var isVector: Bool { rows == 1 && (name.hasSuffix("norm.weight") || name.hasSuffix(".bias")) }
    /// The tensor's shape as Hugging Face stores it: [cols] for vectors, [rows, cols] otherwise.
    public var shape: [Int] { isVector ? [cols] : [rows, cols] }
}

/// All parameters of a model (or anything of the same layout: gradients, optimizer moments)
/// in one contiguous buffer, in the order of `LlamaConfig.parameterShapes`.
public struct ModelWeights: Sendable {
    public let config: LlamaConfig
    public let slots: [TensorSlot]
    public var data: [Float]

    /// Zero-filled storage for a configuration.
    public init(config: LlamaConfig) {
        self.config = config
        self.slots = ModelWeights.layout(of: config)
        self.data = [Float](repeating: 0, count: slots.last.map { $0.offset + $0.count } ?? 0)
    }

    /// The slots `init(config:)` lays out, without allocating the storage.
    public static func layout(of config: LlamaConfig) -> [TensorSlot] {
        var slots: [TensorSlot] = []
        var offset = 0
        for (name, rows, cols) in config.parameterShapes {
            slots.append(TensorSlot(name: name, rows: rows, cols: cols, offset: offset))
            offset += rows * cols
        }
        return slots
    }

    /// The slot of a named tensor.
    public func slot(_ name: String) -> TensorSlot? { slots.first { $0.name == name } }

    /// The values of a named tensor (a copy).
    public func tensor(_ name: String) -> [Float]? {
        guard let s = slot(name) else { return nil }
        return Array(data[s.offset..<(s.offset + s.count)])
    }

    /// Offsets of one decoder layer's tensors.
    public func layer(_ l: Int) -> LayerSlots {
        // Layout per layer: input norm, q, k, v, o, post norm, the attention's extras (q, k,
        // v biases; o's bias; q and k norms, as the family has them), then gate, up, down
        // (dense), or the router and each expert's gate, up, down.
        let base = 1 + l * config.tensorsPerLayer
        var next = base + 6
        func take(_ present: Bool) -> TensorSlot? {
            guard present else { return nil }
            defer { next += 1 }
            return slots[next]
        }
        let qBias = take(config.qkvBias), kBias = take(config.qkvBias), vBias = take(config.qkvBias)
        let oBias = take(config.outputBias)
        let qNorm = take(config.qkNorm), kNorm = take(config.qkNorm)
        let dense = !config.isMixtureOfExperts
        let router = take(!dense)
        let first = next
        let experts = (0..<(dense ? 1 : config.numLocalExperts)).map { e in
            MLPSlots(gate: slots[first + 3 * e], up: slots[first + 3 * e + 1], down: slots[first + 3 * e + 2])
        }
        return LayerSlots(inputNorm: slots[base], q: slots[base + 1], k: slots[base + 2], v: slots[base + 3],
                          o: slots[base + 4], postNorm: slots[base + 5], qBias: qBias, kBias: kBias, vBias: vBias,
                          oBias: oBias, qNorm: qNorm, kNorm: kNorm, router: router, experts: experts)
    }

    public var embedding: TensorSlot { slots[0] }
    public var finalNorm: TensorSlot { slots[1 + config.numHiddenLayers * config.tensorsPerLayer] }
    /// The LM head: its own tensor, or the embedding when tied.
    public var lmHead: TensorSlot {
        config.tieWordEmbeddings ? slots[0] : slots[2 + config.numHiddenLayers * config.tensorsPerLayer]
    }

    /// Fills the weights as a freshly initialised model: linear and embedding weights normal
    /// with standard deviation `std` (Hugging Face's `initializer_range`, 0.02), norm weights 1,
    /// biases 0. Deterministic from the stream (Box–Muller over its draws).
    public mutating func initialize(std: Float = 0.02, stream: RandomStream) {
        var rng = stream
        for s in slots {
            if s.name.hasSuffix("norm.weight") || s.name.hasSuffix(".bias") {
                let value: Float = s.name.hasSuffix(".bias") ? 0 : 1
                for i in s.offset..<(s.offset + s.count) { data[i] = value }
                continue
            }
            var i = s.offset
            while i < s.offset + s.count {
                let u1 = max(rng.nextUnit(), 0x1p-53), u2 = rng.nextUnit()
                let r = (-2 * logD(u1)).squareRoot()
                let (sn, cs) = sinCosD(2 * Double.pi * u2)
                data[i] = Float(r * cs) * std
                if i + 1 < s.offset + s.count { data[i + 1] = Float(r * sn) * std }
                i += 2
            }
        }
    }
}

/// One decoder layer's parameter slots.
public struct LayerSlots: Sendable {
    public let inputNorm, q, k, v, o, postNorm: TensorSlot
    /// The projections' biases (Qwen2's q, k, v; o's with `attention_bias`); nil without.
    public let qBias, kBias, vBias, oBias: TensorSlot?
    /// The per-head norms' weights (D) of q and k (Qwen3); nil without.
    public let qNorm, kNorm: TensorSlot?
    /// The router (E, C) of a sparse MLP; nil for a dense one.
    public let router: TensorSlot?
    /// The dense MLP (one entry), or each expert's.
    public let experts: [MLPSlots]
    /// The dense MLP's projections (the first expert's in a sparse layer).
    public var gate: TensorSlot { experts[0].gate }
    public var up: TensorSlot { experts[0].up }
    public var down: TensorSlot { experts[0].down }

    /// The bias of a linear kind of this layer, if it has one.
    public func bias(_ kind: LinearKind) -> TensorSlot? {
        switch kind {
        case .q: return qBias
        case .k: return kBias
        case .v: return vBias
        case .o: return oBias
        default: return nil
        }
    }
}

/// One SwiGLU MLP's projections: a dense layer's, or one expert's.
public struct MLPSlots: Sendable {
    public let gate, up, down: TensorSlot
}

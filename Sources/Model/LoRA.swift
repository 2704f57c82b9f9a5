// LoRA adapters (Hu et al. 2021, PEFT's `LoraConfig`): on each targeted linear layer a
// low-rank update beside the frozen weight, y = x·Wᵀ + (α/r)·(x·Aᵀ)·Bᵀ with A (r, in) and
// B (out, r). Only the adapters train.

import Numerics

/// The adapters of a model: rank, alpha and the linear layers they sit on (PEFT's `r`,
/// `lora_alpha`, `target_modules`; no dropout, no bias, scaling α/r).
public struct LoRASpec: Sendable, Hashable, Codable {
    /// The module names adapters may target, in the order a layer stores them.
    public static let modules: [(name: String, kind: LinearKind)] = [
        ("q_proj", .q), ("k_proj", .k), ("v_proj", .v), ("o_proj", .o),
        ("gate_proj", .gate), ("up_proj", .up), ("down_proj", .down),
    ]

    public var rank: Int
    public var alpha: Double
    /// Targeted kinds, in `modules` order.
    public private(set) var targets: [LinearKind]

    /// Adapters of rank `rank` on `targets` (any order; kept in storage order, each once).
    public init(rank: Int, alpha: Double, targets: [LinearKind]) {
        self.rank = rank
        self.alpha = alpha
        self.targets = LoRASpec.modules.map(\.kind).filter { targets.contains($0) }
    }

    /// α/r, the factor of B·A (float32, as PEFT's `scaling` multiplies a float32 or BF16 tensor).
    public var scaling: Float { Float(alpha / Double(rank)) }

    /// PEFT's module name of a kind (`q_proj`…).
    public static func moduleName(_ kind: LinearKind) -> String? { modules.first { $0.kind == kind }?.name }

    /// The kinds named by `names` (`q_proj`, or `all-linear` for every module), or an error
    /// naming the module that does not exist.
    public static func kinds(_ names: [String]) throws(NumericsError) -> [LinearKind] {
        var out: [LinearKind] = []
        for name in names {
            if name == "all-linear" { return modules.map(\.kind) }
            guard let m = modules.first(where: { $0.name == name }) else {
                throw .invalidArgument("no linear layer '\(name)' to adapt; target modules: \(modules.map(\.name).joined(separator: " ")) or all-linear")
            }
            if !out.contains(m.kind) { out.append(m.kind) }
        }
        return out
    }

    /// Whether a site carries an adapter (its base weight; not the adapter's own factors).
    public func adapts(_ site: LinearSite) -> Bool {
        site.part == .weight && site.layer >= 0 && site.expert < 0 && targets.contains(site.kind)
    }

    /// Checks the adapters against the model they sit on.
    public func validate(for config: LlamaConfig) throws(NumericsError) {
        guard rank >= 1, rank <= 1024 else { throw .invalidArgument("LoRA rank r=\(rank) must be 1…1024") }
        guard alpha > 0, alpha.isFinite else { throw .invalidArgument("lora_alpha=\(alpha) must be a positive number") }
        guard !targets.isEmpty else {
            throw .invalidArgument("LoRA needs at least one target module: \(LoRASpec.modules.map(\.name).joined(separator: " "))")
        }
        guard !config.isMixtureOfExperts else {
            throw .invalidArgument("LoRA adapters on a mixture-of-experts model are not supported (its experts' projections have no PEFT target names here); use a dense model")
        }
        guard config.numHiddenLayers >= 1 else { throw .invalidArgument("a model without layers has no linear layers to adapt") }
    }
}

/// Which tensor of a linear site a product uses: its weight, or one factor of its adapter.
public enum LinearPart: String, Sendable, Hashable {
    case weight
    case loraA = "lora_A"
    case loraB = "lora_B"
}

extension LlamaConfig {
    /// The adapters' tensors (PEFT's names without the `base_model.model.` prefix), after
    /// the model's own: per layer, per target in storage order, A (r, in) then B (out, r).
    var adapterShapes: [(name: String, rows: Int, cols: Int)] {
        guard let lora else { return [] }
        var out: [(String, Int, Int)] = []
        for l in 0..<numHiddenLayers {
            for kind in lora.targets {
                let (rows, cols) = linearShape(kind)
                let name = adapterModuleName(kind, layer: l)
                out += [(name + ".lora_A.weight", lora.rank, cols), (name + ".lora_B.weight", rows, lora.rank)]
            }
        }
        return out
    }

    /// The module of a layer's linear kind, `model.layers.L.self_attn.q_proj`.
    func adapterModuleName(_ kind: LinearKind, layer l: Int) -> String {
        let attention: Set<LinearKind> = [.q, .k, .v, .o]
        return "model.layers.\(l).\(attention.contains(kind) ? "self_attn" : "mlp").\(LoRASpec.moduleName(kind)!)"
    }

    /// (out, in) of a dense layer's linear kind.
    func linearShape(_ kind: LinearKind) -> (Int, Int) {
        switch kind {
        case .q: return (qDim, hiddenSize)
        case .o: return (hiddenSize, qDim)
        case .k, .v: return (kvDim, hiddenSize)
        case .gate, .up: return (intermediateSize, hiddenSize)
        case .down: return (hiddenSize, intermediateSize)
        case .router: return (numLocalExperts, hiddenSize)
        case .lmHead: return (vocabSize, hiddenSize)
        }
    }

    /// Tensors of the model itself, before the adapters'.
    public var baseTensorCount: Int { 1 + numHiddenLayers * tensorsPerLayer + 1 + (tieWordEmbeddings ? 0 : 1) }

    /// The same model without adapters.
    public var withoutAdapters: LlamaConfig {
        var c = self
        c.lora = nil
        return c
    }
}

extension ModelWeights {
    /// The slots of one site's adapter factors, A and B; nil when the site has none.
    public func adapter(_ site: LinearSite) -> (a: TensorSlot, b: TensorSlot)? {
        guard let lora = config.lora, site.layer >= 0, site.expert < 0,
              let t = lora.targets.firstIndex(of: site.kind) else { return nil }
        let i = config.baseTensorCount + 2 * (site.layer * lora.targets.count + t)
        return (slots[i], slots[i + 1])
    }

    /// The range of `data` that trains: everything, or with adapters only theirs (PEFT
    /// freezes the base model).
    public var trainableRange: Range<Int> {
        guard config.lora != nil else { return 0..<data.count }
        return slots[config.baseTensorCount].offset..<data.count
    }

    /// Fills the adapters as PEFT initialises them: A uniform in ±1/√in (kaiming_uniform_
    /// with a = √5), B zero, so the adapted model starts equal to the base.
    public mutating func initializeAdapters(stream: RandomStream) {
        guard config.lora != nil else { return }
        var rng = stream
        for s in slots[config.baseTensorCount...] {
            if s.name.hasSuffix("lora_B.weight") {
                for i in s.offset..<(s.offset + s.count) { data[i] = 0 }
                continue
            }
            let bound = 1 / Double(s.cols).squareRoot()
            for i in s.offset..<(s.offset + s.count) { data[i] = Float((rng.nextUnit() * 2 - 1) * bound) }
        }
    }

    /// W + (α/r)·B·A for each adapted weight, the adapters removed (PEFT's
    /// `merge_and_unload`): B·A summed in Double, rounded to float32, scaled, added in float32.
    public func mergingAdapters() -> ModelWeights {
        guard let lora = config.lora else { return self }
        var out = ModelWeights(config: config.withoutAdapters)
        for (i, s) in out.slots.enumerated() { precondition(slots[i].name == s.name) }
        out.data.replaceSubrange(0..<out.data.count, with: data[0..<out.data.count])
        for l in 0..<config.numHiddenLayers {
            for kind in lora.targets {
                let site = LinearSite(kind, layer: l)
                let offset = site.slot(in: out).offset
                out.data.withUnsafeMutableBufferPointer { w in
                    data.withUnsafeBufferPointer { d in
                        addAdapterProduct(site, from: d.baseAddress!, into: w.baseAddress! + offset)
                    }
                }
            }
        }
        return out
    }

    /// Adds (α/r)·B·A of `site` into the (out, in) matrix at `w` (B·A in Double per element).
    public func addAdapterProduct(_ site: LinearSite, from d: UnsafePointer<Float>, into w: UnsafeMutablePointer<Float>) {
        guard let lora = config.lora, let (a, b) = adapter(site) else { return }
        let r = lora.rank, outDim = b.rows, inDim = a.cols, s = lora.scaling
        for i in 0..<outDim {
            for j in 0..<inDim {
                var sum = 0.0
                for k in 0..<r { sum += Double(d[b.offset + i * r + k]) * Double(d[a.offset + k * inDim + j]) }
                w[i * inDim + j] += s * Float(sum)
            }
        }
    }
}

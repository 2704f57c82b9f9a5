// The live policy: FP32 master weights and the two engines that compute it.

import Mismatch
import Model
import Numerics

/// How far two engines' hidden states have drifted after one layer.
public struct LayerDrift: Sendable, Equatable {
    /// "embedding", "layer 0", …
    public var name: String
    /// ‖h_rollout − h_train‖₂ / ‖h_train‖₂.
    public var relativeL2: Double
    /// max |h_rollout − h_train|.
    public var maxAbs: Double
    /// A sparse layer: the fraction of positions whose routers chose different experts
    /// (nil for the embedding, the log-probabilities and dense layers).
    public var routerDisagree: Double? = nil
}

/// The model the lab holds: master weights in float32, the rollout engine and the training
/// engine, each with its copy of the weights in its own precision. Every change either
/// completes or throws with nothing changed.
public final class Policy {
    public private(set) var master: ModelWeights
    public private(set) var engines: EnginePair
    public private(set) var backend: any MatmulBackend
    public private(set) var rollout: RolloutEngine
    public private(set) var training: TrainingEngine
    public let transformer: Transformer

    public var config: LlamaConfig { master.config }

    public init(master: ModelWeights, engines: EnginePair, backend: any MatmulBackend) throws(NumericsError) {
        try master.config.validate()
        try Policy.validate(engines, config: master.config)
        let transformer = Transformer(config: master.config)
        self.master = master
        self.engines = engines
        self.backend = backend
        self.transformer = transformer
        let r = try EngineKernel(master: master, profile: engines.rollout, backend: backend)
        rollout = RolloutEngine(kernel: r, transformer: transformer)
        training = TrainingEngine(kernel: try EngineKernel(master: master, profile: engines.training, backend: backend, sharingWith: r),
                                  transformer: transformer)
    }

    /// Checks that a pair of profiles fits the model and is a rule the lab can run: scale
    /// blocks and groups no larger than the smallest weight dimension, positive sizes,
    /// delayed scaling on per-tensor operands only, the MX scale rule with saturation.
    /// Errors name the setting (as `precision` calls it) and what would be accepted.
    public static func validate(_ pair: EnginePair, config: LlamaConfig) throws(NumericsError) {
        if pair.training.sources.loraMerged {
            throw .invalidArgument("train lora_merged=on: the training engine computes each adapter beside its frozen weight (only the adapters train); lora_merged is a rollout engine switch")
        }
        let smallest = min(config.hiddenSize, config.qDim, config.kvDim, config.intermediateSize, config.vocabSize)
        for (engine, p) in [("rollout", pair.rollout), ("train", pair.training)] {
            switch p.weights.granularity {
            case .blocks(let r, let c) where max(r, c) > smallest:
                throw .invalidArgument("\(engine) weight_scaling=\(r)x\(c): the block is larger than the smallest weight dimension (\(smallest)); accepted: blocks up to \(smallest)x\(smallest)")
            case .rowGroups(let g) where g > smallest, .columnGroups(let g) where g > smallest:
                throw .invalidArgument("\(engine) weight_scaling=\(p.weights.granularity): the group is longer than the smallest weight dimension (\(smallest)); accepted: groups up to \(smallest)")
            default: break
            }
            let operands: [(String, Quantization)] = [("fprop x", p.fprop.input), ("dgrad dy", p.dgrad.input),
                                                      ("wgrad dy", p.wgrad.input), ("wgrad x", p.wgradActivation)]
            for (what, q) in operands {
                switch q.granularity {
                case .rowGroups(let g), .columnGroups(let g):
                    if g < 1 { throw .invalidArgument("\(engine) gemm_scaling: group size must be at least 1") }
                    if g > smallest {
                        throw .invalidArgument("\(engine) gemm_scaling=\(q.granularity) (\(what)): the group is longer than the smallest dimension it runs along (\(smallest)); accepted: 1xG with G up to \(smallest)")
                    }
                case .blocks(let r, let c) where r < 1 || c < 1:
                    throw .invalidArgument("\(engine) \(what) block must be at least 1x1")
                default: break
                }
                if case .delayed = p.scaleRule, q.granularity != .tensor {
                    throw .invalidArgument("\(engine) scale_rule=\(p.scaleRule) needs per-tensor operands (TransformerEngine's delayed scaling keeps one amax history per tensor), but \(what) has scaling \(q.granularity); accepted: gemm_scaling=tensor with scale_rule=delayed, or scale_rule=current")
                }
            }
            for (what, q) in operands + [("weights", p.weights)] where q.formula == .mx && q.granularity != .unscaled {
                if !q.saturate {
                    throw .invalidArgument("\(engine) scale_formula=mx with saturate=off (\(what)): the MX rule rounds the scale down and clamps values above the format's max, so it only exists saturating; accepted: saturate=on, or scale_formula=amax/max or max/amax")
                }
            }
            if p.sources.splitK < 1 { throw .invalidArgument("\(engine) split_k must be at least 1") }
        }
    }

    /// Switches both engines' profiles (a weight sync into each); nothing changes on error.
    public func setEngines(_ pair: EnginePair) throws(NumericsError) {
        try Policy.validate(pair, config: config)
        let r = try EngineKernel(master: master, profile: pair.rollout, backend: backend)
        let t = try EngineKernel(master: master, profile: pair.training, backend: backend, sharingWith: r)
        engines = pair
        rollout = RolloutEngine(kernel: r, transformer: transformer)
        training = TrainingEngine(kernel: t, transformer: transformer)
    }

    /// Runs `body` with both engines switched to `pair`, then puts back the engines that were
    /// there before — the same objects, so their delayed-scaling histories and counts too —
    /// whether `body` returns or throws.
    public func withEngines<T>(_ pair: EnginePair, _ body: () throws -> T) throws -> T {
        let saved = (engines, rollout, training)
        try setEngines(pair)
        defer { (engines, rollout, training) = saved }
        return try body()
    }

    /// Switches the matrix-product backend of both engines.
    public func setBackend(_ newBackend: any MatmulBackend) throws(NumericsError) {
        let r = try EngineKernel(master: master, profile: engines.rollout, backend: newBackend, state: rollout.kernel.state)
        let t = try EngineKernel(master: master, profile: engines.training, backend: newBackend, state: training.kernel.state,
                                 sharingWith: r)
        backend = newBackend
        rollout = RolloutEngine(kernel: r, transformer: transformer)
        training = TrainingEngine(kernel: t, transformer: transformer)
    }

    /// Replaces the master weights (after an optimizer step or a load) and syncs both
    /// engines: the weights are quantized the way each profile says.
    public func setMaster(_ weights: ModelWeights) throws(NumericsError) {
        guard weights.config == config else {
            throw .invalidArgument("new weights have another configuration than the live model")
        }
        // A sync, not a new recipe: the delayed-scaling histories and counts go on. An engine
        // that trained gets DGrad's weights at once (the rollout engine too when it lends the
        // training engine every weight).
        let trains = training.kernel.madeDgradPairs
        let lends = EngineKernel.preparesAllAlike(engines.rollout, engines.training, config: config)
        let r = try EngineKernel(master: weights, profile: engines.rollout, backend: backend, state: rollout.kernel.state,
                                 preparingDgrad: trains && lends)
        let t = try EngineKernel(master: weights, profile: engines.training, backend: backend, state: training.kernel.state,
                                 sharingWith: r, preparingDgrad: trains)
        master = weights
        rollout = RolloutEngine(kernel: r, transformer: transformer)
        training = TrainingEngine(kernel: t, transformer: transformer)
    }

    /// The training engine's log π for each response token of a rollout, at the rollout's
    /// temperature, paired with the rollout's log μ, and both full distributions: the input
    /// of the mismatch statistics. Throws if a non-finite value appears in either engine,
    /// naming the first layer where it did.
    /// `keepForBackward` false when no backward will use the forward (its result then holds
    /// no per-layer caches). In a sparse model `replay` (the packed rows' experts) fixes the
    /// training forward's routing, and `routing` compares the training routers' own choices
    /// with the rollout's.
    public func recompute(_ batch: RolloutBatch, temperature: Double, keepForBackward: Bool = true,
                          replay: Routing? = nil) throws(NumericsError)
        -> (pairs: [TokenLogProbs], forward: ForwardResult, packed: PackedBatch, routing: RoutingStats?) {
        let packed = PackedBatch(sequences: batch.sequences)
        let fw = training.forward(packed, keepForBackward: keepForBackward, replay: replay)
        let v = config.vocabSize
        var pairs: [TokenLogProbs] = []
        for s in 0..<batch.count {
            let promptLength = batch.prompts[s].count
            var train: [Float] = [], trainFull: [Float] = []
            for (j, token) in batch.responses[s].enumerated() {
                let row = packed.row(predicting: j, of: s, after: promptLength)
                let dist = temperatureLogProbs(fw.logProbs[(row * v)..<((row + 1) * v)], temperature: temperature)
                train.append(Float(dist[Int(token)]))
                trainFull += dist.map { Float($0) }
            }
            pairs.append(TokenLogProbs(rollout: batch.logMu[s], train: train,
                                       positions: Array(0..<batch.responses[s].count),
                                       full: FullDistributions(vocabularySize: v, rollout: batch.distributions[s], train: trainFull)))
        }
        if let bad = firstNonFinite(fw.logProbs, hidden: fw.hiddenStates) {
            throw .invalidArgument("training engine: non-finite values appear at \(bad)")
        }
        if batch.logMu.joined().contains(where: { !$0.isFinite }) {
            throw .invalidArgument("rollout engine: non-finite log-probabilities in the rollout")
        }
        return (pairs, fw, packed, routingStats(batch, packed: packed, train: fw.routerChoice))
    }

    /// The rollout's routing laid on the packed rows of its sequences (R3: the training
    /// forward replays it); rows the rollout did not run (each sequence's last token) route
    /// themselves. Nil for a dense model or a batch without routing.
    public func rolloutReplay(_ batch: RolloutBatch) -> Routing? {
        guard config.isMixtureOfExperts, batch.routing.count == batch.count else { return nil }
        let k = config.numExpertsPerTok
        let packed = PackedBatch(sequences: batch.sequences)
        var replay = Routing(topK: k, experts: Array(repeating: Array(repeating: -1, count: packed.rows * k),
                                                     count: config.numHiddenLayers))
        for s in 0..<batch.count {
            for l in 0..<config.numHiddenLayers {
                for (i, e) in batch.routing[s].experts[l].enumerated() { replay.experts[l][packed.starts[s] * k + i] = e }
            }
        }
        return replay
    }

    /// The routers' disagreement between the rollout (`batch.routing`) and the training
    /// routers' own choices over the packed rows.
    func routingStats(_ batch: RolloutBatch, packed: PackedBatch, train: Routing?) -> RoutingStats? {
        guard let train, batch.routing.count == batch.count else { return nil }
        let k = train.topK
        return RoutingStats((0..<batch.count).map { s in
            let rows = (packed.starts[s] * k)..<(packed.starts[s + 1] * k)
            return RoutingPair(topK: k, rollout: batch.routing[s].experts, train: train.experts.map { Array($0[rows]) })
        })
    }

    /// Log-probability of each next token of a sequence under both engines (entry i is
    /// log p(tokens[i+1] | tokens[0…i])), at temperature 1.
    public func score(_ tokens: [Int32]) -> (rollout: [Float], train: [Float]) {
        let v = config.vocabSize
        let r = rollout.teacherForced(tokens).logProbs
        let t = training.forward(PackedBatch(sequences: [tokens]), keepForBackward: false).logProbs
        var lr: [Float] = [], lt: [Float] = []
        for i in 0..<(tokens.count - 1) {
            lr.append(r[i * v + Int(tokens[i + 1])])
            lt.append(t[i * v + Int(tokens[i + 1])])
        }
        return (lr, lt)
    }

    /// Runs both engines on the same tokens and measures, layer by layer, how far their
    /// hidden states have drifted, then the log-probabilities.
    public func trace(_ tokens: [Int32]) -> [LayerDrift] {
        let r = rollout.teacherForced(tokens)
        let t = training.forward(PackedBatch(sequences: [tokens]), keepForBackward: false)
        var out: [LayerDrift] = []
        for (l, (a, b)) in zip(r.hidden, t.hiddenStates).enumerated() {
            out.append(drift(l == 0 ? "embedding" : "layer \(l - 1)", a, b))
            if l > 0, let ra = r.routing, let rb = t.routerChoice {
                let differing = (0..<tokens.count).filter { !ra.sameSet(as: rb, layer: l - 1, row: $0, otherRow: $0) }.count
                out[out.count - 1].routerDisagree = Double(differing) / Double(tokens.count)
            }
        }
        out.append(drift("log-probs", r.logProbs, t.logProbs))
        return out
    }

    private func drift(_ name: String, _ a: [Float], _ b: [Float]) -> LayerDrift {
        var diff2 = 0.0, norm2 = 0.0, maxAbs = 0.0
        for (x, y) in zip(a, b) {
            let d = Double(x) - Double(y)
            diff2 += d * d
            norm2 += Double(y) * Double(y)
            maxAbs = max(maxAbs, abs(d))
        }
        return LayerDrift(name: name, relativeL2: norm2 > 0 ? (diff2 / norm2).squareRoot() : diff2.squareRoot(), maxAbs: maxAbs)
    }

    private func firstNonFinite(_ logProbs: [Float], hidden: [[Float]]) -> String? {
        for (l, h) in hidden.enumerated() where h.contains(where: { !$0.isFinite }) {
            return l == 0 ? "the embedding output" : "the output of layer \(l - 1)"
        }
        return logProbs.contains(where: { !$0.isFinite }) ? "the logits" : nil
    }
}

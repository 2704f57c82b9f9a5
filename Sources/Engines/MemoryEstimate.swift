// How many bytes a command will allocate, estimated from the shapes before anything is
// allocated, so that a command too large for the machine is refused with its figures instead
// of aborting the process when an allocation fails.
//
// Each term names the buffers it stands for, as the code holds them: EngineKernel.init (an
// engine's weights), KVCache and Transformer.decodeStep (decoding), RolloutEngine.generate
// (what a rollout keeps per token), Transformer.forward (what the teacher-forced forward
// saves for the backward) and backward, Policy.recompute, Trainer.step and pretrain (the
// update on copies, then a weight sync into new engines), AdamW (moments).
//
// P = parameters; L = layers; C = hidden; F = intermediate; KV = key/value width Hkv·D;
// H = heads; V = vocabulary; T = positions of a sequence; S = sequences; R = S·T packed rows.
// Buffers are float32 (4 bytes) unless said otherwise. Counts saturate at Int.max, so a
// shape read from a file cannot overflow them.

import Model
import Numerics

/// One part of an estimate: what it stands for, and its size in bytes.
public struct MemoryTerm: Sendable, Hashable {
    public var name: String
    public var bytes: Int

    public init(name: String, bytes: Int) {
        self.name = name
        self.bytes = bytes
    }
}

/// The bytes a command will hold at its peak on top of what the process already holds,
/// term by term. Conservative: sequences are taken at their longest, and buffers that may be
/// released early are counted as held to the end of their scope; but phases that never hold
/// memory at the same time (decoding, then the recomputation) count as the larger of the two,
/// not their sum.
public struct MemoryEstimate: Sendable, Hashable {
    /// The terms, each name once, in the order first added.
    public private(set) var terms: [MemoryTerm] = []

    public init() {}

    /// An estimate of the given terms (terms of the same name are added together).
    public init(_ parts: [(String, Int)]) {
        for (name, bytes) in parts { add(name, bytes) }
    }

    /// The sum of the terms.
    public var total: Int { terms.reduce(0) { sum($0, $1.bytes) } }

    /// The bytes of the term of that name (0 if there is none).
    public func bytes(of name: String) -> Int { terms.first { $0.name == name }?.bytes ?? 0 }

    /// The terms from largest to smallest.
    public var largestFirst: [MemoryTerm] { terms.sorted { $0.bytes > $1.bytes } }

    /// Adds bytes to the term of that name (a new term if there is none); nothing for 0.
    public mutating func add(_ name: String, _ bytes: Int) {
        guard bytes > 0 else { return }
        if let i = terms.firstIndex(where: { $0.name == name }) {
            terms[i].bytes = sum(terms[i].bytes, bytes)
        } else {
            terms.append(MemoryTerm(name: name, bytes: bytes))
        }
    }

    /// Both estimates' terms: memory held at the same time.
    public static func + (a: MemoryEstimate, b: MemoryEstimate) -> MemoryEstimate {
        var out = a
        for t in b.terms { out.add(t.name, t.bytes) }
        return out
    }

    /// Of phases that do not hold memory at the same time, the one that needs more.
    public static func larger(_ phases: [MemoryEstimate]) -> MemoryEstimate {
        phases.max { $0.total < $1.total } ?? MemoryEstimate()
    }

    /// Of phases that do not hold memory at the same time, the one that needs more.
    public static func larger(_ phases: MemoryEstimate...) -> MemoryEstimate { larger(phases) }
}

// MARK: Terms

extension MemoryEstimate {
    /// P = V·C (embedding) + L·(2C + 2·Q·C + 2·KV·C + 3·F·C) (two norms; q, o; k, v; gate, up,
    /// down) + C (final norm) + V·C (LM head, unless tied to the embedding), Q = H·D (C unless
    /// `head_dim` is given); the attention's biases (Q + 2·KV, and C for o's) and per-head
    /// norms (2·D) where the family has them. A sparse MLP has E·3·F·C in experts and E·C in
    /// its router instead of 3·F·C. LoRA adapters add r·(in + out) per adapted weight and
    /// layer (A is r × in, B out × r).
    public static func parameters(_ c: LlamaConfig) -> Int {
        sum(product(c.vocabSize, c.hiddenSize), product(c.numHiddenLayers, perLayerParameters(c)), c.hiddenSize,
            c.tieWordEmbeddings ? 0 : product(c.vocabSize, c.hiddenSize), product(c.numHiddenLayers, adapterParameters(c)))
    }

    /// One layer's LoRA factors: r·(in + out) for each adapted linear kind.
    private static func adapterParameters(_ c: LlamaConfig) -> Int {
        guard let lora = c.lora else { return 0 }
        let shapes = linearShapes(c)
        return lora.targets.reduce(0) { total, kind in
            sum(total, shapes.first { $0.kind == kind }.map { product(lora.rank, sum($0.rows, $0.cols)) } ?? 0)
        }
    }

    private static func perLayerParameters(_ c: LlamaConfig) -> Int {
        let h = c.hiddenSize
        let mlp = c.isMixtureOfExperts
            ? sum(product(c.numLocalExperts, 3, c.intermediateSize, h), product(c.numLocalExperts, h))
            : product(3, c.intermediateSize, h)
        // Norms, q and o, k and v, the attention's biases and per-head norms, the MLP.
        let extras = sum(c.qkvBias ? sum(qWidth(c), product(2, kvWidth(c))) : 0, c.outputBias ? h : 0,
                         c.qkNorm ? product(2, headDim(c)) : 0)
        return sum(product(2, h), product(2, qWidth(c), h), product(2, kvWidth(c), h), extras, mlp)
    }

    /// How many F-wide MLP rows a token computes: K in a sparse MLP, 1 in a dense one.
    static func mlpRowsPerToken(_ c: LlamaConfig) -> Int { c.isMixtureOfExperts ? max(c.numExpertsPerTok, 1) : 1 }

    /// A sparse MLP's routing per token and layer: router logits and probabilities (2·E),
    /// the chosen experts and their weights (2·K), and the expert outputs before weighting (K·C).
    static func routingPerToken(_ c: LlamaConfig) -> Int {
        c.isMixtureOfExperts ? sum(product(2, c.numLocalExperts), product(2, c.numExpertsPerTok),
                                   product(c.numExpertsPerTok, c.hiddenSize)) : 0
    }

    /// KV = Hkv · D (the configuration's `kvDim`, without dividing by zero on a shape that
    /// is refused anyway).
    static func kvWidth(_ c: LlamaConfig) -> Int {
        product(c.numKeyValueHeads, headDim(c))
    }

    /// Q = H · D, the queries' width (C unless `head_dim` is given).
    static func qWidth(_ c: LlamaConfig) -> Int { product(c.numAttentionHeads, headDim(c)) }

    /// D, without dividing by zero on a shape that is refused anyway.
    static func headDim(_ c: LlamaConfig) -> Int { c.explicitHeadDim ?? c.hiddenSize / max(c.numAttentionHeads, 1) }

    /// The linear layers' weight shapes (out, in) and how many of each: L each of q, k, v,
    /// o, gate, up, down (L·E of each with E experts, and L routers), and one LM head (the
    /// embedding's shape; it has its own quantized copy in each engine also when tied).
    static func linearShapes(_ c: LlamaConfig) -> [(kind: LinearKind, rows: Int, cols: Int, count: Int)] {
        let h = c.hiddenSize, f = c.intermediateSize, kv = kvWidth(c), l = c.numHiddenLayers
        let experts = c.isMixtureOfExperts ? product(l, c.numLocalExperts) : l
        var shapes: [(kind: LinearKind, rows: Int, cols: Int, count: Int)] = [
            (.q, qWidth(c), h, l), (.k, kv, h, l), (.v, kv, h, l), (.o, h, qWidth(c), l),
            (.gate, f, h, experts), (.up, f, h, experts), (.down, h, f, experts), (.lmHead, c.vocabSize, h, 1)]
        if c.isMixtureOfExperts { shapes.append((.router, c.numLocalExperts, h, l)) }
        return shapes
    }

    /// The LoRA factors each engine prepares as it prepares the weights they adapt: A (r, in)
    /// and B (out, r) per adapted kind, L of each.
    static func adapterShapes(_ c: LlamaConfig) -> [(kind: LinearKind, rows: Int, cols: Int, count: Int)] {
        guard let lora = c.lora else { return [] }
        let shapes = linearShapes(c)
        return lora.targets.flatMap { kind -> [(kind: LinearKind, rows: Int, cols: Int, count: Int)] in
            guard let s = shapes.first(where: { $0.kind == kind }) else { return [] }
            return [(kind, lora.rank, s.cols, c.numHiddenLayers), (kind, s.rows, lora.rank, c.numHiddenLayers)]
        }
    }

    /// The largest linear weight, max(C·C, KV·C, F·C, V·C) elements.
    static func largestLinear(_ c: LlamaConfig) -> Int {
        linearShapes(c).map { product($0.rows, $0.cols) }.max() ?? 0
    }

    /// The float32 master weights (`ModelWeights`): 4·P.
    public static func masterWeights(_ c: LlamaConfig) -> Int { product(4, parameters(c)) }

    /// One engine's copy of the weights (`EngineKernel`): its own `ModelWeights` (4·P:
    /// embedding and norms rounded; counted although it stays the master's buffer when
    /// rounding changes no value, which the estimate cannot know before the tensors are
    /// read: an upper bound), and per linear weight of
    /// shape (out, in) the quantized values as FProp uses them, 4·(out·in + scales), with
    /// scales = 1 unscaled or per tensor, out·⌈in/G⌉ for 1×G, ⌈out/G⌉·in for G×1,
    /// ⌈out/R⌉·⌈in/C⌉ for R×C blocks; the fused kernel's packing of them as the right operand,
    /// 4·32·⌈out/32⌉·in, when the products are scaled or accumulate in limited precision, and
    /// otherwise the values stored untransposed for the backend, 4·out·in; DGrad's second copy, quantized along the other axis, when the tiling is not symmetric
    /// (1×G, R×C with R ≠ C); and while a sync builds it, a merged adapter's copy of the
    /// master slice and its quantization's temporaries, 2·4·(largest out·in).
    ///
    /// On a backend whose native BF16 product serves FProp (`EngineKernel.nativeBF16`), a
    /// weight is held as its BF16 pairs alone instead of its values and their second layout:
    /// 4·⌈out/NR⌉·NR·⌈in/2⌉ bytes, twice (DGrad's packing, made by the first backward).
    public static func engineWeights(_ c: LlamaConfig, _ profile: PrecisionProfile, backend: any MatmulBackend) -> Int {
        var bytes = product(4, parameters(c))
        // LoRA factors: the plain recipe (unscaled, float32 accumulation): values, one
        // scale, and the values untransposed for the backend.
        for shape in adapterShapes(c) {
            bytes = sum(bytes, product(4, sum(product(2, shape.rows, shape.cols), 1), shape.count))
        }
        for shape in linearShapes(c) {
            let p = profile.forSite(shape.kind)
            let granularity = p.weights.granularity
            var one = sum(product(shape.rows, shape.cols), scaleCount(granularity, rows: shape.rows, cols: shape.cols))
            let packed = granularity != .unscaled || p.fprop.accumulation != .fp32
            if !packed && EngineKernel.nativeBF16(backend, p.fprop.input, p.weights) {
                let panels = (shape.rows + BF16Kernel.PackedB.panelWidth - 1) / BF16Kernel.PackedB.panelWidth
                let pairs = product(2, panels, BF16Kernel.PackedB.panelWidth, (shape.cols + 1) / 2)
                bytes = sum(bytes, product(4, sum(pairs, scaleCount(granularity, rows: shape.rows, cols: shape.cols)), shape.count))
                continue
            }
            if packed {
                one = sum(one, product(packWidth, (shape.rows + packWidth - 1) / packWidth, shape.cols))
            } else {
                one = sum(one, product(shape.rows, shape.cols))
            }
            if granularity.transposed != granularity {
                one = sum(one, product(shape.rows, shape.cols), scaleCount(granularity.transposed, rows: shape.rows, cols: shape.cols))
            }
            bytes = sum(bytes, product(4, one, shape.count))
        }
        return sum(bytes, product(2, 4, largestLinear(c)))
    }

    /// The width of the fused kernel's B panels (`ScaledKernel.nr`).
    static let packWidth = 32

    /// How many scales a (rows, cols) weight quantized with `g` has (`Quantization.quantize`).
    static func scaleCount(_ g: ScaleGranularity, rows: Int, cols: Int) -> Int {
        func tiles(_ n: Int, _ t: Int) -> Int { (n + max(t, 1) - 1) / max(t, 1) }
        switch g {
        case .unscaled, .tensor: return 1
        case .rowGroups(let n): return product(rows, tiles(cols, n))
        case .columnGroups(let n): return product(tiles(rows, n), cols)
        case .blocks(let r, let cc): return product(tiles(rows, r), tiles(cols, cc))
        }
    }

    /// Both engines' copies of the weights.
    public static func engineWeights(_ c: LlamaConfig, _ pair: EnginePair, backend: any MatmulBackend) -> Int {
        // The training engine shares the rollout's weights when it prepares every one alike.
        let alike = EngineKernel.preparesAllAlike(pair.rollout, pair.training, config: c)
        return alike ? engineWeights(c, pair.rollout, backend: backend)
            : sum(engineWeights(c, pair.rollout, backend: backend), engineWeights(c, pair.training, backend: backend))
    }

    /// The KV cache (`KVCache`): keys and values of every layer for every slot and position,
    /// L·slots·positions·KV·2·4.
    public static func kvCache(_ c: LlamaConfig, slots: Int, positions: Int) -> Int {
        product(c.numHiddenLayers, slots, positions, kvWidth(c), 2, 4)
    }

    /// One decoding step of `rows` rows (`Transformer.decodeStep`): the hidden state after
    /// every layer, which the step keeps ((L+1)·C); within a layer norm1, o, sum, norm2,
    /// down, the final norm (6·C), q and attn (2·Q), k and v (2·KV), Qwen3's q and k before
    /// their norms (Q + KV), gate, up, act (3·F, K times in a sparse MLP, with its routing)
    /// and the quantized copy of a product's input (max(F, Q)); logits and log-softmax
    /// (2·V): 4·rows·((L+1)·C + 6·C + 2·Q + 2·KV + 3·F + max(F, Q) + 2·V).
    /// Then the sampling: each row's distribution as float32 until the batch takes it
    /// (4·rows·V), and on each thread the temperature distribution, probabilities and token
    /// order in double or Int (3·8·V).
    public static func decodeStep(_ c: LlamaConfig, rows: Int) -> Int {
        let h = c.hiddenSize, f = product(mlpRowsPerToken(c), c.intermediateSize)
        let perRow = sum(product(c.numHiddenLayers + 1, h), product(6, h), product(2, qWidth(c)), product(2, kvWidth(c)),
                         c.qkNorm ? sum(qWidth(c), kvWidth(c)) : 0, product(3, f), max(f, qWidth(c)),
                         routingPerToken(c), product(2, c.vocabSize))
        let threads = min(max(rows, 1), ParallelWork.threads)
        return sum(product(4, rows, perRow), product(4, rows, c.vocabSize), product(threads, 3, 8, c.vocabSize))
    }

    /// What a rollout keeps per sampled token (`RolloutBatch`): μ over the whole vocabulary
    /// (V floats), log μ and the token: 4·tokens·(V + 2).
    public static func vocabularyRows(_ c: LlamaConfig, tokens: Int) -> Int {
        product(4, tokens, sum(c.vocabSize, 2))
    }

    /// What the teacher-forced forward saves for the backward (`LayerCache`, `ForwardResult`)
    /// over R packed rows: per layer the input, norm1, mid, norm2 (4·C), q, attn (2·Q), k, v
    /// (2·KV), gate, up, act (3·F) and two rstd, Qwen3's q and k before their norms and their
    /// rstds (Q + KV + H + Hkv), each adapter's x·Aᵀ (r per adapted layer); the hidden state
    /// after each layer ((L+1)·C); the final norm's input and output (2·C) and rstd; and a
    /// layer's temporaries (o, sum, down, and the quantized copy of a product's input:
    /// 3·C + max(F, Q)); the tokens and positions as Int32.
    /// 4·R·((L+1)·C + L·(4·C + 2·Q + 2·KV + 3·F + 2 + …) + 5·C + max(F, Q) + 1) + 8·R, with K·F
    /// for F and the routing per layer in a sparse MLP. Attention probabilities and logits are
    /// their own terms.
    /// A forward that keeps nothing for a backward (`keepForBackward` false) holds one layer's
    /// cache at a time: L becomes 1 in the per-layer term.
    public static func forwardActivations(_ c: LlamaConfig, rows: Int, keepForBackward: Bool = true) -> Int {
        let h = c.hiddenSize, f = product(mlpRowsPerToken(c), c.intermediateSize)
        let headNorms = c.qkNorm ? sum(qWidth(c), kvWidth(c), c.numAttentionHeads, c.numKeyValueHeads) : 0
        let adapters = c.lora.map { product($0.rank, $0.targets.count) } ?? 0
        let layer = sum(product(4, h), product(2, qWidth(c)), product(2, kvWidth(c)), product(3, f), 2, routingPerToken(c),
                        headNorms, adapters)
        let layersHeld = keepForBackward ? c.numHiddenLayers : min(1, c.numHiddenLayers)
        let perRow = sum(product(c.numHiddenLayers + 1, h), product(layersHeld, layer), product(5, h), max(f, qWidth(c)), 1)
        return sum(product(4, rows, perRow), product(8, rows))
    }

    /// The attention probabilities the teacher-forced forward keeps for the backward, every
    /// layer, every head, row t of a sequence holding t+1 of them:
    /// 4·L·H·S·T(T+1)/2 for S sequences of T positions.
    public static func attentionProbabilities(_ c: LlamaConfig, sequences: Int, positions t: Int) -> Int {
        let triangle = t % 2 == 0 ? product(t / 2, t + 1) : product(t, (t + 1) / 2)
        return product(4, c.numHiddenLayers, c.numAttentionHeads, sequences, triangle)
    }

    /// Logits and their log-softmax over R rows, 2·4·R·V.
    public static func logits(_ c: LlamaConfig, rows: Int) -> Int { product(2, 4, rows, c.vocabSize) }

    /// The backward's own buffers over R rows (`Transformer.backward`, `EngineKernel.backward`,
    /// `Trainer.backward`): ∂logits, and at temperature ≠ 1 the tempered log-probabilities and
    /// their replacement in the forward's copy (3·V); dnorm, dx and a layer's dn2 (sum and
    /// part), tmp, dn1 (sum and part) (7·C, and one more for the input gradient being built);
    /// dattn, dq (2·Q); dact, dgate, dup (3·F); dk, dv (2·KV), and Qwen3's gradients before
    /// the q and k norms (Q + KV); a product's quantized dy, dyᵀ and x (3·max(C, Q, F, V));
    /// and WGrad's dense product before it is added, 4·(largest out·in).
    public static func backward(_ c: LlamaConfig, rows: Int) -> Int {
        let h = c.hiddenSize, f = product(mlpRowsPerToken(c), c.intermediateSize), v = c.vocabSize
        let perRow = sum(product(3, v), product(8, h), product(2, qWidth(c)), product(3, f), product(2, kvWidth(c)),
                         c.qkNorm ? sum(qWidth(c), kvWidth(c)) : 0,
                         product(3, max(h, qWidth(c), f, v)),
                         routingPerToken(c))
        return sum(product(4, rows, perRow), product(4, largestLinear(c)))
    }
}

// MARK: Commands

extension MemoryEstimate {
    /// A new model (`model new`, and what `model load` builds from a checkpoint): the master
    /// weights and the engines' copies. The optimizers' moments are allocated by the first
    /// update, which the training commands count (`update`).
    public static func model(_ c: LlamaConfig, engines: EnginePair, backend: any MatmulBackend) -> MemoryEstimate {
        MemoryEstimate([("weights", masterWeights(c)), ("engine copies", engineWeights(c, engines, backend: backend))])
    }

    /// `model load`: a new model (each tensor is read straight into its place) and the
    /// checkpoint's optimizer state (as many bytes as lab_state.safetensors holds).
    public static func load(_ c: LlamaConfig, engines: EnginePair, backend: any MatmulBackend,
                            optimizerStateBytes: Int) -> MemoryEstimate {
        model(c, engines: engines, backend: backend) + MemoryEstimate([("optimizer state", optimizerStateBytes)])
    }

    /// Sampling S sequences of up to T = prompt + new positions, `chunk` at a time
    /// (`Trainer.sample` decodes 512 at a time): the KV cache and the decoding step of one
    /// chunk; the kept μ rows of every sequence.
    public static func sampling(_ c: LlamaConfig, sequences: Int, promptLength: Int, maxNew: Int,
                                chunk: Int = .max) -> MemoryEstimate {
        let slots = min(sequences, chunk)
        return MemoryEstimate([("μ over the vocabulary", vocabularyRows(c, tokens: product(sequences, maxNew)))])
            + decoding(c, slots: slots, positions: sum(promptLength, maxNew), promptLength: promptLength)
    }

    /// The KV cache and decoding step of `slots` sequences of up to `positions` positions,
    /// `promptLength` of them a prompt: the prefill's steps hold up to
    /// `RolloutEngine.prefillRows` rows (counted as decoding rows: no fewer bytes each).
    static func decoding(_ c: LlamaConfig, slots: Int, positions: Int, promptLength: Int = 1) -> MemoryEstimate {
        let prefill = min(RolloutEngine.prefillRows, product(slots, max(0, promptLength - 1)))
        return MemoryEstimate([("KV cache", kvCache(c, slots: slots, positions: positions)),
                               ("decoding", decodeStep(c, rows: max(slots, prefill)))])
    }

    /// The training engine's forward over S sequences of T positions (`Policy.recompute`,
    /// pretraining): saved activations, attention probabilities, logits; with `responseTokens`,
    /// π over the whole vocabulary at each of them (4·V each, as `FullDistributions` keeps it).
    /// `keepForBackward` false: one layer's activations at a time and no probabilities.
    static func teacherForced(_ c: LlamaConfig, sequences: Int, positions: Int, responseTokens: Int = 0,
                              keepForBackward: Bool = true) -> MemoryEstimate {
        let rows = product(sequences, positions)
        let probabilities = keepForBackward ? attentionProbabilities(c, sequences: sequences, positions: positions) : 0
        return MemoryEstimate([("activations", forwardActivations(c, rows: rows, keepForBackward: keepForBackward)),
                               ("attention probabilities", probabilities),
                               ("logits", logits(c, rows: rows)),
                               ("π over the vocabulary", product(4, responseTokens, c.vocabSize))])
    }

    /// `rollout`: S prompts sampled to at most `maxNew` tokens, then recomputed by the
    /// training engine. The μ rows are held throughout; decoding (KV cache) ends before the
    /// recomputation begins, so the larger of the two phases counts.
    public static func rollout(_ c: LlamaConfig, sequences: Int, promptLength: Int, maxNew: Int) -> MemoryEstimate {
        let t = sum(promptLength, maxNew)
        return MemoryEstimate([("μ over the vocabulary", vocabularyRows(c, tokens: product(sequences, maxNew)))])
            + larger(decoding(c, slots: sequences, positions: t, promptLength: promptLength),
                     teacherForced(c, sequences: sequences, positions: t, responseTokens: product(sequences, maxNew),
                                   keepForBackward: false))
    }

    /// An optimizer step and weight sync (`Trainer.step`, `pretrain`): the gradient (4·P), the
    /// updated copy of the master weights (4·P), the optimizer's new m and v before they
    /// replace the old (2·4·P), and both engines rebuilt from the new weights while the old
    /// ones still run.
    static func update(_ c: LlamaConfig, engines: EnginePair, backend: any MatmulBackend) -> MemoryEstimate {
        MemoryEstimate([("gradients", masterWeights(c)), ("weights copy", masterWeights(c)),
                        ("Adam moments", product(2, 4, parameters(c))), ("engine copies", engineWeights(c, engines, backend: backend))])
    }

    /// One RL step of S = prompts × samples sequences: the rollout's phases as in `rollout`,
    /// then — while π_old's forward is still held — with several minibatches the forward of
    /// one minibatch (⌈S/M⌉ sequences), the backward over a minibatch, and the update.
    public static func step(_ c: LlamaConfig, engines: EnginePair, backend: any MatmulBackend, sequences: Int,
                            promptLength: Int, maxNew: Int, minibatches: Int) -> MemoryEstimate {
        let t = sum(promptLength, maxNew)
        let m = max(minibatches, 1)
        let perMinibatch = (sequences + m - 1) / m
        // π_old keeps its caches only when the single minibatch's backward reuses them.
        var training = teacherForced(c, sequences: sequences, positions: t, responseTokens: product(sequences, maxNew),
                                     keepForBackward: m == 1)
        if m > 1 {
            training = training + teacherForced(c, sequences: perMinibatch, positions: t, responseTokens: product(perMinibatch, maxNew))
        }
        training = training + MemoryEstimate([("backward", backward(c, rows: product(perMinibatch, t)))])
            + update(c, engines: engines, backend: backend)
        return MemoryEstimate([("μ over the vocabulary", vocabularyRows(c, tokens: product(sequences, maxNew)))])
            + larger(decoding(c, slots: sequences, positions: t, promptLength: promptLength), training)
    }

    /// One pretraining step on S demonstrations of up to T tokens: forward, backward, update.
    public static func pretrain(_ c: LlamaConfig, engines: EnginePair, backend: any MatmulBackend, sequences: Int,
                                positions: Int) -> MemoryEstimate {
        teacherForced(c, sequences: sequences, positions: positions)
            + MemoryEstimate([("backward", backward(c, rows: product(sequences, positions)))])
            + update(c, engines: engines, backend: backend)
    }

    /// Both engines over one given sequence of T tokens (`score`, `trace`): the rollout
    /// engine through its KV cache, keeping log-softmax (4·T·V) and hidden states
    /// (4·(L+1)·T·C); the training engine's teacher-forced forward.
    public static func scoring(_ c: LlamaConfig, tokens t: Int) -> MemoryEstimate {
        decoding(c, slots: 1, positions: t)
            + MemoryEstimate([("logits", product(4, t, c.vocabSize)),
                              ("activations", product(4, c.numHiddenLayers + 1, t, c.hiddenSize))])
            + teacherForced(c, sequences: 1, positions: t, keepForBackward: false)
    }
}

// MARK: Saturating arithmetic

/// a·b·…, or Int.max when it would overflow (negative factors count as 0).
private func product(_ factors: Int...) -> Int {
    var p = 1
    for f in factors {
        if f <= 0 { return 0 }
        let (r, overflow) = p.multipliedReportingOverflow(by: f)
        if overflow { return .max }
        p = r
    }
    return p
}

/// a + b + …, or Int.max when it would overflow (negative terms count as 0).
private func sum(_ terms: Int...) -> Int {
    var s = 0
    for t in terms where t > 0 {
        let (r, overflow) = s.addingReportingOverflow(t)
        if overflow { return .max }
        s = r
    }
    return s
}

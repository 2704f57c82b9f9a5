import Model
import Numerics
import Testing

let tinyConfig = LlamaConfig(hiddenSize: 16, intermediateSize: 24, numAttentionHeads: 4, numKeyValueHeads: 2,
                             numHiddenLayers: 2, vocabSize: 11, rmsNormEps: 1e-5, ropeTheta: 10_000,
                             maxPositionEmbeddings: 32)

/// Random weights large enough that every path matters (std 0.3; norm weights around 1;
/// biases, which start at 0 in a fresh model, uniform in ±0.3).
func tinyWeights(_ config: LlamaConfig = tinyConfig, seed: UInt64 = 1) -> ModelWeights {
    var w = ModelWeights(config: config)
    w.initialize(std: 0.3, stream: RandomStream(seed: seed, name: "init"))
    var rng = RandomStream(seed: seed, name: "norms")
    for s in w.slots where s.name.hasSuffix("norm.weight") {
        for i in s.offset..<(s.offset + s.count) { w.data[i] = Float(0.5 + rng.nextUnit()) }
    }
    var biases = RandomStream(seed: seed, name: "biases")
    for s in w.slots where s.name.hasSuffix(".bias") {
        for i in s.offset..<(s.offset + s.count) { w.data[i] = Float(0.6 * biases.nextUnit() - 0.3) }
    }
    return w
}

let tinySequences: [[Int32]] = [[1, 4, 9, 2, 7], [3, 3, 10, 0, 5, 8, 6]]

@Suite struct TransformerForwardTests {
    /// The float32 forward agrees with the Double reference within float32 error. Bound:
    /// 2e-5 absolute on log-probabilities of magnitude ≲ 5 (about 50 float32 ulps, for a
    /// computation of a few hundred dependent operations).
    @Test(arguments: [false, true])
    func fp32ForwardMatchesTheDoubleReference(tied: Bool) {
        var config = tinyConfig
        config.tieWordEmbeddings = tied
        let weights = tinyWeights(config)
        let model = Transformer(config: config)
        let result = model.forward(PackedBatch(sequences: tinySequences), weights: weights,
                                   kernel: PlainLinear(weights: weights, backend: PortableBackend()), plan: .fp32)
        let reference = ReferenceLlama(weights)
        var row = 0, worst = 0.0
        for seq in tinySequences {
            let expected = reference.logProbs(seq)
            for i in 0..<expected.count {
                let got = Double(result.logProbs[row * config.vocabSize + i])
                worst = max(worst, abs(got - expected[i]))
            }
            row += seq.count
        }
        #expect(worst <= 2e-5, "largest |Δ log p| = \(worst)")
    }

    /// Decoding position by position over a KV cache gives exactly the forward's bits on the
    /// portable backend (same kernels, same order), and agrees within float32 error on openblas.
    @Test func decodeMatchesTheForward() throws {
        let weights = tinyWeights()
        let model = Transformer(config: tinyConfig)
        let v = tinyConfig.vocabSize
        for backendName in ["portable", "openblas", "onednn"] {
            let kernel = PlainLinear(weights: weights, backend: try matmulBackend(named: backendName))
            let full = model.forward(PackedBatch(sequences: tinySequences), weights: weights, kernel: kernel, plan: .fp32)
            var cache = KVCache(config: tinyConfig, slots: 2, capacity: 16)
            var decoded = [[Float]](repeating: [], count: 2)
            for pos in 0..<7 {
                var rows: [DecodeRow] = []
                for (s, seq) in tinySequences.enumerated() where pos < seq.count {
                    rows.append(DecodeRow(slot: s, token: seq[pos], position: Int32(pos)))
                }
                let lp = model.decodeStep(rows, cache: &cache, weights: weights, kernel: kernel, plan: .fp32)
                for (r, row) in rows.enumerated() { decoded[row.slot] += lp[(r * v)..<((r + 1) * v)] }
            }
            let packed = decoded[0] + decoded[1]
            if backendName == "portable" {
                #expect(packed.map(\.bitPattern) == full.logProbs.map(\.bitPattern))
            } else {
                let worst = zip(packed, full.logProbs).map { abs($0 - $1) }.max()!
                #expect(worst <= 1e-5, "openblas decode vs forward: \(worst)")
            }
        }
    }
}

@Suite struct ForwardShortcutTests {
    /// Prompts prefilled in one step (several positions of a slot as rows, no LM head) leave
    /// the KV cache exactly as decoding them one position at a time does, and the next step
    /// gives the same bits, on the portable backend.
    @Test func aPrefillStepFillsTheCacheAsPositionByPositionDecodingDoes() {
        let weights = tinyWeights()
        let model = Transformer(config: tinyConfig)
        let kernel = PlainLinear(weights: weights, backend: PortableBackend())
        let prompts: [[Int32]] = [[1, 4, 9, 2], [3, 3, 10, 0, 5, 8]]
        var oneByOne = KVCache(config: tinyConfig, slots: 2, capacity: 8)
        for pos in 0..<5 {
            let rows = prompts.enumerated().compactMap { s, p in
                pos < p.count - 1 ? DecodeRow(slot: s, token: p[pos], position: Int32(pos)) : nil
            }
            _ = model.decodeStep(rows, cache: &oneByOne, weights: weights, kernel: kernel, plan: .fp32)
        }
        var prefilled = KVCache(config: tinyConfig, slots: 2, capacity: 8)
        let rows = prompts.enumerated().flatMap { s, p in
            p.dropLast().enumerated().map { DecodeRow(slot: s, token: $0.element, position: Int32($0.offset)) }
        }
        #expect(model.decodeStep(rows, cache: &prefilled, weights: weights, kernel: kernel, plan: .fp32, logProbs: false).isEmpty)
        let last = prompts.enumerated().map { DecodeRow(slot: $0.offset, token: $0.element.last!, position: Int32($0.element.count - 1)) }
        let a = model.decodeStep(last, cache: &oneByOne, weights: weights, kernel: kernel, plan: .fp32)
        let b = model.decodeStep(last, cache: &prefilled, weights: weights, kernel: kernel, plan: .fp32)
        #expect(a.map(\.bitPattern) == b.map(\.bitPattern))
        #expect(a.contains { $0 != 0 })
    }

    /// A forward that keeps nothing for a backward gives the same log-probabilities and hidden
    /// states, bit for bit, and keeps no layer caches.
    @Test func aForwardWithoutBackwardCachesGivesTheSameBits() {
        let weights = tinyWeights()
        let model = Transformer(config: tinyConfig)
        let kernel = PlainLinear(weights: weights, backend: PortableBackend())
        let batch = PackedBatch(sequences: tinySequences)
        let full = model.forward(batch, weights: weights, kernel: kernel, plan: .fp32)
        let lean = model.forward(batch, weights: weights, kernel: kernel, plan: .fp32, keepForBackward: false)
        #expect(lean.logProbs.map(\.bitPattern) == full.logProbs.map(\.bitPattern))
        #expect(lean.hiddenStates.map { $0.map(\.bitPattern) } == full.hiddenStates.map { $0.map(\.bitPattern) })
        #expect(lean.keepsNothingForBackward && !full.keepsNothingForBackward)
        // A model without layers keeps nothing per layer, yet its forward serves a backward.
        var flat = tinyConfig
        flat.numHiddenLayers = 0
        let flatWeights = tinyWeights(flat)
        let flatForward = Transformer(config: flat).forward(batch, weights: flatWeights,
                                                            kernel: PlainLinear(weights: flatWeights, backend: PortableBackend()), plan: .fp32)
        #expect(!flatForward.keepsNothingForBackward)
    }
}

@Suite struct TransformerGradientTests {
    /// Every parameter tensor's gradient against central finite differences of the Double
    /// reference, for L = Σ_r g_r · log p_r(target_r) with random g. Bound: relative error
    /// 1e-3 against the larger of |fd| and 1% of the tensor's largest sampled gradient
    /// (the analytic gradient is float32; the differences are Double with step 1e-6).
    @Test(arguments: [false, true])
    func everyGradientMatchesFiniteDifferences(tied: Bool) {
        var config = tinyConfig
        config.tieWordEmbeddings = tied
        let weights = tinyWeights(config, seed: 2)
        let loss = RandomLogProbLoss(config: config)
        let grads = loss.gradients(weights)
        let reference = ReferenceLlama(weights)
        var base = reference.tensors
        if tied { base["lm_head.weight"] = nil }
        #expect(expectGradientsMatchFiniteDifferences(weights, grads, base: base, samples: 7) { loss.referenceLoss($0).value } > 100)
    }
}

/// L = Σ_r g_r · log p_r(target_r) over `tinySequences`, with targets and weights g drawn from
/// a fixed stream: a loss that reaches every log-probability the forward computes, for the
/// finite-difference checks. `gradients` is the hand-written backward's; `referenceLoss` the
/// Double reference's value of L (a mixture-of-experts model adds its load-balancing term).
struct RandomLogProbLoss {
    let config: LlamaConfig
    let targets: [Int32]
    let g: [Float]

    init(config: LlamaConfig) {
        self.config = config
        let rows = tinySequences.reduce(0) { $0 + $1.count }
        var rng = RandomStream(seed: 3, name: "targets")
        targets = (0..<rows).map { _ in Int32(rng.next() % UInt64(config.vocabSize)) }
        g = (0..<rows).map { _ in Float(rng.nextUnit() * 2 - 1) }
    }

    func gradients(_ weights: ModelWeights, loadBalancingWeight: Float = 0) -> ModelWeights {
        let model = Transformer(config: config)
        let batch = PackedBatch(sequences: tinySequences)
        let kernel = PlainLinear(weights: weights, backend: PortableBackend())
        let fw = model.forward(batch, weights: weights, kernel: kernel, plan: .fp32)
        var grads = ModelWeights(config: config)
        model.backward(batch, targets: targets, dLogProb: g, forward: fw, weights: weights, kernel: kernel, plan: .fp32,
                       grads: &grads, loadBalancingWeight: loadBalancingWeight)
        return grads
    }

    /// Σ g·log p under the Double reference with `tensors`, and the routing it chose.
    func referenceLoss(_ tensors: [String: [Double]]) -> (value: Double, routing: [[ReferenceLlama.LayerRouting]]) {
        let ref = ReferenceLlama(config: config, tensors: tensors)
        var total = 0.0, row = 0
        var routing: [[ReferenceLlama.LayerRouting]] = []
        for seq in tinySequences {
            let run = ref.run(seq)
            routing.append(run.routing)
            for i in 0..<seq.count {
                total += Double(g[row]) * run.logProbs[i * config.vocabSize + Int(targets[row])]
                row += 1
            }
        }
        return (total, routing)
    }
}

/// Every parameter tensor's analytic gradient `grads` against central finite differences
/// (step 1e-6) of `loss` over the Double tensors `base`, at entries spread over each tensor
/// (the embedding: rows of tokens 1, 3, 9), of the tensors `only` selects. Bound: relative error 1e-3 against the larger of
/// |fd| and 1% of the tensor's largest sampled difference. Returns the entries checked.
func expectGradientsMatchFiniteDifferences(_ weights: ModelWeights, _ grads: ModelWeights, base: [String: [Double]],
                                           samples: Int, only: (TensorSlot) -> Bool = { _ in true },
                                           loss: ([String: [Double]]) -> Double) -> Int {
    var checked = 0
    for slot in weights.slots where only(slot) {
        var indices: [Int] = []
        if slot.name == "model.embed_tokens.weight" {
            for t in [1, 3, 9] { indices += [t * slot.cols, t * slot.cols + slot.cols - 1] }
        } else {
            indices = stride(from: 0, to: slot.count, by: max(1, slot.count / samples)).map { $0 }
        }
        var pairs: [(Double, Double)] = []
        for i in indices {
            let eps = 1e-6
            var plus = base, minus = base
            plus[slot.name]![i] += eps
            minus[slot.name]![i] -= eps
            let fd = (loss(plus) - loss(minus)) / (2 * eps)
            pairs.append((Double(grads.data[slot.offset + i]), fd))
        }
        let scale = pairs.map { abs($0.1) }.max()! * 0.01
        for (k, (a, fd)) in pairs.enumerated() {
            let err = abs(a - fd) / max(abs(fd), scale, 1e-9)
            #expect(err <= 1e-3, "\(slot.name)[\(indices[k])]: analytic \(a), finite difference \(fd)")
            checked += 1
        }
    }
    return checked
}

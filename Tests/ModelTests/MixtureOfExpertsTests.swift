import Model
import Numerics
import Testing

/// The tiny model with a sparse MLP in every layer: 4 experts of width 12, top 2.
func tinyMoEConfig(normTopKProb: Bool = true, experts: Int = 4, topK: Int = 2) -> LlamaConfig {
    var c = tinyConfig
    c.intermediateSize = 12
    c.numLocalExperts = experts
    c.numExpertsPerTok = topK
    c.normTopKProb = normTopKProb
    return c
}

@Suite struct MixtureOfExpertsTests {
    /// The parameters are Mixtral's tensors: a router (E, C) and w1, w3 (F, C), w2 (C, F) per
    /// expert, in place of the dense MLP's three.
    @Test func theLayoutIsMixtrals() {
        let config = tinyMoEConfig()
        let names = config.parameterShapes.map(\.name)
        #expect(names.contains("model.layers.1.block_sparse_moe.gate.weight"))
        #expect(names.contains("model.layers.0.block_sparse_moe.experts.3.w2.weight"))
        #expect(!names.contains { $0.contains("mlp.") })
        let w = ModelWeights(config: config)
        #expect(w.layer(1).router!.rows == 4 && w.layer(1).router!.cols == 16)
        #expect(w.layer(1).experts.count == 4 && w.layer(1).experts[2].down.name.hasSuffix("experts.2.w2.weight"))
        #expect(w.finalNorm.name == "model.norm.weight" && w.lmHead.name == "lm_head.weight")
        // Parameters: dense layer parts + E·(3·F·C) + E·C per layer.
        let dense = tinyConfig.parameterCount - 2 * 3 * 24 * 16
        #expect(config.parameterCount == dense + 2 * (4 * 3 * 12 * 16 + 4 * 16))
    }

    @Test func topKMustFitTheExperts() {
        #expect(throws: NumericsError.self) { try tinyMoEConfig(experts: 4, topK: 5).validate() }
        #expect(throws: NumericsError.self) { try tinyMoEConfig(experts: 4, topK: 0).validate() }
        #expect(throws: Never.self) { try tinyMoEConfig(experts: 4, topK: 4).validate() }
    }

    /// The float32 forward agrees with the Double reference (bound as for the dense model),
    /// routes every row to the reference's experts, and gives its load-balancing loss.
    @Test(arguments: [true, false])
    func fp32ForwardMatchesTheDoubleReference(normTopKProb: Bool) {
        let config = tinyMoEConfig(normTopKProb: normTopKProb)
        let weights = tinyWeights(config, seed: 4)
        let result = Transformer(config: config).forward(PackedBatch(sequences: tinySequences), weights: weights,
                                                         kernel: PlainLinear(weights: weights, backend: PortableBackend()),
                                                         plan: .fp32)
        let reference = ReferenceLlama(weights)
        var row = 0, worst = 0.0
        var runs: [[ReferenceLlama.LayerRouting]] = []
        for seq in tinySequences {
            let run = reference.run(seq)
            runs.append(run.routing)
            for i in 0..<run.logProbs.count {
                worst = max(worst, abs(Double(result.logProbs[row * config.vocabSize + i]) - run.logProbs[i]))
            }
            for l in 0..<config.numHiddenLayers {
                #expect(Array(result.routing!.experts[l][(row * 2)..<((row + seq.count) * 2)]) == run.routing[l].experts,
                        "layer \(l) routing")
            }
            row += seq.count
        }
        #expect(worst <= 2e-5, "largest |Δ log p| = \(worst)")
        let aux = ReferenceLlama.loadBalancingLoss(runs, experts: 4, topK: 2)
        #expect(abs(result.loadBalancingLoss - aux) <= 1e-6 * aux, "aux \(result.loadBalancingLoss) against \(aux)")
        // The routing is not degenerate: several experts are used in each layer.
        for load in result.expertLoads { #expect(load.assignments.filter { $0 > 0 }.count >= 3) }
    }

    /// Replayed experts are used as given (the weights still from this router), and the
    /// forward reports them as its routing.
    @Test func aReplayedRoutingIsUsed() {
        let config = tinyMoEConfig()
        let weights = tinyWeights(config, seed: 4)
        let batch = PackedBatch(sequences: tinySequences)
        let kernel = PlainLinear(weights: weights, backend: PortableBackend())
        let model = Transformer(config: config)
        let own = model.forward(batch, weights: weights, kernel: kernel, plan: .fp32).routing!
        // Every row's experts shifted by one (mod E), the last row left to route itself.
        var replay = own
        for l in 0..<config.numHiddenLayers {
            replay.experts[l] = replay.experts[l].map { ($0 + 1) % 4 }
            replay.experts[l][(batch.rows - 1) * 2] = -1
            replay.experts[l][(batch.rows - 1) * 2 + 1] = -1
        }
        let result = model.forward(batch, weights: weights, kernel: kernel, plan: .fp32, replay: replay)
        for l in 0..<config.numHiddenLayers {
            #expect(Array(result.routing!.experts[l].dropLast(2)) == Array(replay.experts[l].dropLast(2)))
            #expect(Array(result.routing!.experts[l].suffix(2)) == Array(own.experts[l].suffix(2)))
        }
        let reference = ReferenceLlama(weights)
        var row = 0, worst = 0.0
        for seq in tinySequences {
            let slice = (0..<config.numHiddenLayers).map { Array(replay.experts[$0][(row * 2)..<((row + seq.count) * 2)]) }
            let expected = reference.run(seq, replay: slice).logProbs
            for i in 0..<expected.count {
                worst = max(worst, abs(Double(result.logProbs[row * config.vocabSize + i]) - expected[i]))
            }
            row += seq.count
        }
        #expect(worst <= 2e-5, "largest |Δ log p| = \(worst)")
    }

    /// Decoding over the KV cache gives the forward's bits and routing on the portable backend.
    @Test func decodeMatchesTheForward() {
        let config = tinyMoEConfig()
        let weights = tinyWeights(config, seed: 4)
        let model = Transformer(config: config)
        let kernel = PlainLinear(weights: weights, backend: PortableBackend())
        let full = model.forward(PackedBatch(sequences: tinySequences), weights: weights, kernel: kernel, plan: .fp32)
        var cache = KVCache(config: config, slots: 2, capacity: 16)
        var decoded = [[Float]](repeating: [], count: 2)
        var routes = [[[Int32]]](repeating: [[Int32]](repeating: [], count: 2), count: 2)
        for pos in 0..<7 {
            var rows: [DecodeRow] = []
            for (s, seq) in tinySequences.enumerated() where pos < seq.count {
                rows.append(DecodeRow(slot: s, token: seq[pos], position: Int32(pos)))
            }
            var routing = Routing(topK: 2, experts: [])
            let lp = model.decodeStep(rows, cache: &cache, weights: weights, kernel: kernel, plan: .fp32, routing: &routing)
            for (r, row) in rows.enumerated() {
                decoded[row.slot] += lp[(r * config.vocabSize)..<((r + 1) * config.vocabSize)]
                for l in 0..<2 { routes[row.slot][l] += routing.choice(layer: l, row: r) }
            }
        }
        #expect(decoded[0] + decoded[1] == full.logProbs)
        for l in 0..<2 { #expect(routes[0][l] + routes[1][l] == full.routing!.experts[l]) }
    }
}

@Suite struct MixtureOfExpertsGradientTests {
    /// Every parameter's gradient (router, each expert's w1, w2, w3, and the rest) against
    /// central finite differences of the Double reference, for
    /// L = Σ_r g_r · log p_r(target_r) + λ·aux, with and without renormalised top-k weights.
    /// The experts chosen do not change within ±1e-6 (the assignments are constant there),
    /// so the differences see the weights' and the load-balancing loss's smooth dependence
    /// on the probabilities. Bound as for the dense model.
    @Test(arguments: [true, false])
    func everyGradientMatchesFiniteDifferences(normTopKProb: Bool) {
        let config = tinyMoEConfig(normTopKProb: normTopKProb)
        let weights = tinyWeights(config, seed: 5)
        let lambda: Float = 0.5
        let loss = RandomLogProbLoss(config: config)
        let grads = loss.gradients(weights, loadBalancingWeight: lambda)
        let reference = ReferenceLlama(weights)
        func total(_ tensors: [String: [Double]]) -> Double {
            let (value, routing) = loss.referenceLoss(tensors)
            return value + Double(lambda) * ReferenceLlama.loadBalancingLoss(routing, experts: 4, topK: 2)
        }
        #expect(expectGradientsMatchFiniteDifferences(weights, grads, base: reference.tensors, samples: 5, loss: total) > 100)
    }

    /// The load-balancing loss's gradient alone (g = 0): it starts at the routers, so the
    /// LM head, the final norm and the last layer's experts get none, and every router does.
    @Test func theLoadBalancingLossStartsAtTheRouters() {
        let config = tinyMoEConfig()
        let weights = tinyWeights(config, seed: 5)
        let model = Transformer(config: config)
        let batch = PackedBatch(sequences: tinySequences)
        let kernel = PlainLinear(weights: weights, backend: PortableBackend())
        let fw = model.forward(batch, weights: weights, kernel: kernel, plan: .fp32)
        var grads = ModelWeights(config: config)
        model.backward(batch, targets: Array(repeating: 0, count: batch.rows), dLogProb: Array(repeating: 0, count: batch.rows),
                       forward: fw, weights: weights, kernel: kernel, plan: .fp32, grads: &grads, loadBalancingWeight: 1)
        for slot in grads.slots {
            let norm = grads.tensor(slot.name)!.reduce(0) { $0 + abs($1) }
            if slot.name.hasSuffix("block_sparse_moe.gate.weight") {
                #expect(norm > 0, "\(slot.name)")
            } else if slot.name == "lm_head.weight" || slot.name == "model.norm.weight"
                        || slot.name.hasPrefix("model.layers.1.block_sparse_moe.experts.") {
                #expect(norm == 0, "\(slot.name)")
            }
        }
    }
}

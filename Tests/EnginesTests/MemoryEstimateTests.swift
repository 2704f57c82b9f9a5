import Engines
import Model
import Numerics
import Testing

/// The memory estimate's exact terms against counts made here, from the configuration and
/// the model's own list of tensors, without the estimator's formulas.
@Suite struct MemoryEstimateTests {
    /// Two shapes: the lab's default (untied, grouped key/value heads) and a tied one with
    /// as many key/value heads as heads and odd sizes.
    static let configs: [LlamaConfig] = [
        .labDefault,
        LlamaConfig(hiddenSize: 48, intermediateSize: 100, numAttentionHeads: 3, numKeyValueHeads: 3, numHiddenLayers: 3,
                    vocabSize: 37, maxPositionEmbeddings: 64, tieWordEmbeddings: true),
        // Qwen3's shape: head_dim given (the queries 4·24 = 96 wide on a width of 48),
        // per-head q/k norms.
        LlamaConfig(hiddenSize: 48, intermediateSize: 80, numAttentionHeads: 4, numKeyValueHeads: 2, numHiddenLayers: 2,
                    vocabSize: 29, tieWordEmbeddings: true, family: .qwen3, headDim: 24),
    ]

    /// The default model with LoRA adapters on three kinds of layer.
    static let adapted = LlamaConfig(hiddenSize: 64, intermediateSize: 176, numAttentionHeads: 4, numKeyValueHeads: 2,
                                     numHiddenLayers: 4, vocabSize: 50, lora: LoRASpec(rank: 3, alpha: 6, targets: [.q, .v, .down]))

    /// The (out, in) shapes of the linear weights each engine quantizes: every 2-D tensor but
    /// the embedding, and the embedding again as the LM head when tied.
    func linearShapes(_ c: LlamaConfig) -> [(rows: Int, cols: Int)] {
        var shapes = c.parameterShapes.filter { $0.rows > 1 && $0.name != "model.embed_tokens.weight" }.map { ($0.rows, $0.cols) }
        if c.tieWordEmbeddings { shapes.append((c.vocabSize, c.hiddenSize)) }
        return shapes
    }

    @Test(arguments: configs + [adapted])
    func masterWeightsAreFourBytesPerAllocatedParameter(_ c: LlamaConfig) {
        // The buffer the model really allocates, and the parameters counted tensor by tensor.
        let allocated = ModelWeights(config: c).data.count
        let counted = c.parameterShapes.reduce(0) { $0 + $1.rows * $1.cols }
        #expect(allocated == counted)
        #expect(MemoryEstimate.parameters(c) == counted)
        #expect(MemoryEstimate.masterWeights(c) == 4 * allocated)
    }

    /// The shape whose `model new` aborted with "failed to allocate 68723228704 bytes": the
    /// float32 weights are 68,723,228,672 bytes (and the array's 32-byte header makes the
    /// figure in that message). By hand: a layer has 4·4096² (q, k, v, o) + 3·4096·16384
    /// (gate, up, down) + 2·4096 (norms) = 268,443,648 parameters; 64 of them 17,180,393,472;
    /// the embedding and LM head 2·50·4096 and the final norm 4096 add 413,696.
    @Test func theWeightsOfTheModelThatAbortedAreWhatTheAllocatorWasAskedFor() {
        let c = LlamaConfig(hiddenSize: 4096, intermediateSize: 16384, numAttentionHeads: 32, numKeyValueHeads: 32,
                            numHiddenLayers: 64, vocabSize: 50)
        #expect(MemoryEstimate.parameters(c) == 17_180_807_168)
        #expect(MemoryEstimate.masterWeights(c) == 68_723_228_672)
        #expect(MemoryEstimate.masterWeights(c) + 32 == 68_723_228_704)
    }

    @Test(arguments: configs + [adapted])
    func aBF16EngineHoldsItsWeightsAndOneQuantizedCopyOfEachLinearWeightStoredBothWays(_ c: LlamaConfig) {
        // BF16: unscaled weights (one scale each), float32 accumulation (nothing packed for the
        // fused kernel; the values also stored untransposed for the backend), a symmetric
        // tiling (no second copy for DGrad); while a sync runs, the master slice and the
        // dequantized values of one weight.
        let profile = Preset.bf16.engines(for: c).rollout
        let shapes = linearShapes(c)
        let largest = shapes.map { $0.rows * $0.cols }.max()!
        let expected = 4 * ModelWeights(config: c).data.count + shapes.reduce(0) { $0 + 4 * (2 * $1.rows * $1.cols + 1) } + 2 * 4 * largest
        #expect(MemoryEstimate.engineWeights(c, profile, backend: PortableBackend()) == expected)
        #expect(MemoryEstimate.engineWeights(c, profile, backend: LibraryBackend(.openblas, nativeBF16: false)) == expected)
    }

    /// On native BF16 products a BF16 engine holds each linear weight as BF16 pairs alone, for
    /// FProp and (from the first backward) for DGrad: twice the bytes of a real packing of it.
    @Test(.enabled(if: BF16Kernel.available, "this processor has no AVX512_BF16 instructions"), arguments: configs)
    func aNativeBF16EngineHoldsItsLinearWeightsAsPairs(_ c: LlamaConfig) {
        let profile = Preset.bf16.engines(for: c).rollout
        let shapes = linearShapes(c)
        let largest = shapes.map { $0.rows * $0.cols }.max()!
        let pairs = shapes.reduce(0) { total, shape in
            let values = [Float](repeating: 1, count: shape.rows * shape.cols)
            let packed = values.withUnsafeBufferPointer {
                BF16Kernel.PackedB($0.baseAddress!, ldb: shape.cols, transB: true, k: shape.cols, n: shape.rows)
            }
            return total + 2 * packed.bytes + 4
        }
        let expected = 4 * ModelWeights(config: c).data.count + pairs + 2 * 4 * largest
        #expect(MemoryEstimate.engineWeights(c, profile, backend: LibraryBackend(.openblas)) == expected)
    }

    @Test(arguments: configs)
    func aGroupScaledEngineAlsoHoldsThePackedAndTheDgradCopies(_ c: LlamaConfig) {
        // E4M3 weights in 1×16 groups along K, the LM head included: per weight (out, in) the
        // values and out·⌈in/16⌉ scales; the fused kernel's panels, 32 columns wide, over
        // ⌈out/32⌉ strips of in; DGrad's copy grouped 16×1: the values and ⌈out/16⌉·in scales.
        var profile = Preset.bf16.engines(for: c).rollout
        profile.weights = Quantization(format: .e4m3, saturate: true, granularity: .rowGroups(16))
        profile.quantizedHead = true
        func up(_ a: Int, _ b: Int) -> Int { (a + b - 1) / b }
        var linear = 0, largest = 0
        for (out, inDim) in linearShapes(c) {
            linear += 4 * (out * inDim + out * up(inDim, 16))
            linear += 4 * (32 * up(out, 32) * inDim)
            linear += 4 * (out * inDim + up(out, 16) * inDim)
            largest = max(largest, out * inDim)
        }
        let expected = 4 * ModelWeights(config: c).data.count + linear + 2 * 4 * largest
        #expect(MemoryEstimate.engineWeights(c, profile, backend: LibraryBackend(.openblas)) == expected)
    }

    @Test(arguments: configs)
    func theKVCacheIsKeysAndValuesOfEveryLayerSlotAndPosition(_ c: LlamaConfig) {
        let slots = 7, positions = 33
        let headDim = c.explicitHeadDim ?? c.hiddenSize / c.numAttentionHeads
        let expected = c.numHiddenLayers * slots * positions * (c.numKeyValueHeads * headDim) * 2 * 4
        #expect(MemoryEstimate.kvCache(c, slots: slots, positions: positions) == expected)
    }

    @Test(arguments: configs)
    func attentionProbabilitiesAreOneRowPerHeadPerEarlierPosition(_ c: LlamaConfig) {
        // As the forward lays them out: row t of a sequence holds H·(t+1) probabilities, in
        // every layer.
        for (sequences, positions) in [(5, 20), (3, 17), (1, 1)] {
            var perSequence = 0
            for t in 0..<positions { perSequence += c.numAttentionHeads * (t + 1) }
            let expected = 4 * c.numHiddenLayers * sequences * perSequence
            #expect(MemoryEstimate.attentionProbabilities(c, sequences: sequences, positions: positions) == expected)
        }
    }

    /// Widening the heads by d (head_dim given) widens q and the attention's output by H·d
    /// and k and v by Hkv·d in every buffer that holds them: a decode step keeps q, attn, k, v
    /// and Qwen3's q and k before their norms per row; the forward's cache the same per layer
    /// and row; the backward dq, dattn, dk, dv and the gradients before the norms per row.
    @Test func theQueriesAndKeysWidthsFollowHeadDimNotTheHiddenWidth() {
        func config(headDim: Int) -> LlamaConfig {
            LlamaConfig(hiddenSize: 48, intermediateSize: 400, numAttentionHeads: 4, numKeyValueHeads: 2, numHiddenLayers: 3,
                        vocabSize: 600, family: .qwen3, headDim: headDim)
        }
        let narrow = config(headDim: 12), wide = config(headDim: 20)
        let q = 4 * 8, kv = 2 * 8, rows = 5
        #expect(MemoryEstimate.decodeStep(wide, rows: rows) - MemoryEstimate.decodeStep(narrow, rows: rows) == 4 * rows * (3 * q + 3 * kv))
        #expect(MemoryEstimate.forwardActivations(wide, rows: rows) - MemoryEstimate.forwardActivations(narrow, rows: rows)
                == 4 * rows * 3 * (3 * q + 3 * kv))
        #expect(MemoryEstimate.backward(wide, rows: rows) - MemoryEstimate.backward(narrow, rows: rows) == 4 * rows * (3 * q + 3 * kv))
    }

    @Test func phasesThatDoNotOverlapCountTheLargerOne() {
        let c = LlamaConfig.labDefault
        let r = MemoryEstimate.rollout(c, sequences: 64, promptLength: 9, maxNew: 32)
        let kv = MemoryEstimate.kvCache(c, slots: 64, positions: 41)
        // The recomputation is the larger phase here: its activations count, the KV cache not.
        // No backward follows it, so it holds one layer's cache and no probabilities.
        let activations = MemoryEstimate.forwardActivations(c, rows: 64 * 41, keepForBackward: false)
        #expect(activations < MemoryEstimate.forwardActivations(c, rows: 64 * 41))
        #expect(r.bytes(of: "activations") == activations)
        #expect(r.bytes(of: "attention probabilities") == 0)
        #expect(r.bytes(of: "KV cache") == 0)
        #expect(r.total == r.terms.reduce(0) { $0 + $1.bytes })
        #expect(kv < r.total)
    }

    @Test func shapesTooLargeToCountSaturateInsteadOfTrapping() {
        let c = LlamaConfig(hiddenSize: 1 << 20, intermediateSize: 1 << 20, numAttentionHeads: 1, numHiddenLayers: 1 << 20,
                            vocabSize: 1 << 20)
        #expect(MemoryEstimate.kvCache(c, slots: 1 << 20, positions: 1 << 20) == Int.max)
        let step = MemoryEstimate.step(c, engines: Preset.bf16.engines(for: c), backend: LibraryBackend(.openblas), sequences: 1 << 12, promptLength: 1 << 20,
                                       maxNew: 1 << 20, minibatches: 3)
        #expect(step.total == Int.max)
    }
}

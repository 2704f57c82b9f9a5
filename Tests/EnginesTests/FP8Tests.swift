import Engines
import Mismatch
import Model
import Numerics
import Testing

/// The Jet-RL claim in the lab's terms: under one precision flow the two engines compute the
/// same numbers once their implementations agree; an FP8 rollout against a BF16 training
/// engine does not.
@Suite struct UnifiedFlowTests {
    static func pair(_ preset: Preset, sources: MismatchSources = .none) -> EnginePair {
        var pair = preset.engines(for: .labDefault)
        pair.rollout.sources = sources
        pair.training.sources = sources
        return pair
    }

    /// With every implementation source off, a unified FP8 flow gives bit-identical
    /// log-probabilities (rollout vs the training forward) and bit-identical quantized
    /// weights; the FP8-rollout presets do not, and their flow check says why.
    @Test(arguments: [(Preset.fp8Unified, Preset.fp8Rollout), (.mxfp8Unified, .mxfp8Rollout)])
    func unifiedIsBitIdenticalRolloutOnlyIsNot(unified: Preset, rolloutOnly: Preset) throws {
        let policy = try Policy(master: labModel(), engines: UnifiedFlowTests.pair(unified), backend: PortableBackend())
        #expect(policy.engines.flowDifferences.isEmpty)
        let (stats, _, pairs) = try measure(policy)
        #expect(stats.tokens > 100)
        for p in pairs { #expect(p.rollout.map(\.bitPattern) == p.train.map(\.bitPattern)) }
        #expect(stats.maxAbsDlogp == 0)
        for site in [LinearSite(.q, layer: 0), LinearSite(.down, layer: 3), LinearSite(.lmHead, layer: -1)] {
            let r = try #require(policy.rollout.kernel.quantizedWeights(site))
            let t = try #require(policy.training.kernel.quantizedWeights(site))
            #expect(r.values.map(\.bitPattern) == t.values.map(\.bitPattern))
            #expect(r.scales.map(\.bitPattern) == t.scales.map(\.bitPattern))
            // The LM head stays plain BF16 in the FP8 presets (DeepSeek-V3, vLLM).
            #expect(r.scales.contains { $0 != 1 } == (site.kind != .lmHead), "\(site)")
        }

        try policy.setEngines(UnifiedFlowTests.pair(rolloutOnly))
        let names = policy.engines.flowDifferences.map(\.rollout.name)
        #expect(names.contains("FProp q k v o gate up down") && names.contains("linear weights (at each sync)"))
        let (off, _, _) = try measure(policy)
        #expect(off.maxAbsDlogp > 0 && off.k3 > 0)
        let r = try #require(policy.rollout.kernel.quantizedWeights(LinearSite(.q, layer: 0)))
        let t = try #require(policy.training.kernel.quantizedWeights(LinearSite(.q, layer: 0)))
        #expect(r.values != t.values)
    }

    /// An FP8 KV cache in the rollout alone breaks the identity; the same rounding of keys
    /// and values in the training forward (`kv` in both engines) restores it.
    @Test func fp8KVCacheIsContainedOnlyWhenTrainingRoundsKeysAndValuesToo() throws {
        var pair = UnifiedFlowTests.pair(.identical)
        pair.rollout.kvCache = .e4m3
        let policy = try Policy(master: labModel(), engines: pair, backend: PortableBackend())
        #expect(policy.engines.flowDifferences.map(\.rollout.name) == ["keys and values (KV cache)"])
        let (rolloutOnly, _, _) = try measure(policy)
        #expect(rolloutOnly.maxAbsDlogp > 0)
        pair.training.kvCache = .e4m3
        try policy.setEngines(pair)
        #expect(policy.engines.flowDifferences.isEmpty)
        let (both, _, pairs) = try measure(policy)
        #expect(both.maxAbsDlogp == 0)
        for p in pairs { #expect(p.rollout.map(\.bitPattern) == p.train.map(\.bitPattern)) }
    }

    /// HYBRID (E5M2 gradients) changes the backward only: the forward flow and the mismatch
    /// are those of E4M3 everywhere, the weight gradients are not.
    @Test func hybridChangesOnlyTheBackward() throws {
        let e4m3 = UnifiedFlowTests.pair(.fp8Unified)
        var hybrid = e4m3
        hybrid.training = .fp8(group: 16, block: 16, sources: .none, backward: .e5m2)
        #expect(hybrid.training.forwardFlow == e4m3.training.forwardFlow)
        #expect(hybrid.training.backwardFlow != e4m3.training.backwardFlow)
        let master = labModel()
        let tokens: [Int32] = [1, 5, 9, 14, 3, 30, 2, 7, 7, 4]
        func gradient(_ pair: EnginePair) throws -> (logits: [Float], grad: [Float]) {
            let policy = try Policy(master: master, engines: pair, backend: PortableBackend())
            let batch = PackedBatch(sequences: [tokens])
            let fw = policy.training.forward(batch)
            let targets = Array(tokens.dropFirst()) + [0]
            var dLogProb = [Float](repeating: -1, count: tokens.count)
            dLogProb[tokens.count - 1] = 0
            var g = ModelWeights(config: master.config)
            policy.training.backward(batch, targets: targets, dLogProb: dLogProb, forward: fw, grads: &g)
            return (fw.logProbs, g.data)
        }
        let a = try gradient(e4m3), b = try gradient(hybrid)
        #expect(a.logits.map(\.bitPattern) == b.logits.map(\.bitPattern))
        #expect(a.grad != b.grad)
    }
}

/// Delayed scaling (TransformerEngine): one amax history per operand, the scale from the
/// history before the use, an outlier beyond it overflowing — and counted.
@Suite struct DelayedScalingTests {
    static let site = LinearSite(.q, layer: 0)

    /// The default model with layer 0's q projection the identity, so that q = x as the
    /// engine quantized it; FP8 weights with power-of-two scales hold 1 exactly.
    static func kernel(saturate: Bool, window: Int) throws -> EngineKernel {
        var master = labModel()
        let slot = DelayedScalingTests.site.slot(in: master)
        for r in 0..<slot.rows { for c in 0..<slot.cols { master.data[slot.offset + r * slot.cols + c] = r == c ? 1 : 0 } }
        var p = PrecisionProfile.fp8(group: 16, block: 16, sources: .none, accumulation: .fp32)
        p.weights.powerOfTwoScales = true
        p.activation = .fp32
        p.fprop.input.granularity = .tensor
        p.fprop.input.saturate = saturate
        p.scaleRule = .delayed(history: window, margin: 0)
        return try EngineKernel(master: master, profile: p, backend: PortableBackend())
    }

    /// q as the rule says: x / s rounded to E4M3 (clamped when saturating), times s.
    static func expected(_ x: [Float], scale s: Float, saturate: Bool) -> [Float] {
        let r = Rounder(format: .e4m3, saturate: saturate)
        return x.map { r.round($0 / s) * s }
    }

    @Test func theScaleComesFromTheHistoryBeforeTheUse() throws {
        let kernel = try DelayedScalingTests.kernel(saturate: true, window: 3)
        let c = LlamaConfig.labDefault.hiddenSize
        let amaxes: [Float] = [0.5, 2, 1, 0.25, 0.125]
        var history: [Float] = []
        var overflows = 0
        for (t, a) in amaxes.enumerated() {
            var x = randomRow(c, seed: UInt64(t))
            let m = x.map(abs).max()!
            x = x.map { $0 / m * a }          // amax exactly a (a power of two times a ratio ≤ 1)
            let amax = x.map(abs).max()!
            var y = [Float](repeating: 0, count: c)
            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                kernel.forward(DelayedScalingTests.site, x: xp.baseAddress!, rows: 1, y: yp.baseAddress!) } }
            // Scale 1 before the first use (TransformerEngine's initial state), then the
            // largest amax of the last 3 uses over E4M3's max.
            let s: Float = history.isEmpty ? 1 : history.suffix(3).max()! / 448
            #expect(y.map(\.bitPattern) == DelayedScalingTests.expected(x, scale: s, saturate: true).map(\.bitPattern), "use \(t)")
            // A use whose amax exceeds the history's overflows (E4M3 rounds up to 464 to 448).
            overflows += x.filter { abs($0 / s) >= 464 }.count
            history.append(amax)
            #expect(kernel.state.history(site: DelayedScalingTests.site, role: .fpropInput) == Array(history.suffix(3)))
        }
        #expect(overflows > 0, "the amax of use 1 is 4× the history's")
        #expect((kernel.state.overflows[.fpropInput] ?? 0) == overflows)
    }

    @Test(arguments: [true, false])
    func anOutlierBeyondTheHistoryOverflowsAndIsCounted(saturate: Bool) throws {
        let kernel = try DelayedScalingTests.kernel(saturate: saturate, window: 4)
        let c = LlamaConfig.labDefault.hiddenSize
        func use(_ x: [Float]) -> [Float] {
            var y = [Float](repeating: 0, count: c)
            x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
                kernel.forward(DelayedScalingTests.site, x: xp.baseAddress!, rows: 1, y: yp.baseAddress!) } }
            return y
        }
        var x = randomRow(c, seed: 1).map { $0 * 0.5 }
        x[0] = 1 // amax 1
        _ = use(x)
        _ = use(x)                           // history [1, 1]: scale 1/448
        let before = kernel.state.overflows[.fpropInput] ?? 0
        var outlier = x
        outlier[5] = 3                       // 3 · 448 = 1344 > 464: beyond E4M3 at this scale
        outlier[9] = -2
        let y = use(outlier)
        #expect((kernel.state.overflows[.fpropInput] ?? 0) - before == 2)
        let s: Float = 1 / 448
        if saturate {
            #expect(y[5] == 448 * s && y[9] == -448 * s)
            #expect(y[1] == DelayedScalingTests.expected([outlier[1]], scale: s, saturate: true)[0])
        } else {
            // E4M3 has no infinity: the overflow is NaN, and a NaN operand poisons every
            // output of its row (0 · NaN is NaN), as on the hardware.
            #expect(y.allSatisfy { $0.isNaN })
        }
        // The outlier joins the history: the next use scales to it and nothing overflows.
        let after = kernel.state.overflows[.fpropInput] ?? 0
        _ = use(outlier)
        #expect((kernel.state.overflows[.fpropInput] ?? 0) == after)
    }

    /// Before the first use the scale is 1, so values below half E4M3's smallest subnormal
    /// (2^-10) flush to zero — counted per operand, zeros in the input not included.
    @Test func valuesFlushedToZeroAreCounted() throws {
        let kernel = try DelayedScalingTests.kernel(saturate: true, window: 4)
        let c = LlamaConfig.labDefault.hiddenSize
        var x = [Float](repeating: 0.5, count: c)
        for i in 0..<5 { x[i] = 1e-4 }           // < 2^-10 ≈ 9.8e-4: flushed
        x[5] = 0                                  // zero in, zero out: not an underflow
        x[6] = 0.0015                             // > 2^-10: rounds to 2^-9, kept
        var y = [Float](repeating: 0, count: c)
        x.withUnsafeBufferPointer { xp in y.withUnsafeMutableBufferPointer { yp in
            kernel.forward(DelayedScalingTests.site, x: xp.baseAddress!, rows: 1, y: yp.baseAddress!) } }
        #expect(kernel.state.underflows[.fpropInput] == 5)
        #expect(y[0] == 0 && y[6] == 0x1p-9)
    }

    /// A weight sync (after an optimizer step) keeps the histories; a new profile resets them.
    @Test func historiesSurviveASyncButNotANewProfile() throws {
        var pair = Preset.fp8Unified.engines(for: .labDefault)
        for p in [\EnginePair.rollout, \EnginePair.training] {
            pair[keyPath: p].fprop.input.granularity = .tensor
            pair[keyPath: p].dgrad.input.granularity = .tensor
            pair[keyPath: p].wgrad.input.granularity = .tensor
            pair[keyPath: p].wgradActivation.granularity = .tensor
            pair[keyPath: p].scaleRule = .delayedDefault
        }
        let policy = try Policy(master: labModel(), engines: pair, backend: PortableBackend())
        _ = policy.score([1, 5, 9, 14, 3, 2])
        let site = LinearSite(.up, layer: 1)
        let h = policy.training.kernel.state.history(site: site, role: .fpropInput)
        #expect(h.count == 1)
        try policy.setMaster(policy.master)
        #expect(policy.training.kernel.state.history(site: site, role: .fpropInput) == h)
        try policy.setEngines(pair)
        #expect(policy.training.kernel.state.history(site: site, role: .fpropInput).isEmpty)
    }
}

func randomRow(_ n: Int, seed: UInt64) -> [Float] {
    var rng = RandomStream(seed: seed, name: "row")
    return (0..<n).map { _ in Float(rng.nextUnit() * 2 - 1) }
}

/// MXFP8's DGrad runs along the weights' output features, so the engine keeps a second copy
/// of the weights quantized in 32×1 blocks (as MXFP8 kernels keep a column-wise copy).
@Suite struct MXFP8Tests {
    @Test func dgradUsesColumnWiseWeightBlocks() throws {
        let master = labModel()
        let profile = PrecisionProfile.mxfp8(sources: .none)
        let kernel = try EngineKernel(master: master, profile: profile, backend: PortableBackend())
        let site = LinearSite(.up, layer: 0)          // W (F, C): dx (rows, C) = dy (rows, F) · W
        let slot = site.slot(in: master)
        let (out, inDim, rows) = (slot.rows, slot.cols, 5)
        let w = Array(master.data[slot.offset..<(slot.offset + slot.count)])
        let dy = (0..<rows).flatMap { randomRow(out, seed: UInt64(100 + $0)) }
        let x = (0..<rows).flatMap { randomRow(inDim, seed: UInt64(200 + $0)) }
        var dx = [Float](repeating: 0, count: rows * inDim), dW = [Float](repeating: 0, count: out * inDim)
        kernel.backward(site, dy: dy, x: x, rows: rows, dx: &dx, dW: &dW)
        // Reference in Double from the dequantized operands: dy in 1×32 groups along F, W in
        // 32×1 blocks along F (column-wise) — or, wrongly, in 1×32 along C (row-wise).
        func mx(_ g: ScaleGranularity) -> Quantization { Quantization(format: .e4m3, saturate: true, granularity: g, formula: .mx) }
        let qdy = try mx(.rowGroups(32)).quantize(dy, rows: rows, cols: out).dequantized()
        let colWise = try mx(.columnGroups(32)).quantize(w, rows: out, cols: inDim).dequantized()
        let rowWise = try mx(.rowGroups(32)).quantize(w, rows: out, cols: inDim).dequantized()
        func product(_ wq: [Float]) -> [Double] {
            (0..<(rows * inDim)).map { e in
                let (i, j) = (e / inDim, e % inDim)
                return (0..<out).reduce(0.0) { $0 + Double(qdy[i * out + $1]) * Double(wq[$1 * inDim + j]) }
            }
        }
        let right = product(colWise), wrong = product(rowWise)
        let bf16 = 0x1p-8   // dx is rounded to BF16; the products are exact, the sums float32
        var worstRight = 0.0, worstWrong = 0.0
        for (e, v) in dx.enumerated() {
            let scale = max(abs(right[e]), 1e-3)
            worstRight = max(worstRight, abs(Double(v) - right[e]) / scale)
            worstWrong = max(worstWrong, abs(Double(v) - wrong[e]) / scale)
        }
        #expect(worstRight <= 2 * bf16, "dx vs column-wise reference: \(worstRight)")
        #expect(worstWrong > 4 * bf16, "the row-wise copy would have given nearly the same dx: \(worstWrong)")
    }
}

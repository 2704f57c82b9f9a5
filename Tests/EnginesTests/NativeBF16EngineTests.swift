import Foundation
import Engines
import Mismatch
import Model
import Numerics
import Testing

/// The engines on the `openblas` backend with native BF16 products: every BF16 output is one
/// chain of fixed order whatever the rows batched with it, so the control experiment still
/// gives bit-identical engines, and BF16 against FP16 keeps its meaning.
@Suite(.enabled(if: BF16Kernel.available, "this processor has no AVX512_BF16 instructions"))
struct NativeBF16EngineTests {
    @Test func identicalEnginesAgreeBitForBitOnNativeProducts() throws {
        var pair = Preset.identical.engines(hiddenSize: LlamaConfig.labDefault.hiddenSize)
        pair.rollout.sources = .none
        pair.training.sources = .none
        let backend = LibraryBackend(.openblas)
        #expect(backend.nativeBF16)
        let policy = try Policy(master: labModel(), engines: pair, backend: backend)
        let (stats, _, pairs) = try measure(policy)
        for p in pairs { #expect(p.rollout.map(\.bitPattern) == p.train.map(\.bitPattern)) }
        #expect(stats.k1 == 0 && stats.k3 == 0 && stats.maxAbsDlogp == 0)
        #expect(stats.tokens > 100)
    }

    /// The BF16 preset's mismatch on native products is the emulation's in size (the same
    /// roundings, summed in another order): k3 within a factor of 2 of it, and still at least
    /// 4× FP16's.
    @Test func theBF16MismatchKeepsItsSize() throws {
        let master = labModel()
        let engines = Preset.bf16.engines(hiddenSize: 64)
        let native = try measure(try Policy(master: master, engines: engines, backend: LibraryBackend(.openblas)), count: 16).0
        let emulated = try measure(try Policy(master: master, engines: engines, backend: PortableBackend()), count: 16).0
        let fp16 = try measure(try Policy(master: master, engines: Preset.fp16.engines(hiddenSize: 64), backend: PortableBackend()), count: 16).0
        print("k3 native \(native.k3), emulated \(emulated.k3), fp16 \(fp16.k3)")
        #expect(native.k3 > emulated.k3 / 2 && native.k3 < emulated.k3 * 2)
        #expect(native.k3 >= 4 * fp16.k3)
    }

    /// Under BF16 engines on native products the weights are held as BF16 pairs alone: what
    /// reads them gets the rounded master back (`quantizedWeights`), and DGrad, made from the
    /// pairs at the first backward (or from the values at the sync, `preparingDgrad`),
    /// computes dy·W with the bits of a product prepared from the master itself; a second
    /// backward reuses what the first made.
    @Test(arguments: [false, true])
    func weightsHeldAsPairsAloneServeEveryReader(preparingDgrad: Bool) throws {
        let master = labModel()
        let kernel = try EngineKernel(master: master, profile: Preset.bf16.engines(hiddenSize: master.config.hiddenSize).training,
                                      backend: LibraryBackend(.openblas), preparingDgrad: preparingDgrad)
        #expect(kernel.madeDgradPairs == preparingDgrad)
        for site in [LinearSite(.q, layer: 0), LinearSite(.down, layer: 1), LinearSite(.lmHead, layer: -1)] {
            let s = site.slot(in: master)
            let slice = Array(master.data[s.offset..<(s.offset + s.count)])
            let held = try #require(kernel.quantizedWeights(site))
            #expect(held.values.map(\.bitPattern) == slice.map { Rounder(format: .bf16).round($0).bitPattern })
            let p = kernel.profile.forSite(site)
            let direct = QuantizedGEMM(recipe: GemmRecipe(a: p.dgrad.input, b: p.weights, output: p.gradient), backend: LibraryBackend(.openblas))
            for rows in [7, 40] {
                let dy = (0..<(rows * s.rows)).map { Float(sin(Double($0) * 0.3)) }
                let x = (0..<(rows * s.cols)).map { Float(cos(Double($0) * 0.2)) }
                var dx = [Float](repeating: 0, count: rows * s.cols), dW = [Float](repeating: 0, count: s.count)
                kernel.backward(site, dy: dy, x: x, rows: rows, dx: &dx, dW: &dW)
                let expected = try direct.multiply(dy, slice, m: rows, n: s.cols, k: s.rows).c
                #expect(dx.map(\.bitPattern) == expected.map(\.bitPattern), "\(site), \(rows) rows")
            }
        }
        #expect(kernel.madeDgradPairs)
    }

    /// A sync after training steps makes DGrad's weights at once, and training goes on with
    /// the bits it has when they are made at the first backward: two pretraining runs, the
    /// second with the policy's engines rebuilt (no backward yet) before every step.
    @Test func aSyncAfterTrainingPreparesDgradWithTheSameBits() throws {
        let master = labModel()
        let engines = Preset.bf16.engines(hiddenSize: master.config.hiddenSize)
        let policy = try Policy(master: master, engines: engines, backend: LibraryBackend(.openblas))
        let batch = PackedBatch(sequences: prompts(6).map { $0 + [5, 6, 7] })
        func step() throws -> [Float] {
            let forward = policy.training.forward(batch, keepForBackward: true)
            let targets = batch.tokens.map { _ in Int32(4) }
            var grads = ModelWeights(config: master.config)
            policy.training.backward(batch, targets: targets, dLogProb: [Float](repeating: -1, count: targets.count),
                                     forward: forward, grads: &grads)
            return grads.data
        }
        let first = try step()
        #expect(policy.training.kernel.madeDgradPairs)
        try policy.setMaster(master)  // a sync after a backward: DGrad made at once
        #expect(policy.training.kernel.madeDgradPairs)
        #expect(try step().map(\.bitPattern) == first.map(\.bitPattern))
        try policy.setEngines(engines)  // new engines: DGrad made at the first backward again
        #expect(!policy.training.kernel.madeDgradPairs)
        #expect(try step().map(\.bitPattern) == first.map(\.bitPattern))
    }
}

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
        let backend = OpenBLASBackend()
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
        let native = try measure(try Policy(master: master, engines: engines, backend: OpenBLASBackend()), count: 16).0
        let emulated = try measure(try Policy(master: master, engines: engines, backend: PortableBackend()), count: 16).0
        let fp16 = try measure(try Policy(master: master, engines: Preset.fp16.engines(hiddenSize: 64), backend: PortableBackend()), count: 16).0
        print("k3 native \(native.k3), emulated \(emulated.k3), fp16 \(fp16.k3)")
        #expect(native.k3 > emulated.k3 / 2 && native.k3 < emulated.k3 * 2)
        #expect(native.k3 >= 4 * fp16.k3)
    }
}

import Engines
import Model
import Numerics
import RL
import Testing

@Suite struct LossScaleSettingTests {
    /// `set loss_scale dynamic` after a static scale: dynamic scaling from 2^16, in the
    /// settings and in the trainer's scaler.
    @Test func dynamicAfterStaticStartsFrom65536() throws {
        var settings = RLSettings()
        try settings.set("loss_scale", "8")
        #expect(settings.lossScaler.isStatic && settings.lossScaler.initialScale == 8)
        try settings.set("loss_scale", "dynamic")
        #expect(!settings.lossScaler.isStatic)
        #expect(settings.lossScaler.initialScale == 65536)

        let t = try smallTrainer(.fp16)
        try t.set("loss_scale", "8")
        #expect(t.scaler.scale == 8)
        try t.set("loss_scale", "dynamic")
        #expect(t.scaler.scale == 65536)
        #expect(t.settings.values.first { $0.0 == "loss_scale" }?.1 == "dynamic from 65536.0")
    }

    /// A forward pass that overflows: the step is skipped with its cause, the weights stay,
    /// and the count of steps in a row grows until an update applies.
    @Test func forwardSkipsAreCountedWithTheirCause() throws {
        let t = try smallTrainer(.fp16)
        // Weights so large that the FP16 forward overflows (65504) in the first layer.
        var w = t.policy.master
        for i in w.data.indices { w.data[i] = w.data[i] * 5000 }
        try t.policy.setMaster(w)
        for k in 1...3 {
            let before = bits(t.policy.master.data)
            let m = try t.step()
            #expect(m.skipped && m.skipCause == .forward && m.skippedInARow == k)
            #expect(bits(t.policy.master.data) == before)
            #expect((m.skipAdvice != nil) == (k >= 2))
            #expect(m.skipAdvice?.contains("forward activations, not in the gradients") ?? true)
        }
    }

    /// A dynamic scale far too large skips step after step while it backs off: that is how
    /// it finds its scale, and no advice is given.
    @Test func dynamicBackOffSkipsGetNoAdvice() throws {
        let t = try smallTrainer(.fp16) { $0.lossScaler = LossScalerSettings(initialScale: 0x1p40, growthInterval: 3) }
        var inARow = 0
        for _ in 0..<4 {
            let m = try t.step()
            #expect(m.skipped && m.skipCause == .gradients)
            inARow += 1
            #expect(m.skippedInARow == inARow)
            #expect(m.skipAdvice == nil, "\(m.skipAdvice ?? "")")
        }
    }
}

import Engines
import Model
import Numerics
import RL
import Testing

@Suite struct LossScaleSettingTests {
    /// Dynamic scaling after a static scale: the trainer's scaler starts again from the
    /// settings' initial scale, 2^16 by default (the `loss_scale` setting's typed path to
    /// these settings is tested in LabTests).
    @Test func dynamicAfterStaticStartsFrom65536() throws {
        let t = try smallTrainer(.fp16)
        var s = t.settings
        s.lossScaler = LossScalerSettings(initialScale: 8, isStatic: true)
        try t.setSettings(s)
        #expect(t.scaler.scale == 8)
        s.lossScaler = LossScalerSettings()
        try t.setSettings(s)
        #expect(t.scaler.scale == 65536)
        #expect(!t.settings.lossScaler.isStatic)
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

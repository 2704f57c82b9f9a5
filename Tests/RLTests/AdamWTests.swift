import Numerics
import RL
import Testing

/// AdamW's update, eight elements at a time on the lab's threads, against its formula written
/// plainly one element at a time in double (as `torch.optim.AdamW` with decoupled decay, the
/// moments stored in float32): the same bits for every weight and moment, over three steps,
/// on a count that is neither a multiple of eight nor of a thread's block, and on a range of
/// trainable elements whose others stay as they are.
@Suite struct AdamWTests {
    @Test(arguments: [nil, 1_003..<71_234] as [Range<Int>?])
    func theUpdateIsItsFormulaElementByElement(range: Range<Int>?) {
        let count = 90_005
        var rng = RandomStream(seed: 41, name: "adamw")
        let settings = AdamWSettings(learningRate: 3e-3, beta1: 0.9, beta2: 0.98, epsilon: 1e-8, weightDecay: 0.1)
        var optimizer = AdamW(parameterCount: count)
        var weights = (0..<count).map { _ in Float(rng.nextUnit() * 2 - 1) }
        var expected = weights
        var m = [Float](repeating: 0, count: count), v = m
        for step in 1...3 {
            var grad = (0..<count).map { _ in Float(rng.nextUnit() * 2 - 1) * 1e-2 }
            grad[7] = 0
            grad[count - 1] = 3e4
            optimizer.update(&weights, grad: grad, settings: settings, range: range)
            let b1 = settings.beta1, b2 = settings.beta2
            let c1 = 1 - powD(b1, Double(step)), c2 = 1 - powD(b2, Double(step))
            let lr = settings.learningRate, decay = settings.learningRate * settings.weightDecay
            for i in range ?? 0..<count {
                let g = Double(grad[i])
                m[i] = Float(b1 * Double(m[i]) + (1 - b1) * g)
                v[i] = Float(b2 * Double(v[i]) + (1 - b2) * g * g)
                let mhat = Double(m[i]) / c1, vhat = Double(v[i]) / c2
                let w = Double(expected[i])
                expected[i] = Float(w - lr * (mhat / (vhat.squareRoot() + settings.epsilon)) - decay * w)
            }
        }
        #expect(weights.map(\.bitPattern) == expected.map(\.bitPattern))
        #expect(optimizer.m.map(\.bitPattern) == m.map(\.bitPattern))
        #expect(optimizer.v.map(\.bitPattern) == v.map(\.bitPattern))
    }
}

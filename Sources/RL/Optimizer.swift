// AdamW on the FP32 master weights, global-norm gradient clipping, and the FP16 loss scaler.

import Model
import Numerics

/// Hyper-parameters of one AdamW update.
public struct AdamWSettings: Sendable, Hashable, Codable {
    public var learningRate: Double
    public var beta1: Double
    public var beta2: Double
    public var epsilon: Double
    public var weightDecay: Double

    public init(learningRate: Double, beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
    }
}

/// AdamW (Loshchilov & Hutter, decoupled weight decay), as `torch.optim.AdamW`:
///
///   m ← β1·m + (1−β1)·g;   v ← β2·v + (1−β2)·g²;   t ← t + 1
///   θ ← θ − lr·( (m / (1−β1^t)) / (√(v / (1−β2^t)) + ε) + λ·θ )
///
/// Moments are float32 like the master weights; each element is updated in double and
/// rounded once. Bias corrections use the lab's deterministic `powD`.
public struct AdamW: Sendable {
    /// The parameters the moments cover.
    public let parameterCount: Int
    /// The moments as held: empty while they are still all zero (a model that is only
    /// measured never pays for two float32 copies of itself per optimizer).
    private var storedM: [Float] = []
    private var storedV: [Float] = []
    /// Updates taken (skipped updates do not count).
    public var t: Int

    public init(parameterCount: Int) {
        self.parameterCount = parameterCount
        t = 0
    }

    /// First and second moments (the weights' layout); zeros before the first update.
    public var m: [Float] {
        get { storedM.isEmpty ? [Float](repeating: 0, count: parameterCount) : storedM }
        set { storedM = newValue }
    }
    public var v: [Float] {
        get { storedV.isEmpty ? [Float](repeating: 0, count: parameterCount) : storedV }
        set { storedV = newValue }
    }

    /// The lengths of the moments, without materialising zeros.
    public var momentCounts: (m: Int, v: Int) {
        (storedM.isEmpty ? parameterCount : storedM.count, storedV.isEmpty ? parameterCount : storedV.count)
    }

    /// Applies one update to `weights` with gradient `grad` (same layout), to the elements in
    /// `range` only (the trainable ones; all by default): the others, moments included, are
    /// left as they are.
    public mutating func update(_ weights: inout [Float], grad: [Float], settings s: AdamWSettings, range: Range<Int>? = nil) {
        if storedM.isEmpty { storedM = [Float](repeating: 0, count: parameterCount) }
        if storedV.isEmpty { storedV = [Float](repeating: 0, count: parameterCount) }
        precondition(weights.count == storedM.count && grad.count == storedM.count && storedV.count == storedM.count,
                     "optimizer state does not fit the weights")
        t += 1
        let b1 = s.beta1, b2 = s.beta2
        let c1 = 1 - powD(b1, Double(t)), c2 = 1 - powD(b2, Double(t))
        let lr = s.learningRate, eps = s.epsilon, decay = s.learningRate * s.weightDecay
        storedM.withUnsafeMutableBufferPointer { mp in
            storedV.withUnsafeMutableBufferPointer { vp in
                weights.withUnsafeMutableBufferPointer { wp in
                    grad.withUnsafeBufferPointer { gp in
                        // Each element on its own: blocks of them cut between threads give the
                        // same bits.
                        let all = range ?? 0..<gp.count
                        let block = 1 << 14
                        forEachRange((all.count + block - 1) / block, minimumCost: 1 << 18, cost: { _ in block }) { blocks in
                            let first = all.lowerBound + blocks.lowerBound * block
                            let end = min(all.upperBound, all.lowerBound + blocks.upperBound * block)
                            // Eight elements at a time, each lane the element's own operations in
                            // double (so the bits of one at a time); the last few padded with zeros.
                            var i = first
                            while i < end {
                                let count = min(8, end - i)
                                func load(_ p: UnsafePointer<Float>) -> SIMD8<Double> {
                                    if count == 8 { return SIMD8<Double>(UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)) }
                                    var lanes = SIMD8<Float>()
                                    for lane in 0..<count { lanes[lane] = p[i + lane] }
                                    return SIMD8<Double>(lanes)
                                }
                                func store(_ x: SIMD8<Float>, _ p: UnsafeMutablePointer<Float>) {
                                    if count == 8 { return UnsafeMutableRawPointer(p + i).storeBytes(of: x, as: SIMD8<Float>.self) }
                                    for lane in 0..<count { p[i + lane] = x[lane] }
                                }
                                let g = load(gp.baseAddress!)
                                let m = SIMD8<Float>(b1 * load(mp.baseAddress!) + (1 - b1) * g)
                                let v = SIMD8<Float>(b2 * load(vp.baseAddress!) + (1 - b2) * g * g)
                                store(m, mp.baseAddress!)
                                store(v, vp.baseAddress!)
                                let mhat = SIMD8<Double>(m) / c1, vhat = SIMD8<Double>(v) / c2
                                let w = load(wp.baseAddress!)
                                store(SIMD8<Float>(w - lr * (mhat / (vhat.squareRoot() + eps)) - decay * w), wp.baseAddress!)
                                i += count
                            }
                        }
                    }
                }
            }
        }
    }
}

/// ‖g‖₂ over all elements, summed in double in index order (NaN or inf if any element is).
public func globalNorm(_ g: [Float]) -> Double {
    var s = 0.0
    for x in g { s += Double(x) * Double(x) }
    return s.squareRoot()
}

/// Scales `g` so its global norm is at most `maxNorm` (0 = no clipping), as
/// `torch.nn.utils.clip_grad_norm_`: g ← g · min(1, maxNorm / (‖g‖ + 1e-6)). Returns the norm
/// before clipping.
@discardableResult
public func clipGradients(_ g: inout [Float], maxNorm: Double) -> Double {
    let norm = globalNorm(g)
    guard maxNorm > 0, norm.isFinite else { return norm }
    let coefficient = maxNorm / (norm + 1e-6)
    if coefficient < 1 {
        let c = Float(coefficient)
        for i in 0..<g.count { g[i] *= c }
    }
    return norm
}

/// The dynamic loss scaler of mixed-precision FP16 training (Micikevicius et al.; PyTorch
/// `GradScaler`, Megatron): the loss gradient is multiplied by `scale` before the backward
/// pass so small gradients survive FP16's range, and divided out of the float32 master
/// gradients before clipping.
///
///   inf/NaN in the gradients  →  the update is skipped, scale ← max(scale/2, min_scale)
///   `growthInterval` clean updates in a row  →  scale ← 2·scale
///
/// A static scaler never changes its scale (steps with inf/NaN are still skipped).
public struct LossScaler: Sendable, Hashable, Codable {
    public var settings: LossScalerSettings
    public private(set) var scale: Double
    /// Clean updates since the last change of scale.
    public private(set) var cleanSteps = 0
    /// Updates skipped for inf/NaN gradients, in all.
    public private(set) var overflows = 0
    /// Times the scale doubled / halved.
    public private(set) var growths = 0
    public private(set) var backoffs = 0
    /// Loss-gradient entries that underflowed FP16 even after scaling (see `countUnderflow`).
    public private(set) var underflows = 0

    public init(settings: LossScalerSettings = LossScalerSettings()) {
        self.settings = settings
        scale = settings.initialScale
    }

    /// Records the outcome of one backward pass; returns whether the update may be applied.
    public mutating func update(finite: Bool) -> Bool {
        if !finite {
            overflows += 1
            cleanSteps = 0
            if !settings.isStatic {
                scale = max(scale / 2, settings.minScale)
                backoffs += 1
            }
            return false
        }
        cleanSteps += 1
        if !settings.isStatic && cleanSteps >= settings.growthInterval {
            scale *= 2
            cleanSteps = 0
            growths += 1
        }
        return true
    }

    /// Counts the nonzero scaled loss gradients that FP16 cannot hold as normal numbers
    /// (|g·scale| < 2^-14): they lose bits or flush to zero in the first FP16 rounding.
    public mutating func countUnderflow(_ scaled: [Float]) -> Int {
        var count = 0
        for x in scaled where x != 0 && abs(x) < 0x1p-14 { count += 1 }
        underflows += count
        return count
    }

    /// Changes the settings; the scale restarts from the new initial scale when it changes
    /// or the scaler becomes static.
    public mutating func configure(_ new: LossScalerSettings) {
        if new != settings {
            if new.initialScale != settings.initialScale || new.isStatic { scale = new.initialScale; cleanSteps = 0 }
            settings = new
        }
    }
}

// The matrix products of one engine: weights quantized once per sync, activations quantized
// per product, each product under the profile's recipe.

import Model
import Numerics

/// The operands an engine quantizes, for the overflow counts and the delayed-scaling
/// histories.
public enum OperandRole: String, CaseIterable, Sendable {
    /// Linear weights, quantized at each sync (FProp layout, and DGrad's when it differs).
    case weights
    /// FProp's activation operand x.
    case fpropInput = "fprop x"
    /// DGrad's output-gradient operand dy.
    case dgradGradient = "dgrad dy"
    /// WGrad's operands: dy and the saved activation x, along the token axis.
    case wgradGradient = "wgrad dy"
    case wgradActivation = "wgrad x"
}

/// What an engine's quantization has done since its profile was set: overflow counts per
/// operand role, and the amax histories of delayed scaling. Carried across weight syncs
/// (the optimizer changing the weights does not reset a recipe's state); reset when the
/// profile changes.
public final class ScalingState {
    /// Elements that overflowed their format (clamped, or ±inf/NaN without saturation).
    public private(set) var overflows: [OperandRole: Int] = [:]
    /// Elements that were already NaN or infinite before quantization.
    public private(set) var nonFinite: [OperandRole: Int] = [:]
    /// Non-zero elements that became zero (flushed below the format's smallest subnormal at
    /// their scale): counted for 8-bit formats, where it is how gradients vanish.
    public private(set) var underflows: [OperandRole: Int] = [:]
    /// Delayed scaling: the amax of each use, oldest first, per (site, role).
    public private(set) var histories: [String: [Float]] = [:]

    public init() {}

    /// An operand used unrounded: only its non-finite inputs count.
    func recordNonFinite(_ role: OperandRole, _ count: Int) {
        if count > 0 { nonFinite[role, default: 0] += count }
    }

    /// The counts of an operand rounded as the product packed it (`multiplyRoundingA`): what
    /// `record` takes from a quantized matrix.
    func recordRounded(_ role: OperandRole, _ counts: (overflowed: Int, nonFinite: Int)) {
        if counts.overflowed > 0 { overflows[role, default: 0] += counts.overflowed }
        recordNonFinite(role, counts.nonFinite)
    }

    func record(_ role: OperandRole, _ m: QuantizedMatrix, format: NumberFormat? = nil, input: UnsafePointer<Float>? = nil) {
        if m.saturated > 0 { overflows[role, default: 0] += m.saturated }
        if m.nonFinite > 0 { nonFinite[role, default: 0] += m.nonFinite }
        if let input, let format, m.values.count > 0, format.exponentBits + format.mantissaBits < 8 {
            let flushed = m.values.withUnsafeBufferPointer { flushedToZero(input, $0.baseAddress!, m.values.count) }
            if flushed > 0 { underflows[role, default: 0] += flushed }
        }
    }

    /// The amax a delayed-scaling use computes its scale from (nil: scale 1, the history is
    /// still empty), then — after the use — `push` appends the use's own amax.
    func delayedAmax(_ key: String, margin: Int) -> Float? {
        guard let h = histories[key], !h.isEmpty else { return nil }
        var m: Float = 0
        for a in h { m = (a.isNaN || m.isNaN) ? .nan : max(m, a) }
        return m * Float(sign: .plus, exponent: margin, significand: 1)
    }

    func push(_ key: String, amax: Float, window: Int) {
        var h = histories[key, default: []]
        h.append(amax)
        if h.count > window { h.removeFirst(h.count - window) }
        histories[key] = h
    }

    /// The history of one operand use site, e.g. `layer 0 q` and role `.fpropInput`.
    public func history(site: LinearSite, role: OperandRole) -> [Float] {
        histories[ScalingState.key(site, role)] ?? []
    }

    static func key(_ site: LinearSite, _ role: OperandRole) -> String { "\(site) \(role.rawValue)" }
}

/// A `LinearKernel` in an engine's precision. Holds the engine's copy of the weights:
/// linear weights quantized per the profile, everything else rounded to `otherWeights`.
public final class EngineKernel: LinearKernel {
    public let profile: PrecisionProfile
    public let backend: any MatmulBackend
    /// The engine's weights: embedding, norms and biases rounded to `otherWeights`. The
    /// linear weights' slots keep the master's values: the products read the prepared
    /// weights (`prepared`, `quantizedWeights`), never these. When rounding changes no value
    /// (a BF16 checkpoint under BF16 engines) this is the master itself, not a copy.
    public private(set) var weights: ModelWeights
    /// Linear weights as FProp uses them, stored (out, in) with the profile's granularity.
    private var prepared: [LinearSite: PreparedOperand] = [:]
    /// The same weights as DGrad uses them, K running along the output features: quantized
    /// with the granularity transposed (1×G becomes G×1, R×C becomes C×R) when that differs,
    /// as MXFP8 keeps a row-wise and a column-wise copy; otherwise the FProp copy's values.
    /// Missing for a site until its first backward when the FProp copy is held as BF16 pairs
    /// alone (`dgradWeights`).
    private var preparedDgrad: [LinearSite: PreparedOperand] = [:]
    /// Overflow counts and delayed-scaling histories.
    public let state: ScalingState
    /// Weight elements that overflowed their format at the last sync.
    public private(set) var saturated = 0

    /// Whether a linear site's weights are prepared the same way under `a` and `b`: the same
    /// quantization, the same layout for the products, the same merging of adapters. The
    /// weights' quantization depends on nothing else (no history, no stream), so two such
    /// engines hold the same bits.
    static func preparesAlike(_ a: PrecisionProfile, _ b: PrecisionProfile, site: LinearSite, lora: Bool) -> Bool {
        let pa = a.forSite(site), pb = b.forSite(site)
        func packed(_ p: PrecisionProfile) -> Bool { p.weights.granularity != .unscaled || p.fprop.accumulation != .fp32 }
        return pa.weights == pb.weights && packed(pa) == packed(pb) && (!lora || a.sources.loraMerged == b.sources.loraMerged)
    }

    /// Whether engines of profiles `a` and `b` prepare every weight of a model of `config`
    /// alike (its other weights too), so that one lends the other all of them.
    public static func preparesAllAlike(_ a: PrecisionProfile, _ b: PrecisionProfile, config: LlamaConfig) -> Bool {
        // Every layer has the same sites: one layer's stand for all (a configuration may name
        // millions of layers before any file says otherwise).
        var oneLayer = config
        oneLayer.numHiddenLayers = min(config.numHiddenLayers, 1)
        let lora = config.lora != nil
        return a.otherWeights == b.otherWeights
            && LinearSite.all(oneLayer).allSatisfy { preparesAlike(a, b, site: $0, lora: lora) }
    }

    /// Whether a backward has made DGrad's own packing of some weight (`dgradWeights`): an
    /// engine that trains. The next sync then makes them at once (`preparingDgrad`).
    public var madeDgradPairs: Bool { preparedDgrad.values.contains { $0.isPackedForNativeBF16 } }

    /// Quantizes the master weights per the profile (a weight sync). `state` carries the
    /// previous engine's counts and histories across a sync under the same profile.
    /// `donor`, another engine synced from the same master weights (the other engine of the
    /// pair), lends the weights it prepared alike instead of their being quantized again: the
    /// same bits, held once (a model of half a billion parameters is not held four times).
    /// `preparingDgrad`: weights held as BF16 pairs alone get DGrad's packing now, from their
    /// values, instead of from the pairs at the first backward (a sync between training
    /// steps, where a backward follows; the same bits either way).
    public init(master: ModelWeights, profile: PrecisionProfile, backend: any MatmulBackend,
                state: ScalingState = ScalingState(), sharingWith donor: EngineKernel? = nil,
                preparingDgrad: Bool = false) throws(NumericsError) {
        self.profile = profile
        self.backend = backend
        self.state = state
        let sites = LinearSite.all(master.config)
        if let donor, donor.weights.config == master.config,
           EngineKernel.preparesAllAlike(donor.profile, profile, config: master.config) {
            // Everything alike: the donor's weights, shared.
            prepared = donor.prepared
            preparedDgrad = donor.preparedDgrad
            weights = donor.weights
            for site in sites {
                let q = prepared[site]!
                saturated += q.matrix.saturated
                state.record(.weights, q.matrix)
                var dgradRule = profile.forSite(site).weights
                dgradRule.granularity = dgradRule.granularity.transposed
                if dgradRule != profile.forSite(site).weights { state.record(.weights, preparedDgrad[site]!.matrix) }
            }
            return
        }
        var w = master
        let other = Rounder(format: profile.otherWeights)
        let linearNames = Set(sites.map { $0.slot(in: master).name })
        // Non-matrix parameters: rounded to their storage format. The master's buffer stays
        // shared until a value changes: a slot already in the format is not copied.
        for s in master.slots where !linearNames.contains(s.name) || (master.config.tieWordEmbeddings && s.name == master.embedding.name) {
            let unchanged = w.data.withUnsafeBufferPointer { p in other.leavesUnchanged(p.baseAddress! + s.offset, count: s.count) }
            if unchanged { continue }
            w.data.withUnsafeMutableBufferPointer { p in other.round(p.baseAddress! + s.offset, into: p.baseAddress! + s.offset, count: s.count) }
        }
        let merged = profile.sources.loraMerged && master.config.lora != nil
        for site in sites {
            let p = profile.forSite(site)
            var dgradRule = p.weights
            dgradRule.granularity = p.weights.granularity.transposed
            let separateDgrad = dgradRule != p.weights
            let s = site.slot(in: master)
            // Merged LoRA: the adapter's (α/r)·B·A joins the weight before its quantization.
            var mergedValues: [Float]?
            if merged && master.config.lora!.adapts(site) {
                var values = Array(master.data[s.offset..<(s.offset + s.count)])
                master.data.withUnsafeBufferPointer { d in
                    values.withUnsafeMutableBufferPointer { v in master.addAdapterProduct(site, from: d.baseAddress!, into: v.baseAddress!) }
                }
                mergedValues = values
            }
            // Otherwise quantized from the master's slice in place (no copy of it first).
            func quantized(_ rule: Quantization, transposed: Bool) throws(NumericsError) -> PreparedOperand {
                if let mergedValues {
                    return try PreparedOperand(mergedValues, rows: s.rows, cols: s.cols, transposed: transposed, quantization: rule)
                }
                return try master.data.withUnsafeBufferPointer { d throws(NumericsError) in
                    try PreparedOperand(UnsafeBufferPointer(rebasing: d[s.offset..<(s.offset + s.count)]), rows: s.rows, cols: s.cols,
                                        transposed: transposed, quantization: rule)
                }
            }
            // BF16 products on the BF16 instructions: the weights as BF16 pairs alone, half the
            // bytes every decode step reads and half those of the float32 values; plain BF16
            // rounding packs them straight from the values, never storing them rounded.
            func pairs(transposed: Bool) throws(NumericsError) -> PreparedOperand {
                guard mergedValues == nil, p.weights == Quantization(format: .bf16) else {
                    return try quantized(p.weights, transposed: transposed).packedForNativeBF16(keepingValues: false)
                }
                return master.data.withUnsafeBufferPointer { d in
                    PreparedOperand.bf16Pairs(UnsafeBufferPointer(rebasing: d[s.offset..<(s.offset + s.count)]), rows: s.rows,
                                              cols: s.cols, transposed: transposed)
                }
            }
            let q: PreparedOperand
            // Every forward product reuses the weights as its right operand: lay them out once
            // for the fused kernel when the products run on it (scaled or limited accumulation).
            // Otherwise they go to the backend as B = Wᵀ: stored so once, they are not
            // transposed again at every product (each decode step's products are small).
            if p.weights.granularity != .unscaled || p.fprop.accumulation != .fp32 {
                q = try quantized(p.weights, transposed: true).packedAsRightOperand()
            } else if EngineKernel.nativeBF16(backend, p.fprop.input, p.weights) {
                q = try pairs(transposed: true)
            } else {
                q = try quantized(p.weights, transposed: true).untransposedForBackend()
            }
            prepared[site] = q
            saturated += q.matrix.saturated
            state.record(.weights, q.matrix)
            if separateDgrad {
                let qd = try quantized(dgradRule, transposed: false)
                state.record(.weights, qd.matrix)
                preparedDgrad[site] = qd
            } else if !q.valuesInPairsOnly {
                // Packed for the native BF16 product (if it runs there) at the first backward:
                // a model that is only measured never needs it.
                preparedDgrad[site] = PreparedOperand(matrix: q.matrix, transposed: false)
            } else if preparingDgrad && EngineKernel.nativeDgrad(profile, site, backend) {
                preparedDgrad[site] = try pairs(transposed: false)
            }
        }
        weights = w
    }

    /// DGrad's weights for `site`, packed for the native BF16 product the first time a
    /// backward needs them there.
    /// With FProp's weights held as BF16 pairs alone, DGrad's are made from them then (the same
    /// values), and kept as pairs alone too when DGrad runs natively.
    private func dgradWeights(_ site: LinearSite) -> PreparedOperand {
        let stored = preparedDgrad[site]
        if let stored, stored.isPackedForNativeBF16 { return stored }
        guard let w = stored ?? prepared[site].map({ PreparedOperand(matrix: $0.withValues().matrix, transposed: false) }) else {
            preconditionFailure("no weights for \(site)")
        }
        guard EngineKernel.nativeDgrad(profile, site, backend) else {
            if stored == nil { preparedDgrad[site] = w }
            return w
        }
        let packed = w.packedForNativeBF16(keepingValues: stored != nil)
        preparedDgrad[site] = packed
        return packed
    }

    /// Whether DGrad's product for `site` runs on the native BF16 kernel with the FProp
    /// copy's values (the weights' tiling symmetric, float32 accumulation).
    private static func nativeDgrad(_ profile: PrecisionProfile, _ site: LinearSite, _ backend: any MatmulBackend) -> Bool {
        let p = profile.forSite(site)
        var rule = p.weights
        rule.granularity = rule.granularity.transposed
        return rule == p.weights && p.dgrad.accumulation == .fp32 && EngineKernel.nativeBF16(backend, p.dgrad.input, rule)
    }

    /// Whether a product of operands quantized so runs on the backend's native BF16 kernel.
    static func nativeBF16(_ backend: any MatmulBackend, _ a: Quantization, _ b: Quantization) -> Bool {
        a.granularity == .unscaled && b.granularity == .unscaled && BF16Kernel.computes(a.format, b.format, on: backend)
    }

    /// The quantized weights of one linear layer as FProp uses them: values (out, in) and scales.
    public func quantizedWeights(_ site: LinearSite) -> QuantizedMatrix? { prepared[site]?.withValues().matrix }


    /// y (rows, out) = x (rows, in) · Wᵀ: x quantized per FProp, the product accumulated per
    /// the recipe (split-K if the source is on), the output rounded to the activation format —
    /// or kept float32 for the LM head when `logits_fp32` is on.
    /// The packings shared by the products of a `sharingInput` call, while it runs.
    private var memo: BF16Kernel.PackMemo?

    /// Runs `body` with the native BF16 packings of `input` (as A in a forward, as B in a weight
    /// gradient) made once and shared by its products, then let go. `input` stays alive and
    /// unchanged meanwhile: the memo keys on its address. Nested calls keep the outer memo.
    public func sharingInput<R>(_ input: [Float], _ body: () -> R) -> R {
        guard memo == nil, !input.isEmpty else { return body() }
        return input.withUnsafeBufferPointer { pointer in
            memo = BF16Kernel.PackMemo(source: pointer.baseAddress!)
            defer { memo = nil; sharedNonFinite = nil }
            return body()
        }
    }

    /// The non-finite count of a `sharingInput` call's input, once a product has counted it:
    /// the products that read it used as it is (q, k and v; gate and up; their weight
    /// gradients) each record it without counting again.
    private var sharedNonFinite: (count: Int, nonFinite: Int)?

    public func forward(_ site: LinearSite, x: UnsafePointer<Float>, rows: Int, y: UnsafeMutablePointer<Float>) {
        guard let w = prepared[site] else { preconditionFailure("no weights for \(site)") }
        let inDim = w.matrix.cols, outDim = w.matrix.rows
        let p = profile.forSite(site)
        let output = profile.outputFormat(of: site)
        let gemm = QuantizedGEMM(recipe: GemmRecipe(a: p.fprop.input, b: p.weights, accumulation: p.fprop.accumulation, output: output),
                                 backend: backend)
        if gemm.multiplyInPlace(x, w, m: rows, n: outDim, k: inDim, splitK: p.sources.splitK, into: y) {
            recordUnrounded(.fpropInput, x, count: rows * inDim)
            return
        }
        if let counts = gemm.multiplyRoundingA(x, w, m: rows, n: outDim, k: inDim, splitK: p.sources.splitK, memo: memo, into: y) {
            state.recordRounded(.fpropInput, counts)
            return
        }
        let qx = quantize(x, rows: rows, cols: inDim, p.fprop.input, p.scaleRule, transposed: false, site: site, role: .fpropInput)
        gemm.multiplyPrepared(qx, w, m: rows, n: outDim, k: inDim, splitK: p.sources.splitK, into: y)
    }

    /// The counts of an operand used as it is (its rule leaves float32 unchanged): only
    /// non-finite inputs can be counted; nothing overflows or flushes.
    /// `known`: the count of x already made (DGrad's of dy, for WGrad). Returns the count.
    @discardableResult
    private func recordUnrounded(_ role: OperandRole, _ x: UnsafePointer<Float>, count: Int, known: Int? = nil) -> Int {
        let nonFinite = known ?? countOnce(x, count: count)
        state.recordNonFinite(role, nonFinite)
        return nonFinite
    }

    /// x's non-finite count, counted once per `sharingInput` call when x is its input.
    private func countOnce(_ x: UnsafePointer<Float>, count: Int) -> Int {
        guard let memo, memo.source == x else { return countNonFinite(x, count) }
        if let shared = sharedNonFinite, shared.count == count { return shared.nonFinite }
        let nonFinite = countNonFinite(x, count)
        sharedNonFinite = (count, nonFinite)
        return nonFinite
    }

    /// dx = dy · W (DGrad: dy quantized per the DGrad rule along the output features, the
    /// weights quantized along the same axis, output in the gradient format) and dW += dyᵀ · x
    /// (WGrad: both operands quantized along the token axis, output float32, added to the
    /// master gradient).
    public func backward(_ site: LinearSite, dy: UnsafePointer<Float>, x: UnsafePointer<Float>, rows: Int,
                         dx: UnsafeMutablePointer<Float>?, dW: UnsafeMutablePointer<Float>?) {
        let w = dgradWeights(site)
        let inDim = w.matrix.cols, outDim = w.matrix.rows
        let p = profile.forSite(site)
        var quantizedDy: PreparedOperand? = nil
        var dyNonFinite: Int? = nil   // dy's count, when DGrad read it as it is
        if let dx {
            var dgradWeights = p.weights
            dgradWeights.granularity = p.weights.granularity.transposed
            let gemm = QuantizedGEMM(recipe: GemmRecipe(a: p.dgrad.input, b: dgradWeights, accumulation: p.dgrad.accumulation,
                                                        output: p.gradient), backend: backend)
            if gemm.multiplyInPlace(dy, w, m: rows, n: inDim, k: outDim, into: dx) {
                dyNonFinite = recordUnrounded(.dgradGradient, dy, count: rows * outDim)
            } else if let counts = gemm.multiplyRoundingA(dy, w, m: rows, n: inDim, k: outDim, into: dx) {
                state.recordRounded(.dgradGradient, counts)
            } else {
                let qdy = quantize(dy, rows: rows, cols: outDim, p.dgrad.input, p.scaleRule, transposed: false, site: site, role: .dgradGradient)
                gemm.multiplyPrepared(qdy, w, m: rows, n: inDim, k: outDim, into: dx)
                quantizedDy = qdy
            }
        }
        // dW (out, in) = dyᵀ (out, rows) · x (rows, in): K is the token axis.
        guard let dW else { return }
        let recipe = GemmRecipe(a: p.wgrad.input, b: p.wgradActivation, accumulation: p.wgrad.accumulation, output: .fp32)
        let gemm = QuantizedGEMM(recipe: recipe, backend: backend)
        let product = UnsafeMutablePointer<Float>.allocate(capacity: outDim * inDim)
        defer { product.deallocate() }
        // The product into `product`, by the first of these ways the operands' rules allow.
        func weightGradient() {
            // Both operands rounded as the native product packs them, when their rules allow.
            if quantizedDy == nil, let counts = gemm.multiplyRoundingBoth(dy, transA: true, x, m: outDim, n: inDim, k: rows,
                                                                          memo: memo, into: product) {
                state.recordRounded(.wgradGradient, counts.a)
                state.recordRounded(.wgradActivation, counts.b)
                return
            }
            // Both float32 as they are (an FP32 engine): read where they lie.
            if gemm.multiplyBothInPlace(dy, transA: true, x, m: outDim, n: inDim, k: rows, into: product) {
                recordUnrounded(.wgradGradient, dy, count: rows * outDim, known: dyNonFinite)
                recordUnrounded(.wgradActivation, x, count: rows * inDim)
                return
            }
            let qx = quantize(x, rows: rows, cols: inDim, p.wgradActivation, p.scaleRule, transposed: false, site: site, role: .wgradActivation)
            if gemm.multiplyInPlace(dy, transA: true, qx, m: outDim, n: inDim, k: rows, into: product) {
                recordUnrounded(.wgradGradient, dy, count: rows * outDim, known: dyNonFinite)
            } else if quantizedDy == nil, let counts = gemm.multiplyRoundingA(dy, transA: true, qx, m: outDim, n: inDim, k: rows,
                                                                              into: product) {
                state.recordRounded(.wgradGradient, counts)
            } else {
                let qdyT: PreparedOperand
                if let quantizedDy, p.wgrad.input == p.dgrad.input, p.wgrad.input.granularity == .unscaled {
                    // Unscaled, dy quantizes element by element to the same values for both
                    // products: DGrad's copy serves WGrad too (counted for WGrad's role all the same).
                    state.record(.wgradGradient, quantizedDy.matrix, format: p.wgrad.input.format, input: dy)
                    qdyT = PreparedOperand(matrix: quantizedDy.matrix, transposed: true)
                } else {
                    qdyT = quantize(dy, rows: rows, cols: outDim, p.wgrad.input, p.scaleRule, transposed: true, site: site, role: .wgradGradient)
                }
                gemm.multiplyPrepared(qdyT, qx, m: outDim, n: inDim, k: rows, into: product)
            }
        }
        weightGradient()
        let pointers = UncheckedSendable((dW, UnsafePointer(product)))
        forEachChunk(outDim * inDim) { range in
            let (dW, product) = pointers.value
            for i in range { dW[i] += product[i] }
        }
    }

    /// Quantizes one operand per its rule and the profile's scale rule, counting overflows.
    private func quantize(_ x: UnsafePointer<Float>, rows: Int, cols: Int, _ q: Quantization, _ rule: ScaleRule,
                          transposed: Bool, site: LinearSite, role: OperandRole) -> PreparedOperand {
        var scaleAmax: Float? = nil
        var key = ""
        if case .delayed(_, let margin) = rule, q.granularity == .tensor {
            key = ScalingState.key(site, role)
            // An empty history gives scale 1: an amax equal to the format's max.
            scaleAmax = state.delayedAmax(key, margin: margin) ?? q.format.maxFinite
        }
        // Sizes were validated when the profile was set; a failure here is a programming error.
        let m = try! q.quantize(UnsafeBufferPointer(start: x, count: rows * cols), rows: rows, cols: cols, scaleAmax: scaleAmax)
        state.record(role, m, format: q.format, input: x)
        if case .delayed(let window, _) = rule, q.granularity == .tensor {
            state.push(key, amax: m.amax, window: window)
        }
        return PreparedOperand(matrix: m, transposed: transposed)
    }
}

/// How many of `n` elements are non-zero in `x` and zero in `q`.
func flushedToZero(_ x: UnsafePointer<Float>, _ q: UnsafePointer<Float>, _ n: Int) -> Int {
    typealias V = SIMD16<Float>
    var count = 0, i = 0
    let zero = V(repeating: 0)
    while i + 16 <= n {
        let a = UnsafeRawPointer(x + i).loadUnaligned(as: V.self)
        let b = UnsafeRawPointer(q + i).loadUnaligned(as: V.self)
        let mask = (a .!= zero) .& (b .== zero)
        if any(mask) { for l in 0..<16 where mask[l] { count += 1 } }
        i += 16
    }
    while i < n {
        if x[i] != 0 && q[i] == 0 { count += 1 }
        i += 1
    }
    return count
}

// Scaled quantization ("fake quantization"): values become a format's values times a scale.
//
// Shapes are written (rows, cols) of a row-major matrix; a vector is one row.

/// Which elements share one scale.
public enum ScaleGranularity: Hashable, Sendable, CustomStringConvertible {
    /// No scaling: the format's values themselves (scale 1), as BF16 or FP16 storage.
    case unscaled
    /// One scale for the whole tensor (TransformerEngine's per-tensor scaling).
    case tensor
    /// One scale per 1×G group along each row (activations, per token and G channels:
    /// DeepSeek-V3 and Jet-RL use G = 128; MXFP8 uses 32). The last group of a row whose
    /// length is not a multiple of G is shorter.
    case rowGroups(Int)
    /// One scale per G×1 group down each column (an activation re-quantized along the other
    /// axis for the weight-gradient product).
    case columnGroups(Int)
    /// One scale per R×C block (weights: 128×128 in DeepSeek-V3 and Jet-RL); edge blocks are
    /// smaller.
    case blocks(Int, Int)

    public var description: String {
        switch self {
        case .unscaled: return "unscaled"
        case .tensor: return "tensor"
        case .rowGroups(let g): return "1x\(g)"
        case .columnGroups(let g): return "\(g)x1"
        case .blocks(let r, let c): return "\(r)x\(c)"
        }
    }

    /// The same tiling of the transposed matrix: 1×G ↔ G×1, R×C → C×R.
    public var transposed: ScaleGranularity {
        switch self {
        case .unscaled, .tensor: return self
        case .rowGroups(let g): return .columnGroups(g)
        case .columnGroups(let g): return .rowGroups(g)
        case .blocks(let r, let c): return .blocks(c, r)
        }
    }

    /// Parses `unscaled`, `tensor`, `1xG`, `Gx1` or `RxC`.
    public static func parse(_ text: String) throws(NumericsError) -> ScaleGranularity {
        let t = text.lowercased()
        if t == "unscaled" || t == "none" { return .unscaled }
        if t == "tensor" { return .tensor }
        let parts = t.split(separator: "x", omittingEmptySubsequences: false)
        if parts.count == 2, let r = Int(parts[0]), let c = Int(parts[1]) {
            guard r > 0, c > 0 else {
                throw .invalidArgument("scaling '\(text)': group and block sizes must be at least 1")
            }
            if r == 1 { return .rowGroups(c) }
            if c == 1 { return .columnGroups(r) }
            return .blocks(r, c)
        }
        throw .invalidArgument("unknown scaling '\(text)'; accepted: unscaled tensor 1xG Gx1 RxC (e.g. 1x128, 128x128)")
    }

    /// Checks sizes against a matrix: every size must be at least 1.
    func validate() throws(NumericsError) {
        switch self {
        case .unscaled, .tensor: return
        case .rowGroups(let g), .columnGroups(let g):
            if g < 1 { throw .invalidArgument("group size \(g) must be at least 1") }
        case .blocks(let r, let c):
            if r < 1 || c < 1 { throw .invalidArgument("block size \(r)x\(c) must be at least 1x1") }
        }
    }

    /// The (rows, cols) of one scale's tile, for a matrix of the given shape.
    func tile(rows: Int, cols: Int) -> (Int, Int) {
        switch self {
        case .unscaled, .tensor: return (max(rows, 1), max(cols, 1))
        case .rowGroups(let g): return (1, g)
        case .columnGroups(let g): return (g, 1)
        case .blocks(let r, let c): return (r, c)
        }
    }
}

/// How a scale is computed from the group's largest magnitude `amax`.
public enum ScaleFormula: String, Sendable, Hashable, CaseIterable {
    /// `s = amax / max; q = cast(x / s)` — DeepSeek-V3, vLLM.
    case amaxOverMax = "amax/max"
    /// `sc = max / amax; q = cast(clamp(x · sc, ±max)); s = 1 / sc` — TransformerEngine, verl.
    /// Differs from `amaxOverMax` in the last bit of some scales and values.
    case maxOverAmax = "max/amax"
    /// The OCP Microscaling (MX) rule: an E8M0 scale `s = 2^(⌊log2 amax⌋ − emax)`, emax the
    /// exponent of the format's largest normal (8 for E4M3, 15 for E5M2), and
    /// `q = cast(clamp(x / s, ±max))`. The scale is rounded *down*, so amax / s lies in
    /// [2^emax, 2^(emax+1)) and values above max are clamped: saturation is part of the rule.
    case mx = "mx"

    public static func parse(_ text: String) throws(NumericsError) -> ScaleFormula {
        switch text.lowercased() {
        case "amax/max", "deepseek", "vllm": return .amaxOverMax
        case "max/amax", "te", "transformer-engine", "verl": return .maxOverAmax
        case "mx", "ocp", "e8m0": return .mx
        default: throw .invalidArgument("unknown scale formula '\(text)'; accepted: amax/max max/amax mx")
        }
    }
}

/// A complete quantization rule: format, rounding and overflow, scaling granularity, the
/// scale formula, and whether scales are rounded to powers of two.
public struct Quantization: Hashable, Sendable, CustomStringConvertible {
    public var format: NumberFormat
    public var rounding: RoundingMode
    public var saturate: Bool
    public var granularity: ScaleGranularity
    public var formula: ScaleFormula
    /// Round each scale up to a power of two (E8M0-style, as MXFP8 and TransformerEngine's
    /// power-of-two option): `s = 2^⌈log2(amax / max)⌉`, so the group maximum never
    /// exceeds max and the scale multiplies exactly.
    public var powerOfTwoScales: Bool

    public init(format: NumberFormat, rounding: RoundingMode = .nearestEven, saturate: Bool = false,
                granularity: ScaleGranularity = .unscaled, formula: ScaleFormula = .amaxOverMax,
                powerOfTwoScales: Bool = false) {
        self.format = format
        self.rounding = rounding
        self.saturate = saturate
        self.granularity = granularity
        self.formula = formula
        self.powerOfTwoScales = powerOfTwoScales
    }

    /// No rounding at all: float32 as is.
    public static let none = Quantization(format: .fp32)

    /// Whether this rule leaves every float32 unchanged (saturating would turn ±∞ into ±max).
    public var isIdentity: Bool {
        format == .fp32 && granularity == .unscaled && rounding != .stochastic && !saturate
    }

    public var description: String {
        var s = format.name
        if granularity != .unscaled {
            s += " \(granularity) \(formula.rawValue)"
            if powerOfTwoScales { s += " pow2" }
        }
        if rounding != .nearestEven { s += " \(rounding.rawValue)" }
        if saturate { s += " sat" }
        return s
    }
}

/// A matrix quantized under a `Quantization`: the format's values `q` and one scale per tile,
/// so that the represented value is `q · scale`.
public struct QuantizedMatrix: Sendable {
    public let rows: Int
    public let cols: Int
    /// The format's values, row-major (rows, cols).
    public var values: [Float]
    /// One scale per tile, row-major over tiles (scaleRows, scaleCols).
    public var scales: [Float]
    public let tileRows: Int
    public let tileCols: Int
    /// Finite inputs whose scaled value would overflow the format under its own
    /// nearest rounding: clamped when saturating, ±inf or NaN otherwise. Never silent.
    public var saturated: Int
    /// Inputs that were NaN or infinite.
    public var nonFinite: Int
    /// The largest input magnitude (NaN if any input was NaN); NaN when unscaled, where it
    /// is not computed.
    public var amax: Float = .nan

    public var scaleRows: Int { (rows + tileRows - 1) / tileRows }
    public var scaleCols: Int { (cols + tileCols - 1) / tileCols }

    /// The scale of element (r, c).
    @inlinable public func scale(row r: Int, col c: Int) -> Float {
        scales[(r / tileRows) * scaleCols + c / tileCols]
    }

    /// The represented values `q · scale` in float32 (exact when scales are powers of two).
    public func dequantized() -> [Float] {
        var out = values
        if scales.allSatisfy({ $0 == 1 }) { return out }
        for r in 0..<rows {
            for c in 0..<cols { out[r * cols + c] = values[r * cols + c] * scale(row: r, col: c) }
        }
        return out
    }
}

extension Quantization {
    /// Quantizes a row-major (rows, cols) matrix. Stochastic rounding gives element i the
    /// draw `stream.draw(at: offset + i)`.
    ///
    /// Per band of tile rows, vectorised across columns whatever the tile shape: the column
    /// maxima of the magnitudes over the band's rows, each tile's amax from them and its scale
    /// (`tileScale`), each column's divisor, multiplier and clamp spread from its tile; then each
    /// row is scaled, its overflows counted, clamped and rounded, 16 lanes at a time. Every
    /// step is per element (or an exact maximum), so the results are those of a tile-by-tile
    /// scalar loop, bit for bit.
    ///
    /// `scaleAmax`, with tensor granularity, is the amax the scale is computed from instead
    /// of the tensor's own (delayed scaling: the largest amax of a history window, times
    /// 2^margin). Values beyond that scale's range overflow and are counted in `saturated`.
    public func quantize(_ x: UnsafeBufferPointer<Float>, rows: Int, cols: Int,
                         stream: RandomStream = RandomStream(key: 0), offset: UInt64 = 0,
                         scaleAmax: Float? = nil)
        throws(NumericsError) -> QuantizedMatrix {
        try granularity.validate()
        guard rows >= 0, cols >= 0, x.count == rows * cols else {
            throw .invalidArgument("quantize: \(x.count) values do not fill a \(rows)x\(cols) matrix")
        }
        let (tr, tc) = granularity.tile(rows: rows, cols: cols)
        let rounder = Rounder(format: format, mode: rounding, saturate: saturate)
        let overflowThreshold = Quantization.overflowThreshold(format)
        let maxFinite = format.maxFinite
        let sr = (rows + tr - 1) / tr, sc = (cols + tc - 1) / tc
        var scales = [Float](repeating: 1, count: granularity == .unscaled ? 1 : sr * sc)
        var nonFinite = 0, saturated = 0
        var largest: Float = 0
        let values = [Float](unsafeUninitializedCapacity: rows * cols) { q, initialized in
            initialized = rows * cols
            guard let src0 = x.baseAddress, let dst0 = q.baseAddress else { return }
            if granularity == .unscaled {
                (saturated, nonFinite) = countLargeAndNonFinite(src0, rows * cols, overflowThreshold)
                rounder.round(src0, into: dst0, count: rows * cols, stream: stream, offset: offset)
                return
            }
            // Per column, for the current band of tile rows: the largest magnitude (as bits),
            // and the divisor, multiplier and clamp mask of the column's tile.
            let columnMax = UnsafeMutablePointer<UInt32>.allocate(capacity: cols)
            let divisors = UnsafeMutablePointer<Float>.allocate(capacity: cols)
            let multipliers = UnsafeMutablePointer<Float>.allocate(capacity: cols)
            let clamps = UnsafeMutablePointer<UInt32>.allocate(capacity: cols)
            defer { columnMax.deallocate(); divisors.deallocate(); multipliers.deallocate(); clamps.deallocate() }
            scales.withUnsafeMutableBufferPointer { scaleBuffer in
                for br in 0..<sr {
                    let r0 = br * tr, r1 = min(rows, r0 + tr)
                    nonFinite += columnMaxima(src0 + r0 * cols, rows: r1 - r0, cols: cols, into: columnMax)
                    var divides = false, multiplies = false
                    for bc in 0..<sc {
                        let c0 = bc * tc, c1 = min(cols, c0 + tc)
                        // amax over the tile (NaN anywhere makes it NaN; inf makes it inf).
                        let top = maxBits(columnMax + c0, c1 - c0)
                        var amax = top > 0x7F80_0000 ? Float.nan : Float(bitPattern: top)
                        largest = (amax.isNaN || largest.isNaN) ? .nan : max(largest, amax)
                        // Delayed scaling: the scale from the history's amax, not the tensor's.
                        if let given = scaleAmax, granularity == .tensor { amax = given }
                        let (scale, multiplier, divisor, clamp) = tileScale(amax: amax, maxFinite: maxFinite)
                        scaleBuffer[br * sc + bc] = scale
                        divides = divides || divisor != 1
                        multiplies = multiplies || multiplier != 1
                        for c in c0..<c1 {
                            divisors[c] = divisor
                            multipliers[c] = multiplier
                            clamps[c] = clamp ? ~0 : 0
                        }
                    }
                    for r in r0..<r1 {
                        let src = src0 + r * cols, dst = dst0 + r * cols
                        // Scale into the destination, count what would overflow, clamp where
                        // the formula says so, then round in place. A tile's divisor or
                        // multiplier is 1 when it does not use it: x / 1 and x · 1 are x.
                        switch (divides, multiplies) {
                        case (true, true):
                            saturated += scaleRow(true, true, src, dst, cols, divisors, multipliers, clamps, maxFinite, overflowThreshold)
                        case (true, false):
                            saturated += scaleRow(true, false, src, dst, cols, divisors, multipliers, clamps, maxFinite, overflowThreshold)
                        case (false, true):
                            saturated += scaleRow(false, true, src, dst, cols, divisors, multipliers, clamps, maxFinite, overflowThreshold)
                        case (false, false):
                            saturated += scaleRow(false, false, src, dst, cols, divisors, multipliers, clamps, maxFinite, overflowThreshold)
                        }
                        rounder.round(dst, into: dst, count: cols, stream: stream, offset: offset &+ UInt64(r * cols))
                    }
                }
            }
        }
        var result = QuantizedMatrix(rows: rows, cols: cols, values: values, scales: scales,
                                     tileRows: tr, tileCols: tc, saturated: 0, nonFinite: 0)
        result.saturated = saturated
        result.nonFinite = nonFinite
        result.amax = granularity == .unscaled ? .nan : largest
        return result
    }

    /// A tile's scale from its amax, and how its values are brought into the format's range:
    /// divided by `divisor` or multiplied by `multiplier` (the other is 1), then clamped to
    /// ±max if `clamp`. Scale 1 (no scaling) when amax is zero, infinite or NaN, or when the
    /// scale would not be a normal float32.
    func tileScale(amax: Float, maxFinite: Float) -> (scale: Float, multiplier: Float, divisor: Float, clamp: Bool) {
        var scale: Float = 1     // what the stored value is multiplied by
        var multiplier: Float = 1, divisor: Float = 1
        var clamp = false
        if granularity != .unscaled, amax.isFinite, amax > 0 {
            if formula == .mx {
                scale = Quantization.mxScale(amax: amax, format: format)
                multiplier = 1 / scale    // exact: a power of two
                clamp = true
            } else if powerOfTwoScales {
                scale = Quantization.powerOfTwoScale(amax: amax, max: maxFinite)
                switch formula {
                case .amaxOverMax, .mx: divisor = scale
                case .maxOverAmax: multiplier = 1 / scale; clamp = true // exact
                }
            } else {
                switch formula {
                case .amaxOverMax, .mx:
                    scale = amax / maxFinite
                    divisor = scale
                case .maxOverAmax:
                    multiplier = maxFinite / amax
                    scale = 1 / multiplier
                    clamp = true
                }
            }
            // A scale that underflows or overflows float32 falls back to 1.
            if !(scale.isNormal) { scale = 1; multiplier = 1; divisor = 1; clamp = false }
        }
        return (scale, multiplier, divisor, clamp)
    }

    /// Quantizes an array holding a row-major (rows, cols) matrix.
    public func quantize(_ x: [Float], rows: Int, cols: Int,
                         stream: RandomStream = RandomStream(key: 0), offset: UInt64 = 0,
                         scaleAmax: Float? = nil)
        throws(NumericsError) -> QuantizedMatrix {
        try x.withUnsafeBufferPointer { buf throws(NumericsError) in
            try quantize(buf, rows: rows, cols: cols, stream: stream, offset: offset, scaleAmax: scaleAmax)
        }
    }

    /// The smallest float32 magnitude that the format's own nearest rounding sends to
    /// ±inf or NaN (found by bisection over bit patterns: rounding is monotone).
    static func overflowThreshold(_ format: NumberFormat) -> Float {
        let probe = Rounder(format: format)
        var lo = format.maxFinite.bitPattern        // rounds to max: finite
        var hi = Float.infinity.bitPattern          // overflows
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2
            if probe.round(Float(bitPattern: mid)).isFinite { lo = mid } else { hi = mid }
        }
        return Float(bitPattern: hi)
    }

    /// The MX (E8M0) scale of a group: 2^(⌊log2 amax⌋ − emax), emax the exponent of the
    /// format's largest finite value; kept within 2^-126…2^127 (E8M0 reaches 2^-127, which
    /// float32 holds only as a subnormal).
    static func mxScale(amax: Float, format: NumberFormat) -> Float {
        let e = Int(amax.exponent) - Int(format.maxFinite.exponent)
        return Float(sign: .plus, exponent: min(127, max(-126, e)), significand: 1)
    }

    /// The smallest power of two p with amax / p ≤ max (computed exactly: p · max is exact).
    static func powerOfTwoScale(amax: Float, max maxFinite: Float) -> Float {
        var e = Int(amax.exponent) - Int(maxFinite.exponent) - 1
        while Double(sign: .plus, exponent: e, significand: 1) * Double(maxFinite) < Double(amax) { e += 1 }
        return Float(sign: .plus, exponent: e, significand: 1)
    }
}

// An independent reference for rounding, written from the format's definition only.
//
// It shares no code with Numerics' rounding: values come from the definition
// (-1)^s · 2^(e − bias) · (1 + m/2^Y) evaluated in Double, and rounding picks between the two
// neighbouring representable values by comparing exact Double distances. Ties go to the
// neighbour whose code is even. Overflow is decided by the same rule applied to a "virtual"
// next value one step above max finite (whose code parity says where a tie goes: to
// infinity for IEEE formats, whose max has an odd mantissa; back to max for E4M3, whose max
// 1.110·2^8 is even — the ml_dtypes behaviour).

import Numerics

struct ReferenceFormat {
    let x: Int        // exponent bits
    let y: Int        // mantissa bits
    let bias: Int
    let ieee: Bool    // all-ones exponent = inf/NaN (else: only mantissa all ones is NaN)

    init(_ f: NumberFormat) {
        x = f.exponentBits
        y = f.mantissaBits
        bias = f.bias
        ieee = f.specials == .ieee
    }

    var topField: Int { (1 << x) - 1 }

    /// Whether the non-negative code (field, mantissa) is a finite number.
    func isFinite(field: Int, mantissa: Int) -> Bool {
        if field < topField { return true }
        if ieee { return false }
        return mantissa != (1 << y) - 1
    }

    /// Value of a non-negative code, in Double, straight from the definition.
    func value(field: Int, mantissa: Int) -> Double {
        let two = { (k: Int) -> Double in Double(sign: .plus, exponent: k, significand: 1) }
        if field == 0 { return Double(mantissa) * two(1 - bias - y) }
        return (1 + Double(mantissa) / two(y)) * two(field - bias)
    }

    /// The largest finite code as (field, mantissa).
    var maxCode: (Int, Int) {
        if ieee { return (topField - 1, (1 << y) - 1) }
        if y == 0 { return (topField - 1, 0) }
        return (topField, (1 << y) - 2)
    }

    var maxFinite: Double { value(field: maxCode.0, mantissa: maxCode.1) }
    var minNormal: Double { Double(sign: .plus, exponent: 1 - bias, significand: 1) }

    /// The quantum (spacing) of representable values around |v| (v ≥ 0).
    func quantum(at v: Double) -> Double {
        let e = v >= minNormal ? Int(v.exponent) : 1 - bias
        return Double(sign: .plus, exponent: e - y, significand: 1)
    }

    /// The code integer (field << Y | mantissa) of a representable non-negative value.
    func code(of v: Double) -> Int {
        if v < minNormal { return Int(v / Double(sign: .plus, exponent: 1 - bias - y, significand: 1)) }
        let e = Int(v.exponent)
        let m = Int((v / Double(sign: .plus, exponent: e, significand: 1) - 1) * Double(sign: .plus, exponent: y, significand: 1))
        return (e + bias) << y | m
    }

    enum Outcome: Equatable {
        case value(Double)   // a finite representable value (signed)
        case overflow        // beyond max finite: the format's overflow rule applies
    }

    /// Neighbours lo ≤ |v| < hi (hi may be the virtual value above max), for finite v.
    func neighbours(_ magnitude: Double) -> (lo: Double, hi: Double) {
        let q = quantum(at: magnitude)
        let lo = (magnitude / q).rounded(.down) * q
        return (lo, lo == magnitude ? lo : lo + q)
    }

    /// Round-to-nearest-even of a finite v.
    func nearest(_ v: Double) -> Outcome {
        let a = abs(v)
        let (lo, hi) = a <= maxFinite ? neighbours(a) : (maxFinite, maxFinite + quantum(at: maxFinite))
        if a > hi { return .overflow }
        let pick: Double
        if a - lo < hi - a { pick = lo }
        else if a - lo > hi - a { pick = hi }
        else { pick = code(of: lo) % 2 == 0 ? lo : hi } // tie: the even code (hi's is lo's + 1)
        if pick > maxFinite { return .overflow }
        return .value(v < 0 ? -pick : pick)
    }

    /// Round toward zero of a finite v (overflow gives max finite, IEEE 754).
    func towardZero(_ v: Double) -> Double {
        let a = abs(v)
        if a >= maxFinite { return v < 0 ? -maxFinite : maxFinite }
        let lo = neighbours(a).lo
        return v < 0 ? -lo : lo
    }

    /// Every non-negative finite value, ascending, with its code.
    func allNonNegative() -> [(code: Int, value: Double)] {
        var out: [(Int, Double)] = []
        for field in 0...topField {
            for m in 0..<(1 << y) where isFinite(field: field, mantissa: m) {
                out.append((field << y | m, value(field: field, mantissa: m)))
            }
        }
        return out
    }
}

/// What production rounding should return for a finite input, per the reference.
func referenceResult(_ f: NumberFormat, _ mode: RoundingMode, saturate: Bool, _ v: Float) -> Float {
    let ref = ReferenceFormat(f)
    if v.isNaN { return v.sign == .minus ? -.nan : .nan }
    let overflow: Float = saturate ? (v < 0 ? -f.maxFinite : f.maxFinite)
        : (ref.ieee ? (v < 0 ? -.infinity : .infinity) : (v < 0 ? -.nan : .nan)) // NaN keeps the sign
    if v.isInfinite { return overflow }
    switch mode {
    case .nearestEven:
        switch ref.nearest(Double(v)) {
        case .value(let d): return Float(d)
        case .overflow: return overflow
        }
    case .towardZero:
        return Float(ref.towardZero(Double(v)))
    case .stochastic:
        fatalError("stochastic rounding has no single reference result")
    }
}

/// Bitwise equality that treats every NaN as equal to every NaN of the same sign, and
/// distinguishes +0 from −0.
func sameFloat(_ a: Float, _ b: Float) -> Bool {
    if a.isNaN || b.isNaN { return a.isNaN && b.isNaN && a.sign == b.sign }
    return a.bitPattern == b.bitPattern
}

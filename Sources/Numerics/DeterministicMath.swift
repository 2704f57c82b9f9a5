// Elementary functions that give the same bits on every machine.
//
// The C library's exp, log, sin and cos differ between platforms (and versions) in the last
// bit, which would make transcripts machine-dependent. These use only IEEE 754 operations
// that are correctly rounded everywhere (+, −, ×, ÷, fused multiply-add, exact scaling by
// powers of two), in a fixed order, so their results are identical wherever they run. They are
// accurate to about one ulp, which is all the lab needs; tests compare them with the C library.

// MARK: Double precision

private let ln2Hi = 0x1.62E42FEE00000p-1     // ln 2, high part (exact product with small k)
private let ln2Lo = 0x1.A39EF35793C76p-33    // ln 2 − ln2Hi
private let invLn2 = 0x1.71547652B82FEp0

/// e^x in double precision (error below 1 ulp).
///
/// Concretely: x = k·ln 2 + r with |r| ≤ ln2/2 (Cody–Waite, two-part ln 2), e^r by its
/// Taylor series to r^13/13! (remainder below 2^-57), then scaled by 2^k.
public func expD(_ x: Double) -> Double {
    if x.isNaN { return x }
    if x > 709.782712893384 { return .infinity }
    if x < -745.2 { return 0 }
    let k = (x * invLn2).rounded(.toNearestOrEven)
    let r = x.addingProduct(-k, ln2Hi).addingProduct(-k, ln2Lo)  // k·ln2Hi is exact
    var p = 1.0 / 6_227_020_800                                   // 1/13!
    for c in expCoefficients { p = c.addingProduct(p, r) }
    return scaleByPowerOfTwo(p, Int(k))
}

/// 1/12!, 1/11!, …, 1/1!, 1/0!: Horner's order for e^r.
private let expCoefficients: [Double] = (0...12).reversed().map { n in
    1 / (1...max(n, 1)).reduce(1.0) { $0 * Double($1) }
}

/// x · 2^n exactly (one rounding only if the result is subnormal), in two steps when 2^n
/// itself is out of range.
@inline(__always)
func scaleByPowerOfTwo(_ x: Double, _ n: Int) -> Double {
    if n > 1023 { return x * Double(sign: .plus, exponent: 1023, significand: 1) * Double(sign: .plus, exponent: n - 1023, significand: 1) }
    if n < -1022 { return x * Double(sign: .plus, exponent: -1022, significand: 1) * Double(sign: .plus, exponent: n + 1022, significand: 1) }
    return x * Double(sign: .plus, exponent: n, significand: 1)
}

/// Natural logarithm in double precision (error below 1 ulp).
///
/// Concretely: x = m · 2^e with m in [√½, √2); with f = m − 1 and s = f / (2 + f),
/// log m = 2·atanh(s) = 2s + 2s³/3 + 2s⁵/5 + … (|s| ≤ 0.1716, 12 terms), plus e·ln 2.
public func logD(_ x: Double) -> Double {
    if x.isNaN || x < 0 { return .nan }
    if x == 0 { return -.infinity }
    if x.isInfinite { return x }
    var e = Int(x.exponent)
    var m = x.significand                   // [1, 2)
    if m > 1.4142135623730951 { m *= 0.5; e += 1 }
    let f = m - 1
    let s = f / (2 + f)
    let s2 = s * s
    var p = 1.0 / 23
    var j = 21
    while j >= 1 { p = (1.0 / Double(j)).addingProduct(p, s2); j -= 2 }
    let logM = 2 * s * p
    let ef = Double(e)
    return ef * ln2Hi + (logM + ef * ln2Lo)
}

private let piOver2Hi = 0x1.921FB54400000p0
private let piOver2Mid = 0x1.0B4611A600000p-34
private let piOver2Lo = 0x1.3198A2E037073p-69

/// (sin x, cos x) in double precision, accurate to about one ulp for |x| < 2^20 (the lab's
/// angles are below a few thousand).
///
/// Concretely: x = k·π/2 + r with |r| ≤ π/4 (three-part π/2), Taylor series of sin r to r^19
/// and cos r to r^20, then the quadrant k mod 4 picks signs and order.
public func sinCosD(_ x: Double) -> (sin: Double, cos: Double) {
    if !x.isFinite { return (.nan, .nan) }
    let k = (x * 0x1.45F306DC9C883p-1).rounded(.toNearestOrEven)   // x · 2/π
    var r = x.addingProduct(-k, piOver2Hi)
    r = r.addingProduct(-k, piOver2Mid)
    r = r.addingProduct(-k, piOver2Lo)
    let r2 = r * r
    var sp = 0.0, cp = 0.0
    for c in sinCoefficients { sp = c.addingProduct(sp, r2) }   // Σ (−1)^j r^(2j) / (2j+1)!
    for c in cosCoefficients { cp = c.addingProduct(cp, r2) }   // Σ (−1)^(j+1) r^(2j) / (2j+2)!
    let s = r * sp
    let c = 1.0.addingProduct(cp, r2)
    switch Int(k.truncatingRemainder(dividingBy: 4) + 4) % 4 {
    case 0: return (s, c)
    case 1: return (c, -s)
    case 2: return (-s, -c)
    default: return (-c, s)
    }
}

/// Horner's order (highest power first) for sin r / r: (−1)^j / (2j+1)!, j = 9…0.
private let sinCoefficients: [Double] = (0...9).reversed().map { j in
    (j % 2 == 0 ? 1.0 : -1.0) / (1...(2 * j + 1)).reduce(1.0) { $0 * Double($1) }
}

/// Horner's order for (cos r − 1) / r²: (−1)^(j+1) / (2j+2)!, j = 9…0.
private let cosCoefficients: [Double] = (0...9).reversed().map { j in
    (j % 2 == 0 ? -1.0 : 1.0) / (1...(2 * j + 2)).reduce(1.0) { $0 * Double($1) }
}

/// x^y for x > 0, as e^(y · log x).
public func powD(_ x: Double, _ y: Double) -> Double { expD(y * logD(x)) }

// MARK: Float, 16 lanes at a time

/// e^x for 16 floats at once (error within about 2 ulps of float32), identical bits for
/// each lane whatever the others hold.
///
/// Concretely: x = k·ln 2 + r, |r| ≤ ln2/2, e^r by Taylor to r^7/7! (remainder < 2^-27),
/// scaled by 2^k in two exact halves, so subnormal results come out right; below −103.97
/// the result is 0 and above 88.72 it is inf.
@inlinable @inline(__always)
public func expLanes(_ x: SIMD16<Float>) -> SIMD16<Float> {
    let hi = SIMD16<Float>(repeating: 88.72283)
    let lo = SIMD16<Float>(repeating: -103.97208)
    let isNaN = .!(x .== x)
    // Clamped with masks: `clamped(lowerBound:upperBound:)` compiles to a loop over lanes.
    var v = x.replacing(with: 0, where: isNaN)
    v.replace(with: lo, where: v .< lo)
    v.replace(with: hi, where: v .> hi)
    // k = round-to-nearest-even(v·log2 e) by the 1.5·2^23 trick: adding it leaves the
    // integer in the low mantissa bits (|k| ≤ 150 here), so k's integer value is read from
    // the bit pattern instead of a per-lane conversion.
    let magic = SIMD16<Float>(repeating: 12_582_912)
    let shifted = v * 1.442695 + magic
    let k = shifted - magic
    var r = v.addingProduct(-k, SIMD16(repeating: 0.693359375))  // ln 2 high part (exact k·hi)
    r = r.addingProduct(-k, SIMD16(repeating: -2.12194440e-4))   // ln 2 − high part
    var p = SIMD16<Float>(repeating: 1.0 / 5040)
    p = SIMD16(repeating: 1.0 / 720).addingProduct(p, r)
    p = SIMD16(repeating: 1.0 / 120).addingProduct(p, r)
    p = SIMD16(repeating: 1.0 / 24).addingProduct(p, r)
    p = SIMD16(repeating: 1.0 / 6).addingProduct(p, r)
    p = SIMD16(repeating: 0.5).addingProduct(p, r)
    p = SIMD16(repeating: 1).addingProduct(p, r)
    p = SIMD16(repeating: 1).addingProduct(p, r)
    // 2^k in two halves so that k down to −150 and up to 128 stay representable.
    let ki = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000
    let k1 = ki &>> 1, k2 = ki &- k1
    let bias = SIMD16<Int32>(repeating: 127)
    let s1 = unsafeBitCast((k1 &+ bias) &<< 23, to: SIMD16<Float>.self)
    let s2 = unsafeBitCast((k2 &+ bias) &<< 23, to: SIMD16<Float>.self)
    var result = p * s1 * s2
    result.replace(with: SIMD16(repeating: .infinity), where: x .> hi)
    result.replace(with: SIMD16(repeating: 0), where: x .< lo)
    result.replace(with: x, where: isNaN)
    return result
}

/// e^x for one float: the same computation as one lane of `expLanes`.
@inlinable
public func expF(_ x: Float) -> Float { expLanes(SIMD16(repeating: x))[0] }

/// e^x applied in place to a buffer, 16 at a time (the tail through the same lanes).
@inlinable
public func expInPlace(_ x: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    while i + 16 <= n {
        let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
        UnsafeMutableRawPointer(x + i).storeBytes(of: expLanes(v), as: SIMD16<Float>.self)
        i += 16
    }
    if i < n {
        // The last n − i values through one vector, copied in and out whole (lane by lane
        // costs more than the exponentials of a short row).
        var tail = SIMD16<Float>(repeating: 0)
        withUnsafeMutableBytes(of: &tail) { $0.baseAddress!.copyMemory(from: x + i, byteCount: (n - i) * 4) }
        let e = expLanes(tail)
        withUnsafeBytes(of: e) { UnsafeMutableRawPointer(x + i).copyMemory(from: $0.baseAddress!, byteCount: (n - i) * 4) }
    }
}

/// Natural logarithm of a float, through the double-precision `logD` (one rounding at the end).
@inlinable
public func logF(_ x: Float) -> Float { Float(logD(Double(x))) }

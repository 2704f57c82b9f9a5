// Vectorised scans over float32 buffers, on bit patterns.
//
// For non-negative floats the order of bit patterns is the order of values, and every NaN
// pattern is above infinity's, so magnitudes can be compared as unsigned integers.

@usableFromInline typealias Bits16 = SIMD16<UInt32>

/// The largest magnitude in `x[0..<n]` (NaN if any element is NaN, +inf if any is infinite
/// and none is NaN) and the number of non-finite elements.
@inlinable
func amaxAndNonFinite(_ x: UnsafePointer<Float>, _ n: Int) -> (amax: Float, nonFinite: Int) {
    let magnitudeMask = Bits16(repeating: 0x7FFF_FFFF)
    let infinity = Bits16(repeating: 0x7F80_0000)
    var best = Bits16(repeating: 0)
    var count = SIMD16<UInt32>(repeating: 0)
    let one = SIMD16<UInt32>(repeating: 1), zero = SIMD16<UInt32>(repeating: 0)
    var i = 0
    while i + 16 <= n {
        let a = UnsafeRawPointer(x + i).loadUnaligned(as: Bits16.self) & magnitudeMask
        best = pointwiseMax(best, a)
        count &+= one.replacing(with: zero, where: a .< infinity)
        i += 16
    }
    var top = best.max()
    var nonFinite = Int(count.wrappedSum())
    while i < n {
        let a = x[i].bitPattern & 0x7FFF_FFFF
        top = max(top, a)
        if a >= 0x7F80_0000 { nonFinite += 1 }
        i += 1
    }
    return (Float(bitPattern: top > 0x7F80_0000 ? 0x7FC0_0000 : top), nonFinite)
}

/// How many of `x[0..<n]` are finite with magnitude at least `threshold` (a positive
/// float), and how many are not finite.
@inlinable
func countLargeAndNonFinite(_ x: UnsafePointer<Float>, _ n: Int, _ threshold: Float) -> (large: Int, nonFinite: Int) {
    let t = min(threshold.bitPattern, 0x7F80_0000)
    let magnitudeMask = Bits16(repeating: 0x7FFF_FFFF)
    let low = Bits16(repeating: t), infinity = Bits16(repeating: 0x7F80_0000)
    let one = Bits16(repeating: 1), zero = Bits16(repeating: 0)
    var atLeast = Bits16(repeating: 0), bad = Bits16(repeating: 0)
    var i = 0
    while i + 16 <= n {
        let a = UnsafeRawPointer(x + i).loadUnaligned(as: Bits16.self) & magnitudeMask
        atLeast &+= one.replacing(with: zero, where: a .< low)
        bad &+= one.replacing(with: zero, where: a .< infinity)
        i += 16
    }
    var large = Int(atLeast.wrappedSum()), nonFinite = Int(bad.wrappedSum())
    while i < n {
        let a = x[i].bitPattern & 0x7FFF_FFFF
        if a >= t { large += 1 }
        if a >= 0x7F80_0000 { nonFinite += 1 }
        i += 1
    }
    return (large - nonFinite, nonFinite)
}

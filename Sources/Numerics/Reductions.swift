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

/// How many of `x[0..<n]` are NaN or infinite: chunks of 2^15 elements, counted on the
/// threads from four chunks on (an FP32 engine counts every product's input), then added.
public func countNonFinite(_ x: UnsafePointer<Float>, _ n: Int) -> Int {
    let chunk = 1 << 15, chunks = (n + chunk - 1) / chunk
    guard chunks > 1 else { return countNonFiniteSerially(x, n) }
    return withUnsafeTemporaryAllocation(of: Int.self, capacity: chunks) { counts in
        let shared = UncheckedSendable((x, counts.baseAddress!))
        forEachRange(chunks, minimumCost: 4, cost: { _ in 1 }) { range in
            let (x, counts) = shared.value
            for c in range { counts[c] = countNonFiniteSerially(x + c * chunk, min(chunk, n - c * chunk)) }
        }
        return counts.reduce(0, +)
    }
}

/// How many of `x[0..<n]` are NaN or infinite, on the calling thread. Usually none is: first whether any is, from
/// the magnitudes' bit patterns plus 2^23 (only a non-finite one, at least infinity's
/// 0x7F800000, reaches the top bit) or-ed together, two chains side by side; the values are
/// counted only when one is.
@inlinable
func countNonFiniteSerially(_ x: UnsafePointer<Float>, _ n: Int) -> Int {
    let magnitudeMask = Bits16(repeating: 0x7FFF_FFFF), bump = Bits16(repeating: 0x0080_0000)
    var any0 = Bits16(repeating: 0), any1 = Bits16(repeating: 0)
    var i = 0
    while i + 32 <= n {
        any0 |= (UnsafeRawPointer(x + i).loadUnaligned(as: Bits16.self) & magnitudeMask) &+ bump
        any1 |= (UnsafeRawPointer(x + i + 16).loadUnaligned(as: Bits16.self) & magnitudeMask) &+ bump
        i += 32
    }
    var flagged = ((any0 | any1) & Bits16(repeating: 0x8000_0000)) != Bits16(repeating: 0)
    while i < n, !flagged {
        flagged = x[i].bitPattern & 0x7FFF_FFFF >= 0x7F80_0000
        i += 1
    }
    return flagged ? countLargeAndNonFinite(x, n, .infinity).nonFinite : 0
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

/// out[c] = the largest magnitude bit pattern of column c over `rows` rows of a row-major
/// matrix with `cols` columns (NaN patterns lie above infinity's), 16 columns at a time.
/// Returns how many of the elements are not finite.
@inlinable
func columnMaxima(_ x: UnsafePointer<Float>, rows: Int, cols: Int, into out: UnsafeMutablePointer<UInt32>) -> Int {
    let magnitudeMask = Bits16(repeating: 0x7FFF_FFFF), infinity = Bits16(repeating: 0x7F80_0000)
    let one = Bits16(repeating: 1), zero = Bits16(repeating: 0)
    var bad = Bits16(repeating: 0)
    var c = 0
    while c + 16 <= cols {
        var best = Bits16(repeating: 0)
        for r in 0..<rows {
            let a = UnsafeRawPointer(x + r * cols + c).loadUnaligned(as: Bits16.self) & magnitudeMask
            best = pointwiseMax(best, a)
            bad &+= one.replacing(with: zero, where: a .< infinity)
        }
        UnsafeMutableRawPointer(out + c).storeBytes(of: best, as: Bits16.self)
        c += 16
    }
    var nonFinite = Int(bad.wrappedSum())
    while c < cols {
        var best: UInt32 = 0
        for r in 0..<rows {
            let a = x[r * cols + c].bitPattern & 0x7FFF_FFFF
            best = max(best, a)
            if a >= 0x7F80_0000 { nonFinite += 1 }
        }
        out[c] = best
        c += 1
    }
    return nonFinite
}

/// The largest of `x[0..<n]`.
@inlinable
func maxBits(_ x: UnsafePointer<UInt32>, _ n: Int) -> UInt32 {
    var i = 0
    var top: UInt32 = 0
    if n >= 16 {
        var best = Bits16(repeating: 0)
        while i + 16 <= n {
            best = pointwiseMax(best, UnsafeRawPointer(x + i).loadUnaligned(as: Bits16.self))
            i += 16
        }
        // The largest lane, by halving (the generic `max()` is a call per use).
        let h8 = pointwiseMax(best.lowHalf, best.highHalf)
        let h4 = pointwiseMax(h8.lowHalf, h8.highHalf)
        let h2 = pointwiseMax(h4.lowHalf, h4.highHalf)
        top = max(h2[0], h2[1])
    }
    while i < n {
        top = max(top, x[i])
        i += 1
    }
    return top
}

/// dst[c] = src[c] / divisors[c] · multipliers[c] (each step only if `divide` / `multiply`),
/// clamped to ±maxFinite where clamps[c] is all ones and the value is finite; returns how many
/// scaled values are finite with magnitude at least `threshold`.
@inline(__always)
func scaleRow(_ divide: Bool, _ multiply: Bool, _ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
              _ n: Int, _ divisors: UnsafePointer<Float>, _ multipliers: UnsafePointer<Float>,
              _ clamps: UnsafePointer<UInt32>, _ maxFinite: Float, _ threshold: Float) -> Int {
    typealias V = SIMD16<Float>
    let t = min(threshold.bitPattern, 0x7F80_0000)
    let magnitudeMask = Bits16(repeating: 0x7FFF_FFFF), signMask = Bits16(repeating: 0x8000_0000)
    let low = Bits16(repeating: t), infinity = Bits16(repeating: 0x7F80_0000)
    let maxBitsV = Bits16(repeating: maxFinite.bitPattern)
    let one = Bits16(repeating: 1), zero = Bits16(repeating: 0)
    var count = Bits16(repeating: 0)
    var c = 0
    while c + 16 <= n {
        var v = UnsafeRawPointer(src + c).loadUnaligned(as: V.self)
        if divide { v = v / UnsafeRawPointer(divisors + c).loadUnaligned(as: V.self) }
        if multiply { v = v * UnsafeRawPointer(multipliers + c).loadUnaligned(as: V.self) }
        var u = unsafeBitCast(v, to: Bits16.self)
        let a = u & magnitudeMask
        let finite = a .< infinity
        count &+= one.replacing(with: zero, where: (a .< low) .| .!finite)
        // Clamp finite magnitudes above max to max, keeping the sign.
        let clamp = UnsafeRawPointer(clamps + c).loadUnaligned(as: Bits16.self) .!= zero
        u.replace(with: (u & signMask) | maxBitsV, where: clamp .& finite .& (a .> maxBitsV))
        UnsafeMutableRawPointer(dst + c).storeBytes(of: u, as: Bits16.self)
        c += 16
    }
    var large = Int(count.wrappedSum())
    while c < n {
        var v = src[c]
        if divide { v = v / divisors[c] }
        if multiply { v = v * multipliers[c] }
        if v.isFinite {
            if abs(v).bitPattern >= t { large += 1 }
            if clamps[c] != 0 { v = min(max(v, -maxFinite), maxFinite) }
        }
        dst[c] = v
        c += 1
    }
    return large
}

// The quantizer as it was before it was vectorised: tile by tile, row by row, kept as the
// reference that `Quantization.quantize` must match bit for bit. It uses only public API (its
// helpers are written out here).

import Numerics

/// The reference quantizer's result.
struct ReferenceQuantized: Equatable {
    var values: [Float]
    var scales: [Float]
    var saturated: Int
    var nonFinite: Int
}

extension Quantization {
    /// The (rows, cols) of one scale's tile.
    func referenceTile(rows: Int, cols: Int) -> (Int, Int) {
        switch granularity {
        case .unscaled, .tensor: return (max(rows, 1), max(cols, 1))
        case .rowGroups(let g): return (1, g)
        case .columnGroups(let g): return (g, 1)
        case .blocks(let r, let c): return (r, c)
        }
    }

    /// The smallest float32 magnitude the format's nearest rounding sends to inf or NaN.
    func referenceOverflowThreshold(_ format: NumberFormat) -> Float {
        let probe = Rounder(format: format)
        var lo = format.maxFinite.bitPattern, hi = Float.infinity.bitPattern
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2
            if probe.round(Float(bitPattern: mid)).isFinite { lo = mid } else { hi = mid }
        }
        return Float(bitPattern: hi)
    }

    func referencePowerOfTwoScale(amax: Float, max maxFinite: Float) -> Float {
        var e = Int(amax.exponent) - Int(maxFinite.exponent) - 1
        while Double(sign: .plus, exponent: e, significand: 1) * Double(maxFinite) < Double(amax) { e += 1 }
        return Float(sign: .plus, exponent: e, significand: 1)
    }

    func amaxAndNonFinite(_ x: UnsafePointer<Float>, _ n: Int) -> (amax: Float, nonFinite: Int) {
        var top: UInt32 = 0, bad = 0
        for i in 0..<n {
            let a = x[i].bitPattern & 0x7FFF_FFFF
            top = max(top, a)
            if a >= 0x7F80_0000 { bad += 1 }
        }
        return (Float(bitPattern: top > 0x7F80_0000 ? 0x7FC0_0000 : top), bad)
    }

    func countLargeAndNonFinite(_ x: UnsafePointer<Float>, _ n: Int, _ threshold: Float) -> (large: Int, nonFinite: Int) {
        var large = 0, bad = 0
        for i in 0..<n {
            let a = x[i].bitPattern & 0x7FFF_FFFF
            if a >= 0x7F80_0000 { bad += 1 } else if a >= threshold.bitPattern { large += 1 }
        }
        return (large, bad)
    }

    func referenceQuantize(_ x: UnsafeBufferPointer<Float>, rows: Int, cols: Int,
                           stream: RandomStream = RandomStream(key: 0), offset: UInt64 = 0)
        throws(NumericsError) -> ReferenceQuantized {
        if case .rowGroups(let g) = granularity, g < 1 { throw .invalidArgument("bad group") }
        guard rows >= 0, cols >= 0, x.count == rows * cols else {
            throw .invalidArgument("quantize: \(x.count) values do not fill a \(rows)x\(cols) matrix")
        }
        let (tr, tc) = referenceTile(rows: rows, cols: cols)
        let rounder = Rounder(format: format, mode: rounding, saturate: saturate)
        let overflowThreshold = referenceOverflowThreshold(format)
        let maxFinite = format.maxFinite
        let sr = (rows + tr - 1) / tr, sc = (cols + tc - 1) / tc
        var scales = [Float](repeating: 1, count: granularity == .unscaled ? 1 : sr * sc)
        var nonFinite = 0, saturated = 0
        let values = [Float](unsafeUninitializedCapacity: rows * cols) { q, initialized in
            initialized = rows * cols
            guard let src0 = x.baseAddress, let dst0 = q.baseAddress else { return }
            for br in 0..<sr {
                for bc in 0..<sc {
                    let r0 = br * tr, r1 = min(rows, r0 + tr)
                    let c0 = bc * tc, c1 = min(cols, c0 + tc)
                    // amax over the tile (NaN anywhere makes it NaN; inf makes it inf).
                    var amax: Float = 0
                    if granularity != .unscaled {
                        for r in r0..<r1 {
                            let (m, bad) = amaxAndNonFinite(src0 + r * cols + c0, c1 - c0)
                            nonFinite += bad
                            amax = (m.isNaN || amax.isNaN) ? .nan : max(amax, m)
                        }
                    }
                    var scale: Float = 1     // what the stored value is multiplied by
                    var multiplier: Float = 1, divisor: Float = 1
                    var clamp = false
                    if granularity != .unscaled, amax.isFinite, amax > 0 {
                        if formula == .mx {
                            // OCP MX: 2^(floor(log2 amax) − emax), values clamped.
                            let e = Int(amax.exponent) - Int(maxFinite.exponent)
                            scale = Float(sign: .plus, exponent: min(127, max(-126, e)), significand: 1)
                            multiplier = 1 / scale
                            clamp = true
                        } else if powerOfTwoScales {
                            scale = referencePowerOfTwoScale(amax: amax, max: maxFinite)
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
                    if granularity != .unscaled { scales[br * sc + bc] = scale }
                    for r in r0..<r1 {
                        let base = r * cols + c0, n = c1 - c0
                        let src = src0 + base, dst = dst0 + base
                        let draws = offset &+ UInt64(base)
                        if granularity == .unscaled {
                            let (large, bad) = countLargeAndNonFinite(src, n, overflowThreshold)
                            saturated += large
                            nonFinite += bad
                            rounder.round(src, into: dst, count: n, stream: stream, offset: draws)
                            continue
                        }
                        if multiplier == 1 && divisor == 1 && !clamp {
                            saturated += countLargeAndNonFinite(src, n, overflowThreshold).large
                            rounder.round(src, into: dst, count: n, stream: stream, offset: draws)
                            continue
                        }
                        // Scale into the destination, count what would overflow, clamp if
                        // the formula says so, then round in place.
                        if divisor != 1 {
                            for c in 0..<n { dst[c] = src[c] / divisor }
                        } else {
                            for c in 0..<n { dst[c] = src[c] * multiplier }
                        }
                        saturated += countLargeAndNonFinite(dst, n, overflowThreshold).large
                        if clamp {
                            for c in 0..<n where dst[c].isFinite { dst[c] = min(max(dst[c], -maxFinite), maxFinite) }
                        }
                        rounder.round(dst, into: dst, count: n, stream: stream, offset: draws)
                    }
                }
            }
        }
        return ReferenceQuantized(values: values, scales: scales, saturated: saturated, nonFinite: nonFinite)
    }

    func referenceQuantize(_ x: [Float], rows: Int, cols: Int, stream: RandomStream = RandomStream(key: 0),
                           offset: UInt64 = 0) throws(NumericsError) -> ReferenceQuantized {
        try x.withUnsafeBufferPointer { buf throws(NumericsError) in
            try referenceQuantize(buf, rows: rows, cols: cols, stream: stream, offset: offset)
        }
    }
}

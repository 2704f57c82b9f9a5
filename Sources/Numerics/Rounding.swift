// Rounding float32 to a narrower format.
//
// Every input is a float32 and every format is a subset of float32, so one rounding from the
// exact input is all that ever happens: there is no intermediate format and no double rounding.

/// How a value between two neighbours of the target format is resolved.
///
/// Examples in BF16 (neighbours 1 and 1 + 2^-7 = 1.0078125):
///
/// | input          | nearestEven | towardZero | stochastic                    |
/// |----------------|-------------|------------|-------------------------------|
/// | 1.001953125    | 1           | 1          | 1.0078125 with probability ¼  |
/// | 1.00390625 (tie)| 1 (even)   | 1          | 1.0078125 with probability ½  |
/// | 1.01171875 (tie)| 1.015625 (even) | 1.0078125 | either, ½ each            |
/// | −1.005859375   | −1.0078125  | −1         | −1.0078125 with probability ¾ |
///
/// Overflow: nearestEven and stochastic follow the format's rule (±inf for IEEE-style
/// formats, NaN for E4M3) unless saturating; towardZero never rounds a finite value to
/// infinity (IEEE 754: it gives ±max finite).
public enum RoundingMode: String, Sendable, Hashable, CaseIterable, Codable {
    /// Round to the nearest representable value; ties go to the even mantissa (IEEE default).
    case nearestEven = "nearest"
    /// Truncate the magnitude.
    case towardZero = "zero"
    /// Round up with probability equal to the distance from the lower neighbour divided by
    /// the gap, so the expected result equals the input (unbiased). Draws come from a seeded
    /// counter-based stream, one 64-bit draw per element by index.
    case stochastic = "stochastic"

    public static func parse(_ text: String) throws(NumericsError) -> RoundingMode {
        switch text.lowercased() {
        case "nearest", "nearest-even", "rne", "even": return .nearestEven
        case "zero", "toward-zero", "rtz", "truncate": return .towardZero
        case "stochastic", "sr": return .stochastic
        default:
            throw .invalidArgument("unknown rounding '\(text)'; accepted: nearest zero stochastic")
        }
    }
}

/// A precomputed rounding from float32 to one format, with one overflow rule.
///
/// `saturate` clamps every magnitude beyond the largest finite value (including infinity) to
/// ±max finite, as CUDA's satfinite conversions, TransformerEngine and vLLM do. Without it
/// the format's own rule applies, like ml_dtypes and PyTorch's `.to(dtype)`.
/// NaN stays NaN and keeps its sign (as the canonical quiet NaN).
public struct Rounder: Sendable, Hashable {
    public let format: NumberFormat
    public let mode: RoundingMode
    public let saturate: Bool

    // Precomputed constants over float32 bit patterns (magnitudes, sign removed).
    @usableFromInline let shift: UInt32          // mantissa bits dropped in the normal range, 23 − Y
    @usableFromInline let keepMask: UInt32       // clears the dropped bits
    @usableFromInline let halfMinusOne: UInt32   // 2^(shift−1) − 1, or 0 when nothing is dropped
    @usableFromInline let lsbMask: UInt32        // 1 when bits are dropped, else 0
    @usableFromInline let minNormalBits: UInt32  // float32 bits of the format's min normal
    @usableFromInline let minNormalField: UInt32 // its float32 exponent field, 1 − bias + 127
    @usableFromInline let subnormalMagic: Float  // 2^(minExponent − Y + 23): see roundNearestBlock
    @usableFromInline let maxFiniteBits: UInt32
    @usableFromInline let overflowBits: UInt32   // what a finite overflow becomes
    @usableFromInline let infinityBits: UInt32   // what an infinite input becomes

    /// BF16 to nearest even with infinities, on a processor with AVX512_BF16: buffers are
    /// rounded by `BF16Kernel.roundExactly`, the same bits (`PackRoundingTests`).
    @usableFromInline let nativeBF16: Bool

    @usableFromInline static let quietNaN: UInt32 = 0x7FC0_0000
    @usableFromInline static let infinity: UInt32 = 0x7F80_0000

    public init(format: NumberFormat, mode: RoundingMode = .nearestEven, saturate: Bool = false) {
        self.format = format
        self.mode = mode
        self.saturate = saturate
        nativeBF16 = mode == .nearestEven && !saturate && BF16Kernel.carries(format) && format.mantissaBits == 7
            && format.hasInfinity && BF16Kernel.hardware
        let s = UInt32(23 - format.mantissaBits)
        shift = s
        keepMask = ~((UInt32(1) << s) &- 1)
        halfMinusOne = s > 0 ? (UInt32(1) << (s - 1)) - 1 : 0
        lsbMask = s > 0 ? 1 : 0
        minNormalField = UInt32(format.minExponent + 127)
        minNormalBits = minNormalField << 23
        subnormalMagic = Float(sign: .plus, exponent: format.minExponent - format.mantissaBits + 23,
                               significand: 1)
        maxFiniteBits = format.maxFinite.bitPattern
        let formatOverflow = format.hasInfinity ? Rounder.infinity : Rounder.quietNaN
        infinityBits = saturate ? maxFiniteBits : formatOverflow
        switch mode {
        case .towardZero: overflowBits = maxFiniteBits
        case .nearestEven, .stochastic: overflowBits = saturate ? maxFiniteBits : formatOverflow
        }
    }

    // MARK: One value

    /// Rounds one value. `draw` is the 64-bit random draw used by stochastic rounding
    /// (ignored by the other modes).
    @inlinable
    public func round(_ x: Float, draw: UInt64 = 0) -> Float {
        Float(bitPattern: roundBits(x.bitPattern, draw: draw))
    }

    /// Rounds one value given and returned as a float32 bit pattern.
    @inlinable
    public func roundBits(_ bits: UInt32, draw: UInt64 = 0) -> UInt32 {
        let sign = bits & 0x8000_0000
        let a = bits & 0x7FFF_FFFF
        if a > Rounder.infinity { return sign | Rounder.quietNaN }
        if a == Rounder.infinity { return sign | infinityBits }
        let field = a >> 23
        let significand = UInt64((a & 0x007F_FFFF) | (field > 0 ? 0x0080_0000 : 0))
        return sign | roundMagnitude(significand, exponent: Int(max(field, 1)) - 150, draw: draw)
    }

    /// Rounds a double straight to the format (one rounding, no stop at float32). Used for
    /// decimal input, which is first read as a double rounded to odd (see `DecimalInput`):
    /// with 53 bits against the format's 24 at most, the final rounding is then exact.
    public func round(double x: Double, draw: UInt64 = 0) -> Float {
        let bits = x.bitPattern
        let sign: UInt32 = bits >> 63 == 1 ? 0x8000_0000 : 0
        if x.isNaN { return Float(bitPattern: sign | Rounder.quietNaN) }
        if x.isInfinite { return Float(bitPattern: sign | infinityBits) }
        let field = (bits >> 52) & 0x7FF
        let significand = (bits & 0x000F_FFFF_FFFF_FFFF) | (field > 0 ? 1 << 52 : 0)
        let magnitude = roundMagnitude(significand, exponent: Int(max(field, 1)) - 1075, draw: draw)
        return Float(bitPattern: sign | magnitude)
    }

    /// Rounds the magnitude `significand · 2^exponent` (significand < 2^53) and returns the
    /// float32 bits of the result, overflow rule applied.
    ///
    /// Concretely: the result's spacing is the quantum 2^(max(⌊log2 v⌋, minExponent) − Y);
    /// drop the s low bits of the significand below that quantum, decide up or down by the
    /// mode from the dropped remainder, and rebuild q · 2^(exponent + s).
    @inlinable
    func roundMagnitude(_ significand: UInt64, exponent: Int, draw: UInt64) -> UInt32 {
        if significand == 0 { return 0 }
        let valueExponent = exponent + 63 - significand.leadingZeroBitCount
        let quantumExponent = max(valueExponent, format.minExponent) - format.mantissaBits
        let s = quantumExponent - exponent
        var q = significand
        var scale = exponent
        if s > 0 {
            q = s < 64 ? significand >> UInt64(s) : 0
            let rem = s < 64 ? significand & ((1 << UInt64(s)) - 1) : significand
            switch mode {
            case .nearestEven:
                // For s ≥ 64 the remainder (< 2^53) is below half a quantum.
                if s <= 63 {
                    let half: UInt64 = 1 << UInt64(s - 1)
                    if rem > half || (rem == half && q & 1 == 1) { q += 1 }
                }
            case .towardZero:
                break
            case .stochastic:
                // Up with probability rem / 2^s: exactly, by comparing the low s bits of
                // the draw with the remainder; for s ≥ 64 (a value far below the smallest
                // step) by comparing a 53-bit uniform with rem · 2^-s, exact to 2^-53.
                if s < 64 {
                    if (draw & ((1 << UInt64(s)) - 1)) < rem { q += 1 }
                } else if Double(draw >> 11) * 0x1p-53
                            < Double(sign: .plus, exponent: -s, significand: Double(rem)) {
                    q += 1
                }
            }
            scale = quantumExponent
        }
        // q ≤ 2^(Y+1) ≤ 2^24 here, so this is exact (or ±inf past float32's range).
        var r = Float(sign: .plus, exponent: scale, significand: Float(q)).bitPattern
        if r > maxFiniteBits { r = overflowBits }
        return r
    }

    // MARK: Buffers

    /// Rounds `count` values from `source` into `destination` (which may be the same
    /// buffer). Stochastic rounding uses `stream.draw(at: offset + i)` for element i.
    /// Large buffers are cut between threads in blocks of 64 values: every value is rounded on
    /// its own (stochastic draws by index), so the result is the same.
    public func round(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float>,
                      count: Int, stream: RandomStream = RandomStream(key: 0), offset: UInt64 = 0) {
        if count >= Rounder.parallelCount && ParallelWork.threads > 1 {
            let pointers = UncheckedSendable((source, destination))
            let blocks = (count + 63) / 64
            forEachRange(blocks, minimumCost: 0, cost: { _ in 1 }) { range in
                let start = range.lowerBound * 64, end = min(count, range.upperBound * 64)
                roundSerially(pointers.value.0 + start, into: pointers.value.1 + start, count: end - start,
                              stream: stream, offset: offset &+ UInt64(start))
            }
            return
        }
        roundSerially(source, into: destination, count: count, stream: stream, offset: offset)
    }

    /// Whether rounding `count` values from `source` (as `round(_:into:count:)` would, with
    /// the default stream from offset 0) leaves every one of them with its bits: values
    /// already in the format (a BF16 checkpoint's, under BF16). Reads only; rounds through a
    /// small buffer of its own.
    public func leavesUnchanged(_ source: UnsafePointer<Float>, count: Int) -> Bool {
        let chunk = 4096
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: chunk)
        defer { buffer.deallocate() }
        var start = 0
        while start < count {
            let n = min(chunk, count - start)
            roundSerially(source + start, into: buffer, count: n, stream: RandomStream(key: 0), offset: UInt64(start))
            for i in 0..<n where buffer[i].bitPattern != source[start + i].bitPattern { return false }
            start += n
        }
        return true
    }

    /// From this many values a buffer's rounding is cut between threads.
    static let parallelCount = 1 << 18

    private func roundSerially(_ source: UnsafePointer<Float>, into destination: UnsafeMutablePointer<Float>,
                               count: Int, stream: RandomStream, offset: UInt64) {
        switch mode {
        case .nearestEven:
            if nativeBF16 { BF16Kernel.roundExactly(source, into: destination, count: count) } else { roundNearestBlock(source, destination, count) }
        case .towardZero:
            roundTowardZeroBlock(source, destination, count)
        case .stochastic:
            for i in 0..<count {
                destination[i] = round(source[i], draw: stream.draw(at: offset &+ UInt64(i)))
            }
        }
    }

    /// Rounds an array in place.
    public func round(_ values: inout [Float], stream: RandomStream = RandomStream(key: 0),
                      offset: UInt64 = 0) {
        let n = values.count
        values.withUnsafeMutableBufferPointer { buf in
            guard let p = buf.baseAddress else { return }
            round(p, into: p, count: n, stream: stream, offset: offset)
        }
    }

    /// Returns the rounded copy of an array.
    public func rounded(_ values: [Float], stream: RandomStream = RandomStream(key: 0),
                        offset: UInt64 = 0) -> [Float] {
        var copy = values
        round(&copy, stream: stream, offset: offset)
        return copy
    }

    @usableFromInline typealias Bits = SIMD16<UInt32>
    @usableFromInline typealias Lanes = SIMD16<Float>

    /// Round to nearest even, 16 lanes at a time, without branches.
    ///
    /// In the format's normal range the spacing is uniform within each binade, so adding
    /// 2^(shift−1) − 1 plus the lowest kept bit to the bit pattern and clearing the dropped
    /// bits rounds to nearest with ties to even (a carry into the exponent is the correct
    /// next value). Below the normal range the spacing is the fixed quantum
    /// Q = 2^(minExponent − Y); there `(|x| + C) − C` with C = 2^23·Q rounds |x| to a multiple of
    /// Q by float32's own round-to-nearest-even (every float32 in [C, 2C) is a multiple of Q),
    /// and the subtraction is exact.
    @usableFromInline
    func roundNearestBlock(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        let shiftV = Bits(repeating: shift)
        let half = Bits(repeating: halfMinusOne)
        let lsb = Bits(repeating: lsbMask)
        let keep = Bits(repeating: keepMask)
        let minNormal = Bits(repeating: minNormalBits)
        let maxFinite = Bits(repeating: maxFiniteBits)
        let overflow = Bits(repeating: overflowBits)
        let inf = Bits(repeating: Rounder.infinity)
        let infResult = Bits(repeating: infinityBits)
        let nan = Bits(repeating: Rounder.quietNaN)
        let magic = Lanes(repeating: subnormalMagic)
        let signMask = Bits(repeating: 0x8000_0000)
        var i = 0
        while i + 16 <= n {
            let u = UnsafeRawPointer(src + i).loadUnaligned(as: Bits.self)
            let sign = u & signMask
            let a = u & ~signMask
            var r = (a &+ half &+ ((a &>> shiftV) & lsb)) & keep
            let f = unsafeBitCast(a, to: Lanes.self)
            let sub = unsafeBitCast((f + magic) - magic, to: Bits.self)
            r.replace(with: sub, where: a .< minNormal)
            r.replace(with: overflow, where: r .> maxFinite)
            r.replace(with: infResult, where: a .== inf)
            r.replace(with: nan, where: a .> inf)
            UnsafeMutableRawPointer(dst + i).storeBytes(of: r | sign, as: Bits.self)
            i += 16
        }
        while i < n {
            dst[i] = round(src[i])
            i += 1
        }
    }

    /// Round toward zero, 16 lanes at a time: clear the dropped bits (more of them below the
    /// normal range; everything when the value is under one quantum).
    @usableFromInline
    func roundTowardZeroBlock(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, _ n: Int) {
        let shiftV = Bits(repeating: shift)
        let one = Bits(repeating: 1)
        let keep = Bits(repeating: keepMask)
        let minField = Bits(repeating: minNormalField)
        let maxFinite = Bits(repeating: maxFiniteBits)
        let overflow = Bits(repeating: overflowBits)
        let inf = Bits(repeating: Rounder.infinity)
        let infResult = Bits(repeating: infinityBits)
        let nan = Bits(repeating: Rounder.quietNaN)
        let zero = Bits(repeating: 0)
        let limit = Bits(repeating: 24)
        let signMask = Bits(repeating: 0x8000_0000)
        var i = 0
        while i + 16 <= n {
            let u = UnsafeRawPointer(src + i).loadUnaligned(as: Bits.self)
            let sign = u & signMask
            let a = u & ~signMask
            var r = a & keep
            var e = a &>> 23
            e.replace(with: one, where: e .< one)
            let below = e .< minField
            var s = shiftV &+ (minField &- e)
            s.replace(with: limit, where: s .> limit)
            let subMask = ~((one &<< s) &- one)
            var sub = a & subMask
            sub.replace(with: zero, where: s .>= limit)
            r.replace(with: sub, where: below)
            r.replace(with: overflow, where: r .> maxFinite)
            r.replace(with: infResult, where: a .== inf)
            r.replace(with: nan, where: a .> inf)
            UnsafeMutableRawPointer(dst + i).storeBytes(of: r | sign, as: Bits.self)
            i += 16
        }
        while i < n {
            dst[i] = round(src[i])
            i += 1
        }
    }
}

// MARK: Encodings

extension NumberFormat {
    /// The format's own encoding of a value it can hold exactly (as produced by a `Rounder`
    /// for this format): sign, exponent field and mantissa packed into the low 1 + X + Y bits.
    /// NaN encodes as the format's quiet NaN with the value's sign. A value the format cannot
    /// hold exactly is a programming error.
    public func encode(_ value: Float) -> UInt32 {
        let bits = value.bitPattern
        let sign: UInt32 = bits >> 31
        let a = bits & 0x7FFF_FFFF
        let m = UInt32(mantissaBits)
        let topField = UInt32((1 << exponentBits) - 1)
        let signShifted = sign << UInt32(exponentBits + mantissaBits)
        if a > 0x7F80_0000 { // NaN
            switch specials {
            case .ieee: return signShifted | topField << m | (m > 0 ? 1 << (m - 1) : 0)
            case .finiteOnly: return signShifted | topField << m | ((1 << m) - 1)
            }
        }
        if a == 0x7F80_0000 {
            precondition(hasInfinity, "\(name) has no infinity")
            return signShifted | topField << m
        }
        let magnitude = Float(bitPattern: a)
        precondition(magnitude <= maxFinite, "\(value) is beyond \(name)'s range")
        if magnitude >= minNormal {
            let field = UInt32(Int(a >> 23) - 127 + bias)
            let mantissa = (a & 0x007F_FFFF) >> (23 - m)
            precondition(mantissa << (23 - m) == a & 0x007F_FFFF, "\(value) is not a \(name) value")
            return signShifted | field << m | mantissa
        }
        // Subnormal or zero: an integer multiple of the smallest subnormal.
        let units = magnitude / minSubnormal
        precondition(units == units.rounded(.towardZero), "\(value) is not a \(name) value")
        return signShifted | UInt32(units)
    }

    /// Every binary16 code's value (`NumberFormat.fp16.decode` of codes 0…0xFFFF): the lab's
    /// one FP16 decoder, as a table for reading F16 tensors.
    public static let binary16Values: [Float] = (0...UInt32(0xFFFF)).map { NumberFormat.fp16.decode($0) }

    /// The value of a code of this format, as the float32 that equals it. A NaN code keeps
    /// its sign and payload: its mantissa bits go to the top of float32's mantissa, the exact
    /// widening `Float(Float16)` does (a signalling NaN stays signalling); a format with no
    /// mantissa bits gives the quiet NaN. (Rounding to a format gives the canonical quiet
    /// NaN with its sign: payloads are not carried into a narrower format.)
    public func decode(_ code: UInt32) -> Float {
        let m = UInt32(mantissaBits)
        let fieldMask = UInt32((1 << exponentBits) - 1)
        let negative = (code >> UInt32(exponentBits + mantissaBits)) & 1 == 1
        let field = (code >> m) & fieldMask
        let mantissa = code & ((1 << m) - 1)
        let sign: FloatingPointSign = negative ? .minus : .plus
        func nan() -> Float {
            let payload = mantissa << (23 - m)
            return Float(bitPattern: (negative ? 0x8000_0000 : 0) | Rounder.infinity | (payload == 0 ? 0x0040_0000 : payload))
        }
        if field == fieldMask {
            switch specials {
            case .ieee:
                if mantissa == 0 { return negative ? -.infinity : .infinity }
                return nan()
            case .finiteOnly:
                if mantissa == (1 << m) - 1 { return nan() }
            }
        }
        if field == 0 {
            return Float(sign: sign, exponent: minExponent - mantissaBits, significand: Float(mantissa))
        }
        let significand = Float((1 << m) | mantissa)
        return Float(sign: sign, exponent: Int(field) - bias - mantissaBits, significand: significand)
    }
}

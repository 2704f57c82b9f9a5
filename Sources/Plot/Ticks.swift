// Nice ticks and their labels, for both renderers.
//
// A tick is kept as an integer times a power of ten (`significand × 10^exponent`), so its
// value is the Double nearest that decimal (0.6, not 0.6000000000000001) and its label is
// written from integers: no C library, no locale.

import Foundation

/// A tick value, exactly `significand × 10^exponent`.
struct Tick: Equatable, Sendable {
    var significand: Int
    var exponent: Int

    /// The same value with the significand's trailing zeros moved into the exponent.
    var normalized: Tick {
        guard significand != 0 else { return Tick(significand: 0, exponent: 0) }
        var t = self
        while t.significand % 10 == 0 {
            t.significand /= 10
            t.exponent += 1
        }
        return t
    }

    /// The Double nearest the decimal (parsed by the standard library, locale-free).
    var value: Double { Double("\(significand)e\(exponent)") ?? .nan }
}

/// The choice of ticks for an axis, and the range they imply.
enum NiceTicks {
    /// Ticks of a linear axis over `lo...hi`, 1, 2 or 5 × 10^k apart.
    ///
    /// A given range (`extend` false) is kept, with the most ticks inside it that are at most
    /// `maxCount`, preferring at least `minCount`. A fitted range (`extend` true) is, in order of
    /// preference:
    /// 1. widened to the ticks enclosing the data, when `minCount`…`maxCount` ticks do it and
    ///    the data then covers at least 3/4 of the axis (the best covered; 0…0.97 → 0, 0.2, …, 1);
    /// 2. else the data padded by 4 % of its span at each end (never across 0), with
    ///    `minCount`…`maxCount` ticks inside (0…1.03 → 0…1.07, ticks 0, 0.2, …, 1: the padding
    ///    stops at 0);
    /// 3. else widened to enclosing ticks, as many as `maxCount` allows.
    /// `integral`: only whole-number steps (an axis of counts: no tick at step 1.2).
    static func linear(_ lo: Double, _ hi: Double, maxCount: Int = 6, minCount: Int = 4,
                       extend: Bool, integral: Bool = false) -> (ticks: [Tick], range: ClosedRange<Double>) {
        precondition(lo.isFinite && hi.isFinite && lo < hi)
        let maxCount = max(2, maxCount)
        let wanted = min(minCount, maxCount)...maxCount
        // Steps from a decade below the one giving maxCount intervals to three decades above.
        let k0 = Int(((hi - lo) / Double(maxCount)).log10Floor) - 1
        let kFirst = integral ? max(0, k0) : k0
        let steps = (kFirst...(kFirst + 4)).flatMap { k in [1, 2, 5].map { Tick(significand: $0, exponent: k) } }
        if extend {
            var best: (ticks: [Tick], range: ClosedRange<Double>, coverage: Double)?
            for step in steps {
                guard let c = linearCandidate(lo, hi, step: step, extend: true), wanted.contains(c.ticks.count) else { continue }
                let coverage = (hi - lo) / (c.range.upperBound - c.range.lowerBound)
                if coverage >= 0.75 && coverage > (best?.coverage ?? 0) { best = (c.ticks, c.range, coverage) }
            }
            if let best { return (best.ticks, best.range) }
            let pad = 0.04 * (hi - lo)
            let padded = (lo >= 0 ? max(0, lo - pad) : lo - pad)...(hi <= 0 ? min(0, hi + pad) : hi + pad)
            for step in steps {
                if let c = linearCandidate(padded.lowerBound, padded.upperBound, step: step, extend: false),
                   wanted.contains(c.ticks.count) { return c }
            }
        }
        var fallback: (ticks: [Tick], range: ClosedRange<Double>)?
        for step in steps {
            guard let c = linearCandidate(lo, hi, step: step, extend: extend), c.ticks.count <= maxCount else { continue }
            if wanted.contains(c.ticks.count) { return c }
            if fallback == nil { fallback = c }
        }
        return fallback ?? ([], lo...hi)
    }

    /// The ticks at multiples of `step`, enclosing (extend) or inside `lo...hi`.
    private static func linearCandidate(_ lo: Double, _ hi: Double, step: Tick,
                                        extend: Bool) -> (ticks: [Tick], range: ClosedRange<Double>)? {
        let s = step.value
        let qlo = lo / s, qhi = hi / s
        guard qlo.magnitude < 1e15, qhi.magnitude < 1e15 else { return nil }
        let tolerance = { (q: Double) in 1e-9 * max(1, q.magnitude) }
        let first = extend ? (qlo + tolerance(qlo)).rounded(.down) : (qlo - tolerance(qlo)).rounded(.up)
        let last = extend ? (qhi - tolerance(qhi)).rounded(.up) : (qhi + tolerance(qhi)).rounded(.down)
        guard first <= last, last - first <= 1000 else { return nil }
        let ticks = (Int(first)...Int(last)).map { Tick(significand: $0 * step.significand, exponent: step.exponent) }
        let range = extend ? ticks.first!.value...ticks.last!.value : lo...hi
        guard range.lowerBound < range.upperBound else { return nil }
        return (ticks, range)
    }

    /// Ticks of a log axis over `lo...hi` (both positive).
    ///
    /// The tick sets, in order: 1, 2, 5 × 10^k (for ranges of a few decades at most), whole
    /// decades, every 2nd, 3rd, 5th, 10th… decade. A fitted range is chosen as on a linear axis
    /// (`linear`), with distances measured in decades: enclosing ticks when the data covers 3/4
    /// of the axis, else padded by 4 % at each end, else enclosing ticks, the first set with at
    /// most `maxCount`. 1e-5…3e-3 → 1e-5, 1e-4, 1e-3, 1e-2; 3…40 → 2, 5, 10, 20, 50.
    static func log(_ lo: Double, _ hi: Double, maxCount: Int = 6, minCount: Int = 4,
                    extend: Bool) -> (ticks: [Tick], range: ClosedRange<Double>) {
        precondition(lo > 0 && hi.isFinite && lo < hi)
        let maxCount = max(2, maxCount)
        let wanted = min(minCount, maxCount)...maxCount
        let eLo = decadeBelow(lo), eHi = decadeBelow(hi) + 1
        var sets: [[Tick]] = []
        if eHi - eLo <= 8 {
            sets.append(((eLo - 1)...(eHi + 1)).flatMap { e in [1, 2, 5].map { Tick(significand: $0, exponent: e) } })
        }
        for d in [1, 2, 3, 5, 10, 20, 50, 100] {
            sets.append(((floorDiv(eLo, d) - 1)...(ceilDiv(eHi, d) + 1)).map { Tick(significand: 1, exponent: $0 * d) })
        }
        if extend {
            let decades = { (r: ClosedRange<Double>) in Foundation.log10(r.upperBound / r.lowerBound) }
            var best: (ticks: [Tick], range: ClosedRange<Double>, coverage: Double)?
            for set in sets {
                guard let c = pick(from: set, lo, hi, extend: true), wanted.contains(c.ticks.count) else { continue }
                let coverage = decades(lo...hi) / decades(c.range)
                if coverage >= 0.75 && coverage > (best?.coverage ?? 0) { best = (c.ticks, c.range, coverage) }
            }
            if let best { return (best.ticks, best.range) }
            let pad = Foundation.pow(10, 0.04 * decades(lo...hi))
            for set in sets {
                if let c = pick(from: set, lo / pad, hi * pad, extend: false), wanted.contains(c.ticks.count) { return c }
            }
        }
        for set in sets {
            if let c = pick(from: set, lo, hi, extend: extend), c.ticks.count <= maxCount { return c }
        }
        return ([], lo...hi)
    }

    /// From ascending candidates: those enclosing (extend) or inside `lo...hi`.
    private static func pick(from candidates: [Tick], _ lo: Double, _ hi: Double,
                             extend: Bool) -> (ticks: [Tick], range: ClosedRange<Double>)? {
        let values = candidates.map(\.value)
        let slack = 1e-12
        let first: Int?, last: Int?
        if extend {
            first = values.lastIndex { $0 <= lo * (1 + slack) }
            last = values.firstIndex { $0 >= hi * (1 - slack) }
        } else {
            first = values.firstIndex { $0 >= lo * (1 - slack) }
            last = values.lastIndex { $0 <= hi * (1 + slack) }
        }
        guard let first, let last, first <= last else { return nil }
        let ticks = Array(candidates[first...last])
        let range = extend ? values[first]...values[last] : lo...hi
        guard range.lowerBound < range.upperBound else { return nil }
        return (ticks, range)
    }

    /// The largest e with 10^e ≤ x (exact at powers of ten).
    static func decadeBelow(_ x: Double) -> Int {
        var e = Int(x.log10Floor)
        while Tick(significand: 1, exponent: e + 1).value <= x { e += 1 }
        while Tick(significand: 1, exponent: e).value > x { e -= 1 }
        return e
    }

    private static func floorDiv(_ a: Int, _ b: Int) -> Int { a >= 0 ? a / b : -((-a + b - 1) / b) }
    private static func ceilDiv(_ a: Int, _ b: Int) -> Int { -floorDiv(-a, b) }
}

extension Double {
    /// ⌊log10 |x|⌋ approximately (exact decisions are made on Ticks); 0 for 0 and non-finite.
    var log10Floor: Double {
        guard isFinite, self != 0 else { return 0 }
        var e = 0.0, m = magnitude
        while m >= 10 { m /= 10; e += 1 }
        while m < 1 { m *= 10; e -= 1 }
        return e
    }
}

/// Tick labels, decided per axis so that the labels of one axis look alike.
///
/// - 0 is "0"; other labels are the shortest exact decimal, without trailing zeros: 0, 0.5, 1.
/// - Scientific, as "1e-4" or "2.5e-4", when a non-zero tick is below 1e-3 in magnitude (on a
///   linear axis: when the largest is), or the largest is 1e15 or more.
/// - Otherwise thousands take a suffix: k (10^3), M (10^6), G (10^9), T (10^12): 2.5k, 1M.
///   On a linear axis the largest tick chooses the suffix for all (0, 0.5k, 1k, 1.5k); on a log
///   axis each tick has its own (1, 10, 100, 1k, 10k).
/// - ASCII only: "-" for minus.
enum TickLabels {
    /// The labels of an axis's ticks.
    static func labels(_ ticks: [Tick], scale: AxisScale) -> [String] {
        let ticks = ticks.map(\.normalized)
        let nonZero = ticks.filter { $0.significand != 0 }
        guard !nonZero.isEmpty else { return ticks.map { _ in "0" } }
        let magnitudes = nonZero.map { decimalExponent($0) }      // ⌊log10 |t|⌋, exact
        let largest = magnitudes.max()!, smallest = magnitudes.min()!
        let scientific = largest >= 15 || (scale == .linear ? largest < -3 : smallest < -3)
        if scientific { return ticks.map(Self.scientific) }
        switch scale {
        case .linear:
            let power = suffixPower(largest)
            return ticks.map { withSuffix($0, power: power) }
        case .log10:
            return ticks.map { withSuffix($0, power: suffixPower(decimalExponent($0))) }
        }
    }

    /// ⌊log10 |t|⌋ for a non-zero tick.
    static func decimalExponent(_ t: Tick) -> Int {
        String(t.significand.magnitude).count - 1 + t.exponent
    }

    /// 0, 3, 6, 9 or 12: the power of ten the suffix stands for.
    private static func suffixPower(_ exponent: Int) -> Int {
        exponent < 3 ? 0 : min(12, exponent / 3 * 3)
    }

    private static func withSuffix(_ t: Tick, power: Int) -> String {
        if t.significand == 0 { return "0" }
        let suffix = ["", "k", "M", "G", "T"][power / 3]
        return decimal(t.significand, t.exponent - power) + suffix
    }

    /// `n × 10^k` as a plain decimal, without trailing zeros after the point.
    static func decimal(_ n: Int, _ k: Int) -> String {
        if n == 0 { return "0" }
        let sign = n < 0 ? "-" : ""
        var digits = String(n.magnitude)
        if k >= 0 { return sign + digits + String(repeating: "0", count: k) }
        let fraction = -k
        if digits.count <= fraction {
            digits = String(repeating: "0", count: fraction - digits.count + 1) + digits
        }
        let whole = digits.dropLast(fraction)
        var frac = Substring(digits.suffix(fraction))
        while frac.last == "0" { frac = frac.dropLast() }
        return sign + whole + (frac.isEmpty ? "" : "." + frac)
    }

    /// "2.5e-4": one digit before the point, the exponent without "+" or leading zeros.
    static func scientific(_ t: Tick) -> String {
        if t.significand == 0 { return "0" }
        let t = t.normalized
        let sign = t.significand < 0 ? "-" : ""
        let digits = String(t.significand.magnitude)
        let exponent = digits.count - 1 + t.exponent
        let mantissa = digits.count == 1 ? digits : "\(digits.prefix(1)).\(digits.dropFirst())"
        return "\(sign)\(mantissa)e\(exponent)"
    }
}

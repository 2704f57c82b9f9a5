// Correctly rounded summation.
//
// Every mean in this module is a sum divided by a count. Summing with a plain loop would make
// the result depend on the order of the terms (so shuffling the sequences of a rollout would
// change the last bits of every statistic). `ExactSum` keeps the running sum exactly, as a
// list of non-overlapping partials (Shewchuk's algorithm, as in Python's `math.fsum`), and
// rounds once at the end: the result is the exact sum rounded to nearest, whatever the order
// of the additions. It uses only IEEE additions and subtractions, so it is the same on every
// machine.

/// The exact sum of a stream of doubles, rounded once to the nearest double.
///
/// - Zeros (of either sign) are skipped, so a sum of nothing or of zeros is +0.
/// - Non-finite terms are added among themselves with IEEE rules (inf + −inf = NaN) and,
///   when any is present, decide the result.
/// - Finite terms must keep the exact sum below about 1.7e308 in magnitude; an overflowing
///   partial makes the result infinite. (The statistics here add terms below 1e80.)
public struct ExactSum: Sendable, Hashable {
    /// Non-overlapping partials, increasing in magnitude; their exact sum is the running sum.
    private var partials: [Double] = []
    /// Sum of the non-finite terms, or nil if there was none.
    private var special: Double? = nil

    public init() {}

    /// The exact sum of `values`, rounded once.
    public init<S: Sequence>(_ values: S) where S.Element == Double {
        for v in values { add(v) }
    }

    /// Adds one term.
    public mutating func add(_ value: Double) {
        if value == 0 { return }
        if !value.isFinite {
            special = (special ?? 0) + value
            return
        }
        var x = value
        var kept = 0
        for j in partials.indices {
            var y = partials[j]
            if x.magnitude < y.magnitude { swap(&x, &y) }
            let hi = x + y
            let lo = y - (hi - x)           // exact: |x| ≥ |y| (Fast2Sum)
            if lo != 0 { partials[kept] = lo; kept += 1 }
            x = hi
        }
        partials.removeSubrange(kept...)
        if !x.isFinite {                    // overflow of finite terms
            special = (special ?? 0) + x
            partials.removeAll()
            return
        }
        if x != 0 { partials.append(x) }
    }

    /// The exact sum rounded to the nearest double (ties to even).
    public var value: Double {
        if let s = special { return s }
        var n = partials.count
        guard n > 0 else { return 0 }
        n -= 1
        var hi = partials[n]
        var lo = 0.0
        while n > 0 {
            let x = hi
            n -= 1
            let y = partials[n]
            hi = x + y
            lo = y - (hi - x)
            if lo != 0 { break }
        }
        // Correct a half-way case: if the rest of the partials push in the same direction as
        // the rounding error `lo`, the true sum lies beyond the midpoint.
        if n > 0, (lo < 0 && partials[n - 1] < 0) || (lo > 0 && partials[n - 1] > 0) {
            let y = lo * 2
            let x = hi + y
            if y == x - hi { hi = x }
        }
        return hi
    }
}

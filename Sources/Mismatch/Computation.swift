// How the mismatch statistics are computed: per-token quantities, then exact aggregation
// (the determinism and edge-case rules are at the top of Mismatch.swift).

import Numerics

// MARK: Per-token quantities

/// Everything the statistics need from one token, computed once.
struct PreparedToken {
    var sequence: Int          // index among the non-empty sequences
    var position: Int
    var logMu: Double
    var logPi: Double
    var d: Double              // log μ − log π (0 when equal, including −inf = −inf)
    var dp: Double             // π − μ
    var weight: Double         // e^(clamp(−d))
    var ratioSquaredMinusOne: Double  // e^(2·clamp(−d)) − 1
    var k3: Double             // e^(−d) − 1 + d
    var full: FullComparison?
}

/// Exact comparison of the two engines' distributions at one position.
struct FullComparison {
    var kl: Double
    var tv: Double
    var argmaxDiffers: Bool
}

@inline(__always) func clampLogRatio(_ x: Double) -> Double {
    x.isNaN ? x : min(max(x, -MismatchOptions.logRatioBound), MismatchOptions.logRatioBound)
}

@inline(__always) func maxNaN(_ a: Double, _ b: Double) -> Double {
    a.isNaN || b.isNaN ? .nan : (b > a ? b : a)
}

@inline(__always) func minNaN(_ a: Double, _ b: Double) -> Double {
    a.isNaN || b.isNaN ? .nan : (b < a ? b : a)
}

/// `compareRows` of every token's two full distributions. Each row is compared on its own,
/// so the rows are cut between threads with the same results.
func fullComparisons(_ f: FullDistributions, rows n: Int) -> [FullComparison] {
    let v = f.vocabularySize
    var out = [FullComparison](repeating: FullComparison(kl: 0, tv: 0, argmaxDiffers: false), count: n)
    out.withUnsafeMutableBufferPointer { o in
        f.rollout.withUnsafeBufferPointer { ra in
            f.train.withUnsafeBufferPointer { rb in
                let buffers = UncheckedSendable((o, ra, rb))
                forEachRange(n, minimumCost: 1 << 16, cost: { _ in v }) { range in
                    let (o, ra, rb) = buffers.value
                    let sa = UnsafeMutableBufferPointer<Double>.allocate(capacity: v)
                    let sb = UnsafeMutableBufferPointer<Double>.allocate(capacity: v)
                    defer { sa.deallocate(); sb.deallocate() }
                    for t in range {
                        o[t] = compareRows(UnsafeBufferPointer(rebasing: ra[(t * v)..<((t + 1) * v)]),
                                           UnsafeBufferPointer(rebasing: rb[(t * v)..<((t + 1) * v)]), sa, sb)
                    }
                }
            }
        }
    }
    return out
}

/// Compares two rows of log-probabilities of length V. `scratchA`/`scratchB` hold ≥ V doubles.
func compareRows(
    _ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>,
    _ scratchA: UnsafeMutableBufferPointer<Double>, _ scratchB: UnsafeMutableBufferPointer<Double>
) -> FullComparison {
    let v = a.count
    // Argmax on the rows as given; the first strict maximum wins, so ties go to the lowest id.
    var ia = 0, ib = 0
    var ba = -Float.infinity, bb = -Float.infinity
    for i in 0..<v {
        if a[i] > ba { ba = a[i]; ia = i }
        if b[i] > bb { bb = b[i]; ib = i }
    }
    // Log-softmax in Double: shift by the row maximum, sum in token order.
    func normalise(_ row: UnsafeBufferPointer<Float>, _ e: UnsafeMutableBufferPointer<Double>) -> (shift: Double, logZ: Double, z: Double) {
        var m = -Double.infinity
        var sawNaN = false
        for i in 0..<v {
            let x = Double(row[i])
            if x.isNaN { sawNaN = true }
            if x > m { m = x }
        }
        if sawNaN { m = .nan }
        var z = 0.0
        for i in 0..<v {
            let x = expD(Double(row[i]) - m)
            e[i] = x
            z += x
        }
        return (m, logD(z), z)
    }
    let na = normalise(a, scratchA)
    let nb = normalise(b, scratchB)
    var kl = 0.0, tv = 0.0
    for i in 0..<v {
        let mu = scratchA[i] / na.z
        let pi = scratchB[i] / nb.z
        tv += (mu - pi).magnitude
        if mu == 0 {
            // 0·log(0/π) = 0; the π-mass off μ's support enters through the identity below.
            kl += pi
            continue
        }
        let lm = (Double(a[i]) - na.shift) - na.logZ
        let lp = (Double(b[i]) - nb.shift) - nb.logZ
        let delta = lm == lp ? 0 : lm - lp
        // KL = Σ μ log(μ/π) = Σ_{μ>0} μ (e^(−δ) − 1 + δ) + π(μ = 0) for normalised rows: every
        // term is ≥ 0, so there is no cancellation and identical rows give exactly 0.
        kl += mu * k3Term(delta)
    }
    if na.z.isNaN || nb.z.isNaN { kl = .nan; tv = .nan }   // a row with NaN or no finite entry
    return FullComparison(kl: kl, tv: 0.5 * tv, argmaxDiffers: ia != ib)
}

/// 1/n! for n = 0…20, computed with IEEE operations at start-up (the same bits everywhere).
private let inverseFactorials: [Double] = (0...20).map { n in
    1 / (1...max(n, 1)).reduce(1.0) { $0 * Double($1) }
}

/// e^x − 1 without cancellation near 0: Taylor series to x^18/18! for |x| ≤ 1/2 (remainder
/// below 2^-70 relative), `expD(x) − 1` beyond.
func expm1D(_ x: Double) -> Double {
    guard x.magnitude <= 0.5 else { return expD(x) - 1 }
    var p = inverseFactorials[18]
    var n = 17
    while n >= 1 { p = inverseFactorials[n].addingProduct(p, x); n -= 1 }
    return x * p
}

/// e^(−d) − 1 + d ≥ 0 without cancellation near 0: Σ_{n=2}^{N} (−d)^n/n! for |d| ≤ 1/2,
/// the formula itself beyond; +inf for infinite d. N depends on |d| only (so the result is
/// still a fixed function of d): N = 7 up to 2^-10, 10 up to 2^-5, 20 up to 1/2; the first
/// omitted term is below 2^-68 of the sum in each range. (Full-distribution KL calls this for
/// every vocabulary entry, where |d| is usually tiny.)
func k3Term(_ d: Double) -> Double {
    if d.isInfinite { return .infinity }
    let a = d.magnitude
    guard a <= 0.5 else { return (expD(-d) - 1) + d }
    let x = -d
    var n = a <= 0x1p-10 ? 7 : (a <= 0x1p-5 ? 10 : 20)
    var p = inverseFactorials[n]
    n -= 1
    while n >= 2 { p = inverseFactorials[n].addingProduct(p, x); n -= 1 }
    return (x * x) * p
}

// MARK: Aggregation

/// Per-sequence sums.
struct PreparedSequence {
    var index: Int             // index in the input
    var length: Int
    var logRatio: Double       // Σ −d, exact sum rounded once
    var sumD: Double           // Σ d (= −logRatio exactly)
    var meanLogMu: Double
    var meanLogPi: Double
    var maxAbsDlogp: Double
    var klFullSum: Double?
}

struct Prepared {
    var tokens: [PreparedToken] = []
    var sequences: [PreparedSequence] = []
    let options: MismatchOptions

    init(_ input: [TokenLogProbs], options: MismatchOptions) throws {
        for cap in [options.tokenCap, options.sequenceCap] where !(cap.isFinite && cap >= 1) {
            throw MismatchError.badCap(cap)
        }
        self.options = options
        for (s, seq) in input.enumerated() {
            let n = seq.rollout.count
            guard seq.train.count == n else {
                throw MismatchError.lengthMismatch(sequence: s, rollout: n, train: seq.train.count)
            }
            if let pos = seq.positions, pos.count != n || pos.contains(where: { $0 < 0 }) {
                throw MismatchError.badPositions(sequence: s)
            }
            if let f = seq.full {
                let (size, overflow) = n.multipliedReportingOverflow(by: f.vocabularySize)
                guard f.vocabularySize >= 1, !overflow, f.rollout.count == size, f.train.count == size else {
                    throw MismatchError.badFullDistributions(sequence: s)
                }
            }
            if n == 0 { continue }
            let comparisons = seq.full.map { fullComparisons($0, rows: n) }
            let id = sequences.count
            var sumLR = ExactSum(), sumD = ExactSum(), sumMu = ExactSum(), sumPi = ExactSum()
            var sumKL = ExactSum()
            var maxAbs = -Double.infinity
            for t in 0..<n {
                let lm = Double(seq.rollout[t]), lp = Double(seq.train[t])
                let d = lm == lp ? 0 : lm - lp
                let lr = clampLogRatio(-d)
                let full = comparisons?[t]
                if let full { sumKL.add(full.kl) }
                tokens.append(PreparedToken(
                    sequence: id, position: seq.positions?[t] ?? t, logMu: lm, logPi: lp, d: d,
                    dp: expD(lp) - expD(lm), weight: expD(lr), ratioSquaredMinusOne: expm1D(2 * lr),
                    k3: k3Term(d), full: full))
                sumLR.add(-d)
                sumD.add(d)
                sumMu.add(lm)
                sumPi.add(lp)
                maxAbs = maxNaN(maxAbs, d.magnitude)
            }
            let len = Double(n)
            sequences.append(PreparedSequence(
                index: s, length: n, logRatio: sumLR.value, sumD: sumD.value,
                meanLogMu: sumMu.value / len, meanLogPi: sumPi.value / len, maxAbsDlogp: maxAbs,
                klFullSum: seq.full == nil ? nil : sumKL.value))
        }
        if tokens.isEmpty { throw MismatchError.noTokens }
    }

    func overall() -> MismatchStats {
        var stats = tokenLevel(tokens)
        addSequenceLevel(to: &stats)
        return stats
    }

    func byPosition() -> [PositionMismatchStats] {
        var groups: [Int: [PreparedToken]] = [:]
        for t in tokens { groups[t.position, default: []].append(t) }
        return groups.keys.sorted().map { PositionMismatchStats(position: $0, stats: tokenLevel(groups[$0]!)) }
    }

    func bySequence() -> [SequenceMismatch] {
        sequences.map {
            SequenceMismatch(
                index: $0.index, length: $0.length, logRatio: $0.logRatio,
                weight: expD(clampLogRatio($0.logRatio)), maxAbsDlogp: $0.maxAbsDlogp, klFullSum: $0.klFullSum)
        }
    }

    /// Token-level statistics over `group` (non-empty); sequence-level fields left nil.
    func tokenLevel(_ group: [PreparedToken]) -> MismatchStats {
        let n = Double(group.count)
        let cap = options.tokenCap, lower = 1 / cap
        var d = ExactSum(), d2 = ExactSum(), k3 = ExactSum(), absDp = ExactSum(), absD = ExactSum()
        var chi2 = ExactSum(), logMu = ExactSum(), logPi = ExactSum()
        var w = ExactSum(), w2 = ExactSum(), wc = ExactSum(), wc2 = ExactSum()
        var kl = ExactSum(), tv = ExactSum()
        var maxAbsDp = -Double.infinity, maxDp = -Double.infinity, minDp = Double.infinity
        var maxAbsD = -Double.infinity, maxW = -Double.infinity, minW = Double.infinity
        var maxKL = -Double.infinity, maxTV = -Double.infinity
        var outside = 0, full = 0, disagree = 0
        var seqs = Set<Int>()
        for t in group {
            seqs.insert(t.sequence)
            d.add(t.d)
            d2.add(t.d * t.d)
            k3.add(t.k3)
            absDp.add(t.dp.magnitude)
            absD.add(t.d.magnitude)
            chi2.add(t.ratioSquaredMinusOne)
            logMu.add(t.logMu)
            logPi.add(t.logPi)
            w.add(t.weight)
            w2.add(t.weight * t.weight)
            let c = t.weight.isNaN ? t.weight : min(max(t.weight, lower), cap)
            wc.add(c)
            wc2.add(c * c)
            if t.weight > cap || t.weight < lower { outside += 1 }
            maxAbsDp = maxNaN(maxAbsDp, t.dp.magnitude)
            maxDp = maxNaN(maxDp, t.dp)
            minDp = minNaN(minDp, t.dp)
            maxAbsD = maxNaN(maxAbsD, t.d.magnitude)
            maxW = maxNaN(maxW, t.weight)
            minW = minNaN(minW, t.weight)
            if let f = t.full {
                full += 1
                kl.add(f.kl)
                tv.add(f.tv)
                maxKL = maxNaN(maxKL, f.kl)
                maxTV = maxNaN(maxTV, f.tv)
                if f.argmaxDiffers { disagree += 1 }
            }
        }
        let meanW = w.value / n, meanW2 = w2.value / n
        let meanWc = wc.value / n, meanWc2 = wc2.value / n
        let k1 = d.value / n
        let nf = Double(full)
        return MismatchStats(
            tokens: group.count, sequences: seqs.count,
            k1: k1, k2: d2.value / n / 2, k3: k3.value / n,
            meanAbsDp: absDp.value / n, maxAbsDp: maxAbsDp, maxDp: maxDp, minDp: minDp,
            meanAbsDlogp: absD.value / n, maxAbsDlogp: maxAbsD,
            chi2Token: chi2.value / n, chi2Seq: nil,
            pplRollout: expD(-(logMu.value / n)), pplTrain: expD(-(logPi.value / n)), logPplDiff: k1,
            pplRolloutSeq: nil, pplTrainSeq: nil, logPplDiffSeq: nil,
            fullTokens: full,
            klFullMean: full > 0 ? kl.value / nf : nil, klFullMax: full > 0 ? maxKL : nil,
            tvFullMean: full > 0 ? tv.value / nf : nil, tvFullMax: full > 0 ? maxTV : nil,
            argmaxDisagree: full > 0 ? Double(disagree) / nf : nil,
            isTokenCap: cap, isTokenMean: meanW, isTokenMax: maxW, isTokenMin: minW,
            ess: meanW * meanW / meanW2, essTokenClamped: meanWc * meanWc / meanWc2,
            isTokenFracOutside: Double(outside) / n,
            isSeqCap: nil, isSeqMean: nil, isSeqMax: nil, isSeqMin: nil, essSeq: nil, essSeqClamped: nil,
            isSeqFracOutside: nil, seqK1: nil, seqKlFull: nil, seqLogratioSlope: nil)
    }

    /// Fills the sequence-level fields from all sequences.
    func addSequenceLevel(to stats: inout MismatchStats) {
        let n = Double(sequences.count)
        let cap = options.sequenceCap, lower = 1 / cap
        var chi2 = ExactSum(), rho = ExactSum(), rho2 = ExactSum(), rhoc = ExactSum(), rhoc2 = ExactSum()
        var pplMu = ExactSum(), pplPi = ExactSum(), logPplDiff = ExactSum(), sumD = ExactSum()
        var kl = ExactSum(), lengths = ExactSum()
        var maxRho = -Double.infinity, minRho = Double.infinity
        var outside = 0, withFull = 0
        for s in sequences {
            let lr = clampLogRatio(s.logRatio)
            let r = expD(lr)
            chi2.add(expm1D(2 * lr))
            rho.add(r)
            rho2.add(r * r)
            let c = r.isNaN ? r : min(max(r, lower), cap)
            rhoc.add(c)
            rhoc2.add(c * c)
            if r > cap || r < lower { outside += 1 }
            maxRho = maxNaN(maxRho, r)
            minRho = minNaN(minRho, r)
            pplMu.add(expD(-s.meanLogMu))
            pplPi.add(expD(-s.meanLogPi))
            logPplDiff.add(s.sumD / Double(s.length))
            sumD.add(s.sumD)
            lengths.add(Double(s.length))
            if let k = s.klFullSum { kl.add(k); withFull += 1 }
        }
        let m1 = rho.value / n, m2 = rho2.value / n
        let c1 = rhoc.value / n, c2 = rhoc2.value / n
        stats.chi2Seq = chi2.value / n
        stats.isSeqCap = cap
        stats.isSeqMean = m1
        stats.isSeqMax = maxRho
        stats.isSeqMin = minRho
        stats.essSeq = m1 * m1 / m2
        stats.essSeqClamped = c1 * c1 / c2
        stats.isSeqFracOutside = Double(outside) / n
        stats.pplRolloutSeq = pplMu.value / n
        stats.pplTrainSeq = pplPi.value / n
        stats.logPplDiffSeq = logPplDiff.value / n
        stats.seqK1 = sumD.value / n
        stats.seqKlFull = withFull > 0 ? kl.value / Double(withFull) : nil
        // Least squares: slope = Σ (x − x̄) y / Σ (x − x̄)², both sums exact, so the order of
        // the sequences does not matter.
        let xbar = lengths.value / n
        if sequences.contains(where: { Double($0.length) != xbar }) {
            var sxx = ExactSum(), sxy = ExactSum()
            for s in sequences {
                let dx = Double(s.length) - xbar
                sxx.add(dx * dx)
                sxy.add(dx * s.logRatio)
            }
            stats.seqLogratioSlope = sxy.value / sxx.value
        }
    }
}

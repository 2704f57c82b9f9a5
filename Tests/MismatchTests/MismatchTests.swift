import Foundation
import JSON
import Mismatch
import Numerics
import Testing

/// |a − b| ≤ abs + rel·|b|, treating nil = nil and equal infinities as equal.
func close(_ a: Double?, _ b: Double?, rel: Double, abs: Double = 0) -> Bool {
    switch (a, b) {
    case (nil, nil): return true
    case let (x?, y?):
        if x == y { return true }
        return Swift.abs(x - y) <= abs + rel * Swift.abs(y)
    default: return false
    }
}

/// Compares every key the reference computed; reports the first few that differ.
func expectClose(_ got: StatValues, _ want: StatValues, rel: Double, abs: Double, _ context: String = "",
                 sourceLocation: SourceLocation = #_sourceLocation) {
    var bad: [String] = []
    for (k, w) in want.sorted(by: { $0.key < $1.key }) {
        guard let g = got[k] else { bad.append("\(k) missing"); continue }
        if !close(g, w, rel: rel, abs: abs) { bad.append("\(k): got \(String(describing: g)) want \(String(describing: w))") }
    }
    #expect(bad.isEmpty, "\(context) \(bad.prefix(6).joined(separator: "; "))", sourceLocation: sourceLocation)
}

@Suite struct MismatchStatsTests {
    // Two sequences of lengths 1 and 3; all log-probabilities are exact in Float.
    //   A: log μ = [−1],            log π = [−1.5]          → d = [0.5]
    //   B: log μ = [−2, −0.75, −1], log π = [−1.5, −1, −1]  → d = [−0.5, 0.25, 0]
    // By hand (n = 4 tokens):
    //   k1 = (0.5 − 0.5 + 0.25 + 0)/4 = 0.0625
    //   k2 = (0.25 + 0.25 + 0.0625 + 0)/4/2 = 0.0703125
    //   k3 = [(e^−0.5 − 0.5) + (e^0.5 − 1.5) + (e^−0.25 − 0.75) + 0]/4
    //      = (0.10653065971263342 + 0.1487212707001282 + 0.02880078307140488)/4 = 0.07101317837104162
    //   chi2_token = (e^−1 + e^1 + e^−0.5 + 1)/4 − 1 = 0.17317298233578016
    //   sequence log-ratios Σ log(π/μ): A −0.5, B 0.5 − 0.25 + 0 = 0.25
    //   chi2_seq = (e^−1 + e^0.5)/2 − 1 = 0.008300355935785264
    //   slope over (1, −0.5), (3, 0.25) = 0.75/2 = 0.375; seq_k1 = (0.5 − 0.25)/2 = 0.125
    //   ppl_rollout = e^(1.1875) = 3.2788737679386735, ppl_train = e^(1.25) = 3.4903429574618414
    //   ppl_rollout_seq = (e^1 + e^(3.75/3))/2 = 3.104312392960443,
    //   ppl_train_seq = (e^1.5 + e^(3.5/3))/2 = 3.846479806745813, log_ppl_diff_seq = (0.5 − 0.25/3)/2
    //   token weights w = e^−d = [0.6065…, 1.6487…, 0.7788…, 1]: mean 1.0085131783710417,
    //   ESS = mean(w)²/mean(w²) = 0.8669640762805695; with C = 2 none is outside [0.5, 2],
    //   with C = 1.5 two are (0.6065 < 2/3 and 1.6487 > 1.5).
    //   sequence weights ρ = [e^−0.5, e^0.25]: mean 0.9452780382001874, ESS 0.8861948369286324
    //   mean |π − μ| = (0.14474928102301252 + 0.08779487691181712 + 0.10448711156957236 + 0)/4
    //                = 0.0842578173761005, max 0.1447…, max(π − μ) = 0.0877…, min = −0.1447…
    static let hand = [
        TokenLogProbs(rollout: [-1], train: [-1.5]),
        TokenLogProbs(rollout: [-2, -0.75, -1], train: [-1.5, -1, -1]),
    ]

    @Test func handComputedCase() throws {
        let s = try mismatchStats(Self.hand)
        // Sums are exact and the divisions by 4 and 2 are exact: these are bit-exact.
        #expect(s.tokens == 4 && s.sequences == 2)
        #expect(s.k1 == 0.0625 && s.k2 == 0.0703125 && s.logPplDiff == 0.0625)
        #expect(s.seqLogratioSlope == 0.375 && s.seqK1 == 0.125)
        #expect(s.meanAbsDlogp == 0.3125 && s.maxAbsDlogp == 0.5)
        // Through expD (≤ 1 ulp per exponential, a few roundings): 4 ulps relative.
        let u = 4 * Double.ulpOfOne
        #expect(close(s.k3, 0.07101317837104162, rel: u))
        #expect(close(s.chi2Token, 0.17317298233578016, rel: u))
        #expect(close(s.chi2Seq, 0.008300355935785264, rel: 64 * u))  // e^x − 1 near 1: cancellation in the hand value
        #expect(close(s.pplRollout, 3.2788737679386735, rel: u) && close(s.pplTrain, 3.4903429574618414, rel: u))
        #expect(close(s.pplRolloutSeq, 3.104312392960443, rel: u) && close(s.pplTrainSeq, 3.846479806745813, rel: u))
        #expect(close(s.logPplDiffSeq, (0.5 - 0.25 / 3) / 2, rel: u))
        #expect(close(s.isTokenMean, 1.0085131783710417, rel: u) && close(s.ess, 0.8669640762805695, rel: u))
        #expect(close(s.isSeqMean, 0.9452780382001874, rel: u) && close(s.essSeq, 0.8861948369286324, rel: u))
        #expect(close(s.meanAbsDp, 0.0842578173761005, rel: u))
        #expect(close(s.maxAbsDp, 0.14474928102301252, rel: u) && close(s.minDp, -0.14474928102301252, rel: u))
        #expect(close(s.maxDp, 0.08779487691181712, rel: u))
        #expect(s.isTokenFracOutside == 0 && s.isSeqFracOutside == 0)
        #expect(s.essTokenClamped == s.ess)   // nothing to clamp with C = 2
        #expect(s.klFullMean == nil && s.argmaxDisagree == nil && s.fullTokens == 0)

        let tight = try mismatchStats(Self.hand, options: MismatchOptions(tokenCap: 1.5, sequenceCap: 1.3))
        #expect(tight.isTokenFracOutside == 0.5)          // 0.6065 < 1/1.5 and 1.6487 > 1.5
        #expect(tight.isSeqFracOutside == 0.5)            // e^−0.5 = 0.607 < 1/1.3; e^0.25 = 1.284 ≤ 1.3
        #expect(tight.isTokenCap == 1.5 && tight.isSeqCap == 1.3)
        let tighter = try mismatchStats(Self.hand, options: MismatchOptions(sequenceCap: 1.25))
        #expect(tighter.isSeqFracOutside == 1)            // and 1.284 > 1.25
        // Clamped ESS on w clamped to [2/3, 1.5]: [2/3, 1.5, e^−0.25, 1].
        let wc = [2.0 / 3, 1.5, Foundation.exp(-0.25), 1]
        let m1 = wc.reduce(0, +) / 4, m2 = wc.map { $0 * $0 }.reduce(0, +) / 4
        #expect(close(tight.essTokenClamped, m1 * m1 / m2, rel: 1e-15))
    }

    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func matchesReferenceOnRandomRollouts(seed: UInt64) throws {
        // Tolerance: the reference sums naively (error ≤ n·ε·Σ|terms| ≈ 1000 · 1.1e-16) and
        // uses libm exp/log (≤ 1 ulp) where the module uses expD/logD (≤ 1 ulp) and exact
        // sums; chi2 = mean(r²) − 1 loses ~1e-16 absolute to cancellation in the reference.
        // So 1e-10 relative has three orders of margin; 1e-15 absolute covers values that are
        // ~1e-17 in one implementation and 0 in the other.
        let noise = [0.0, 0.02, 0.2, 1.0][Int(seed % 4)]
        let seqs = randomRollout(seed: seed, noise: noise)
        let caps = MismatchOptions(tokenCap: seed == 3 ? 1.1 : 2, sequenceCap: seed == 3 ? 10 : 2)
        let got = values(try mismatchStats(seqs, options: caps))
        let want = Reference.overall(seqs, tokenCap: caps.tokenCap, sequenceCap: caps.sequenceCap)
        expectClose(got, want, rel: 1e-10, abs: 1e-15, "seed \(seed)")
    }

    @Test func matchesReferenceWithoutFullDistributionsAndWithPositions() throws {
        var seqs = randomRollout(seed: 7, count: 12, noise: 0.1, full: false)
        // Responses that start at other positions (e.g. continued turns).
        for i in seqs.indices where i % 3 == 0 { seqs[i].positions = (0..<seqs[i].count).map { $0 + 5 } }
        let got = values(try mismatchStats(seqs))
        expectClose(got, Reference.overall(seqs), rel: 1e-10, abs: 1e-15)
        #expect(got["kl_full_mean"]! == nil && got["seq_kl_full"]! == nil)
    }

    @Test func byPositionMatchesReference() throws {
        var seqs = randomRollout(seed: 11, count: 20, maxLength: 12, noise: 0.3)
        seqs[0].positions = (0..<seqs[0].count).map { 3 * $0 }      // gaps
        let got = try mismatchStatsByPosition(seqs)
        let want = Reference.byPosition(seqs)
        #expect(got.map(\.position) == want.map(\.0))
        for (g, (p, w)) in zip(got, want) { expectClose(values(g.stats), w, rel: 1e-10, abs: 1e-15, "position \(p)") }
        #expect(got.map(\.stats.tokens).reduce(0, +) == seqs.map(\.count).reduce(0, +))
        #expect(got.allSatisfy { $0.stats.chi2Seq == nil && $0.stats.seqLogratioSlope == nil && $0.stats.essSeq == nil })
        // JSON: the position first, then the statistics' keys.
        let o = try #require(got[0].json.serialized.data(using: .utf8))
        let parsed = try #require(try JSONSerialization.jsonObject(with: o) as? [String: Any])
        #expect(parsed["position"] as? Int == got[0].position)
        #expect(got[0].json.serialized.hasPrefix("{\"position\":\(got[0].position),\"tokens\":"))
    }

    @Test func report() throws {
        var seqs = randomRollout(seed: 5, count: 6, noise: 0.1)
        seqs.insert(TokenLogProbs(rollout: [], train: []), at: 2)       // ignored
        let r = try mismatchReport(seqs)
        #expect(r.overall == (try mismatchStats(seqs)))
        #expect(r.byPosition == (try mismatchStatsByPosition(seqs)))
        #expect(r.bySequence.map(\.index) == [0, 1, 3, 4, 5, 6])
        #expect(r.overall.sequences == 6)
        for s in r.bySequence {
            let q = seqs[s.index]
            var lr = 0.0, kl = 0.0
            for t in 0..<q.count { lr += Double(q.train[t]) - Double(q.rollout[t]) }
            let v = q.full!.vocabularySize
            for t in 0..<q.count {
                kl += Reference.compare(q.full!.rollout[(t * v)..<((t + 1) * v)].map(Double.init),
                                        q.full!.train[(t * v)..<((t + 1) * v)].map(Double.init)).kl
            }
            #expect(s.length == q.count && close(s.logRatio, lr, rel: 1e-12, abs: 1e-15))
            #expect(close(s.weight, Foundation.exp(lr), rel: 1e-13))
            #expect(close(s.klFullSum, kl, rel: 1e-10, abs: 1e-15))
        }
    }

    @Test func identicalEnginesGiveExactZeros() throws {
        var seqs = randomRollout(seed: 9, count: 15, noise: 0)
        // Include impossible tokens and vocabulary entries: log p = −inf under both engines.
        seqs[1].rollout[0] = -.infinity
        seqs[1].full!.rollout[3] = -.infinity
        seqs[2].full!.rollout[0] = -.infinity
        for i in seqs.indices { seqs[i].train = seqs[i].rollout; seqs[i].full!.train = seqs[i].full!.rollout }
        let s = try mismatchStats(seqs)
        for (name, x) in [("k1", s.k1), ("k2", s.k2), ("k3", s.k3), ("mean_abs_dp", s.meanAbsDp), ("max_abs_dp", s.maxAbsDp),
                          ("max_dp", s.maxDp), ("min_dp", s.minDp), ("mean_abs_dlogp", s.meanAbsDlogp),
                          ("max_abs_dlogp", s.maxAbsDlogp), ("chi2_token", s.chi2Token), ("chi2_seq", s.chi2Seq!),
                          ("kl_full_mean", s.klFullMean!), ("kl_full_max", s.klFullMax!), ("tv_full_mean", s.tvFullMean!),
                          ("argmax_disagree", s.argmaxDisagree!), ("slope", s.seqLogratioSlope!), ("seq_k1", s.seqK1!),
                          ("seq_kl_full", s.seqKlFull!), ("log_ppl_diff", s.logPplDiff), ("log_ppl_diff_seq", s.logPplDiffSeq!),
                          ("is_token_frac_outside", s.isTokenFracOutside), ("is_seq_frac_outside", s.isSeqFracOutside!)] {
            // +0 exactly (not −0, which would print as "-0.0").
            #expect(x == 0 && x.sign == .plus, "\(name) = \(x)")
        }
        for (name, x) in [("ess", s.ess), ("ess_token_clamped", s.essTokenClamped), ("ess_seq", s.essSeq!),
                          ("ess_seq_clamped", s.essSeqClamped!), ("is_token_mean", s.isTokenMean), ("is_token_max", s.isTokenMax),
                          ("is_token_min", s.isTokenMin), ("is_seq_mean", s.isSeqMean!), ("is_seq_max", s.isSeqMax!),
                          ("is_seq_min", s.isSeqMin!)] {
            #expect(x == 1, "\(name) = \(x)")
        }
        #expect(s.pplRollout == s.pplTrain && s.pplRolloutSeq == s.pplTrainSeq)
        #expect(s.pplRollout == .infinity)     // the impossible token: perplexity infinite under both
        let json = s.json.serialized
        #expect(json.contains("\"k1\":0.0,\"k2\":0.0,\"k3\":0.0,") && json.contains("\"ess\":1.0,\"seq_logratio_slope\":0.0"))
        for p in try mismatchStatsByPosition(seqs) {
            #expect(p.stats.k1 == 0 && p.stats.k3 == 0 && p.stats.chi2Token == 0 && p.stats.klFullMax == 0 && p.stats.ess == 1)
        }
    }

    @Test func permutingSequencesChangesNoBit() throws {
        var seqs = randomRollout(seed: 13, count: 30, noise: 0.5)
        seqs[4].train[0] = -.infinity                     // also with an infinite statistic
        let a = try mismatchReport(seqs)
        var rng = RandomStream(seed: 13, name: "shuffle")
        for _ in 0..<3 {
            seqs.shuffle(using: &rng)
            let b = try mismatchReport(seqs)
            #expect(a.overall.json.serialized == b.overall.json.serialized)
            #expect(a.overall.k1.bitPattern == b.overall.k1.bitPattern && a.overall.k3.bitPattern == b.overall.k3.bitPattern)
            #expect(a.byPosition.map(\.json.serialized) == b.byPosition.map(\.json.serialized))
        }
    }

    @Test func exactKLOfBernoulliPairs() throws {
        // KL[Bern(p)‖Bern(q)] = p log(p/q) + (1−p) log((1−p)/(1−q)). Inputs are Float
        // log-probabilities: each log p carries a rounding error ≤ 2^-24·|log p| (≤ 3e-7 for
        // p ≥ 0.01), which moves the KL of the rounded distributions by about Σ μ|ε|(1 + |δ|)
        // < 1e-6 absolute here. (Tight comparisons of the arithmetic are the random tests.)
        for (p, q) in [(0.5, 0.25), (0.9, 0.8), (0.01, 0.02), (0.2, 0.6)] {
            let kl = p * Foundation.log(p / q) + (1 - p) * Foundation.log((1 - p) / (1 - q))
            let tv = Swift.abs(p - q)
            let seq = TokenLogProbs(
                rollout: [Float(Foundation.log(p))], train: [Float(Foundation.log(q))],
                full: FullDistributions(vocabularySize: 2, rollout: [Float(Foundation.log(p)), Float(Foundation.log(1 - p))],
                                        train: [Float(Foundation.log(q)), Float(Foundation.log(1 - q))]))
            let s = try mismatchStats([seq])
            #expect(close(s.klFullMean, kl, rel: 0, abs: 1e-6), "p \(p) q \(q): \(s.klFullMean!) vs \(kl)")
            #expect(close(s.tvFullMean, tv, rel: 1e-5))
            #expect(s.klFullMax == s.klFullMean && s.seqKlFull == s.klFullMean)
        }
        // 0.5·log(4/3) for (0.5, 0.25), as in the comment of the hand case.
        let half = try mismatchStats([TokenLogProbs(rollout: [-0.6931472], train: [-1.3862944],
            full: FullDistributions(vocabularySize: 2, rollout: [-0.6931472, -0.6931472], train: [-1.3862944, -0.2876821]))])
        #expect(close(half.klFullMean, 0.14384103622589042, rel: 0, abs: 1e-6))
    }

    @Test func klWithZeroProbabilities() throws {
        func kl(_ a: [Float], _ b: [Float]) throws -> MismatchStats {
            try mismatchStats([TokenLogProbs(rollout: [a[0]], train: [b[0]],
                                             full: FullDistributions(vocabularySize: a.count, rollout: a, train: b))])
        }
        let ln2 = Float(Foundation.log(0.5))
        // μ = (1, 0), π = (½, ½): KL[μ‖π] = log 2 (the 0·log 0 term is 0).
        #expect(close(try kl([0, -.infinity], [ln2, ln2]).klFullMean, Foundation.log(2), rel: 1e-7))
        // μ = (½, ½), π = (1, 0): π gives zero mass where μ has some → KL = +inf, TV = ½.
        let inf = try kl([ln2, ln2], [0, -.infinity])
        #expect(inf.klFullMean == .infinity && inf.klFullMax == .infinity && close(inf.tvFullMean, 0.5, rel: 1e-7))
        #expect(inf.json.serialized.contains("\"kl_full_mean\":null,\"kl_full_max\":null,"))
        // Both zero on the same entry: contributes nothing.
        #expect(try kl([0, -.infinity], [0, -.infinity]).klFullMean == 0)
        // A row without any finite entry is not a distribution: NaN (null), no trap.
        #expect(try kl([-.infinity, -.infinity], [0, -.infinity]).klFullMean!.isNaN)
    }

    @Test func argmaxTiesGoToTheLowestTokenId() throws {
        func disagree(_ a: [Double], _ b: [Double]) throws -> Double {
            let la = a.map { Float(Foundation.log($0)) }, lb = b.map { Float(Foundation.log($0)) }
            return try mismatchStats([TokenLogProbs(rollout: [la[0]], train: [lb[0]],
                full: FullDistributions(vocabularySize: a.count, rollout: la, train: lb))]).argmaxDisagree!
        }
        #expect(try disagree([0.5, 0.5], [0.5, 0.5]) == 0)
        #expect(try disagree([0.5, 0.5], [0.4, 0.6]) == 1)          // tie → 0 vs 1
        #expect(try disagree([0.5, 0.5], [0.6, 0.4]) == 0)          // tie → 0 vs 0
        #expect(try disagree([0.3, 0.35, 0.35], [0.3, 0.36, 0.34]) == 0)   // tie → 1 vs 1
        #expect(try disagree([0.3, 0.35, 0.35], [0.3, 0.34, 0.36]) == 1)
        // Fractions over positions.
        let a: [Float] = [Float(Foundation.log(0.7)), Float(Foundation.log(0.3))]
        let b: [Float] = [Float(Foundation.log(0.3)), Float(Foundation.log(0.7))]
        let s = try mismatchStats([TokenLogProbs(rollout: [a[0], a[0], a[0], a[0]], train: [a[0], b[0], a[0], a[0]],
            full: FullDistributions(vocabularySize: 2, rollout: a + a + a + a, train: a + b + a + a))])
        #expect(s.argmaxDisagree == 0.25)
    }

    @Test func slopeOfExactlyLinearData() throws {
        // Every token has log-ratio c, and the first token of each sequence an extra a:
        // Σ log(π/μ) = a + c·L exactly. Dyadic c and a: every step is exact, so the slope is.
        func rollout(_ c: Float, _ a: Float, lengths: [Int]) -> [TokenLogProbs] {
            lengths.map { n in
                var train = [Float](repeating: -1 + c, count: n)
                train[0] += a
                return TokenLogProbs(rollout: [Float](repeating: -1, count: n), train: train)
            }
        }
        let exact = try mismatchStats(rollout(-0.25, 0.5, lengths: [1, 2, 3, 5, 8, 13, 13, 40]))
        #expect(exact.seqLogratioSlope == -0.25)
        // c = 0.1 is not exact in Float: the slope is the rounded c, c = Float(−0.9) − Float(−1).
        let c = Double(Float(-0.9)) + 1
        let s = try mismatchStats(rollout(Float(-0.9) + 1, 0, lengths: [3, 7, 7, 20, 31]))
        #expect(close(s.seqLogratioSlope, c, rel: 1e-12))
        // Fewer than two distinct lengths: no slope.
        #expect(try mismatchStats(rollout(0.25, 0, lengths: [4, 4, 4])).seqLogratioSlope == nil)
        #expect(try mismatchStats(rollout(0.25, 0, lengths: [4])).seqLogratioSlope == nil)
    }

    @Test func zeroProbabilityTokens() throws {
        // Training engine gives the sampled token probability 0 (log π = −inf): d = +inf.
        let s = try mismatchStats([
            TokenLogProbs(rollout: [-1, -0.5], train: [-.infinity, -0.5]),
            TokenLogProbs(rollout: [-2], train: [-2]),
        ])
        #expect(s.k1 == .infinity && s.k2 == .infinity && s.k3 == .infinity)
        #expect(s.maxAbsDlogp == .infinity && s.meanAbsDlogp == .infinity && s.pplTrain == .infinity)
        #expect(s.pplRollout.isFinite)
        #expect(close(s.maxAbsDp, Foundation.exp(-1), rel: 1e-15) && close(s.minDp, -Foundation.exp(-1), rel: 1e-15))
        // Ratios use log-ratios clamped to ±20: the token's weight is e^−20, finite.
        #expect(close(s.isTokenMin, Foundation.exp(-20), rel: 1e-15))
        #expect(close(s.chi2Token, (Foundation.exp(-40) + 1 + 1) / 3 - 1, rel: 1e-14))
        #expect(close(s.isSeqMin, Foundation.exp(-20), rel: 1e-15))
        #expect(close(s.chi2Seq, (Foundation.exp(-40) + 1) / 2 - 1, rel: 1e-14))
        #expect(s.ess.isFinite && s.essSeq!.isFinite && s.isTokenFracOutside == 1.0 / 3)
        // The unclamped log-ratio −inf against length: no finite slope.
        #expect(!(s.seqLogratioSlope!.isFinite))
        let json = s.json.serialized
        #expect(json.hasPrefix("{\"tokens\":3,\"sequences\":2,\"k1\":null,\"k2\":null,\"k3\":null,"))

        // Rollout engine recorded probability 0 for a token it sampled: d = −inf, weight e^20.
        let r = try mismatchStats([TokenLogProbs(rollout: [-.infinity, -1], train: [-3, -1])])
        #expect(r.k1 == -.infinity && r.k3 == .infinity && r.pplRollout == .infinity)
        #expect(close(r.isTokenMax, Foundation.exp(20), rel: 1e-15) && close(r.isSeqMax, Foundation.exp(20), rel: 1e-15))
        // Both engines: probability 0 — they agree, d = 0.
        let both = try mismatchStats([TokenLogProbs(rollout: [-.infinity, -1], train: [-.infinity, -1])])
        #expect(both.k1 == 0 && both.k3 == 0 && both.chi2Token == 0 && both.ess == 1)
        // +inf and −inf log-ratios within one sequence: the sequence log-ratio is undefined.
        let mixed = try mismatchStats([TokenLogProbs(rollout: [-.infinity, -1], train: [-1, -.infinity])])
        #expect(mixed.k1.isNaN && mixed.chi2Seq!.isNaN && mixed.k3 == .infinity && mixed.chi2Token.isFinite)
        #expect(mixed.json.serialized.contains("\"chi2_seq\":null"))
    }

    @Test func smallDifferencesKeepTheirRelativeAccuracy() throws {
        // d = −2^-24 (FP32-level mismatch): e^−d − 1 + d ≈ d²/2 ≈ 1.8e-15 loses about half its
        // digits to cancellation if computed as written (even as expm1(−d) + d); the module's
        // series keeps it to a few ulps. Expected: the Taylor series, whose next term d⁵/120
        // is 2^-64 of the value.
        let a: Float = -1, b = Float(-1).nextUp
        let d = Double(a) - Double(b)
        #expect(d == -0x1p-24)
        let s = try mismatchStats([TokenLogProbs(rollout: [a, a], train: [b, a])])
        let k3 = (d * d / 2 - d * d * d / 6 + d * d * d * d / 24) / 2   // two tokens, one with d = 0
        #expect(close(s.k3, k3, rel: 1e-12), "\(s.k3) vs \(k3)")
        let chi2 = Foundation.expm1(-2 * d) / 2
        #expect(close(s.chi2Token, chi2, rel: 1e-12), "\(s.chi2Token) vs \(chi2)")
        #expect(close(s.chi2Seq, Foundation.expm1(-2 * d), rel: 1e-12))
        #expect(s.k3 > 0 && s.k2 == d * d / 4)
    }

    @Test func k3IsAccurateAcrossMagnitudes() throws {
        // One token at a time, d from 2^-30 to 0.9 of both signs, across the module's series
        // ranges (≤ 2^-10, ≤ 2^-5, ≤ 1/2, beyond). Expected: for |d| ≤ 1/2 the series
        // Σ_{n=2}^{25} (−d)^n/n! summed term by term (alternating or positive terms of
        // decreasing size: a few ulps; truncation < 2^-90 relative); beyond, expm1(−d) + d,
        // whose cancellation costs at most 2^-52/|d| < 2^-51 relative there. Bound: 1e-14.
        var worst = 0.0
        for e in stride(from: -30.0, through: -0.15, by: 0.37) {
            for sign in [1.0, -1.0] {
                let rollout = Float(-2), train = Float(-2 + sign * Foundation.pow(2, e))
                let d = Double(rollout) - Double(train)
                if d == 0 { continue }
                var want = 0.0
                if d.magnitude <= 0.5 {
                    var term = 1.0
                    for n in 1...25 {
                        term *= -d / Double(n)
                        if n >= 2 { want += term }
                    }
                } else {
                    want = Foundation.expm1(-d) + d
                }
                let got = try mismatchStats([TokenLogProbs(rollout: [rollout], train: [train])]).k3
                worst = Swift.max(worst, Swift.abs(got - want) / want)
            }
        }
        #expect(worst < 1e-14, "worst relative error \(worst)")
    }

    @Test func inputErrors() throws {
        #expect(throws: MismatchError.noTokens) { try mismatchStats([]) }
        #expect(throws: MismatchError.noTokens) { try mismatchStats([TokenLogProbs(rollout: [], train: [])]) }
        #expect(throws: MismatchError.lengthMismatch(sequence: 1, rollout: 2, train: 1)) {
            try mismatchStats([TokenLogProbs(rollout: [-1], train: [-1]), TokenLogProbs(rollout: [-1, -1], train: [-1])])
        }
        #expect(throws: MismatchError.badPositions(sequence: 0)) {
            try mismatchStats([TokenLogProbs(rollout: [-1], train: [-1], positions: [0, 1])])
        }
        #expect(throws: MismatchError.badPositions(sequence: 0)) {
            try mismatchStats([TokenLogProbs(rollout: [-1], train: [-1], positions: [-1])])
        }
        #expect(throws: MismatchError.badFullDistributions(sequence: 0)) {
            try mismatchStats([TokenLogProbs(rollout: [-1], train: [-1],
                                             full: FullDistributions(vocabularySize: 2, rollout: [0, 0], train: [0]))])
        }
        #expect(throws: MismatchError.badFullDistributions(sequence: 0)) {
            try mismatchStats([TokenLogProbs(rollout: [-1], train: [-1],
                                             full: FullDistributions(vocabularySize: 0, rollout: [], train: []))])
        }
        for cap in [0.5, 0, -2, .infinity, .nan] {
            #expect(throws: MismatchError.self) { try mismatchStats(Self.hand, options: MismatchOptions(tokenCap: cap)) }
            #expect(throws: MismatchError.self) { try mismatchStats(Self.hand, options: MismatchOptions(sequenceCap: cap)) }
        }
        #expect(!MismatchError.noTokens.description.isEmpty)
    }

    @Test func jsonCarriesTheRequiredKeysInOrder() throws {
        let s = try mismatchStats(randomRollout(seed: 21, count: 8, noise: 0.1))
        let text = s.json.serialized
        #expect(!text.contains("\n") && !text.contains(" "))
        let data = try #require(text.data(using: .utf8))
        let parsed = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        for k in MismatchStats.requiredJSONKeys { #expect(parsed[k] != nil, "missing \(k)") }
        #expect(Set(parsed.keys) == Set(MismatchStats.jsonKeys))
        #expect(Array(MismatchStats.jsonKeys.prefix(MismatchStats.requiredJSONKeys.count)) == MismatchStats.requiredJSONKeys)
        #expect(s.jsonObject.keys == MismatchStats.jsonKeys)
        #expect(MismatchStats.jsonKeys.allSatisfy { $0 == $0.lowercased() && !$0.contains("-") })
        // Numbers parse back to the same doubles.
        #expect(Double(String(text.split(separator: "\"k3\":")[1].prefix { $0 != "," })) == s.k3)
        #expect(parsed["tokens"] as? Int == s.tokens)
        // Absent values are null.
        let noFull = try mismatchStats(Self.hand)
        let p2 = try #require(try JSONSerialization.jsonObject(with: noFull.json.serialized.data(using: .utf8)!) as? [String: Any])
        #expect(p2["kl_full_mean"] is NSNull && p2["argmax_disagree"] is NSNull)
        #expect(Set(p2.keys) == Set(MismatchStats.jsonKeys))
        // Codable round trip with the same snake_case keys.
        let encoded = try JSONEncoder().encode(s)
        #expect(try JSONDecoder().decode(MismatchStats.self, from: encoded) == s)
        let codableKeys = try #require(try JSONSerialization.jsonObject(with: encoded) as? [String: Any]).keys
        #expect(Set(codableKeys) == Set(MismatchStats.jsonKeys))
    }
}

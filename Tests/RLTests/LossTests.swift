import Numerics
import RL
import Testing

/// A tiny batch: two responses of different lengths with mismatched engines and a policy
/// that has moved away from π_old (as on a later minibatch).
func tinyBatch(advantages: (Double, Double) = (0.8, -0.5)) -> [ResponseLogProbs] {
    [ResponseLogProbs(logPi: [-0.50, -1.20, -0.05], logOld: [-0.45, -1.30, -0.06], logMu: [-0.60, -1.00, -0.06],
                      advantage: advantages.0),
     ResponseLogProbs(logPi: [-2.00, -0.30], logOld: [-2.10, -0.25], logMu: [-1.70, -0.40], advantage: advantages.1)]
}

/// Central finite differences of the loss in each log π_θ(y_t).
///
/// Tolerance: the losses are smooth away from clip boundaries (the tiny batch keeps every
/// ratio at least 0.01 from a boundary, and h = 1e-6 moves it by about 1e-6), so the
/// difference quotient is exact to O(h²) ≈ 1e-12 plus rounding ≈ 1e-16/h = 1e-10 in double.
func finiteDifferences(_ batch: [ResponseLogProbs], _ config: LossConfig, h: Double = 1e-6) -> [[Double]] {
    var out: [[Double]] = []
    for i in batch.indices {
        var row: [Double] = []
        for t in batch[i].logPi.indices {
            var plus = batch, minus = batch
            plus[i].logPi[t] += h
            minus[i].logPi[t] -= h
            row.append((policyLoss(plus, config: config).loss - policyLoss(minus, config: config).loss) / (2 * h))
        }
        out.append(row)
    }
    return out
}

func expectClose(_ a: [[Double]], _ b: [[Double]], tolerance: Double, _ comment: Comment? = nil) {
    #expect(a.count == b.count)
    for (x, y) in zip(a, b) {
        #expect(x.count == y.count)
        for (u, v) in zip(x, y) {
            #expect(abs(u - v) <= tolerance * max(1, abs(v)), "\(comment?.description ?? ""): \(u) vs \(v); rows \(x) vs \(y)")
        }
    }
}

@Suite struct LossGradientTests {
    /// Every algorithm whose weights are stop-gradient in μ and π_old only (so that the loss
    /// value's derivative is the gradient): analytic gradient against finite differences,
    /// under every aggregation.
    @Test(arguments: [Algorithm.pg, .grpo, .drgrpo, .gspo, .tokenTIS, .seqTIS, .seqMIS])
    func gradientMatchesFiniteDifferences(algorithm: Algorithm) {
        for aggregation in LossAggregation.allCases {
            // Wide GSPO clip so the sequence ratios (≈ e^±0.05) stay inside it.
            let config = LossConfig(algorithm: algorithm, clipLow: 0.2, clipHigh: 0.2, gspoClipLow: 0.2, gspoClipHigh: 0.2,
                                    tokenCap: 1.1, sequenceCap: 1.5, aggregation: aggregation, maxResponseLength: 8)
            let batch = tinyBatch()
            let result = policyLoss(batch, config: config)
            expectClose(result.gradients, finiteDifferences(batch, config), tolerance: 1e-7, "\(algorithm) \(aggregation)")
            #expect(result.gradients.joined().contains { $0 != 0 }, "a stub returning zeros must fail")
        }
    }

    /// PG by hand: token-mean over 5 tokens, g = −A/5.
    @Test func pgByHand() {
        let r = policyLoss(tinyBatch(), config: LossConfig(algorithm: .pg, aggregation: .tokenMean))
        let a: Double = -0.8 / 5, b: Double = 0.5 / 5
        expectClose(r.gradients, [[a, a, a], [b, b]], tolerance: 1e-15)
        let first: Double = 0.8 * (0.50 + 1.20 + 0.05)
        let second: Double = 0.5 * (2.00 + 0.30)
        let loss = (first - second) / 5
        #expect(abs(r.loss - loss) < 1e-15)
    }

    /// The aggregation weights by hand, on PG (g = −A·w): seq-mean-token-sum 1/n,
    /// seq-mean-token-mean 1/(n|y|), constant 1/(n·L_max).
    @Test func aggregationWeights() {
        func grads(_ a: LossAggregation) -> [[Double]] {
            policyLoss(tinyBatch(), config: LossConfig(algorithm: .pg, aggregation: a, maxResponseLength: 10)).gradients
        }
        expectClose(grads(.seqMeanTokenSum), [[-0.4, -0.4, -0.4], [0.25, 0.25]], tolerance: 1e-15)
        expectClose(grads(.seqMeanTokenMean), [[-0.8 / 6, -0.8 / 6, -0.8 / 6], [0.125, 0.125]], tolerance: 1e-15)
        expectClose(grads(.constant), [[-0.04, -0.04, -0.04], [0.025, 0.025]], tolerance: 1e-15)
        // Dr.GRPO imposes the constant normalisation whatever the setting says.
        var s = RLSettings()
        s.algorithm = .drgrpo
        s.aggregation = .tokenMean
        #expect(s.effectiveAggregation == .constant)
        #expect(s.effectiveAdvantage == .meanOnly)
    }

    /// PPO clipping: with A > 0 a token whose ratio is above 1 + ε gets no gradient; with
    /// A < 0 one below 1 − ε gets none; inside the range g = −A·r.
    @Test func ppoClipping() {
        let log12 = logD(1.3), log07 = logD(0.7)
        let batch = [ResponseLogProbs(logPi: [log12, log07, 0.1 - 1], logOld: [0, 0, -1], logMu: [0, 0, -1], advantage: 1),
                     ResponseLogProbs(logPi: [log12, log07], logOld: [0, 0], logMu: [0, 0], advantage: -1)]
        let r = policyLoss(batch, config: LossConfig(algorithm: .grpo, clipLow: 0.2, clipHigh: 0.2, aggregation: .seqMeanTokenSum))
        // Response 0 (A = 1): r = 1.3 clipped → 0; r = 0.7 → −0.7/2; r = e^0.1 → −e^0.1/2.
        #expect(r.gradients[0][0] == 0)
        #expect(abs(r.gradients[0][1] - (-0.7 / 2)) < 1e-12)
        #expect(abs(r.gradients[0][2] - (-expD(0.1) / 2)) < 1e-12)
        // Response 1 (A = −1): r = 1.3 → +1.3/2; r = 0.7 clipped → 0.
        #expect(abs(r.gradients[1][0] - 1.3 / 2) < 1e-12)
        #expect(r.gradients[1][1] == 0)
        #expect(r.clippedTokens == 2)
        // The asymmetric range (DAPO's clip-higher): ε_high = 0.35 lets r = 1.3 through.
        let wide = policyLoss(batch, config: LossConfig(algorithm: .grpo, clipLow: 0.2, clipHigh: 0.35, aggregation: .seqMeanTokenSum))
        #expect(abs(wide.gradients[0][0] - (-1.3 / 2)) < 1e-12)
    }

    /// Token-level TIS: each token's weight is min(π_old/μ, C), a constant.
    @Test func tokenTISWeightCappedAtC() {
        // ρ = e^1.0 ≈ 2.72 (capped at 2), e^-0.5 ≈ 0.61, 1.
        let batch = [ResponseLogProbs(logPi: [-1, -2, -3], logOld: [-1, -2, -3], logMu: [-2, -1.5, -3], advantage: 1)]
        let r = policyLoss(batch, config: LossConfig(algorithm: .tokenTIS, tokenCap: 2, aggregation: .seqMeanTokenSum))
        expectClose(r.gradients, [[-2, -expD(-0.5), -1]], tolerance: 1e-14)
        #expect(r.cappedWeights == 1 && r.weights == 3)
    }

    /// Sequence-level TIS: every token of a response weighted by min(Π ρ_t, C).
    @Test func sequenceTISWeight() {
        let batch = [ResponseLogProbs(logPi: [-1, -1], logOld: [-1, -1], logMu: [-1.2, -1.3], advantage: 1),   // ρ = e^0.5
                     ResponseLogProbs(logPi: [-1, -1], logOld: [-1, -1], logMu: [-1.5, -1.5], advantage: 1)]   // ρ = e^1 > 2
        let r = policyLoss(batch, config: LossConfig(algorithm: .seqTIS, sequenceCap: 2, aggregation: .seqMeanTokenSum))
        expectClose(r.gradients, [[-expD(0.5) / 2, -expD(0.5) / 2], [-1, -1]], tolerance: 1e-14)
        #expect(r.cappedWeights == 1 && r.weights == 2)
    }

    /// Sequence-level MIS: a response whose ρ is above C is masked (zero gradient), not
    /// clipped; one below keeps its full weight ρ.
    @Test func sequenceMISMasksAboveC() {
        let batch = [ResponseLogProbs(logPi: [-1, -1], logOld: [-1, -1], logMu: [-1.2, -1.3], advantage: 1),   // ρ = e^0.5 ≤ 2
                     ResponseLogProbs(logPi: [-1, -1], logOld: [-1, -1], logMu: [-1.5, -1.5], advantage: 1)]   // ρ = e^1 > 2
        let r = policyLoss(batch, config: LossConfig(algorithm: .seqMIS, sequenceCap: 2, aggregation: .seqMeanTokenSum))
        expectClose(r.gradients, [[-expD(0.5) / 2, -expD(0.5) / 2], [0, 0]], tolerance: 1e-14)
        #expect(r.cappedWeights == 1)
        // Raising C to 3 lets the second response back in with weight e ≈ 2.72 (not 2).
        let r3 = policyLoss(batch, config: LossConfig(algorithm: .seqMIS, sequenceCap: 3, aggregation: .seqMeanTokenSum))
        #expect(abs(r3.gradients[1][0] - (-expD(1) / 2)) < 1e-14)
    }

    /// GSPO: s = exp(mean log(π_θ/π_old)); inside the clip each token's gradient is
    /// −A·s/(n·|y|); outside it is 0 for the whole response.
    @Test func gspoSequenceRatio() {
        let inside = [ResponseLogProbs(logPi: [-1 + 2e-4, -2 - 1e-4, -3 + 2e-4], logOld: [-1, -2, -3], logMu: [-1, -2, -3], advantage: 2)]
        let r = policyLoss(inside, config: LossConfig(algorithm: .gspo))  // default clip [1 − 3e-4, 1 + 4e-4]
        let s = expD((2e-4 - 1e-4 + 2e-4) / 3)
        expectClose(r.gradients, [[-2 * s / 3, -2 * s / 3, -2 * s / 3]], tolerance: 1e-12)
        #expect(abs(r.loss - (-2 * s)) < 1e-12)
        #expect(r.clippedTokens == 0)
        // mean log ratio 6e-4 > log(1 + 4e-4): clipped with A > 0 → no gradient at all.
        let outside = [ResponseLogProbs(logPi: [-1 + 6e-4, -2 + 6e-4], logOld: [-1, -2], logMu: [-1, -2], advantage: 2)]
        let o = policyLoss(outside, config: LossConfig(algorithm: .gspo))
        #expect(o.gradients == [[0, 0]])
        #expect(o.clippedTokens == 2)
        // With A < 0 the same ratio is not clipped (the pessimistic bound is the ratio).
        let negative = [ResponseLogProbs(logPi: [-1 + 6e-4, -2 + 6e-4], logOld: [-1, -2], logMu: [-1, -2], advantage: -1)]
        #expect(policyLoss(negative, config: LossConfig(algorithm: .gspo)).gradients[0][0] > 0)
    }

    /// PG-Seq-IS: g = −min(Π π_θ/μ, C)·A per token, the weight a constant.
    @Test func pgSeqISWeight() {
        let batch = [ResponseLogProbs(logPi: [-1, -1], logOld: [-1, -1], logMu: [-1.1, -1.2], advantage: 1),   // w = e^0.3
                     ResponseLogProbs(logPi: [-1, -1], logOld: [-1, -1], logMu: [-2, -2], advantage: -1)]      // e^2 → C = 2
        let r = policyLoss(batch, config: LossConfig(algorithm: .pgSeqIS, sequenceCap: 2, aggregation: .seqMeanTokenSum))
        expectClose(r.gradients, [[-expD(0.3) / 2, -expD(0.3) / 2], [1, 1]], tolerance: 1e-14)
        #expect(r.cappedWeights == 1 && r.weights == 2)
    }

    /// GRPO with π_θ = π_old (a single minibatch) is PG: r = 1, never clipped.
    @Test func grpoOnPolicyIsPG() {
        var batch = tinyBatch()
        for i in batch.indices { batch[i].logPi = batch[i].logOld }
        let g = policyLoss(batch, config: LossConfig(algorithm: .grpo)).gradients
        let p = policyLoss(batch, config: LossConfig(algorithm: .pg)).gradients
        #expect(g == p)
    }

    /// Extreme mismatch: log ratios are clamped at ±20, weights stay finite.
    @Test func extremeRatiosStayFinite() {
        let batch = [ResponseLogProbs(logPi: [-1], logOld: [-1], logMu: [-900], advantage: 1)]
        for a in Algorithm.allCases {
            let r = policyLoss(batch, config: LossConfig(algorithm: a))
            #expect(r.loss.isFinite && r.gradients[0][0].isFinite, "\(a)")
        }
    }
}

@Suite struct AdvantageTests {
    @Test func groupNormalised() {
        // Group of 4 with rewards 1, 0, 0, 1: mean 0.5, std (n−1) = sqrt(1/3).
        let a = computeAdvantages(rewards: [1, 0, 0, 1, 1, 1, 1, 1], groupSize: 4, mode: .groupNormalised)
        let s = (1.0 / 3).squareRoot() + 1e-6
        #expect(a[0] == 0.5 / s && a[1] == -0.5 / s && a[2] == -0.5 / s && a[3] == 0.5 / s)
        // A group where every sample has the same reward teaches nothing.
        #expect(a[4...] == [0, 0, 0, 0])
    }

    @Test func meanOnlyAndRaw() {
        #expect(computeAdvantages(rewards: [1, 0, 0, 0], groupSize: 4, mode: .meanOnly) == [0.75, -0.25, -0.25, -0.25])
        #expect(computeAdvantages(rewards: [1, 0, 0, 0], groupSize: 2, mode: .meanOnly) == [0.5, -0.5, 0, 0])
        #expect(computeAdvantages(rewards: [1, 0, 0, 0], groupSize: 4, mode: .raw) == [1, 0, 0, 0])
    }

    /// A group of one: mean 0, std 1 (as verl), so A = R.
    @Test func singletonGroups() {
        for mode in AdvantageMode.allCases {
            #expect(computeAdvantages(rewards: [1, 0, 1], groupSize: 1, mode: mode) == [1, 0, 1])
        }
    }
}

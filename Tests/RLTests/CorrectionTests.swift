import Foundation
import Numerics
import RL
import Testing

/// The corrections beside the algorithm: each rejection at its boundary (just inside kept,
/// just outside masked), the veto, batch normalisation, and the loss they leave, by hand
/// and against finite differences.
@Suite struct CorrectionTests {
    /// One response whose tokens have the given log mismatch ratios ℓ_t = old_t − mu_t, with
    /// π_θ = π_old (the first minibatch: every PPO ratio is 1).
    func response(_ logRho: [Double], advantage: Double = 1) -> ResponseLogProbs {
        let old = logRho.map { _ in -0.7 }
        return ResponseLogProbs(logPi: old, logOld: old, logMu: zip(old, logRho).map { $0 - $1 }, advantage: advantage)
    }

    func config(_ mode: RejectionMode, low: Double = 0.5, high: Double = 2, veto: Double = 0, normalize: Bool = false,
                algorithm: Algorithm = .grpo) -> LossConfig {
        var c = LossConfig(algorithm: algorithm, tokenCap: 2, sequenceCap: 2, aggregation: .tokenMean)
        c.correction.rejection = mode
        c.correction.low = low
        c.correction.high = high
        c.correction.veto = veto
        c.correction.batchNormalize = normalize
        return c
    }

    /// Which tokens got a gradient (a kept token's GRPO gradient is −A/T ≠ 0).
    func kept(_ responses: [ResponseLogProbs], _ c: LossConfig) -> [[Bool]] {
        policyLoss(responses, config: c).gradients.map { $0.map { $0 != 0 } }
    }

    let inside = 1 - 1e-9, outside = 1 + 1e-9

    @Test func tokenK1IsIcePopWithInclusiveBounds() {
        let c = config(.tokenK1, low: 0.5, high: 2)
        let r = response([log(2 * inside), log(2 * outside), log(0.5 / inside), log(0.5 / outside), 0])
        #expect(kept([r], c) == [[true, false, true, false, true]])
        let result = policyLoss([r], config: c)
        #expect(result.rejectedTokens == 2 && result.rejectedResponses == 1 && result.tokens == 3)
        // Token-mean over the 3 kept tokens: g = −A · 1/3 (r_t = 1, no weight).
        #expect(result.gradients[0].filter { $0 != 0 }.allSatisfy { abs($0 + 1.0 / 3) < 1e-15 })
    }

    @Test func sequenceK1BoundsTheSumOrTheMean() {
        // Σ ℓ = log 2 · (1 ± 1e-9 in the ratio): the sequence ratio at the bound.
        let half = log(2 * inside) / 2, over = log(2 * outside) / 2
        #expect(kept([response([half, half])], config(.seqSumK1)) == [[true, true]])
        #expect(kept([response([over, over])], config(.seqSumK1)) == [[false, false]])
        // The geometric mask [0.99, 1.01]: mean ℓ 0.005 → 1.005 kept; 0.015 → 1.0151 masked.
        #expect(kept([response([0.02, -0.01])], config(.seqMeanK1, low: 0.99, high: 1.01)) == [[true, true]])
        #expect(kept([response([0.03, 0])], config(.seqMeanK1, low: 0.99, high: 1.01)) == [[false, false]])
        #expect(kept([response([-0.03, 0])], config(.seqMeanK1, low: 0.99, high: 1.01)) == [[false, false]])
    }

    @Test func k2AndK3ScoresAgainstTheirUpperBound() {
        // ℓ = 0.1: k2 = 0.005, k3 = e^0.1 − 1.1 = 0.005170918075647624 (hand value).
        let k3 = 0.005170918075647624
        #expect(abs((exp(0.1) - 1 - 0.1) - k3) < 1e-15)   // cancellation leaves ~1e-16
        #expect(kept([response([0.1, 0])], config(.tokenK2, high: 0.005 * outside)) == [[true, true]])
        #expect(kept([response([0.1, 0])], config(.tokenK2, high: 0.005 * inside)) == [[false, true]])
        #expect(kept([response([0.1, 0])], config(.tokenK3, high: k3 * outside)) == [[true, true]])
        #expect(kept([response([0.1, 0])], config(.tokenK3, high: k3 * inside)) == [[false, true]])
        // Two tokens of k2 = 0.005: sum 0.01, mean 0.005, max 0.005.
        let two = response([0.1, -0.1])
        #expect(kept([two], config(.seqSumK2, high: 0.01 * outside)) == [[true, true]])
        #expect(kept([two], config(.seqSumK2, high: 0.01 * inside)) == [[false, false]])
        #expect(kept([two], config(.seqMeanK2, high: 0.005 * outside)) == [[true, true]])
        #expect(kept([two], config(.seqMeanK2, high: 0.005 * inside)) == [[false, false]])
        #expect(kept([two], config(.seqMaxK2, high: 0.005 * outside)) == [[true, true]])
        #expect(kept([two], config(.seqMaxK2, high: 0.005 * inside)) == [[false, false]])
        // k3 of ℓ = −0.1: e^−0.1 − 0.9 = 0.004837418035959573; the max is the ℓ = 0.1 token's.
        #expect(kept([two], config(.seqMaxK3, high: k3 * outside)) == [[true, true]])
        #expect(kept([two], config(.seqMaxK3, high: k3 * inside)) == [[false, false]])
        let sumK3 = k3 + 0.004837418035959573
        #expect(kept([two], config(.seqSumK3, high: sumK3 * outside)) == [[true, true]])
        #expect(kept([two], config(.seqMeanK3, high: sumK3 / 2 * inside)) == [[false, false]])
    }

    @Test func vetoDropsAResponseWithOneVeryUnlikelyToken() {
        let c = config(.none, veto: 1e-4)
        let responses = [response([0, log(1e-4 * outside), 0]), response([0, log(1e-4 * inside), 0])]
        let result = policyLoss(responses, config: c)
        #expect(result.gradients.map { $0.map { $0 != 0 } } == [[true, true, true], [false, false, false]])
        #expect(result.vetoedResponses == 1 && result.rejectedTokens == 3 && result.tokens == 3)
    }

    @Test func nothingSetIsTheAlgorithmItself() {
        let batch = tinyBatch()
        for algorithm in Algorithm.allCases {
            let plain = LossConfig(algorithm: algorithm, tokenCap: 1.1, sequenceCap: 1.5)
            var wide = plain
            wide.correction.rejection = .tokenK1
            wide.correction.low = 1e-9
            wide.correction.high = 1e9
            #expect(policyLoss(batch, config: plain) == policyLoss(batch, config: wide), "\(algorithm)")
        }
    }

    @Test func batchNormalisationDividesTheWeightsByTheirMean() {
        // token-tis: ρ = [3 (capped to 2), 1] → weights [2, 1], mean 1.5 → [4/3, 2/3]; GRPO
        // gradient with r = 1 over 2 tokens: −A · w / 2.
        let c = config(.none, normalize: true, algorithm: .tokenTIS)
        let g = policyLoss([response([log(3.0), 0], advantage: 1)], config: c).gradients[0]
        #expect(abs(g[0] + (4.0 / 3) / 2) < 1e-12 && abs(g[1] + (2.0 / 3) / 2) < 1e-12)
        // seq-tis: two responses of weights ρ_i = 1.5 and 0.5, mean 1 → unchanged.
        let s = config(.none, normalize: true, algorithm: .seqTIS)
        let plain = config(.none, algorithm: .seqTIS)
        let batch = [response([log(1.5)]), response([log(0.5)])]
        #expect(policyLoss(batch, config: s).gradients == policyLoss(batch, config: plain).gradients)
        // Normalised weights average 1: seq-tis of ρ_i = 2 and 1 → [4/3, 2/3].
        let uneven = policyLoss([response([log(2.0)]), response([0])], config: s).gradients
        #expect(abs(uneven[0][0] + (4.0 / 3) / 2) < 1e-12 && abs(uneven[1][0] + (2.0 / 3) / 2) < 1e-12)
    }

    /// With rejection and normalisation on, the gradient is still the derivative of the loss
    /// value (the masks and weights depend on π_old and μ only).
    @Test(arguments: [Algorithm.grpo, .gspo, .tokenTIS, .seqTIS, .seqMIS, .pg])
    func gradientMatchesFiniteDifferences(algorithm: Algorithm) {
        for aggregation in LossAggregation.allCases {
            var c = LossConfig(algorithm: algorithm, clipLow: 0.2, clipHigh: 0.2, gspoClipLow: 0.2, gspoClipHigh: 0.2,
                               tokenCap: 1.1, sequenceCap: 1.5, aggregation: aggregation, maxResponseLength: 8)
            c.correction.rejection = .tokenK2
            c.correction.high = 0.02          // masks the tiny batch's tokens of |ℓ| ≥ 0.3, keeps the rest
            c.correction.batchNormalize = true
            let batch = tinyBatch()
            let result = policyLoss(batch, config: c)
            #expect(result.rejectedTokens == 2, "\(algorithm) \(aggregation)")
            expectClose(result.gradients, finiteDifferences(batch, c), tolerance: 1e-7, "\(algorithm) \(aggregation)")
            #expect(result.gradients.joined().contains { $0 != 0 })
        }
    }
}


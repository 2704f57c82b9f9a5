// What the mismatch statistics report (Mismatch.swift says what they are computed from), and
// their JSON.

import JSON
import Numerics

// MARK: Output

/// Mismatch statistics over a set of tokens (all tokens of a rollout, or those at one position).
///
/// Means are over tokens unless the name says sequences. Fields marked "sequence level" are
/// nil in per-position statistics; fields from full distributions are nil without them.
public struct MismatchStats: Sendable, Equatable, Codable {
    /// Number of response tokens.
    public var tokens: Int
    /// Number of sequences (with at least one token here).
    public var sequences: Int
    /// mean(d) — the k1 estimate of KL[μ‖π] (verl `rollout_corr/kl`; can be negative).
    public var k1: Double
    /// mean(d²)/2.
    public var k2: Double
    /// mean(e^(−d) − 1 + d) (verl `k3_kl`), computed without cancellation for small d.
    public var k3: Double
    /// mean |π − μ| of the sampled tokens, in probability.
    public var meanAbsDp: Double
    /// max |π − μ|.
    public var maxAbsDp: Double
    /// max (π − μ), signed.
    public var maxDp: Double
    /// min (π − μ), signed.
    public var minDp: Double
    /// mean |log π − log μ|.
    public var meanAbsDlogp: Double
    /// max |log π − log μ|.
    public var maxAbsDlogp: Double
    /// mean(r²) − 1 with each token log-ratio clamped to ±20 (verl `chi2_token`).
    public var chi2Token: Double
    /// Sequence level: mean over sequences of (Π r_t)² − 1, summed log-ratio clamped to ±20
    /// (verl `chi2_seq`).
    public var chi2Seq: Double?
    /// exp(−mean log μ) over all tokens pooled (corpus perplexity).
    public var pplRollout: Double
    /// exp(−mean log π) over all tokens pooled.
    public var pplTrain: Double
    /// log pplTrain − log pplRollout = mean(log μ) − mean(log π): with pooled tokens this
    /// equals k1 (it is computed as mean(d)).
    public var logPplDiff: Double
    /// Sequence level, verl's convention: mean over sequences of exp(−mean_t log μ)
    /// (verl `rollout_ppl`).
    public var pplRolloutSeq: Double?
    /// Sequence level: mean over sequences of exp(−mean_t log π) (verl `training_ppl`).
    public var pplTrainSeq: Double?
    /// Sequence level: mean over sequences of (mean_t log μ − mean_t log π) (verl `log_ppl_diff`).
    public var logPplDiffSeq: Double?
    /// Number of tokens that carry full distributions.
    public var fullTokens: Int
    /// mean over positions of KL[μ‖π] = Σ_v μ_v (log μ_v − log π_v), exact over the vocabulary.
    public var klFullMean: Double?
    /// max over positions of that KL.
    public var klFullMax: Double?
    /// mean over positions of the total variation ½ Σ_v |μ_v − π_v|.
    public var tvFullMean: Double?
    /// max over positions of the total variation.
    public var tvFullMax: Double?
    /// Fraction of positions where the engines' most likely tokens differ (ties → lowest id).
    public var argmaxDisagree: Double?
    /// Token weight cap C.
    public var isTokenCap: Double
    /// mean w, w = π/μ per token (log clamped to ±20).
    public var isTokenMean: Double
    public var isTokenMax: Double
    public var isTokenMin: Double
    /// Effective sample size of the token weights, 1/mean(w̃²) with w̃ = w/mean(w), i.e.
    /// mean(w)²/mean(w²): 1 when all weights are equal, → 1/n when one dominates.
    public var ess: Double
    /// The same on weights clamped to [1/C, C] first: verl's `rollout_is_eff_sample_size`
    /// (without its +1e-8 in the denominator).
    public var essTokenClamped: Double
    /// Fraction of token weights outside [1/C, C].
    public var isTokenFracOutside: Double
    /// Sequence level: the sequence weight cap.
    public var isSeqCap: Double?
    /// Sequence level: mean of ρ = Π_t π_t/μ_t (summed log-ratio clamped to ±20), one weight
    /// per sequence.
    public var isSeqMean: Double?
    public var isSeqMax: Double?
    public var isSeqMin: Double?
    /// Sequence level: mean(ρ)²/mean(ρ²).
    public var essSeq: Double?
    /// Sequence level: the same with ρ clamped to [1/C, C].
    public var essSeqClamped: Double?
    /// Sequence level: fraction of sequences with ρ outside [1/C, C].
    public var isSeqFracOutside: Double?
    /// Sequence level: mean over sequences of Σ_t d_t, the sequence-level KL[μ‖π] estimate
    /// (Qi et al.'s 7.64 BF16 vs 0.32 FP16).
    public var seqK1: Double?
    /// Sequence level: mean over sequences (with full distributions) of Σ_t KL_t.
    public var seqKlFull: Double?
    /// Sequence level: least-squares slope of Σ_t log(π_t/μ_t) (unclamped) against the
    /// number of response tokens; nil with fewer than two distinct lengths.
    public var seqLogratioSlope: Double?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case tokens, sequences, k1, k2, k3
        case meanAbsDp = "mean_abs_dp", maxAbsDp = "max_abs_dp"
        case meanAbsDlogp = "mean_abs_dlogp", maxAbsDlogp = "max_abs_dlogp"
        case chi2Token = "chi2_token", chi2Seq = "chi2_seq"
        case pplRollout = "ppl_rollout", pplTrain = "ppl_train"
        case klFullMean = "kl_full_mean", klFullMax = "kl_full_max"
        case argmaxDisagree = "argmax_disagree", ess
        case seqLogratioSlope = "seq_logratio_slope"
        case maxDp = "max_dp", minDp = "min_dp"
        case logPplDiff = "log_ppl_diff"
        case pplRolloutSeq = "ppl_rollout_seq", pplTrainSeq = "ppl_train_seq"
        case logPplDiffSeq = "log_ppl_diff_seq"
        case fullTokens = "full_tokens"
        case tvFullMean = "tv_full_mean", tvFullMax = "tv_full_max"
        case isTokenCap = "is_token_cap", isTokenMean = "is_token_mean"
        case isTokenMax = "is_token_max", isTokenMin = "is_token_min"
        case essTokenClamped = "ess_token_clamped", isTokenFracOutside = "is_token_frac_outside"
        case isSeqCap = "is_seq_cap", isSeqMean = "is_seq_mean", isSeqMax = "is_seq_max"
        case isSeqMin = "is_seq_min", essSeq = "ess_seq", essSeqClamped = "ess_seq_clamped"
        case isSeqFracOutside = "is_seq_frac_outside"
        case seqK1 = "seq_k1", seqKlFull = "seq_kl_full"
    }

    /// The keys `mismatch --json` must carry (README, "Mismatch statistics"), in order.
    public static let requiredJSONKeys = [
        "tokens", "sequences", "k1", "k2", "k3", "mean_abs_dp", "max_abs_dp", "mean_abs_dlogp",
        "max_abs_dlogp", "chi2_token", "chi2_seq", "ppl_rollout", "ppl_train", "kl_full_mean",
        "kl_full_max", "argmax_disagree", "ess", "seq_logratio_slope",
    ]

    /// All JSON keys, in the order `json` writes them: the required ones, then the others.
    public static let jsonKeys: [String] = CodingKeys.allCases.map(\.rawValue)
}

extension MismatchStats: JSONRepresentable {
    /// Every key of `jsonKeys` in that order; absent or non-finite values are `null`.
    public var jsonObject: JSONObject {
        var o = JSONObject()
        for key in CodingKeys.allCases { o[key.rawValue] = jsonValue(key) }
        return o
    }

    public var json: JSONValue { .object(jsonObject) }

    private func jsonValue(_ key: CodingKeys) -> JSONValue {
        switch key {
        case .tokens: return .int(tokens)
        case .sequences: return .int(sequences)
        case .k1: return .number(k1)
        case .k2: return .number(k2)
        case .k3: return .number(k3)
        case .meanAbsDp: return .number(meanAbsDp)
        case .maxAbsDp: return .number(maxAbsDp)
        case .meanAbsDlogp: return .number(meanAbsDlogp)
        case .maxAbsDlogp: return .number(maxAbsDlogp)
        case .chi2Token: return .number(chi2Token)
        case .chi2Seq: return .number(chi2Seq)
        case .pplRollout: return .number(pplRollout)
        case .pplTrain: return .number(pplTrain)
        case .klFullMean: return .number(klFullMean)
        case .klFullMax: return .number(klFullMax)
        case .argmaxDisagree: return .number(argmaxDisagree)
        case .ess: return .number(ess)
        case .seqLogratioSlope: return .number(seqLogratioSlope)
        case .maxDp: return .number(maxDp)
        case .minDp: return .number(minDp)
        case .logPplDiff: return .number(logPplDiff)
        case .pplRolloutSeq: return .number(pplRolloutSeq)
        case .pplTrainSeq: return .number(pplTrainSeq)
        case .logPplDiffSeq: return .number(logPplDiffSeq)
        case .fullTokens: return .int(fullTokens)
        case .tvFullMean: return .number(tvFullMean)
        case .tvFullMax: return .number(tvFullMax)
        case .isTokenCap: return .number(isTokenCap)
        case .isTokenMean: return .number(isTokenMean)
        case .isTokenMax: return .number(isTokenMax)
        case .isTokenMin: return .number(isTokenMin)
        case .essTokenClamped: return .number(essTokenClamped)
        case .isTokenFracOutside: return .number(isTokenFracOutside)
        case .isSeqCap: return .number(isSeqCap)
        case .isSeqMean: return .number(isSeqMean)
        case .isSeqMax: return .number(isSeqMax)
        case .isSeqMin: return .number(isSeqMin)
        case .essSeq: return .number(essSeq)
        case .essSeqClamped: return .number(essSeqClamped)
        case .isSeqFracOutside: return .number(isSeqFracOutside)
        case .seqK1: return .number(seqK1)
        case .seqKlFull: return .number(seqKlFull)
        }
    }
}

/// Statistics over the tokens at one position of the response.
public struct PositionMismatchStats: Sendable, Equatable, Codable, JSONRepresentable {
    public var position: Int
    public var stats: MismatchStats

    public init(position: Int, stats: MismatchStats) {
        self.position = position
        self.stats = stats
    }

    /// `{"position": p, …the keys of MismatchStats…}`.
    public var json: JSONValue {
        var o: JSONObject = ["position": .int(position)]
        o.merge(stats.jsonObject)
        return .object(o)
    }
}

/// Figures of one sequence.
public struct SequenceMismatch: Sendable, Equatable, Codable, JSONRepresentable {
    /// Index of the sequence in the input.
    public var index: Int
    /// Number of response tokens.
    public var length: Int
    /// Σ_t log(π_t/μ_t), unclamped.
    public var logRatio: Double
    /// ρ = e^(log-ratio clamped to ±20).
    public var weight: Double
    /// max_t |log π_t − log μ_t|.
    public var maxAbsDlogp: Double
    /// Σ_t KL[μ_t‖π_t] over the full distributions, if recorded.
    public var klFullSum: Double?

    enum CodingKeys: String, CodingKey {
        case index, length, logRatio = "log_ratio", weight
        case maxAbsDlogp = "max_abs_dlogp", klFullSum = "kl_full_sum"
    }

    public var json: JSONValue {
        [
            "index": .int(index), "length": .int(length), "log_ratio": .number(logRatio),
            "weight": .number(weight), "max_abs_dlogp": .number(maxAbsDlogp),
            "kl_full_sum": .number(klFullSum),
        ]
    }
}

/// Overall, per-position and per-sequence statistics of one rollout.
public struct MismatchReport: Sendable, Equatable, Codable {
    public var overall: MismatchStats
    /// Ascending by position; only positions that hold tokens.
    public var byPosition: [PositionMismatchStats]
    /// One entry per input sequence with at least one token, in input order.
    public var bySequence: [SequenceMismatch]

    enum CodingKeys: String, CodingKey {
        case overall, byPosition = "by_position", bySequence = "by_sequence"
    }
}


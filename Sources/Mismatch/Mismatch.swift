// The mismatch statistics (README, "Mismatch statistics"): pure functions of two engines' log-probabilities.
//
// Input: one rollout and its recomputation. For every sequence, each sampled response
// token t has log μ_t (rollout engine) and log π_t (training engine), optionally the full
// next-token distributions of both engines at that position, and its position in the
// response. Output: `MismatchStats` over all tokens (and per position, and per sequence).
//
// Notation: d_t = log μ_t − log π_t; the log-ratio is ℓ_t = −d_t = log(π_t/μ_t); r_t = e^ℓ_t.
//
// Determinism. The printed figures must be the same bits on every machine, so exponentials
// and logarithms come from Numerics' `expD`/`logD` (never the C library), every sum over
// tokens or sequences is an `ExactSum` (the exact sum rounded once, so the order of the
// sequences does not matter either: shuffling them gives the same bits), and sums over a
// vocabulary row run in token-id order. Everything is accumulated in Double.
//
// Edge cases (all defined, none traps):
// - No tokens at all → `MismatchError.noTokens`. Sequences with no tokens are ignored (they
//   count neither as tokens nor as sequences).
// - A token with probability 0 under one engine (log p = −inf): d_t = ±inf, so k1/k2/k3,
//   mean/max |Δlog p| and the perplexity of that engine are infinite (JSON `null`; k1 is NaN
//   if both +inf and −inf occur). Probability-space figures stay finite. Ratios are taken
//   from log-ratios clamped to ±20 (verl's SAFETY_BOUND), so χ², importance weights and ESS
//   stay finite: such a token has weight e^±20.
// - A token with probability 0 under both engines: d_t = 0 (the engines agree).
// - A sequence holding both a +inf and a −inf log-ratio has an undefined (NaN) sequence
//   log-ratio; the sequence-level figures are then NaN (JSON `null`). The slope uses the
//   unclamped sequence log-ratios, so one infinite log-ratio makes it non-finite.
// - NaN or +inf log-probabilities are not valid input; they propagate as NaN.
// - Full distributions are renormalised in Double (log-softmax of the given row) before KL and
//   total variation, so the small normalisation error of a low-precision softmax does not
//   count as mismatch; a row without any finite entry gives NaN. Argmax is taken on the row
//   as given, ties to the lowest token id.

import JSON
import Numerics

// MARK: Input

/// Both engines' full next-token distributions for the tokens of one sequence.
public struct FullDistributions: Sendable, Equatable, Codable {
    /// V, the number of entries per row.
    public var vocabularySize: Int
    /// Rollout engine log-probabilities, (T, V) row-major: row t is the distribution that
    /// token t was sampled from.
    public var rollout: [Float]
    /// Training engine log-probabilities, (T, V) row-major.
    public var train: [Float]

    public init(vocabularySize: Int, rollout: [Float], train: [Float]) {
        self.vocabularySize = vocabularySize
        self.rollout = rollout
        self.train = train
    }
}

/// One sequence of a rollout: both engines' log-probabilities of its sampled response tokens.
public struct TokenLogProbs: Sendable, Equatable, Codable {
    /// log μ_t, one per response token.
    public var rollout: [Float]
    /// log π_t, one per response token (same count).
    public var train: [Float]
    /// Position of each token in the response (0 = first response token); nil means 0, 1, 2, …
    public var positions: [Int]?
    /// The full next-token distributions at each token, if recorded.
    public var full: FullDistributions?

    public init(rollout: [Float], train: [Float], positions: [Int]? = nil, full: FullDistributions? = nil) {
        self.rollout = rollout
        self.train = train
        self.positions = positions
        self.full = full
    }

    /// Number of response tokens.
    public var count: Int { rollout.count }
}

/// Caps for the importance-weight statistics.
public struct MismatchOptions: Sendable, Equatable, Codable {
    /// C for token weights: the fraction of weights outside [1/C, C] is reported, and the
    /// clamped ESS clamps to that interval. verl's default `rollout_is_threshold` is 2.
    public var tokenCap: Double
    /// The same for sequence weights ρ (2–10 in the literature; default 2 as verl's).
    public var sequenceCap: Double

    /// Log-ratios are clamped to ±20 before exponentiating (verl's SAFETY_BOUND).
    public static let logRatioBound = 20.0

    public init(tokenCap: Double = 2, sequenceCap: Double = 2) {
        self.tokenCap = tokenCap
        self.sequenceCap = sequenceCap
    }
}

public enum MismatchError: Error, Equatable, CustomStringConvertible {
    /// No sequence has a response token.
    case noTokens
    /// `rollout` and `train` differ in length.
    case lengthMismatch(sequence: Int, rollout: Int, train: Int)
    /// `positions` has another length than the tokens, or a negative entry.
    case badPositions(sequence: Int)
    /// Full distributions whose sizes are not tokens × vocabularySize, or V < 1.
    case badFullDistributions(sequence: Int)
    /// A cap that is not a finite number ≥ 1.
    case badCap(Double)

    public var description: String {
        switch self {
        case .noTokens: return "no response tokens to compare"
        case let .lengthMismatch(s, r, t):
            return "sequence \(s): \(r) rollout log-probabilities but \(t) training ones"
        case let .badPositions(s): return "sequence \(s): positions must be one non-negative index per token"
        case let .badFullDistributions(s):
            return "sequence \(s): full distributions must hold tokens × vocabulary entries for each engine"
        case let .badCap(c): return "importance-weight cap \(c) must be a finite number ≥ 1"
        }
    }
}

// MARK: Entry points

/// Statistics over all response tokens of all sequences.
public func mismatchStats(_ sequences: [TokenLogProbs], options: MismatchOptions = .init()) throws -> MismatchStats {
    let p = try Prepared(sequences, options: options)
    return p.overall()
}

/// Statistics per position in the response (token-level figures only), ascending.
public func mismatchStatsByPosition(
    _ sequences: [TokenLogProbs], options: MismatchOptions = .init()
) throws -> [PositionMismatchStats] {
    let p = try Prepared(sequences, options: options)
    return p.byPosition()
}

/// Overall, per-position and per-sequence statistics in one pass over the input.
public func mismatchReport(_ sequences: [TokenLogProbs], options: MismatchOptions = .init()) throws -> MismatchReport {
    let p = try Prepared(sequences, options: options)
    return MismatchReport(overall: p.overall(), byPosition: p.byPosition(), bySequence: p.bySequence())
}


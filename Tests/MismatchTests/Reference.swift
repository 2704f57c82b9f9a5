// An independent, straightforward reference for the mismatch statistics.
//
// Plain loops in input order, Foundation's exp/log/expm1, every formula written literally
// from the definitions documented in Sources/Mismatch and the README. It shares no code
// with the module (no ExactSum, no expD/logD, no series), so agreement within the stated
// tolerances checks the module's arithmetic and its bookkeeping (grouping by sequence and
// by position, clamping, caps).

import Foundation
import JSON
import Mismatch
import Numerics

/// Statistic name (the JSON key) → value; nil where the module reports nil.
typealias StatValues = [String: Double?]

enum Reference {
    static let bound = 20.0

    static func clamp(_ x: Double) -> Double { Swift.min(Swift.max(x, -bound), bound) }

    struct Token {
        var seq: Int
        var pos: Int
        var lm: Double
        var lp: Double
        var rowMu: [Double]?
        var rowPi: [Double]?
    }

    static func flatten(_ seqs: [TokenLogProbs]) -> [Token] {
        var out: [Token] = []
        for (s, q) in seqs.enumerated() {
            for t in 0..<q.count {
                var rowMu: [Double]? = nil, rowPi: [Double]? = nil
                if let f = q.full {
                    let v = f.vocabularySize
                    rowMu = f.rollout[(t * v)..<((t + 1) * v)].map(Double.init)
                    rowPi = f.train[(t * v)..<((t + 1) * v)].map(Double.init)
                }
                out.append(Token(seq: s, pos: q.positions?[t] ?? t, lm: Double(q.rollout[t]), lp: Double(q.train[t]),
                                 rowMu: rowMu, rowPi: rowPi))
            }
        }
        return out
    }

    static func mean(_ xs: [Double]) -> Double {
        var s = 0.0
        for x in xs { s += x }
        return s / Double(xs.count)
    }

    /// Probabilities of a row of log-probabilities, renormalised.
    static func softmax(_ row: [Double]) -> [Double] {
        var z = 0.0
        for x in row { z += Foundation.exp(x) }
        return row.map { Foundation.exp($0) / z }
    }

    static func argmax(_ row: [Double]) -> Int {
        var best = 0
        for i in row.indices where row[i] > row[best] { best = i }
        return best
    }

    /// KL[μ‖π], total variation and argmax disagreement of two rows, literally.
    static func compare(_ a: [Double], _ b: [Double]) -> (kl: Double, tv: Double, differs: Bool) {
        let mu = softmax(a), pi = softmax(b)
        var kl = 0.0, tv = 0.0
        for i in mu.indices {
            if mu[i] > 0 { kl += mu[i] * (Foundation.log(mu[i]) - Foundation.log(pi[i])) }
            tv += Swift.abs(mu[i] - pi[i])
        }
        return (kl, tv / 2, argmax(a) != argmax(b))
    }

    static func ess(_ w: [Double]) -> Double {
        let m = mean(w)
        return 1 / mean(w.map { ($0 / m) * ($0 / m) })
    }

    /// Token-level statistics over `tokens`.
    static func tokenLevel(_ tokens: [Token], tokenCap c: Double) -> StatValues {
        let d = tokens.map { $0.lm - $0.lp }
        let mu = tokens.map { Foundation.exp($0.lm) }, pi = tokens.map { Foundation.exp($0.lp) }
        let dp = zip(pi, mu).map { $0 - $1 }
        let w = d.map { Foundation.exp(clamp(-$0)) }
        let wc = w.map { Swift.min(Swift.max($0, 1 / c), c) }
        var v: StatValues = [:]
        v["tokens"] = Double(tokens.count)
        v["sequences"] = Double(Set(tokens.map(\.seq)).count)
        v["k1"] = mean(d)
        v["k2"] = mean(d.map { $0 * $0 }) / 2
        v["k3"] = mean(d.map { Foundation.expm1(-$0) + $0 })
        v["mean_abs_dp"] = mean(dp.map(Swift.abs))
        v["max_abs_dp"] = dp.map(Swift.abs).max()!
        v["max_dp"] = dp.max()!
        v["min_dp"] = dp.min()!
        v["mean_abs_dlogp"] = mean(d.map(Swift.abs))
        v["max_abs_dlogp"] = d.map(Swift.abs).max()!
        v["chi2_token"] = mean(w.map { $0 * $0 }) - 1
        v["ppl_rollout"] = Foundation.exp(-mean(tokens.map(\.lm)))
        v["ppl_train"] = Foundation.exp(-mean(tokens.map(\.lp)))
        v["log_ppl_diff"] = Foundation.log(v["ppl_train"]!!) - Foundation.log(v["ppl_rollout"]!!)
        let full = tokens.filter { $0.rowMu != nil }
        v["full_tokens"] = Double(full.count)
        if full.isEmpty {
            for k in ["kl_full_mean", "kl_full_max", "tv_full_mean", "tv_full_max", "argmax_disagree"] {
                v[k] = .some(nil)
            }
        } else {
            let cmp = full.map { compare($0.rowMu!, $0.rowPi!) }
            v["kl_full_mean"] = mean(cmp.map(\.kl))
            v["kl_full_max"] = cmp.map(\.kl).max()!
            v["tv_full_mean"] = mean(cmp.map(\.tv))
            v["tv_full_max"] = cmp.map(\.tv).max()!
            v["argmax_disagree"] = Double(cmp.filter(\.differs).count) / Double(full.count)
        }
        v["is_token_cap"] = c
        v["is_token_mean"] = mean(w)
        v["is_token_max"] = w.max()!
        v["is_token_min"] = w.min()!
        v["ess"] = ess(w)
        v["ess_token_clamped"] = ess(wc)
        v["is_token_frac_outside"] = Double(w.filter { $0 > c || $0 < 1 / c }.count) / Double(w.count)
        for k in ["chi2_seq", "ppl_rollout_seq", "ppl_train_seq", "log_ppl_diff_seq", "is_seq_cap", "is_seq_mean",
                  "is_seq_max", "is_seq_min", "ess_seq", "ess_seq_clamped", "is_seq_frac_outside", "seq_k1",
                  "seq_kl_full", "seq_logratio_slope"] {
            v[k] = .some(nil)
        }
        return v
    }

    /// Overall statistics.
    static func overall(_ seqs: [TokenLogProbs], tokenCap: Double = 2, sequenceCap c: Double = 2) -> StatValues {
        let tokens = flatten(seqs)
        var v = tokenLevel(tokens, tokenCap: tokenCap)
        let kept = seqs.indices.filter { seqs[$0].count > 0 }
        var logRatio: [Double] = [], length: [Double] = [], pplMu: [Double] = [], pplPi: [Double] = []
        var diff: [Double] = [], klSums: [Double] = []
        for s in kept {
            let ts = tokens.filter { $0.seq == s }
            var lr = 0.0, sm = 0.0, sp = 0.0, kl = 0.0
            for t in ts {
                lr += t.lp - t.lm
                sm += t.lm
                sp += t.lp
                if let a = t.rowMu { kl += compare(a, t.rowPi!).kl }
            }
            let n = Double(ts.count)
            logRatio.append(lr)
            length.append(n)
            pplMu.append(Foundation.exp(-sm / n))
            pplPi.append(Foundation.exp(-sp / n))
            diff.append(sm / n - sp / n)
            if seqs[s].full != nil { klSums.append(kl) }
        }
        let rho = logRatio.map { Foundation.exp(clamp($0)) }
        v["sequences"] = Double(kept.count)
        v["chi2_seq"] = mean(logRatio.map { Foundation.exp(2 * clamp($0)) }) - 1
        v["ppl_rollout_seq"] = mean(pplMu)
        v["ppl_train_seq"] = mean(pplPi)
        v["log_ppl_diff_seq"] = mean(diff)
        v["is_seq_cap"] = c
        v["is_seq_mean"] = mean(rho)
        v["is_seq_max"] = rho.max()!
        v["is_seq_min"] = rho.min()!
        v["ess_seq"] = ess(rho)
        v["ess_seq_clamped"] = ess(rho.map { Swift.min(Swift.max($0, 1 / c), c) })
        v["is_seq_frac_outside"] = Double(rho.filter { $0 > c || $0 < 1 / c }.count) / Double(rho.count)
        v["seq_k1"] = -mean(logRatio)
        v["seq_kl_full"] = klSums.isEmpty ? .some(nil) : mean(klSums)
        if Set(length).count >= 2 {
            let xbar = mean(length), ybar = mean(logRatio)
            var sxy = 0.0, sxx = 0.0
            for i in length.indices {
                sxy += (length[i] - xbar) * (logRatio[i] - ybar)
                sxx += (length[i] - xbar) * (length[i] - xbar)
            }
            v["seq_logratio_slope"] = sxy / sxx
        }
        return v
    }

    /// Per-position statistics, ascending by position.
    static func byPosition(_ seqs: [TokenLogProbs], tokenCap: Double = 2) -> [(Int, StatValues)] {
        let tokens = flatten(seqs)
        return Set(tokens.map(\.pos)).sorted().map { p in (p, tokenLevel(tokens.filter { $0.pos == p }, tokenCap: tokenCap)) }
    }
}

/// The module's statistics as name → value, read through its JSON object (nil ↔ null). Only
/// for finite statistics (JSON writes non-finite numbers as null too).
func values(_ s: MismatchStats) -> StatValues {
    var v: StatValues = [:]
    for m in s.jsonObject.members {
        switch m.value {
        case .double(let x): v[m.key] = x
        case .int(let i): v[m.key] = Double(i)
        case .null: v[m.key] = .some(nil)
        default: break
        }
    }
    return v
}

// MARK: Random rollouts

/// Normal deviates from a seeded stream (Box–Muller; test-only, libm allowed).
struct Gaussian {
    var rng: RandomStream
    mutating func next() -> Double {
        let u = Swift.max(rng.nextUnit(), 1e-300), v = rng.nextUnit()
        return Foundation.sqrt(-2 * Foundation.log(u)) * Foundation.cos(2 * Double.pi * v)
    }
}

/// Log-softmax of logits in Double, rounded to Float.
func logSoftmax(_ z: [Double]) -> [Float] {
    let m = z.max()!
    var s = 0.0
    for x in z { s += Foundation.exp(x - m) }
    let lz = m + Foundation.log(s)
    return z.map { Float($0 - lz) }
}

/// A random rollout: `count` sequences of lengths 1…maxLength, vocabulary `v`; the training
/// engine's logits are the rollout's plus N(0, noise²). Tokens are sampled from μ, and the
/// sampled-token log-probabilities are the rows' entries, as an engine would record them.
func randomRollout(seed: UInt64, count: Int = 25, maxLength: Int = 40, v: Int = 16, noise: Double = 0.05,
                   full: Bool = true) -> [TokenLogProbs] {
    var g = Gaussian(rng: RandomStream(seed: seed, name: "mismatch-test"))
    var out: [TokenLogProbs] = []
    for _ in 0..<count {
        let n = 1 + Int(g.rng.next() % UInt64(maxLength))
        var rollout: [Float] = [], train: [Float] = [], rowsMu: [Float] = [], rowsPi: [Float] = []
        for _ in 0..<n {
            let z = (0..<v).map { _ in 2 * g.next() }
            let zp = z.map { $0 + noise * g.next() }
            let a = logSoftmax(z), b = logSoftmax(zp)
            var u = g.rng.nextUnit(), k = 0
            while k < v - 1 {
                u -= Foundation.exp(Double(a[k]))
                if u <= 0 { break }
                k += 1
            }
            rollout.append(a[k])
            train.append(b[k])
            rowsMu += a
            rowsPi += b
        }
        out.append(TokenLogProbs(rollout: rollout, train: train,
                                 full: full ? FullDistributions(vocabularySize: v, rollout: rowsMu, train: rowsPi) : nil))
    }
    return out
}

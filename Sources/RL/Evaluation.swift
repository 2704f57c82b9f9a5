// Evaluation and the sanity set: how well the live policy does on a task's prompts.

import Mismatch
import Model
import Engines
import Numerics

extension Trainer {
    // MARK: Evaluation

    /// Accuracy, mean reward and mean response length of one response per prompt on a set
    /// (its first `count` prompts, all when nil): sampled at the RL temperature and top-p
    /// from the stream "eval/SET", or greedy. Without a sanity set, `.sanity` is refused.
    public func evaluate(_ set: EvalSet = .sanity, count: Int? = nil, greedy: Bool = false,
                         shouldStop: () -> Bool = { false }) throws -> EvalResult {
        let problems: [Problem]
        switch set {
        case .sanity:
            guard let s = sanitySet else { throw NumericsError.invalidArgument("no sanity set yet: build one (sanity build) or evaluate the held-out set") }
            problems = s
        case .heldOut: problems = task.heldOut
        case .train: problems = task.trainPool
        }
        if let count, count < 1 { throw NumericsError.invalidArgument("eval needs at least 1 prompt (got \(count))") }
        let chosen = Array(problems.prefix(count ?? problems.count))
        let batch = try sample(chosen.map(\.prompt), sampling: sampling(greedy: greedy),
                               streamName: "eval/\(set.rawValue)", shouldStop: shouldStop)
        var reward = 0.0, right = 0, length = 0
        for (i, p) in chosen.enumerated() {
            let r = TaskSpec.reward(response: batch.responses[i], finished: batch.finished[i], answer: p.answer)
            reward += r
            if r == 1 { right += 1 }
            length += batch.responses[i].count
        }
        let n = Double(chosen.count)
        return EvalResult(set: set, greedy: greedy, n: chosen.count, accuracy: Double(right) / n, reward: reward / n,
                          meanLength: Double(length) / n)
    }

    /// Builds the sanity set as Qi et al. did: the first `candidates` prompts of the
    /// training pool, `samples` responses each (RL temperature and top-p, streams
    /// "sanity/…"), kept when the pass rate lies in [low, high]. Replaces the sanity set
    /// only when at least one prompt is kept.
    @discardableResult
    public func buildSanitySet(candidates: Int = 1024, samples k: Int = 16, low: Double = 0.2, high: Double = 0.8,
                               shouldStop: () -> Bool = { false }) throws -> SanityReport {
        guard candidates >= 1, k >= 1 else { throw NumericsError.invalidArgument("sanity needs at least 1 candidate and 1 sample") }
        guard low >= 0, high <= 1, low <= high else { throw NumericsError.invalidArgument("sanity range must satisfy 0 <= low <= high <= 1 (got [\(low), \(high)])") }
        let pool = Array(task.trainPool.prefix(candidates))
        var prompts: [[Int32]] = []
        for p in pool { for _ in 0..<k { prompts.append(p.prompt) } }
        let batch = try sample(prompts, sampling: sampling(), streamName: "sanity", shouldStop: shouldStop)
        var histogram = [Int](repeating: 0, count: k + 1)
        var kept: [Problem] = []
        var keptRate = 0.0, allRate = 0.0
        for (i, p) in pool.enumerated() {
            var solved = 0
            for j in 0..<k {
                let s = i * k + j
                solved += Int(TaskSpec.reward(response: batch.responses[s], finished: batch.finished[s], answer: p.answer))
            }
            histogram[solved] += 1
            let rate = Double(solved) / Double(k)
            allRate += rate
            if rate >= low - 1e-12 && rate <= high + 1e-12 {
                kept.append(p)
                keptRate += rate
            }
        }
        if !kept.isEmpty { try setSanitySet(kept) }
        return SanityReport(candidates: pool.count, samples: k, low: low, high: high, kept: kept.count,
                            histogram: histogram, keptPassRate: kept.isEmpty ? .nan : keptRate / Double(kept.count),
                            overallPassRate: allRate / Double(pool.count))
    }
}

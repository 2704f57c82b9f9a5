import Engines
import Mismatch
import Model
import Numerics
import Testing

@Suite struct MixtureOfExpertsEngineTests {
    /// The control experiment on a sparse model: equal formats and every source off give
    /// bit-identical log-probabilities and the same experts for every position.
    @Test func identicalEnginesAgreeBitForBitAndRouteAlike() throws {
        var pair = Preset.identical.engines(hiddenSize: 64)
        pair.rollout.sources = .none
        let policy = try Policy(master: labMoEModel(), engines: pair, backend: PortableBackend())
        let batch = policy.rollout.generate(prompts: prompts(16), sampling: SamplingSettings(maxNewTokens: 16),
                                            endToken: 2, stream: RandomStream(seed: 5, name: "sampling"))
        let result = try policy.recompute(batch, temperature: 1)
        for p in result.pairs { #expect(p.rollout.map(\.bitPattern) == p.train.map(\.bitPattern)) }
        let routing = try #require(result.routing)
        #expect(routing.tokens == batch.sequences.reduce(0) { $0 + $1.count - 1 })
        #expect(routing.decisions == 0 && routing.tokensAnyLayer == 0 && routing.layers == [0, 0, 0, 0])
        // The rollout recorded every position it ran: all but each sequence's last token.
        for (s, r) in batch.routing.enumerated() {
            #expect(r.rows == batch.sequences[s].count - 1)
        }
    }

    /// Under BF16 (the inference engine's kernels against the training engine's) some
    /// router decisions flip; the same rollout gives the same statistics.
    @Test func bf16EnginesDisagreeOnSomeRouterDecisions() throws {
        let policy = try Policy(master: labMoEModel(), engines: Preset.bf16.engines(hiddenSize: 64), backend: PortableBackend())
        let batch = policy.rollout.generate(prompts: prompts(32), sampling: SamplingSettings(maxNewTokens: 24),
                                            endToken: 2, stream: RandomStream(seed: 5, name: "sampling"))
        let first = try #require(try policy.recompute(batch, temperature: 1).routing)
        let second = try #require(try policy.recompute(batch, temperature: 1).routing)
        #expect(first == second)
        #expect(first.decisions > 0 && first.decisions < 0.5, "router disagreement \(first.decisions)")
        #expect(first.tokensAnyLayer >= first.layers.max()!)
        #expect(first.layers.count == 4)
    }

    /// R3: the training forward uses exactly the rollout's experts on every position the
    /// rollout ran, whatever its own routers would choose; the last token routes itself.
    @Test func rolloutReplayMakesTheTrainingForwardUseTheRolloutsExperts() throws {
        let policy = try Policy(master: labMoEModel(), engines: Preset.bf16.engines(hiddenSize: 64), backend: PortableBackend())
        let batch = policy.rollout.generate(prompts: prompts(32), sampling: SamplingSettings(maxNewTokens: 24),
                                            endToken: 2, stream: RandomStream(seed: 5, name: "sampling"))
        let replay = try #require(policy.rolloutReplay(batch))
        let result = try policy.recompute(batch, temperature: 1, replay: replay)
        let used = try #require(result.forward.routing), own = try #require(result.forward.routerChoice)
        var replayed = 0, overridden = 0
        for s in 0..<batch.count {
            let start = result.packed.starts[s]
            for t in 0..<batch.routing[s].rows {
                for l in 0..<4 {
                    #expect(Array(used.choice(layer: l, row: start + t)) == Array(batch.routing[s].choice(layer: l, row: t)))
                    if Set(own.choice(layer: l, row: start + t)) != Set(used.choice(layer: l, row: start + t)) { overridden += 1 }
                    replayed += 1
                }
            }
            let last = result.packed.starts[s + 1] - 1
            for l in 0..<4 { #expect(Array(used.choice(layer: l, row: last)) == Array(own.choice(layer: l, row: last))) }
        }
        // The training routers disagree on some of those decisions: the replay overrode them,
        // and the statistics (the routers' own choices) still show the disagreement.
        #expect(overridden > 0)
        #expect(result.routing!.decisions == Double(overridden) / Double(replayed))
    }
}

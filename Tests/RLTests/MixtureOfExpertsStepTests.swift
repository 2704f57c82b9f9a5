import Engines
import Model
import Numerics
import RL
import Testing

/// A sparse small model (2 layers, width 32, 4 experts of width 32, top 2), pretrained a
/// little on one-digit addition so that RL steps have gradients, under a preset.
private func sparseTrainer(_ preset: Preset, configure: (inout RLSettings) -> Void) throws -> Trainer {
    var config = smallConfig
    config.intermediateSize = 32
    config.numLocalExperts = 4
    config.numExpertsPerTok = 2
    var weights = ModelWeights(config: config)
    weights.initialize(std: 0.1, stream: RandomStream(seed: 11, name: "init"))
    let trainer = try Trainer(policy: try makePolicy(preset, weights: weights), task: try TaskSpec(kind: .addition, size: 1), seed: 3)
    var s = RLSettings()
    s.promptsPerStep = 4
    s.samplesPerPrompt = 4
    s.learningRate = 1e-3
    configure(&s)
    try trainer.setSettings(s)
    return trainer
}

@Suite struct MixtureOfExpertsStepTests {
    /// A step reports the routers' disagreement and the load-balancing loss.
    @Test func aStepReportsRoutingAndTheLoadBalancingLoss() throws {
        let trainer = try sparseTrainer(.bf16) { _ in }
        let m = try trainer.step()
        let routing = try #require(m.routing)
        #expect(routing.tokens > 0 && routing.layers.count == 2)
        let aux = try #require(m.loadBalancingLoss)
        // E·Σ f_e P_e is 1 when routing is uniform and at most E = 4.
        #expect(aux > 0.5 && aux <= 4)
        #expect(m.json()["router_disagree"] != nil && m.json()["aux_loss"] != nil)
    }

    /// Replay with nothing to replace changes nothing: under `identical` the routers agree,
    /// so R3 gives the step without replay bit for bit; with one minibatch there is no later
    /// minibatch, so R2 does too.
    @Test func replayThatReplacesNothingChangesNothing() throws {
        func weightsAfterStep(_ preset: Preset, _ replay: RoutingReplay) throws -> [Float] {
            let trainer = try sparseTrainer(preset) { $0.moe.routingReplay = replay }
            _ = try trainer.step()
            return trainer.policy.master.data
        }
        #expect(try weightsAfterStep(.identical, .r3) == (try weightsAfterStep(.identical, .off)))
        #expect(try weightsAfterStep(.bf16, .r2) == (try weightsAfterStep(.bf16, .off)))
    }

    /// R3 under BF16 replaces the experts where the routers disagree, so the update differs
    /// from the one without replay; the load-balancing loss's weight changes the routers'.
    @Test func replayAndTheLoadBalancingLossChangeTheUpdate() throws {
        func step(_ configure: (inout RLSettings) -> Void) throws -> (ModelWeights, Double) {
            let trainer = try sparseTrainer(.bf16, configure: configure)
            let m = try trainer.step()
            return (trainer.policy.master, m.routing?.decisions ?? 0)
        }
        let (off, disagreement) = try step { _ in }
        let (r3, _) = try step { $0.moe.routingReplay = .r3 }
        #expect(disagreement > 0, "the routers agreed everywhere: nothing to replay")
        #expect(off.data != r3.data)
        let (noAux, _) = try step { $0.moe.loadBalancing = 0 }
        let router = off.slot("model.layers.0.block_sparse_moe.gate.weight")!
        #expect(Array(off.data[router.offset..<(router.offset + router.count)])
                != Array(noAux.data[router.offset..<(router.offset + router.count)]))
    }

    /// R2 and R3 with several minibatches run to the end.
    @Test(arguments: [RoutingReplay.r2, .r3])
    func replayWithSeveralMinibatches(replay: RoutingReplay) throws {
        let trainer = try sparseTrainer(.bf16) {
            $0.moe.routingReplay = replay
            $0.minibatches = 2
        }
        let m = try trainer.step()
        #expect(m.updates == 2)
    }
}

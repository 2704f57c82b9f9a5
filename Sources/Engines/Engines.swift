// The two engines: rollout (KV-cache decoding and sampling) and training (teacher-forced
// forward and backward), each in its own precision profile over the same master weights.

import Model
import Numerics

/// What the model needs from a profile: every rounding outside the matrix products.
extension PrecisionProfile {
    public var forwardPlan: ForwardPlan {
        func r(_ f: NumberFormat) -> Rounder? { f == .fp32 ? nil : Rounder(format: f) }
        // An 8-bit KV cache is written the way vLLM writes its FP8 cache: scale 1, clamped to
        // the format's range (E4M3 has no infinity; unclamped overflow would be NaN).
        let kv: Rounder? = kvCache == .fp32 ? nil
            : Rounder(format: kvCache, saturate: kvCache.exponentBits + kvCache.mantissaBits < 8)
        return ForwardPlan(activation: r(activation), probabilities: r(probabilities), kvCache: kv,
                           fusedResidualNorm: sources.fusedResidualNorm, fusedSiluMul: sources.fusedSiluMul,
                           softmax: sources.softmaxChunk > 0 ? .chunked(sources.softmaxChunk) : .wholeRow,
                           logits: r(outputFormat(of: .lmHead)), gradient: r(gradient), loraMerged: sources.loraMerged)
    }

    /// The format a linear layer's product writes: the activation format, except the LM
    /// head's logits, kept in float32 when the `logits_fp32` source is on, and a router's
    /// logits, in float32 with `router_fp32`. The one place that rule is decided: the
    /// kernel's products and the plan's logits rounding read it.
    public func outputFormat(of kind: LinearKind) -> NumberFormat {
        kind == .lmHead && sources.logitsFP32 ? .fp32 : forSite(kind).activation
    }

    /// The format one site's product writes (a LoRA factor's: the activation format).
    public func outputFormat(of site: LinearSite) -> NumberFormat {
        site.part == .weight ? outputFormat(of: site.kind) : forSite(site).activation
    }
}

/// Sampling settings of the rollout engine.
public struct SamplingSettings: Sendable, Hashable {
    public var temperature: Double = 1
    public var topP: Double = 1
    /// 0 = no top-k filter.
    public var topK: Int = 0
    public var maxNewTokens: Int = 32

    public init(temperature: Double = 1, topP: Double = 1, topK: Int = 0, maxNewTokens: Int = 32) {
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.maxNewTokens = maxNewTokens
    }
}

/// One sampled batch: prompts, responses, and the rollout engine's log-probabilities.
public struct RolloutBatch: Sendable {
    public var prompts: [[Int32]]
    public var responses: [[Int32]]
    /// log μ of each response token (temperature applied), per sequence.
    public var logMu: [[Float]]
    /// log μ over the whole vocabulary at each response position, per sequence (len, V).
    public var distributions: [[Float]]
    /// Whether each response ended with the end token (else it hit the length limit).
    public var finished: [Bool]
    /// A sparse model's routing in the rollout engine, per sequence: the experts of every
    /// position it ran (all but the last token); empty for a dense model.
    public var routing: [Routing] = []

    public var sequences: [[Int32]] { zip(prompts, responses).map { $0 + $1 } }
    public var count: Int { prompts.count }

    /// The sequences in `range`, in order.
    public func subset(_ range: Range<Int>) -> RolloutBatch {
        var sub = self
        sub.prompts = Array(prompts[range])
        sub.responses = Array(responses[range])
        sub.logMu = Array(logMu[range])
        sub.distributions = Array(distributions[range])
        sub.finished = Array(finished[range])
        if !routing.isEmpty { sub.routing = Array(routing[range]) }
        return sub
    }
}

/// Log-softmax at temperature T from log-probabilities at temperature 1, in double
/// precision with the deterministic functions: log softmax(z/T) = lp/T − log Σ e^(lp/T).
public func temperatureLogProbs(_ lp: ArraySlice<Float>, temperature t: Double) -> [Double] {
    let scaled = lp.map { Double($0) / t }
    let m = scaled.max() ?? 0
    var s = 0.0
    for x in scaled { s += expD(x - m) }
    let lse = m + logD(s)
    return scaled.map { $0 - lse }
}

/// What both engines are: the model's function (`transformer`) computed through a kernel
/// that holds the weights in the engine's precision and runs its products.
public class Engine {
    public let kernel: EngineKernel
    public let transformer: Transformer

    public init(kernel: EngineKernel, transformer: Transformer) {
        self.kernel = kernel
        self.transformer = transformer
    }

    /// The precision profile the kernel was built for.
    public var profile: PrecisionProfile { kernel.profile }
}

/// The rollout engine: batched decoding with a KV cache, sampling from a seeded stream.
public final class RolloutEngine: Engine {

    /// The most rows of one prefill step (`MemoryEstimate.decoding` counts them).
    public static let prefillRows = 512

    /// Samples a response for each prompt. The token sequence i samples after its input at
    /// position p uses draw i·65536 + p of `stream`, so a sequence's sample does not depend on
    /// the others.
    /// `shouldStop` is polled once per step; when it returns true the batch stops where it is
    /// (responses unfinished).
    public func generate(prompts: [[Int32]], sampling: SamplingSettings, endToken: Int32, stream: RandomStream,
                         shouldStop: () -> Bool = { false }) -> RolloutBatch {
        generate(prompts: prompts, sampling: sampling, endTokens: endToken < 0 ? [] : [endToken], stream: stream, shouldStop: shouldStop)
    }

    /// The same, a sequence ending at the first of `endTokens` it samples (a model may have
    /// several, as generation_config.json's `eos_token_id` lists them; none: every sequence
    /// runs to max_new).
    public func generate(prompts: [[Int32]], sampling: SamplingSettings, endTokens: Set<Int32>, stream: RandomStream,
                         shouldStop: () -> Bool = { false }) -> RolloutBatch {
        let capacity = (prompts.map(\.count).max() ?? 0) + sampling.maxNewTokens
        precondition(capacity <= transformer.config.maxPositionEmbeddings, "sequence longer than max_position_embeddings")
        var cache = KVCache(config: transformer.config, slots: prompts.count, capacity: capacity)
        var batch = RolloutBatch(prompts: prompts, responses: Array(repeating: [], count: prompts.count),
                                 logMu: Array(repeating: [], count: prompts.count),
                                 distributions: Array(repeating: [], count: prompts.count),
                                 finished: Array(repeating: false, count: prompts.count))
        let config = transformer.config
        if config.isMixtureOfExperts {
            batch.routing = Array(repeating: Routing(topK: config.numExpertsPerTok,
                                                     experts: Array(repeating: [], count: config.numHiddenLayers)),
                                  count: prompts.count)
        }
        // Each row's experts, appended to its sequence's routing (rows of a slot come in
        // position order: the prefill's, then one per step).
        func record(_ rows: ArraySlice<DecodeRow>, _ used: Routing) {
            guard config.isMixtureOfExperts else { return }
            for (r, row) in rows.enumerated() {
                for l in 0..<config.numHiddenLayers { batch.routing[row.slot].experts[l] += used.choice(layer: l, row: r) }
            }
        }
        // Prefill: every prompt position but each prompt's last goes through the model in
        // steps of up to `prefillRows` rows, only to fill the KV cache. Each row's arithmetic
        // is what it would be one position at a time (rows are independent), except where a
        // scale is taken over the whole activation tensor (per-tensor FP8 scaling), which
        // sees the step's rows, as in a serving engine's prefill.
        let prefill = prompts.indices.flatMap { i in
            prompts[i].dropLast().enumerated().map { DecodeRow(slot: i, token: $0.element, position: Int32($0.offset)) }
        }
        for start in stride(from: 0, to: prefill.count, by: RolloutEngine.prefillRows) where !shouldStop() {
            let rows = prefill[start..<min(prefill.count, start + RolloutEngine.prefillRows)]
            var used = Routing(topK: config.numExpertsPerTok, experts: [])
            _ = transformer.decodeStep(Array(rows), cache: &cache, weights: kernel.weights, kernel: kernel,
                                       plan: profile.forwardPlan, routing: &used, logProbs: false)
            record(rows, used)
        }
        // Then one position per step for every live sequence, from its prompt's last token.
        var next = prompts.map { $0.last ?? endTokens.min() ?? 0 }
        var position = prompts.map { max(0, $0.count - 1) }
        var active = Array(0..<prompts.count)
        while !active.isEmpty && !shouldStop() {
            let rows = active.map { DecodeRow(slot: $0, token: next[$0], position: Int32(position[$0])) }
            var used = Routing(topK: config.numExpertsPerTok, experts: [])
            let lp = transformer.decodeStep(rows, cache: &cache, weights: kernel.weights, kernel: kernel,
                                            plan: profile.forwardPlan, routing: &used)
            record(rows[...], used)
            let drawn = sampleRows(lp, active: active, position: position, sampling: sampling, stream: stream)
            var still: [Int] = []
            for (r, i) in active.enumerated() {
                let (dist, token) = drawn[r]
                batch.responses[i].append(token)
                batch.logMu[i].append(dist[Int(token)])
                batch.distributions[i] += dist
                if endTokens.contains(token) { batch.finished[i] = true; continue }
                if batch.responses[i].count >= sampling.maxNewTokens { continue }
                next[i] = token
                position[i] += 1
                still.append(i)
            }
            active = still
        }
        return batch
    }

    /// Each active row's distribution at the sampling temperature (as float32, as the batch
    /// keeps it) and its sampled token, row r of `lp` being sequence `active[r]`. Every row
    /// is drawn on its own (its uniform is draw i·65536 + p of `stream`), so the rows are cut
    /// between threads with the same results.
    private func sampleRows(_ lp: [Float], active: [Int], position: [Int], sampling: SamplingSettings,
                            stream: RandomStream) -> [(dist: [Float], token: Int32)] {
        let v = transformer.config.vocabSize
        var out = [(dist: [Float], token: Int32)](repeating: ([], 0), count: active.count)
        out.withUnsafeMutableBufferPointer { o in
            let rows = UncheckedSendable(o)
            forEachRange(active.count, minimumCost: 1 << 16, cost: { _ in v }) { range in
                for r in range {
                    let i = active[r]
                    let dist = temperatureLogProbs(lp[(r * v)..<((r + 1) * v)], temperature: sampling.temperature)
                    let u = Double(stream.draw(at: UInt64(i) << 16 | UInt64(position[i])) >> 11) * 0x1p-53
                    let token = self.sample(dist, u: u, sampling: sampling)
                    rows.value[r] = (dist.map { Float($0) }, token)
                }
            }
        }
        return out
    }

    /// Inverse-CDF sampling with a uniform u in [0, 1): over the tokens in id order, or with
    /// top-k / top-p, over the kept tokens by decreasing probability (ties by id).
    func sample(_ logProbs: [Double], u: Double, sampling: SamplingSettings) -> Int32 {
        let p = logProbs.map(expD)
        var order = Array(0..<p.count)
        if sampling.topK > 0 || sampling.topP < 1 {
            order.sort { p[$0] != p[$1] ? p[$0] > p[$1] : $0 < $1 }
            if sampling.topK > 0 { order = Array(order.prefix(sampling.topK)) }
            if sampling.topP < 1 {
                var total = 0.0, kept = 0
                let all = order.reduce(0.0) { $0 + p[$1] }
                for j in order { total += p[j]; kept += 1; if total >= sampling.topP * all { break } }
                order = Array(order.prefix(kept))
            }
        }
        let mass = order.reduce(0.0) { $0 + p[$1] }
        var cumulative = 0.0
        let target = u * mass
        for j in order {
            cumulative += p[j]
            if target < cumulative { return Int32(j) }
        }
        return Int32(order.last!)
    }

    /// Teacher-forced through the KV cache: log-softmax (T, V) at every position of one
    /// sequence, at temperature 1, the hidden states after each layer (L+1 of (T, C)), and a
    /// sparse model's routing (nil for a dense one).
    public func teacherForced(_ sequence: [Int32]) -> (logProbs: [Float], hidden: [[Float]], routing: Routing?) {
        let config = transformer.config
        var cache = KVCache(config: config, slots: 1, capacity: sequence.count)
        var logProbs: [Float] = []
        var hidden = [[Float]](repeating: [], count: config.numHiddenLayers + 1)
        var routing = config.isMixtureOfExperts
            ? Routing(topK: config.numExpertsPerTok, experts: Array(repeating: [], count: config.numHiddenLayers)) : nil
        for (p, t) in sequence.enumerated() {
            var states: [[Float]] = []
            var used = Routing(topK: config.numExpertsPerTok, experts: [])
            logProbs += transformer.decodeStep([DecodeRow(slot: 0, token: t, position: Int32(p))], cache: &cache,
                                               weights: kernel.weights, kernel: kernel, plan: profile.forwardPlan,
                                               hidden: &states, routing: &used)
            for l in 0..<states.count { hidden[l] += states[l] }
            for l in 0..<used.experts.count { routing?.experts[l] += used.experts[l] }
        }
        return (logProbs, hidden, routing)
    }
}

/// The training engine: teacher-forced forward over whole sequences and backward.
public final class TrainingEngine: Engine {

    /// The forward pass over packed sequences (log-softmax at temperature 1 for every row).
    /// `keepForBackward` false: a forward that no backward follows keeps nothing for one.
    /// `replay` fixes a sparse model's experts (routing replay).
    public func forward(_ batch: PackedBatch, keepForBackward: Bool = true, replay: Routing? = nil) -> ForwardResult {
        transformer.forward(batch, weights: kernel.weights, kernel: kernel, plan: profile.forwardPlan,
                            keepForBackward: keepForBackward, replay: replay)
    }

    /// Back-propagates ∂loss/∂log π of each row's target token, accumulating float32
    /// gradients of the master weights into `grads`; a sparse model's load-balancing loss
    /// joins the loss with weight `loadBalancingWeight`.
    public func backward(_ batch: PackedBatch, targets: [Int32], dLogProb: [Float], forward: ForwardResult,
                         grads: inout ModelWeights, loadBalancingWeight: Float = 0) {
        transformer.backward(batch, targets: targets, dLogProb: dLogProb, forward: forward, weights: kernel.weights,
                             kernel: kernel, plan: profile.forwardPlan, grads: &grads, loadBalancingWeight: loadBalancingWeight)
    }
}

// Router disagreement between two engines of a mixture-of-experts model: how often the two
// routers choose different sets of experts for the same token in the same layer.

import JSON

/// One sequence's routing in both engines: per layer, the K experts of each position
/// (position-major, K per position), as each engine's router chose them.
public struct RoutingPair: Sendable, Equatable {
    public var topK: Int
    public var rollout: [[Int32]]
    public var train: [[Int32]]

    public init(topK: Int, rollout: [[Int32]], train: [[Int32]]) {
        self.topK = topK
        self.rollout = rollout
        self.train = train
    }
}

/// Router disagreement over the positions both engines routed ("Stabilizing MoE RL by
/// aligning training and inference routers" reports about 10% of decisions and 94% of tokens
/// on Qwen3-30B-A3B). A decision is one (token, layer); it differs when the two top-K sets
/// differ (the order within a set does not count).
public struct RoutingStats: Sendable, Equatable, Codable {
    /// Tokens (positions) compared.
    public var tokens: Int
    /// Per layer: the fraction of tokens whose expert sets differ.
    public var layers: [Double]
    /// The fraction of (token, layer) decisions that differ.
    public var decisions: Double
    /// The fraction of tokens with a differing decision in at least one layer.
    public var tokensAnyLayer: Double

    /// Compares each pair's positions up to the shorter of the two engines' (the rollout
    /// never runs a sequence's last token).
    public init(_ pairs: [RoutingPair]) {
        var differing: [Int] = [], anyLayer = 0, tokens = 0
        for pair in pairs {
            let k = max(pair.topK, 1)
            let layers = min(pair.rollout.count, pair.train.count)
            if differing.count < layers { differing += Array(repeating: 0, count: layers - differing.count) }
            let positions = (0..<layers).map { min(pair.rollout[$0].count, pair.train[$0].count) / k }.min() ?? 0
            for t in 0..<positions {
                var any = false
                for l in 0..<layers {
                    let a = Set(pair.rollout[l][(t * k)..<((t + 1) * k)]), b = Set(pair.train[l][(t * k)..<((t + 1) * k)])
                    if a != b { differing[l] += 1; any = true }
                }
                if any { anyLayer += 1 }
                tokens += 1
            }
        }
        self.tokens = tokens
        layers = differing.map { tokens > 0 ? Double($0) / Double(tokens) : 0 }
        decisions = layers.isEmpty ? 0 : layers.reduce(0, +) / Double(layers.count)
        tokensAnyLayer = tokens > 0 ? Double(anyLayer) / Double(tokens) : 0
    }

    /// `router_disagree`, `router_disagree_tokens`, `router_disagree_layers`, `routed_tokens`.
    public var json: JSONObject {
        ["router_disagree": .number(decisions), "router_disagree_tokens": .number(tokensAnyLayer),
         "router_disagree_layers": .numbers(layers), "routed_tokens": .int(tokens)]
    }
}

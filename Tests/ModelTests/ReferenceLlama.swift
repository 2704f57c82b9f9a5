// An independent Double-precision Llama forward, written from Hugging Face's
// `modeling_llama.py` semantics (rotate-half RoPE with inv_freq = 1/θ^(2i/D), RMSNorm
// x·rsqrt(mean(x²)+eps)·w, causal softmax attention with grouped key/value heads, SwiGLU MLP),
// `modeling_qwen2.py`'s and `modeling_qwen3.py`'s attention (a projection's bias when the
// tensors hold one; q_norm and k_norm, RMSNorm over each head's D values before RoPE; an
// explicit head_dim), `modeling_mixtral.py`'s sparse MLP (softmax router, top-k, renormalised weights,
// Σ w·expert), and PEFT's LoRA layer (y = x·Wᵀ + (α/r)·x·Aᵀ·Bᵀ), sharing no code with the
// Model module beyond reading the weights by name.

import Foundation
import Model

struct ReferenceLlama {
    let config: LlamaConfig
    let tensors: [String: [Double]]

    init(_ weights: ModelWeights) {
        config = weights.config
        var t: [String: [Double]] = [:]
        for s in weights.slots { t[s.name] = weights.tensor(s.name)!.map(Double.init) }
        if config.tieWordEmbeddings { t["lm_head.weight"] = t["model.embed_tokens.weight"] }
        tensors = t
    }

    init(config: LlamaConfig, tensors: [String: [Double]]) {
        self.config = config
        var t = tensors
        if config.tieWordEmbeddings { t["lm_head.weight"] = t["model.embed_tokens.weight"] }
        self.tensors = t
    }

    /// y = x·Wᵀ (+ b when the tensors hold the module's `.bias`) for x (n, in), W (out, in);
    /// with a LoRA adapter on the layer (PEFT's `lora_A`, `lora_B` beside the weight),
    /// y += (α/r)·(x·Aᵀ)·Bᵀ.
    func linear(_ x: [Double], _ name: String, rows n: Int, inDim: Int, outDim: Int) -> [Double] {
        let w = tensors[name]!
        let module = String(name.dropLast(".weight".count))
        let bias = tensors[module + ".bias"]
        var y = [Double](repeating: 0, count: n * outDim)
        for r in 0..<n { for o in 0..<outDim {
            var s = bias?[o] ?? 0
            for i in 0..<inDim { s += x[r * inDim + i] * w[o * inDim + i] }
            y[r * outDim + o] = s
        } }
        if let a = tensors[module + ".lora_A.weight"], let b = tensors[module + ".lora_B.weight"], let lora = config.lora {
            let rank = a.count / inDim, scaling = lora.alpha / Double(lora.rank)
            for r in 0..<n {
                let t = (0..<rank).map { k in (0..<inDim).reduce(0.0) { $0 + x[r * inDim + $1] * a[k * inDim + $1] } }
                for o in 0..<outDim { y[r * outDim + o] += scaling * (0..<rank).reduce(0.0) { $0 + t[$1] * b[o * rank + $1] } }
            }
        }
        return y
    }

    /// RMSNorm of rows of width `width` (C unless given: D for q_norm and k_norm per head).
    func rmsnorm(_ x: [Double], _ name: String, rows n: Int, width: Int? = nil) -> [Double] {
        let c = width ?? config.hiddenSize, w = tensors[name]!
        var y = x
        for r in 0..<n {
            var ss = 0.0
            for j in 0..<c { ss += x[r * c + j] * x[r * c + j] }
            let inv = 1 / (ss / Double(c) + Double(config.rmsNormEps)).squareRoot()
            for j in 0..<c { y[r * c + j] = w[j] * x[r * c + j] * inv }
        }
        return y
    }

    func rope(_ x: inout [Double], rows n: Int, heads: Int) {
        let d = config.headDim, half = d / 2
        for r in 0..<n { for h in 0..<heads { for i in 0..<half {
            let invFreq = 1 / pow(Double(config.ropeTheta), Double(2 * i) / Double(d))
            let angle = Double(r) * invFreq
            let base = (r * heads + h) * d
            let a = x[base + i], b = x[base + i + half]
            x[base + i] = a * cos(angle) - b * sin(angle)
            x[base + i + half] = b * cos(angle) + a * sin(angle)
        } } }
    }

    /// Log-softmax of the logits at every position of one sequence (T, V).
    func logProbs(_ tokens: [Int32]) -> [Double] { run(tokens).logProbs }

    /// What a sparse layer's router did over one sequence: the (row, choice) assignments per
    /// expert, the sums of each expert's probability, and the experts (T·K).
    struct LayerRouting {
        var assignments: [Double]
        var probabilitySums: [Double]
        var experts: [Int32]
    }

    /// The forward over one sequence: log-softmax (T, V) and each sparse layer's routing.
    /// `replay` (per layer T·K) fixes the experts.
    func run(_ tokens: [Int32], replay: [[Int32]]? = nil) -> (logProbs: [Double], routing: [LayerRouting]) {
        var routing: [LayerRouting] = []
        let n = tokens.count, c = config.hiddenSize, f = config.intermediateSize, v = config.vocabSize
        let h = config.numAttentionHeads, hkv = config.numKeyValueHeads, d = config.headDim, kvDim = config.kvDim
        let qDim = h * d
        let emb = tensors["model.embed_tokens.weight"]!
        var x = [Double](repeating: 0, count: n * c)
        for r in 0..<n { for j in 0..<c { x[r * c + j] = emb[Int(tokens[r]) * c + j] } }
        for l in 0..<config.numHiddenLayers {
            let p = "model.layers.\(l)."
            let xn = rmsnorm(x, p + "input_layernorm.weight", rows: n)
            var q = linear(xn, p + "self_attn.q_proj.weight", rows: n, inDim: c, outDim: qDim)
            var k = linear(xn, p + "self_attn.k_proj.weight", rows: n, inDim: c, outDim: kvDim)
            let vv = linear(xn, p + "self_attn.v_proj.weight", rows: n, inDim: c, outDim: kvDim)
            if tensors[p + "self_attn.q_norm.weight"] != nil {
                q = rmsnorm(q, p + "self_attn.q_norm.weight", rows: n * h, width: d)
                k = rmsnorm(k, p + "self_attn.k_norm.weight", rows: n * hkv, width: d)
            }
            rope(&q, rows: n, heads: h)
            rope(&k, rows: n, heads: hkv)
            var attn = [Double](repeating: 0, count: n * qDim)
            for r in 0..<n { for hh in 0..<h {
                let kvh = hh / (h / hkv)
                var scores = [Double](repeating: 0, count: r + 1)
                for j in 0...r {
                    var s = 0.0
                    for i in 0..<d { s += q[r * qDim + hh * d + i] * k[j * kvDim + kvh * d + i] }
                    scores[j] = s / Double(d).squareRoot()
                }
                let m = scores.max()!
                let e = scores.map { exp($0 - m) }
                let total = e.reduce(0, +)
                for j in 0...r { for i in 0..<d { attn[r * qDim + hh * d + i] += e[j] / total * vv[j * kvDim + kvh * d + i] } }
            } }
            let o = linear(attn, p + "self_attn.o_proj.weight", rows: n, inDim: qDim, outDim: c)
            for i in 0..<(n * c) { x[i] += o[i] }
            let xn2 = rmsnorm(x, p + "post_attention_layernorm.weight", rows: n)
            func mlp(_ xs: [Double], rows m: Int, _ gate: String, _ up: String, _ down: String) -> [Double] {
                let g = linear(xs, gate, rows: m, inDim: c, outDim: f)
                let u = linear(xs, up, rows: m, inDim: c, outDim: f)
                var a = [Double](repeating: 0, count: m * f)
                for i in 0..<(m * f) { a[i] = g[i] / (1 + exp(-g[i])) * u[i] }
                return linear(a, down, rows: m, inDim: f, outDim: c)
            }
            if config.numLocalExperts > 0 {
                let e = config.numLocalExperts, k = config.numExpertsPerTok
                let moe = p + "block_sparse_moe."
                let logits = linear(xn2, moe + "gate.weight", rows: n, inDim: c, outDim: e)
                var layer = LayerRouting(assignments: Array(repeating: 0, count: e),
                                         probabilitySums: Array(repeating: 0, count: e), experts: [])
                for r in 0..<n {
                    let z = Array(logits[(r * e)..<((r + 1) * e)])
                    let m = z.max()!
                    let ez = z.map { exp($0 - m) }
                    let probs = ez.map { $0 / ez.reduce(0, +) }
                    for j in 0..<e { layer.probabilitySums[j] += probs[j] }
                    var chosen: [Int]
                    if let replay, replay[l][r * k] >= 0 {
                        chosen = (0..<k).map { Int(replay[l][r * k + $0]) }
                    } else {
                        chosen = Array(probs.indices.sorted { probs[$0] != probs[$1] ? probs[$0] > probs[$1] : $0 < $1 }.prefix(k))
                    }
                    let total = chosen.reduce(0.0) { $0 + probs[$1] }
                    let xr = Array(xn2[(r * c)..<((r + 1) * c)])
                    for j in chosen {
                        layer.assignments[j] += 1
                        layer.experts.append(Int32(j))
                        let w = config.normTopKProb ? probs[j] / total : probs[j]
                        let y = mlp(xr, rows: 1, moe + "experts.\(j).w1.weight", moe + "experts.\(j).w3.weight",
                                    moe + "experts.\(j).w2.weight")
                        for i in 0..<c { x[r * c + i] += w * y[i] }
                    }
                }
                routing.append(layer)
            } else {
                let down = mlp(xn2, rows: n, p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight", p + "mlp.down_proj.weight")
                for i in 0..<(n * c) { x[i] += down[i] }
            }
        }
        let xf = rmsnorm(x, "model.norm.weight", rows: n)
        let logits = linear(xf, "lm_head.weight", rows: n, inDim: c, outDim: v)
        var out = logits
        for r in 0..<n {
            let row = Array(logits[(r * v)..<((r + 1) * v)])
            let m = row.max()!
            let lse = m + log(row.map { exp($0 - m) }.reduce(0, +))
            for j in 0..<v { out[r * v + j] = row[j] - lse }
        }
        return (out, routing)
    }

    /// Mixtral's load-balancing loss over the routing of several sequences (all layers' rows
    /// together, M of them): E · Σ_e (a_e / M)(P_e / M).
    static func loadBalancingLoss(_ sequences: [[LayerRouting]], experts e: Int, topK k: Int) -> Double {
        var a = [Double](repeating: 0, count: e), p = a, m = 0.0
        for seq in sequences {
            for layer in seq {
                for j in 0..<e { a[j] += layer.assignments[j]; p[j] += layer.probabilitySums[j] }
                m += Double(layer.experts.count / k)
            }
        }
        var loss = 0.0
        for j in 0..<e { loss += a[j] / m * (p[j] / m) }
        return Double(e) * loss
    }
}

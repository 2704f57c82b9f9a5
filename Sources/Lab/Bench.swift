// Benchmarks of the lab's kernels: `plab bench`. Figures go to BENCHMARKS.md.

import Foundation
import Engines
import JSON
import Model
import Numerics

/// Times `body` repeatedly and returns the best time of one call in seconds: repeats until
/// `budget` seconds have passed (at least 3 calls, after one warm-up call).
public func bestTime(budget: Double = 0.3, _ body: () -> Void) -> Double {
    body()
    var best = Double.infinity
    let start = DispatchTime.now().uptimeNanoseconds
    var calls = 0
    while calls < 3 || Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 < budget {
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        let t = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
        best = min(best, t)
        calls += 1
    }
    return best
}

public struct BenchResult: Sendable {
    public var name: String
    public var value: Double
    public var unit: String
    public var note: String = ""
    /// Time relative to the BF16 preset's on the same benchmark (the FP8 engine rows).
    public var timeVsBF16: Double? = nil
    /// The best time of one call, where the value is a rate (`--json` carries it, so a
    /// comparison with another program's times needs no unit conversion).
    public var seconds: Double? = nil
}

/// The products' operands: `count` values in [−0.5, 0.5) from a fixed pattern, one for the
/// left operand and another for the right, so no benchmark depends on a random stream.
enum BenchOperand { case left, right }

func benchOperand(_ count: Int, _ side: BenchOperand) -> [Float] {
    switch side {
    case .left: return (0..<count).map { Float(($0 * 7919) % 1000) / 1000 - 0.5 }
    case .right: return (0..<count).map { Float(($0 * 104_729) % 997) / 997 - 0.5 }
    }
}

/// Rounding throughput, one thread: G elements per second for each format and mode, over a
/// buffer of `count` float32 values drawn across a wide range (normals of many binades,
/// some subnormal, some overflowing for the narrow formats).
public func benchRounding(count: Int = 1 << 20, budget: Double = 0.3) -> [BenchResult] {
    let input = benchRoundingInput(count: count)
    var output = [Float](repeating: 0, count: count)
    var results: [BenchResult] = []
    for format in NumberFormat.named {
        for mode in RoundingMode.allCases {
            let rounder = Rounder(format: format, mode: mode)
            let stream = RandomStream(seed: 2, name: "sr")
            let t = input.withUnsafeBufferPointer { src in
                output.withUnsafeMutableBufferPointer { dst in
                    bestTime(budget: budget) {
                        rounder.round(src.baseAddress!, into: dst.baseAddress!, count: count, stream: stream)
                    }
                }
            }
            results.append(BenchResult(name: "round \(format.name) \(mode.rawValue)",
                                       value: Double(count) / t * 1e-9, unit: "G elem/s"))
        }
    }
    return results
}

/// The rounding benchmark's input: uniform magnitudes across 40 binades (2^-20 … 2^20), both
/// signs, from a fixed stream.
public func benchRoundingInput(count: Int = 1 << 20) -> [Float] {
    var rng = RandomStream(seed: 1, name: "bench-rounding")
    return (0..<count).map { _ in
        let u = Float(rng.nextUnit() * 2 - 1)
        return u * Float(sign: .plus, exponent: Int(rng.next() % 40) - 20, significand: 1)
    }
}

/// Matrix products at n×n×n: raw cblas_sgemm, the quantized product with BF16 operands and
/// output on openblas (operand and output rounding included), and the portable backend in
/// FP32 — each as GFLOP/s and as time relative to raw cblas_sgemm.
public func benchGEMM(sizes: [Int] = [256, 512, 1024], budget: Double = 0.5) -> [BenchResult] {
    var results: [BenchResult] = []
    for n in sizes {
        let a = benchOperand(n * n, .left)
        let b = benchOperand(n * n, .right)
        var c = [Float](repeating: 0, count: n * n)
        let flops = 2 * Double(n) * Double(n) * Double(n)
        let raw = bestTime(budget: budget) {
            LibraryBackend(.openblas).gemm(transA: false, transB: false, m: n, n: n, k: n, a: a, lda: n, b: b, ldb: n,
                                   c: &c, ldc: n, accumulate: false)
        }
        results.append(BenchResult(name: "cblas_sgemm \(n)^3", value: flops / raw * 1e-9, unit: "GFLOP/s"))
        let rule = Quantization(format: .bf16)
        let tquant = bestTime(budget: budget) { _ = try? rule.quantize(a, rows: n, cols: n) }
        results.append(BenchResult(name: "quantize bf16 \(n)x\(n)", value: Double(n * n) / tquant * 1e-9, unit: "G elem/s",
                                   note: String(format: "%.3f ms", tquant * 1e3)))
        let bf16 = QuantizedGEMM(recipe: .uniform(.bf16), backend: LibraryBackend(.openblas))
        let tq = bestTime(budget: budget) { _ = try? bf16.multiply(a, b, m: n, n: n, k: n) }
        let pa = try! PreparedOperand(a, rows: n, cols: n, transposed: false, quantization: rule)
        let pb = try! PreparedOperand(b, rows: n, cols: n, transposed: false, quantization: rule)
        let tprep = c.withUnsafeMutableBufferPointer { cp in
            bestTime(budget: budget) { bf16.multiplyPrepared(pa, pb, m: n, n: n, k: n, into: cp.baseAddress!) }
        }
        results.append(BenchResult(name: "bf16 GEMM prepared operands \(n)^3", value: flops / tprep * 1e-9, unit: "GFLOP/s",
                                   note: String(format: "%.2fx cblas time", tprep / raw)))
        results.append(BenchResult(name: "bf16 GEMM (openblas) \(n)^3", value: flops / tq * 1e-9, unit: "GFLOP/s",
                                   note: String(format: "%.2fx cblas time", tq / raw)))
        let portable = PortableBackend()
        let tp = a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    bestTime(budget: budget) {
                        portable.gemm(transA: false, transB: false, m: n, n: n, k: n, a: ap.baseAddress!, lda: n,
                                      b: bp.baseAddress!, ldb: n, c: cp.baseAddress!, ldc: n, accumulate: false)
                    }
                }
            }
        }
        results.append(BenchResult(name: "portable fp32 \(n)^3", value: flops / tp * 1e-9, unit: "GFLOP/s",
                                   note: String(format: "%.2fx cblas time", tp / raw)))
    }
    return results
}

/// The float32 products of the 10 M model's engines, by shape, on OpenBLAS and on the portable
/// backend, with all threads and with one: the training forward (x·Wᵀ over 2,560 tokens), its
/// DGrad (dy·W) and WGrad (dyᵀ·x), and one decode step's x·Wᵀ over 64 sequences; for each,
/// GFLOP/s and the share of the best backend-and-thread figure of the same shape.
public func benchProductShapes(budget: Double = 0.4) -> [BenchResult] {
    let c = 384, f = 1024
    // (name, transA, transB, m, n, k): C (m×n) = op(A) (m×k) · op(B) (k×n).
    let shapes: [(String, Bool, Bool, Int, Int, Int)] = [
        ("forward x·Wᵀ q", false, true, 2560, c, c),
        ("forward x·Wᵀ up", false, true, 2560, f, c),
        ("forward x·Wᵀ down", false, true, 2560, c, f),
        ("dgrad dy·W up", false, false, 2560, c, f),
        ("wgrad dyᵀ·x up", true, false, f, c, 2560),
        ("decode x·Wᵀ q", false, true, 64, c, c),
        ("decode x·Wᵀ up", false, true, 64, f, c),
        ("decode x·Wᵀ down", false, true, 64, c, f),
        ("decode split-K quarter x·W q", false, false, 64, c, c / 4),
        ("decode x·W q", false, false, 64, c, c),
        ("decode 16 rows x·W q", false, false, 16, c, c),
        ("decode 4 rows x·W q", false, false, 4, c, c),
    ]
    var results: [BenchResult] = []
    for (name, transA, transB, m, n, k) in shapes {
        let a = benchOperand(m * k, .left)
        let b = benchOperand(k * n, .right)
        var out = [Float](repeating: 0, count: m * n)
        let flops = 2 * Double(m) * Double(n) * Double(k)
        let backends: [(String, any MatmulBackend)] = [
            ("openblas", LibraryBackend(.openblas)), ("onednn", LibraryBackend(.onednn)), ("portable", PortableBackend()),
            ("portable 1 thread", PortableBackend(threads: 1)),
        ]
        var rows: [(String, Double)] = []
        for (label, backend) in backends {
            let t = a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    out.withUnsafeMutableBufferPointer { cp in
                        bestTime(budget: budget) {
                            backend.gemm(transA: transA, transB: transB, m: m, n: n, k: k, a: ap.baseAddress!, lda: transA ? m : k,
                                         b: bp.baseAddress!, ldb: transB ? k : n, c: cp.baseAddress!, ldc: n, accumulate: false)
                        }
                    }
                }
            }
            rows.append((label, flops / t * 1e-9))
        }
        let best = rows.map(\.1).max()!
        for (label, rate) in rows {
            results.append(BenchResult(name: "\(name) \(m)x\(n)x\(k) \(label)", value: rate, unit: "GFLOP/s",
                                       note: String(format: "%.0f%% of the best", 100 * rate / best)))
        }
    }
    // One decode step's products over the whole model: every weight matrix once, as the
    // rollout runs them, so the weights come from memory rather than a warm cache.
    let layers = 6
    let mats: [(Int, Int)] = Array(repeating: [(c, c), (c, c), (c, c), (c, c), (f, c), (f, c), (c, f)], count: layers).flatMap { $0 }
    let weights = mats.map { benchOperand($0.0 * $0.1, .right) }
    let x = benchOperand(64 * f, .left)
    var y = [Float](repeating: 0, count: 64 * f)
    let flops = mats.reduce(0.0) { $0 + 2 * 64 * Double($1.0 * $1.1) }
    let bytes = mats.reduce(0.0) { $0 + 4 * Double($1.0 * $1.1) }
    for (label, backend, transB) in [("openblas x·Wᵀ", LibraryBackend(.openblas) as any MatmulBackend, true),
                                     ("onednn x·Wᵀ", LibraryBackend(.onednn), true),
                                     ("portable x·Wᵀ", PortableBackend(), true), ("portable x·(Wᵀ stored)", PortableBackend(), false)] {
        let t = bestTime(budget: budget) {
            for (i, (n, k)) in mats.enumerated() {
                backend.gemm(transA: false, transB: transB, m: 64, n: n, k: k, a: x, lda: k, b: weights[i], ldb: transB ? k : n,
                             c: &y, ldc: n, accumulate: false)
            }
        }
        results.append(BenchResult(name: "decode step, all 42 products, \(label)", value: flops / t * 1e-9, unit: "GFLOP/s",
                                   note: String(format: "%.1f GB/s of weights, %.2f ms", bytes / t * 1e-9, t * 1e3)))
    }
    return results
}

/// One JSON object per result and line (name, value, unit, seconds when timed, note): the
/// form `bench/compare-pytorch.sh` reads.
public func renderBenchJSON(_ results: [BenchResult]) -> String {
    results.map { r in
        var object: JSONObject = ["name": .string(r.name), "value": .number(r.value), "unit": .string(r.unit)]
        if let seconds = r.seconds { object["seconds"] = .number(seconds) }
        if let ratio = r.timeVsBF16 { object["time_vs_bf16"] = .number(ratio) }
        object["note"] = .string(r.note)
        return object.serialized + "\n"
    }.joined()
}

/// One line per result: name, value and unit, note — and, when any result has one, the time
/// relative to BF16 ("x bf16").
public func renderBench(_ results: [BenchResult]) -> String {
    let ratios = results.contains { $0.timeVsBF16 != nil }
    var table = TextTable(header: ["benchmark", "value", "unit"] + (ratios ? ["x bf16"] : []) + ["note"],
                          rightAligned: ratios ? [1, 3] : [1])
    for r in results {
        let ratio = r.timeVsBF16.map { String(format: "%.2f", $0) } ?? ""
        table.add([r.name, String(format: "%.2f", r.value), r.unit] + (ratios ? [ratio] : []) + [r.note])
    }
    return table.render()
}

/// The model sizes the engine benchmarks use: the lab's default and one of about 10 M
/// parameters (6 layers of width 384, SwiGLU width 1024).
public let benchConfigs: [(String, LlamaConfig)] = [
    ("default", .labDefault),
    ("10M", LlamaConfig(hiddenSize: 384, intermediateSize: 1024, numAttentionHeads: 6, numKeyValueHeads: 6,
                        numHiddenLayers: 6, vocabSize: Vocabulary.standard.count, maxPositionEmbeddings: 256)),
    // The default shape with 8 experts of width 88, top 2: each token computes an MLP of the
    // default's width (2 × 88 = 176), as checkpoints/base-addition-moe.
    ("moe", LlamaConfig(hiddenSize: 64, intermediateSize: 88, numAttentionHeads: 4, numKeyValueHeads: 2, numHiddenLayers: 4,
                        vocabSize: Vocabulary.standard.count, maxPositionEmbeddings: 256, numLocalExperts: 8, numExpertsPerTok: 2)),
    // The default model with rank-8 adapters (alpha 16) on all seven linear layers of each
    // decoder layer, as checkpoints/base-addition-lora: only the adapters train.
    ("lora", LlamaConfig(hiddenSize: 64, intermediateSize: 176, numAttentionHeads: 4, numKeyValueHeads: 2, numHiddenLayers: 4,
                         vocabSize: Vocabulary.standard.count, maxPositionEmbeddings: 256,
                         lora: LoRASpec(rank: 8, alpha: 16, targets: [.q, .k, .v, .o, .gate, .up, .down]))),
]

/// The engine benchmarks' model (seeded weights, std 0.05) and prompts (<bos> and 7 tokens).
func benchModel(_ config: LlamaConfig, sequences: Int) -> (ModelWeights, [[Int32]]) {
    var master = ModelWeights(config: config)
    master.initialize(std: 0.05, stream: RandomStream(seed: 1, name: "bench-init"))
    var rng = RandomStream(seed: 2, name: "bench-prompts")
    return (master, (0..<sequences).map { _ in [1] + (0..<7).map { _ in Int32(3 + rng.next() % 20) } })
}

/// Rollout throughput (tokens per second, prompts × new tokens sampled with a KV cache) and
/// one training step (teacher-forced forward and backward over those sequences) for each
/// preset and model size, on the given backend, each the best call within `budget` seconds.
/// FP8 rows also give their time relative to the BF16 preset's (rollout time, step time),
/// when BF16 was measured before them.
public func benchEngines(presets: [Preset] = [.fp32, .bf16, .fp8Rollout, .fp8Unified], sequences: Int = 64, newTokens: Int = 32,
                         backend: any MatmulBackend = LibraryBackend(.openblas), configs: [(String, LlamaConfig)] = benchConfigs,
                         budget: Double = 1) throws -> [BenchResult] {
    var results: [BenchResult] = []
    for (label, config) in configs {
        let (master, prompts) = benchModel(config, sequences: sequences)
        var fp32Step = 0.0, bf16Step = 0.0, bf16Rollout = 0.0
        for preset in presets {
            let policy = try Policy(master: master, engines: preset.engines(for: config), backend: backend)
            // A fixed response length: no end token, so every sequence decodes newTokens.
            let sampling = SamplingSettings(maxNewTokens: newTokens)
            var batch: RolloutBatch? = nil
            let tRollout = bestTime(budget: budget) {
                batch = policy.rollout.generate(prompts: prompts, sampling: sampling, endToken: -1,
                                                stream: RandomStream(seed: 3, name: "bench-sampling"))
            }
            let tokens = batch!.responses.reduce(0) { $0 + $1.count }
            let fp8 = preset == .fp8Rollout || preset == .fp8Unified
            if preset == .bf16 { bf16Rollout = tRollout }
            results.append(BenchResult(name: "rollout \(label) \(preset.rawValue)", value: Double(tokens) / tRollout,
                                       unit: "tokens/s", note: "\(sequences) seqs x \(newTokens) new tokens, \(String(format: "%.0f ms", tRollout * 1e3))",
                                       timeVsBF16: fp8 && bf16Rollout > 0 ? tRollout / bf16Rollout : nil, seconds: tRollout))
            let packed = PackedBatch(sequences: batch!.sequences)
            let targets = packed.tokens.dropFirst() + [0]
            let g = [Float](repeating: 1 / Float(packed.rows), count: packed.rows)
            let tForward = bestTime(budget: budget) { _ = policy.training.forward(packed) }
            results.append(BenchResult(name: "train forward \(label) \(preset.rawValue)", value: tForward * 1e3, unit: "ms",
                                       note: "teacher-forced forward over \(packed.rows) tokens", seconds: tForward))
            let tStep = bestTime(budget: budget) {
                let fw = policy.training.forward(packed)
                var grads = ModelWeights(config: config)
                policy.training.backward(packed, targets: Array(targets), dLogProb: g, forward: fw, grads: &grads)
            }
            if preset == .fp32 { fp32Step = tStep }
            if preset == .bf16 { bf16Step = tStep }
            let ratio = fp32Step > 0 && preset != .fp32 ? String(format: ", %.2fx fp32", tStep / fp32Step) : ""
            results.append(BenchResult(name: "train step \(label) \(preset.rawValue)", value: tStep * 1e3, unit: "ms",
                                       note: "fwd+bwd over \(packed.rows) tokens\(ratio)",
                                       timeVsBF16: fp8 && bf16Step > 0 ? tStep / bf16Step : nil, seconds: tStep))
        }
    }
    return results
}

/// The matrix products of one training-engine forward at the 10 M size, through the engine's
/// BF16 recipe (activation rounding, float32 accumulation, output rounding) against the raw
/// float32 product of the same backend on the same shapes: the share of raw throughput the
/// engine keeps.
public func benchEngineGEMMs(rows: Int = 2560, budget: Double = 0.5, backend: any MatmulBackend = LibraryBackend(.openblas)) throws -> [BenchResult] {
    let config = benchConfigs[1].1
    var master = ModelWeights(config: config)
    master.initialize(std: 0.05, stream: RandomStream(seed: 1, name: "bench-init"))
    let kernel = try EngineKernel(master: master, profile: Preset.bf16.engines(for: config).training, backend: backend)
    var results: [BenchResult] = []
    var engineTotal = 0.0, rawTotal = 0.0, flopsTotal = 0.0
    for kind in LinearKind.allCases where kind != .router {   // a dense model
        let site = LinearSite(kind, layer: kind == .lmHead ? -1 : 0)
        let slot = site.slot(in: master)
        let x = benchOperand(rows * slot.cols, .left)
        var y = [Float](repeating: 0, count: rows * slot.rows)
        let w = Array(master.data[slot.offset..<(slot.offset + slot.count)])
        let tEngine = x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                bestTime(budget: budget) { kernel.forward(site, x: xp.baseAddress!, rows: rows, y: yp.baseAddress!) }
            }
        }
        let tRaw = bestTime(budget: budget) {
            backend.gemm(transA: false, transB: true, m: rows, n: slot.rows, k: slot.cols, a: x, lda: slot.cols,
                                   b: w, ldb: slot.cols, c: &y, ldc: slot.rows, accumulate: false)
        }
        let flops = 2 * Double(rows) * Double(slot.rows) * Double(slot.cols)
        engineTotal += tEngine; rawTotal += tRaw; flopsTotal += flops
        results.append(BenchResult(name: "bf16 fprop \(kind.rawValue) \(rows)x\(slot.cols)x\(slot.rows)",
                                   value: flops / tEngine * 1e-9, unit: "GFLOP/s",
                                   note: String(format: "%.0f%% of raw ", 100 * tRaw / tEngine) + backend.name + String(format: " (%.1f GFLOP/s)", flops / tRaw * 1e-9)))
    }
    results.append(BenchResult(name: "bf16 fprop, all linear layers", value: flopsTotal / engineTotal * 1e-9, unit: "GFLOP/s",
                               note: String(format: "%.0f%% of raw ", 100 * rawTotal / engineTotal) + backend.name))
    return results
}

import ArgumentParser
import Engines
import Files
import Foundation
import Lab
import Model
import Numerics

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the lab's kernels and engines (figures recorded in BENCHMARKS.md).",
        discussion: reflowed("""
        rounding: float32 -> format throughput per format and mode, one thread.

        gemm: n×n×n products: raw cblas_sgemm, the BF16 recipe, the portable backend.

        shapes: the 10M model's float32 products by shape (training forward, DGrad, WGrad, one \
        decode step) on openblas, onednn and portable, all threads and one.

        engines: the 10M model's BF16 forward products against the backend's raw float32 \
        product, then rollout
        tokens/s and one training step for fp32, bf16, fp8-rollout and fp8-unified, on the
        default model and a ~10M-parameter one; "x bf16" is an FP8 row's time relative to bf16's.

        recipes: one training step and one rollout per FP8 recipe (hopper or fp32 accumulation,
        hybrid, pow2 scales, per-tensor current and delayed, MXFP8), both engines in the recipe,
        against BF16 emulation, on both model sizes. The lab emulates FP8 on the CPU: these
        are costs of the emulation, not the speed-ups of FP8 hardware.

        rl: whole GRPO steps under bf16 on the default model (or --models) at the lab's defaults (64
        prompts x 8 samples), responses of 58 and of 256 tokens (reversal with notes, every
        response decoded to its full length), the median of 3 steps after a warm-up, and
        where the time goes: rollout, recompute (pi_old), stats (mismatch, entropy),
        diagnostics (kl_initial's fp32 forward included), loss, backward, update.
        """))

    @Argument(help: "What to measure: rounding, gemm, shapes, engines, recipes, rl, or all.")
    var what: String = "all"

    @Option(help: "Matrix sizes n for n×n×n products.")
    var sizes: [Int] = [256, 512, 1024]

    @Option(name: .customLong("save-input"), help: "Write the rounding benchmark's float32 input to this file (raw little-endian), for comparisons.")
    var saveInput: String?

    @Option(help: "Matrix-product backend of the engine benchmarks: portable, openblas or onednn.")
    var backend: String = "portable"

    @Option(help: "Presets of the engine benchmark, comma-separated (fp32, bf16, fp16, fp8-rollout, fp8-unified, …).")
    var presets: String = "fp32,bf16,fp8-rollout,fp8-unified"

    @Option(help: "Models of the engine and rl benchmarks, comma-separated: default, 10M, moe (the default shape with 8 experts of width 88, top 2), lora (the default model with rank-8 adapters on every linear layer, only they train). Default: default,10M for engines, default for rl.")
    var models: String?

    @Option(help: "Seconds each engine and recipe timing may take (0.1…600; the best call counts, after a warm-up call and at least 3 calls). More seconds, less noise from a busy machine.")
    var budget: Double = 1

    @Flag(help: "One JSON object per result and line (name, value, unit, seconds, note) instead of tables.")
    var json = false

    func run() throws {
        guard ["rounding", "gemm", "shapes", "engines", "recipes", "rl", "all"].contains(what) else {
            throw failure("unknown benchmark '\(what)'; accepted: rounding gemm shapes engines recipes rl all")
        }
        guard sizes.allSatisfy({ $0 >= 1 && $0 <= 8192 }) else { throw failure("sizes must be in 1…8192") }
        guard budget >= 0.1 && budget <= 600 else { throw failure("--budget \(budget): seconds per timing must be in 0.1…600") }
        let engineBackend: any MatmulBackend
        do { engineBackend = try matmulBackend(named: backend) } catch { throw failure(error.description) }
        var enginePresets: [Preset] = []
        for name in presets.split(separator: ",").map(String.init) {
            guard let preset = Preset(rawValue: name) else {
                throw failure("unknown preset '\(name)' in --presets; accepted: \(Preset.allCases.map(\.rawValue).joined(separator: " "))")
            }
            enginePresets.append(preset)
        }
        var engineModels: [(String, LlamaConfig)] = []
        for name in (models ?? "default,10M").split(separator: ",").map(String.init) {
            guard let config = benchConfigs.first(where: { $0.0 == name }) else {
                throw failure("unknown model size '\(name)' in --models; accepted: \(benchConfigs.map(\.0).joined(separator: " "))")
            }
            engineModels.append(config)
        }
        guard !enginePresets.isEmpty, !engineModels.isEmpty else { throw failure("--presets and --models need at least one name each") }
        let asJSON = json
        let render = { (results: [BenchResult]) -> String in asJSON ? renderBenchJSON(results) : renderBench(results) + "\n" }
        if let path = saveInput {
            let input = benchRoundingInput()
            let data = input.withUnsafeBufferPointer { Data(buffer: $0) }
            do { try FileWriting.write(data, to: path) } catch { throw failure(error.message) }
        }
        if what == "rounding" || what == "all" { writeOut(render(benchRounding())) }
        if what == "gemm" || what == "all" { writeOut(render(benchGEMM(sizes: sizes))) }
        if what == "shapes" || what == "all" { writeOut(render(benchProductShapes())) }
        if what == "engines" || what == "all" {
            do {
                if engineModels.contains(where: { $0.0 == "10M" }) { writeOut(render(try benchEngineGEMMs(backend: engineBackend))) }
                writeOut(render(try benchEngines(presets: enginePresets, backend: engineBackend, configs: engineModels, budget: budget)))
            } catch { throw failure("\(error)") }
        }
        if what == "recipes" || what == "all" {
            do { writeOut(render(try benchRecipes(backend: engineBackend, budget: budget))) } catch { throw failure("\(error)") }
        }
        if what == "rl" || what == "all" {
            let rlModels = models == nil ? [benchConfigs[0]] : engineModels
            do { writeOut(render(try benchRL(backend: engineBackend, models: rlModels))) } catch { throw failure("\(error)") }
        }
    }
}

// Benchmarks of the lab's kernels: `plab bench`. Figures go to BENCHMARKS.md.

import CBLAS
import Foundation
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
}

/// Rounding throughput, one thread: G elements per second for each format and mode, over a
/// buffer of `count` float32 values drawn across a wide range (normals of many binades,
/// some subnormal, some overflowing for the narrow formats).
public func benchRounding(count: Int = 1 << 20, budget: Double = 0.3) -> [BenchResult] {
    var rng = RandomStream(seed: 1, name: "bench-rounding")
    let input: [Float] = (0..<count).map { _ in
        let u = Float(rng.nextUnit() * 2 - 1)
        return u * Float(sign: .plus, exponent: Int(rng.next() % 40) - 20, significand: 1)
    }
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

/// Matrix products at n×n×n: raw cblas_sgemm, the quantized product with BF16 operands and
/// output on openblas (operand and output rounding included), and the portable backend in
/// FP32 — each as GFLOP/s and as time relative to raw cblas_sgemm.
public func benchGEMM(sizes: [Int] = [256, 512, 1024], budget: Double = 0.5) -> [BenchResult] {
    var results: [BenchResult] = []
    for n in sizes {
        let a = (0..<(n * n)).map { Float(($0 * 7919) % 1000) / 1000 - 0.5 }
        let b = (0..<(n * n)).map { Float(($0 * 104_729) % 997) / 997 - 0.5 }
        var c = [Float](repeating: 0, count: n * n)
        let flops = 2 * Double(n) * Double(n) * Double(n)
        let raw = bestTime(budget: budget) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1, a, Int32(n),
                        b, Int32(n), 0, &c, Int32(n))
        }
        results.append(BenchResult(name: "cblas_sgemm \(n)^3", value: flops / raw * 1e-9, unit: "GFLOP/s"))
        let rule = Quantization(format: .bf16)
        let tquant = bestTime(budget: budget) { _ = try? rule.quantize(a, rows: n, cols: n) }
        results.append(BenchResult(name: "quantize bf16 \(n)x\(n)", value: Double(n * n) / tquant * 1e-9, unit: "G elem/s",
                                   note: String(format: "%.3f ms", tquant * 1e3)))
        let bf16 = QuantizedGEMM(recipe: .uniform(.bf16), backend: OpenBLASBackend())
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

/// One line per result: name, value and unit, note.
public func renderBench(_ results: [BenchResult]) -> String {
    var table = TextTable(header: ["benchmark", "value", "unit", "note"], rightAligned: [1])
    for r in results { table.add([r.name, String(format: "%.2f", r.value), r.unit, r.note]) }
    return table.render()
}

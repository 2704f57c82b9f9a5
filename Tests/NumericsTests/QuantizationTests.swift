import Foundation
import Numerics
import Testing

func randomMatrix(_ count: Int, seed: UInt64, name: String, spread: Bool = true) -> [Float] {
    var rng = RandomStream(seed: seed, name: name)
    return (0..<count).map { _ in
        let u = Float(rng.nextUnit() * 2 - 1)
        // A few orders of magnitude apart, so groups get different scales.
        return spread ? u * Float(sign: .plus, exponent: Int(rng.next() % 12) - 6, significand: 1) : u
    }
}

/// The unit in the last place of a format at magnitude v (v ≥ 0), from the reference.
func formatULP(_ f: NumberFormat, at v: Double) -> Double {
    ReferenceFormat(f).quantum(at: min(v, Double(f.maxFinite)))
}

@Suite struct ScaledQuantizationTests {
    static let shapes: [(Int, Int)] = [(1, 1), (1, 300), (7, 13), (16, 16), (33, 70), (128, 129)]
    static let granularities: [ScaleGranularity] = [.tensor, .rowGroups(4), .rowGroups(128), .rowGroups(5),
                                                    .columnGroups(4), .blocks(3, 5), .blocks(16, 16), .blocks(128, 128)]

    /// Each tile's scale is the formula applied to that tile's amax (computed here from the
    /// tile's own elements), and every value is the nearest format value to the scaled input.
    @Test func scalesAndValuesFollowTheFormula() throws {
        for format in [NumberFormat.e4m3, .e5m2] {
            let ref = ReferenceFormat(format)
            for (rows, cols) in ScaledQuantizationTests.shapes {
                let x = randomMatrix(rows * cols, seed: 1, name: "\(rows)x\(cols)")
                for g in ScaledQuantizationTests.granularities {
                    for formula in ScaleFormula.allCases where formula != .mx {
                        for pow2 in [false, true] {
                            let rule = Quantization(format: format, granularity: g, formula: formula, powerOfTwoScales: pow2)
                            let qm = try rule.quantize(x, rows: rows, cols: cols)
                            #expect(qm.saturated == 0 && qm.nonFinite == 0)
                            // Tiles, independently of the production tiling.
                            let (tr, tc): (Int, Int)
                            switch g {
                            case .tensor: (tr, tc) = (rows, cols)
                            case .rowGroups(let n): (tr, tc) = (1, n)
                            case .columnGroups(let n): (tr, tc) = (n, 1)
                            case .blocks(let r, let c): (tr, tc) = (r, c)
                            case .unscaled: (tr, tc) = (rows, cols)
                            }
                            for r0 in stride(from: 0, to: rows, by: tr) {
                                for c0 in stride(from: 0, to: cols, by: tc) {
                                    var amax: Float = 0
                                    for r in r0..<min(rows, r0 + tr) { for c in c0..<min(cols, c0 + tc) { amax = max(amax, abs(x[r * cols + c])) } }
                                    let s = qm.scale(row: r0, col: c0)
                                    let maxF = format.maxFinite
                                    if pow2 {
                                        // The smallest power of two with amax / s ≤ max.
                                        #expect(s.significandBitPattern == 0 && s.exponentBitPattern > 0)
                                        #expect(Double(amax) <= Double(s) * Double(maxF))
                                        #expect(Double(amax) > Double(s) / 2 * Double(maxF))
                                    } else if formula == .amaxOverMax {
                                        #expect(s == amax / maxF)
                                    } else {
                                        #expect(s == 1 / (maxF / amax))
                                    }
                                    for r in r0..<min(rows, r0 + tr) {
                                        for c in c0..<min(cols, c0 + tc) {
                                            let v = x[r * cols + c]
                                            let scaledInput: Float
                                            if pow2 || formula == .amaxOverMax {
                                                scaledInput = formula == .maxOverAmax ? min(max(v * (1 / s), -maxF), maxF) : v / s
                                            } else {
                                                scaledInput = min(max(v * (maxF / amax), -maxF), maxF)
                                            }
                                            let q = qm.values[r * cols + c]
                                            #expect(ref.nearest(Double(scaledInput)) == .value(Double(q)),
                                                    "\(format) \(g) \(formula) (\(r),\(c)): \(v) → \(q)")
                                            // Within half an ulp (times the scale) of the input,
                                            // plus the float32 rounding of the scaling itself.
                                            let err = abs(Double(q) * Double(s) - Double(v))
                                            let bound = (0.5 * formatULP(format, at: abs(Double(scaledInput))) + 0x1p-23 * abs(Double(scaledInput))) * Double(s)
                                            #expect(err <= bound * (1 + 1e-12), "\(v): error \(err) > \(bound)")
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The OCP MX rule, from its definition: per group the scale is 2^(⌊log2 amax⌋ − emax)
    /// (computed here in Double with log2 and floor), values are the nearest format values
    /// to x / s clamped to ±max, and every element beyond the format's range is counted.
    @Test func mxScalesFollowTheOCPRule() throws {
        for (format, emax) in [(NumberFormat.e4m3, 8.0), (.e5m2, 15.0)] {
            let ref = ReferenceFormat(format)
            let maxF = Double(format.maxFinite)
            for (rows, cols) in ScaledQuantizationTests.shapes {
                let x = randomMatrix(rows * cols, seed: 11, name: "mx \(rows)x\(cols)")
                for g in [ScaleGranularity.rowGroups(32), .columnGroups(32), .rowGroups(5)] {
                    let rule = Quantization(format: format, saturate: true, granularity: g, formula: .mx)
                    let qm = try rule.quantize(x, rows: rows, cols: cols)
                    var expectedOverflows = 0
                    let (tr, tc): (Int, Int) = { if case .rowGroups(let n) = g { return (1, n) }; if case .columnGroups(let n) = g { return (n, 1) }; return (1, 1) }()
                    for r0 in stride(from: 0, to: rows, by: tr) {
                        for c0 in stride(from: 0, to: cols, by: tc) {
                            var amax = 0.0
                            for r in r0..<min(rows, r0 + tr) { for c in c0..<min(cols, c0 + tc) { amax = max(amax, abs(Double(x[r * cols + c]))) } }
                            let s = Foundation.pow(2.0, Foundation.floor(Foundation.log2(amax)) - emax)
                            #expect(Double(qm.scale(row: r0, col: c0)) == s, "\(format) \(g) amax \(amax)")
                            #expect(amax / s >= Foundation.pow(2.0, emax) && amax / s < Foundation.pow(2.0, emax + 1))
                            for r in r0..<min(rows, r0 + tr) {
                                for c in c0..<min(cols, c0 + tc) {
                                    let v = Double(x[r * cols + c]) / s      // exact: s is a power of two
                                    if case .overflow = ref.nearest(v) { expectedOverflows += 1 }
                                    let clamped = min(max(v, -maxF), maxF)
                                    #expect(ref.nearest(clamped) == .value(Double(qm.values[r * cols + c])))
                                }
                            }
                        }
                    }
                    #expect(qm.saturated == expectedOverflows, "\(format) \(g)")
                }
            }
        }
    }

    /// MX rounds the scale down, so some groups have values above the format's max: they are
    /// clamped and counted, never silent (a group whose amax has a large significand).
    @Test func mxClampsAndCountsWhatTheFloorRuleOverflows() throws {
        // amax 1.9 · 2^k: 1.9 / 2^(0 − 8) = 486.4 > 448 (and ≥ 464, past E4M3's rounding range).
        let x: [Float] = [1.9, 0.5, -0.25, 1.0]
        let qm = try Quantization(format: .e4m3, saturate: true, granularity: .rowGroups(4), formula: .mx).quantize(x, rows: 1, cols: 4)
        #expect(qm.scales == [0x1p-8])
        #expect(qm.values == [448, 128, -64, 256])
        #expect(qm.saturated == 1)
        // A group whose scale is exactly 1 is clamped too (the rule clamps; saturate or not).
        let one = try Quantization(format: .e4m3, saturate: false, granularity: .rowGroups(2), formula: .mx).quantize([-465, 1], rows: 1, cols: 2)
        #expect(one.scales == [1] && one.values == [-448, 1] && one.saturated == 1)
    }

    @Test func theTwoFormulasDifferInTheLastBitSometimes() throws {
        let x = randomMatrix(4096, seed: 2, name: "formulas", spread: false)
        let a = try Quantization(format: .e4m3, granularity: .rowGroups(16), formula: .amaxOverMax).quantize(x, rows: 1, cols: 4096)
        let b = try Quantization(format: .e4m3, granularity: .rowGroups(16), formula: .maxOverAmax).quantize(x, rows: 1, cols: 4096)
        let differingScales = zip(a.scales, b.scales).filter { $0 != $1 }.count
        #expect(differingScales > 0)
        for (sa, sb) in zip(a.scales, b.scales) {
            #expect(abs(sa - sb) <= 2 * sa.ulp, "\(sa) vs \(sb)")
        }
    }

    @Test func zeroOrNonFiniteAmaxGivesScaleOne() throws {
        let x: [Float] = [0, 0, 0, 0, 1, .infinity, 2, 3, .nan, 1, 1, 1]
        let q = try Quantization(format: .e4m3, granularity: .rowGroups(4)).quantize(x, rows: 1, cols: 12)
        #expect(q.scales == [1, 1, 1])
        #expect(q.nonFinite == 2)
        #expect(q.values[5].isNaN)   // inf in E4M3 without saturation: NaN
        #expect(q.values[8].isNaN)
    }

    @Test func saturationIsCounted() throws {
        let x: [Float] = [100, 463, 464, 465, 1000, -1e6, 5]
        let plain = try Quantization(format: .e4m3).quantize(x, rows: 1, cols: 7)
        #expect(plain.saturated == 3)
        #expect(plain.values[3].isNaN && plain.values[5].isNaN && plain.values[2] == 448)
        let sat = try Quantization(format: .e4m3, saturate: true).quantize(x, rows: 1, cols: 7)
        #expect(sat.saturated == 3)
        #expect(sat.values == [96, 448, 448, 448, 448, -448, 5])
        let fp16 = try Quantization(format: .fp16).quantize([65519, 65520, -70000], rows: 1, cols: 3)
        #expect(fp16.saturated == 2)
    }

    @Test func badSizesAreRejected() throws {
        #expect(throws: NumericsError.self) { try Quantization(format: .e4m3, granularity: .rowGroups(0)).quantize([1], rows: 1, cols: 1) }
        #expect(throws: NumericsError.self) { try Quantization(format: .e4m3, granularity: .blocks(0, 4)).quantize([1], rows: 1, cols: 1) }
        #expect(throws: NumericsError.self) { try Quantization(format: .e4m3).quantize([1, 2, 3], rows: 2, cols: 2) }
        #expect(throws: NumericsError.self) { try ScaleGranularity.parse("0x128") }
        #expect(throws: NumericsError.self) { try ScaleGranularity.parse("blocky") }
        #expect(try ScaleGranularity.parse("1x128") == .rowGroups(128))
        #expect(try ScaleGranularity.parse("128x1") == .columnGroups(128))
        #expect(try ScaleGranularity.parse("64x64") == .blocks(64, 64))
    }
}

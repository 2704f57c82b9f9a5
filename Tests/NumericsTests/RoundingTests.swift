import Numerics
import Testing

/// Rounds with both production paths — the buffer kernel (SIMD lanes, then a scalar tail)
/// and the scalar `round` — and requires them to agree before returning the result.
func roundBothWays(_ rounder: Rounder, _ inputs: [Float]) -> [Float] {
    let bulk = rounder.rounded(inputs)
    for (i, x) in inputs.enumerated() {
        let scalar = rounder.round(x)
        #expect(sameFloat(scalar, bulk[i]), "\(rounder.format) \(rounder.mode): scalar \(scalar) vs buffer \(bulk[i]) for \(x) (0x\(String(x.bitPattern, radix: 16)))")
    }
    return bulk
}

/// Compares production against the reference and reports the first few mismatches.
func checkAgainstReference(_ f: NumberFormat, _ mode: RoundingMode, saturate: Bool, _ inputs: [Float]) {
    let rounder = Rounder(format: f, mode: mode, saturate: saturate)
    let got = roundBothWays(rounder, inputs)
    var failures = 0
    for (x, r) in zip(inputs, got) {
        let expected = referenceResult(f, mode, saturate: saturate, x)
        if !sameFloat(expected, r) {
            failures += 1
            if failures <= 5 {
                Issue.record("\(f) \(mode) sat=\(saturate): \(x) (0x\(String(x.bitPattern, radix: 16))) → \(r), reference \(expected)")
            }
        }
    }
    #expect(failures == 0, "\(f) \(mode): \(failures) of \(inputs.count) differ")
}

@Suite struct MidpointTests {
    /// For every adjacent pair of representable values (and the pair max / one step above),
    /// the float32 just below, at, and just above the midpoint, with both signs.
    static func midpointInputs(_ f: NumberFormat) -> [Float] {
        let ref = ReferenceFormat(f)
        var values = ref.allNonNegative().map(\.value)
        values.append(ref.maxFinite + ref.quantum(at: ref.maxFinite)) // the virtual next value
        var inputs: [Float] = []
        for i in 0..<(values.count - 1) {
            let mid = Float((values[i] + values[i + 1]) / 2)
            precondition(Double(mid) == (values[i] + values[i + 1]) / 2, "midpoint not exact in float32")
            for x in [mid.nextDown, mid, mid.nextUp] { inputs.append(x); inputs.append(-x) }
        }
        return inputs
    }

    @Test(arguments: ExhaustiveCodeTests.smallFormats)
    func everyMidpointRoundsTheRightWay(format f: NumberFormat) {
        let inputs = MidpointTests.midpointInputs(f)
        for mode in [RoundingMode.nearestEven, .towardZero] {
            for saturate in [false, true] {
                checkAgainstReference(f, mode, saturate: saturate, inputs)
            }
        }
    }

    /// Hand-checked cases from the formats' definitions.
    @Test func knownCases() {
        let e4m3 = Rounder(format: .e4m3)
        #expect(e4m3.round(464) == 448)          // tie goes to 448 (even)
        #expect(e4m3.round(464.00003).isNaN)      // above the tie: NaN, like ml_dtypes
        #expect(e4m3.round(.infinity).isNaN)
        #expect(Rounder(format: .e4m3, saturate: true).round(1e9) == 448)
        #expect(Rounder(format: .e4m3, saturate: true).round(-.infinity) == -448)
        #expect(Rounder(format: .bf16).round(1.00390625) == 1)          // tie to even
        #expect(Rounder(format: .bf16).round(1.01171875) == 1.015625)   // tie to even (up)
        #expect(Rounder(format: .fp16).round(65519) == 65504)
        #expect(Rounder(format: .fp16).round(65520) == .infinity)       // tie goes to inf
        #expect(Rounder(format: .fp16, mode: .towardZero).round(1e6) == 65504)
        #expect(Rounder(format: .e5m2).round(-61440) == -.infinity)
        let nan = Rounder(format: .bf16).round(-Float.nan)
        #expect(nan.isNaN && nan.sign == .minus)
        #expect(Rounder(format: .bf16).round(-0.0).bitPattern == 0x8000_0000)
    }
}

@Suite struct RandomInputTests {
    /// Float32 inputs spread over the whole range: uniform bit patterns (which cover every
    /// exponent including subnormals), plus values concentrated around each format's
    /// subnormal range, max finite and ties.
    static func inputs(for f: NumberFormat, count: Int, seed: UInt64) -> [Float] {
        var rng = RandomStream(seed: seed, name: "inputs-\(f.name)")
        var out: [Float] = []
        for _ in 0..<count {
            out.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())))
        }
        // Near the format's edges: scale random significands into its subnormal range, its
        // top binade and beyond, and place exact ties (few low bits set).
        let edges: [Int] = [f.minExponent - f.mantissaBits - 2, f.minExponent - 1, f.minExponent,
                            f.maxExponent, f.maxExponent + 1]
        for e in edges where e > -150 && e < 128 {
            for _ in 0..<(count / 16) {
                let sig = Float(1 + Double(rng.next() >> 40) * 0x1p-24)
                out.append(Float(sign: rng.next() & 1 == 0 ? .plus : .minus, exponent: e, significand: sig))
                let tie = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()) & 0xFFFF_0000 | 0x0000_8000)
                out.append(tie)
            }
        }
        out += [0, -0, .infinity, -.infinity, .nan, .leastNonzeroMagnitude, .greatestFiniteMagnitude,
                f.maxFinite, f.maxFinite.nextUp, f.minNormal.nextDown, f.minSubnormal / 2]
        return out
    }

    @Test func everyGenericFormatAgreesWithTheReference() {
        for x in 2...8 {
            for y in 0...23 {
                let f = try! NumberFormat.parse("e\(x)m\(y)")
                let inputs = RandomInputTests.inputs(for: f, count: 3000, seed: UInt64(x * 100 + y))
                for mode in [RoundingMode.nearestEven, .towardZero] {
                    checkAgainstReference(f, mode, saturate: false, inputs)
                }
                checkAgainstReference(f, .nearestEven, saturate: true, inputs)
            }
        }
    }

    @Test(arguments: NumberFormat.named)
    func namedFormatsAgreeWithTheReference(format f: NumberFormat) {
        let inputs = RandomInputTests.inputs(for: f, count: 200_000, seed: 7)
        for mode in [RoundingMode.nearestEven, .towardZero] {
            for saturate in [false, true] {
                checkAgainstReference(f, mode, saturate: saturate, inputs)
            }
        }
    }

    @Test func bfloat16MatchesTheBitTrick() {
        // The known bit trick: RNE to bf16 is `u + 0x7FFF + ((u >> 16) & 1)`, then drop 16 bits.
        let inputs = RandomInputTests.inputs(for: .bf16, count: 100_000, seed: 11)
        let rounder = Rounder(format: .bf16)
        for x in inputs where x.isFinite {
            let u = x.bitPattern
            let trick = (u &+ 0x7FFF &+ ((u >> 16) & 1)) & 0xFFFF_0000
            #expect(rounder.round(x).bitPattern == trick, "\(x)")
        }
    }
}

@Suite struct StochasticRoundingTests {
    /// Each result is one of the two neighbours; over many draws the mean error is within
    /// 5 standard errors of zero (a false alarm about once in 3.5 million runs).
    @Test func unbiasedAndBetweenNeighbours() {
        let formats: [NumberFormat] = [.bf16, .fp16, .e4m3, .e5m2, try! .parse("e3m1")]
        let draws = 20_000
        for f in formats {
            let ref = ReferenceFormat(f)
            let rounder = Rounder(format: f, mode: .stochastic)
            var rng = RandomStream(seed: 3, name: "sr-\(f.name)")
            let ranges: [ClosedRange<Double>] = [
                Double(f.minSubnormal) * 0.01...Double(f.minNormal) * 2, 0.3...3,
                Double(f.maxFinite) * 0.4...Double(f.maxFinite) * 0.99,
            ]
            for range in ranges {
                for _ in 0..<20 {
                    let x = Float(range.lowerBound + rng.nextUnit() * (range.upperBound - range.lowerBound))
                    let (lo, hi) = ref.neighbours(Double(abs(x)))
                    let p = (Double(abs(x)) - lo) / (hi - lo)
                    var sum = 0.0
                    let stream = RandomStream(seed: 99, name: "\(x)")
                    let results = rounder.rounded([Float](repeating: x, count: draws), stream: stream)
                    for r in results {
                        #expect(Double(r) == lo || Double(r) == hi, "\(f) \(x) → \(r)")
                        sum += Double(r) - Double(x)
                    }
                    let sd = (hi - lo) * (p * (1 - p)).squareRoot() / Double(draws).squareRoot()
                    let meanError = sum / Double(draws)
                    #expect(abs(meanError) <= 5 * sd + 1e-12 * (hi - lo), "\(f) \(x): mean error \(meanError), sd \(sd)")
                }
            }
        }
    }

    @Test func sameSeedSameBits() {
        let rounder = Rounder(format: .e4m3, mode: .stochastic)
        let inputs = RandomInputTests.inputs(for: .e4m3, count: 10_000, seed: 5)
        let a = rounder.rounded(inputs, stream: RandomStream(seed: 1, name: "x"))
        let b = rounder.rounded(inputs, stream: RandomStream(seed: 1, name: "x"))
        let c = rounder.rounded(inputs, stream: RandomStream(seed: 2, name: "x"))
        #expect(a.map(\.bitPattern) == b.map(\.bitPattern))
        #expect(a.map(\.bitPattern) != c.map(\.bitPattern))
        // Element i depends on draw i only, so rounding in two pieces gives the same bits.
        let stream = RandomStream(seed: 1, name: "x")
        let first = rounder.rounded(Array(inputs[..<4000]), stream: stream)
        let second = rounder.rounded(Array(inputs[4000...]), stream: stream, offset: 4000)
        #expect((first + second).map(\.bitPattern) == a.map(\.bitPattern))
    }

    @Test func tinyValuesRoundUpWithTheRightProbability() {
        // 2^-149 in e2m0 (whose only step below 1 is 0 → 1): up with probability 2^-149,
        // i.e. never in practice; 0.25 rounds up a quarter of the time.
        let f = try! NumberFormat.parse("e2m0")
        let rounder = Rounder(format: f, mode: .stochastic)
        let n = 40_000
        let quarter = rounder.rounded([Float](repeating: 0.25, count: n), stream: RandomStream(seed: 4, name: "q"))
        let ups = quarter.filter { $0 == 1 }.count
        #expect(abs(Double(ups) / Double(n) - 0.25) < 5 * (0.25 * 0.75 / Double(n)).squareRoot())
        let tiny = rounder.rounded([Float](repeating: .leastNonzeroMagnitude, count: n), stream: RandomStream(seed: 4, name: "t"))
        #expect(tiny.allSatisfy { $0 == 0 })
    }
}

@Suite struct DecimalInputTests {
    /// A decimal a hair above a bf16 tie must round up, a hair below must round down —
    /// which reading it as float32 first (where it becomes the tie itself) would get wrong.
    @Test func noDoubleRounding() throws {
        let bf16 = Rounder(format: .bf16)
        // 1 + 2^-8 is the tie between 1 and 1 + 2^-7.
        #expect(bf16.round(try NumberInput.parse("1.00390625")) == 1)
        #expect(bf16.round(try NumberInput.parse("1.0039062500000000000000000000001")) == 1.0078125)
        #expect(bf16.round(try NumberInput.parse("1.0039062499999999999999999999999")) == 1)
        // The same for a float32 bit pattern: it is exact, so the tie stays a tie.
        #expect(bf16.round(try NumberInput.parse("0x3f808000")) == 1)
        // fp32 itself: the decimal rounds once, like strtof.
        let fp32 = Rounder(format: .fp32)
        for text in ["0.1", "3.4028235677973366e38", "1e-46", "7.006492321624085e-46", "-2.5e-3"] {
            #expect(fp32.round(try NumberInput.parse(text)) == Float(text)!, "\(text)")
        }
        // 2^-150 is the tie between 0 and the smallest subnormal: ties to even (0);
        // anything above goes up.
        #expect(fp32.round(try NumberInput.parse("7.00649232162408535461864791644958065640130970938257885878534141944895541342930300743319094181060791015625e-46")) == 0)
        #expect(fp32.round(try NumberInput.parse("7.0064923216240853546186479164495806564013097093825788587853414194489554134293030074331909418106079101562501e-46")) == .leastNonzeroMagnitude)
    }

    @Test func badInputNamesTheCulprit() {
        for bad in ["abc", "1.2.3", "0x", "0x123456789", "1e", "--1", "", ".", "1,5", "0xzz"] {
            #expect(throws: NumericsError.self, "\(bad)") { try NumberInput.parse(bad) }
        }
        for good in ["1", "-1.5", ".5", "5.", "+2e10", "-INF", "nan", "Infinity", "0x7f800000", " 3 "] {
            #expect(throws: Never.self, "\(good)") { try NumberInput.parse(good) }
        }
    }
}

/// `leavesUnchanged`: whether rounding a buffer would change any of its values, read without
/// writing; what the engines ask before copying the master's non-matrix weights.
@Suite struct LeavesUnchangedTests {
    @Test func valuesAlreadyInTheFormatAreLeftAndOthersAreNot() {
        // 10,000 BF16 values (every 7th a float32 value BF16 cannot hold once perturbed).
        var rng = RandomStream(seed: 3, name: "leaves")
        let exact = (0..<10_000).map { _ in Rounder(format: .bf16).round(Float(rng.nextUnit() * 8 - 4)) }
        let bf16 = Rounder(format: .bf16)
        exact.withUnsafeBufferPointer { #expect(bf16.leavesUnchanged($0.baseAddress!, count: $0.count)) }
        for i in [0, 4095, 4096, 9_999] {
            var changed = exact
            changed[i] = Float(bitPattern: changed[i].bitPattern | 1)
            changed.withUnsafeBufferPointer { #expect(!bf16.leavesUnchanged($0.baseAddress!, count: $0.count), "at \(i)") }
            // What the answer means: rounding the buffer changes it exactly when it says so.
            var rounded = changed
            bf16.round(&rounded)
            #expect(rounded.map(\.bitPattern) != changed.map(\.bitPattern))
        }
        // FP32 leaves everything; FP16 does not leave BF16 values beyond its range or precision.
        exact.withUnsafeBufferPointer { #expect(Rounder(format: .fp32).leavesUnchanged($0.baseAddress!, count: $0.count)) }
        [Float(70_000), 1].withUnsafeBufferPointer { #expect(!Rounder(format: .fp16).leavesUnchanged($0.baseAddress!, count: 2)) }
        // An empty buffer is left as it is.
        [Float]().withUnsafeBufferPointer { #expect(bf16.leavesUnchanged($0.baseAddress ?? UnsafePointer(bitPattern: 8)!, count: 0)) }
    }
}

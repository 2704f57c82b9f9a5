import Foundation
import Numerics
import Testing

/// The lab's own elementary functions against the C library (which is accurate to within
/// an ulp but may differ between machines): the bound is 2 ulps of the result.
@Suite struct DeterministicMathTests {
    func ulpDistance(_ a: Double, _ b: Double) -> Double {
        if a == b { return 0 }
        return abs(a - b) / max(a.ulp, b.ulp)
    }

    @Test func expMatchesTheCLibrary() {
        var rng = RandomStream(seed: 1, name: "exp")
        var worst = 0.0
        for _ in 0..<200_000 {
            let x = (rng.nextUnit() * 2 - 1) * 745
            worst = max(worst, ulpDistance(expD(x), Foundation.exp(x)))
        }
        for x in [0.0, 1, -1, 1e-300, 709.78, -745.1, -708.5] { worst = max(worst, ulpDistance(expD(x), Foundation.exp(x))) }
        #expect(worst <= 2, "worst \(worst) ulps")
        #expect(expD(0) == 1)
        #expect(expD(1000) == .infinity && expD(-1000) == 0 && expD(.nan).isNaN)
    }

    @Test func logMatchesTheCLibrary() {
        var rng = RandomStream(seed: 2, name: "log")
        var worst = 0.0
        for _ in 0..<200_000 {
            let x = Double(sign: .plus, exponent: Int(rng.next() % 2000) - 1000, significand: 1 + rng.nextUnit())
            worst = max(worst, ulpDistance(logD(x), Foundation.log(x)))
        }
        for x in [1.0, 2, 0.5, 0x1p-1030, .greatestFiniteMagnitude, 1.0000001, 0.9999999] {
            worst = max(worst, ulpDistance(logD(x), Foundation.log(x)))
        }
        #expect(worst <= 2, "worst \(worst) ulps")
        #expect(logD(1) == 0 && logD(0) == -.infinity && logD(-1).isNaN)
    }

    @Test func sinCosMatchTheCLibrary() {
        var rng = RandomStream(seed: 3, name: "sincos")
        var worst = 0.0
        for _ in 0..<200_000 {
            let x = (rng.nextUnit() * 2 - 1) * 5000
            let (s, c) = sinCosD(x)
            // Near zeros of sin/cos compare absolute error in units of ulp(1)·|x|-scaled reduction error.
            let es = abs(s - Foundation.sin(x)), ec = abs(c - Foundation.cos(x))
            worst = max(worst, es / max(abs(Foundation.sin(x)).ulp, 0x1p-60), ec / max(abs(Foundation.cos(x)).ulp, 0x1p-60))
        }
        #expect(worst <= 2, "worst \(worst) ulps")
    }

    @Test func floatExpLanesWithinTwoUlps() {
        var rng = RandomStream(seed: 4, name: "expf")
        var worst: Float = 0
        var inputs: [Float] = (0..<100_000).map { _ in Float((rng.nextUnit() * 2 - 1) * 104) }
        inputs += [0, -0.0, 1, -1, 88.7, 88.72, -87.3, -100, -103.9, 89, -104, .infinity, -.infinity]
        var out = inputs
        out.withUnsafeMutableBufferPointer { expInPlace($0.baseAddress!, $0.count) }
        for (x, y) in zip(inputs, out) {
            let exact = Foundation.exp(Double(x))
            let reference = Float(exact)
            if reference.isInfinite || reference == 0 {
                // Past the ends: only the overflow/underflow side must agree (within the last ulp).
                #expect(y.isInfinite == reference.isInfinite || abs(Double(y) - exact) <= Double(Float.leastNonzeroMagnitude), "\(x): \(y)")
                continue
            }
            let d = abs(Double(y) - exact) / Double(max(reference.ulp, Float.leastNonzeroMagnitude))
            worst = max(worst, Float(d))
        }
        #expect(worst <= 2, "worst \(worst) ulps")
        #expect(expF(.nan).isNaN)
        // A scalar call is one lane of the vector call.
        #expect(inputs.prefix(1000).allSatisfy { expF($0).bitPattern == expLanes(SIMD16(repeating: $0))[5].bitPattern })
    }
}

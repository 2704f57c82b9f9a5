import Mismatch
import Numerics
import Testing

@Suite struct ExactSumTests {
    @Test func knownSums() {
        #expect(ExactSum([1e100, 1, -1e100]).value == 1)
        #expect(ExactSum(Array(repeating: 0.1, count: 10)).value == 1)
        // 1 + 2^-53 is a tie (rounds to 1), but the 2^-105 beyond it makes the exact sum round up.
        #expect(ExactSum([1, 0x1p-53, 0x1p-105]).value == 1 + 0x1p-52)
        #expect(ExactSum([1, 0x1p-53]).value == 1)
        let empty = ExactSum().value, zeros = ExactSum([-0.0, 0.0, -0.0]).value
        #expect(empty == 0 && empty.sign == .plus && zeros == 0 && zeros.sign == .plus)
        #expect(ExactSum([1, .infinity]).value == .infinity)
        #expect(ExactSum([1, .infinity, -.infinity]).value.isNaN)
        #expect(ExactSum([.nan, 1]).value.isNaN)
        #expect(ExactSum([.greatestFiniteMagnitude, .greatestFiniteMagnitude]).value == .infinity)
    }

    @Test func correctlyRoundedAndOrderIndependent() {
        // Terms k·2^e with |k| < 2^53 and e in −60…−13: every term is exact, and the exact sum
        // is an integer multiple of 2^-60 below 2^110, held exactly in an Int128 whose
        // conversion to Double rounds once to nearest — the value ExactSum must give.
        var rng = RandomStream(seed: 17, name: "exact-sum")
        for trial in 0..<300 {
            let n = 1 + Int(rng.next() % 300)
            var xs: [Double] = []
            var units: [Int128] = []                       // each term in units of 2^-60
            for i in 0..<n {
                if trial % 2 == 0, i % 3 == 2 {            // exact cancellation of the previous term
                    xs.append(-xs[i - 1])
                    units.append(-units[i - 1])
                    continue
                }
                let bits = 1 + Int(rng.next() % 53)
                let k = Int64(bitPattern: rng.next()) >> (64 - bits)
                let e = -60 + Int(rng.next() % 48)
                xs.append(Double(k) * Double(sign: .plus, exponent: e, significand: 1))
                units.append(Int128(k) << (e + 60))
            }
            let want = Double(units.reduce(0, +)) * 0x1p-60
            #expect(ExactSum(xs).value == want, "trial \(trial)")
            xs.shuffle(using: &rng)
            let shuffled = ExactSum(xs).value
            #expect(shuffled == want && shuffled.sign == want.sign)
        }
    }
}

import Model
import Numerics
import Testing

/// RMSNorm's rows, whose sums run eight rows side by side, against the formulas written
/// plainly one row at a time: the same bits for every row, in a batch whose row count is not
/// a multiple of eight, forward (fused and not) and backward.
@Suite struct RMSNormBitsTests {
    @Test(arguments: [1, 7, 8, 13, 33])
    func rowsSideBySideGiveEachRowsBitsAlone(rows n: Int) {
        let c = 24, eps: Float = 1e-5
        var rng = RandomStream(seed: 21, name: "rmsnorm-bits")
        func random(_ count: Int) -> [Float] { (0..<count).map { _ in Float(rng.nextUnit() * 4 - 2) } }
        let x = random(n * c), w = random(c), dout = random(n * c)
        for fused in [false, true] {
            let round = Rounder(format: .bf16)
            var out = [Float](repeating: .nan, count: n * c), rstd = [Float](repeating: .nan, count: n)
            rmsnormForward(x, w, &out, &rstd, rows: n, width: c, eps: eps, round: round, fused: fused)
            for i in 0..<n {
                var ss: Float = 0
                for j in 0..<c { ss = ss.addingProduct(x[i * c + j], x[i * c + j]) }
                let r = 1 / (ss / Float(c) + eps).squareRoot()
                #expect(rstd[i].bitPattern == r.bitPattern, "rstd row \(i)")
                for j in 0..<c {
                    let expected = fused ? round.round(w[j] * (x[i * c + j] * r))
                        : round.round(w[j] * round.round(x[i * c + j] * r))
                    #expect(out[i * c + j].bitPattern == expected.bitPattern, "out row \(i) column \(j)")
                }
            }
        }
        var out = [Float](repeating: 0, count: n * c), rstd = [Float](repeating: 0, count: n)
        rmsnormForward(x, w, &out, &rstd, rows: n, width: c, eps: eps, round: nil, fused: true)
        var dx = [Float](repeating: .nan, count: n * c), dw = [Float](repeating: 0, count: c)
        rmsnormBackward(dout, x, w, rstd, &dx, &dw, rows: n, width: c)
        var expectedDw = [Float](repeating: 0, count: c)
        for i in 0..<n {
            let r = rstd[i]
            var dot: Float = 0
            for j in 0..<c { dot += w[j] * dout[i * c + j] * (x[i * c + j] * r) }
            let mean = dot / Float(c)
            for j in 0..<c {
                let expected = r * (w[j] * dout[i * c + j] - x[i * c + j] * r * mean)
                #expect(dx[i * c + j].bitPattern == expected.bitPattern, "dx row \(i) column \(j)")
                expectedDw[j] += dout[i * c + j] * (x[i * c + j] * r)
            }
        }
        #expect(dw.map(\.bitPattern) == expectedDw.map(\.bitPattern))
    }
}

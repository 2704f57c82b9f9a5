import Foundation
import Model
import Numerics
import Testing

/// The log-softmax over a vocabulary: rows cut between threads and written in place give the
/// bits of each row computed alone into its own buffer, and the figures agree with a Double
/// reference.
@Suite struct LogSoftmaxTests {
    @Test func rowsOnThreadsAndInPlaceGiveEachRowsOwnBits() {
        // 40 rows of 9,001: past the size from which rows are cut between threads.
        let rows = 40, vocab = 9_001
        var rng = RandomStream(seed: 5, name: "logits")
        let logits = (0..<(rows * vocab)).map { _ in Float(rng.nextUnit() * 30 - 15) }
        var alone = [Float](repeating: 0, count: rows * vocab)
        logits.withUnsafeBufferPointer { z in
            alone.withUnsafeMutableBufferPointer { o in
                for r in 0..<rows { logSoftmaxForward(z.baseAddress! + r * vocab, o.baseAddress! + r * vocab, rows: 1, vocab: vocab) }
            }
        }
        var together = [Float](repeating: 0, count: rows * vocab)
        logits.withUnsafeBufferPointer { z in
            together.withUnsafeMutableBufferPointer { logSoftmaxForward(z.baseAddress!, $0.baseAddress!, rows: rows, vocab: vocab) }
        }
        var inPlace = logits
        inPlace.withUnsafeMutableBufferPointer { logSoftmaxForward($0.baseAddress!, $0.baseAddress!, rows: rows, vocab: vocab) }
        #expect(together.map(\.bitPattern) == alone.map(\.bitPattern))
        #expect(inPlace.map(\.bitPattern) == alone.map(\.bitPattern))
        // Against Double: log p = z − log Σ e^z, each within a few float32 ulps of |log p|.
        for r in [0, 17, 39] {
            let row = logits[(r * vocab)..<((r + 1) * vocab)].map(Double.init)
            let m = row.max()!
            let lse = m + Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - m) })
            for j in stride(from: 0, to: vocab, by: 997) {
                let expected = row[j] - lse, got = Double(alone[r * vocab + j])
                #expect(abs(got - expected) <= 1e-5 * max(1, abs(expected)), "row \(r), token \(j): \(got) against \(expected)")
            }
        }
    }
}

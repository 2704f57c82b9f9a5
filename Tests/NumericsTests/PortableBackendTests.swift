import CDNNL
import Foundation
import Numerics
import Testing

// The portable matrix product against its definition (ARCHITECTURE.md "Determinism"): every output
// is one chain of fused multiply-adds in increasing k, starting from C (accumulate) or +0.
// The fast kernel must give exactly those bits whatever the shape, transposes, leading
// dimensions, thread count or split of the product into pieces.

/// One product to check: op(A) is m×k, op(B) is k×n; the stored matrices have their leading
/// dimensions padded by `padA`, `padB`, `padC` elements past their last column.
private struct GemmCase: CustomStringConvertible, Sendable {
    var m: Int, n: Int, k: Int
    var transA = false, transB = false
    var padA = 0, padB = 0, padC = 0
    var accumulate = false

    var rowsA: Int { transA ? k : m }
    var colsA: Int { transA ? m : k }
    var rowsB: Int { transB ? n : k }
    var colsB: Int { transB ? k : n }
    var lda: Int { max(1, colsA + padA) }
    var ldb: Int { max(1, colsB + padB) }
    var ldc: Int { n + padC }

    var description: String {
        "m=\(m) n=\(n) k=\(k) \(transA ? "T" : "N")\(transB ? "T" : "N") lda=\(lda) ldb=\(ldb) ldc=\(ldc) acc=\(accumulate)"
    }
}

/// The stored operands of a case. Padding past the last column of A and B is NaN, so a kernel
/// that reads it spoils its result; C's padding is a sentinel that must survive; and C itself
/// is NaN when not accumulating, so a kernel that reads it spoils its result too.
private struct GemmOperands {
    var a: [Float], b: [Float], c: [Float]
    static let cPadding: Float = 12345.5

    init(_ t: GemmCase, seed: UInt64, special: Bool = false) {
        var random = RandomStream(seed: seed, name: "portable-gemm \(t)")
        func value() -> Float {
            let u = random.nextUnit()
            if special {
                // Zeros of both signs, infinities and ordinary values: checks the signs of zero
                // sums and the NaNs that ∞·0 and ∞ − ∞ make.
                switch random.next() % 8 {
                case 0: return 0
                case 1: return -0.0
                case 2: return random.next() % 2 == 0 ? .infinity : -.infinity
                default: break
                }
            }
            // Mixed magnitudes (2^-8 to 2^8) and both signs, so sums round often.
            let scale = Float(sign: .plus, exponent: Int(random.next() % 17) - 8, significand: 1)
            return Float(2 * u - 1) * scale
        }
        func matrix(rows: Int, cols: Int, ld: Int, pad: Float) -> [Float] {
            var x = [Float](repeating: pad, count: max(1, rows * ld))
            for i in 0..<rows { for j in 0..<cols { x[i * ld + j] = value() } }
            return x
        }
        a = matrix(rows: t.rowsA, cols: t.colsA, ld: t.lda, pad: .nan)
        b = matrix(rows: t.rowsB, cols: t.colsB, ld: t.ldb, pad: .nan)
        c = matrix(rows: t.m, cols: t.n, ld: t.ldc, pad: GemmOperands.cPadding)
        if !t.accumulate {
            for i in 0..<t.m { for j in 0..<t.n { c[i * t.ldc + j] = .nan } }
        }
    }
}

/// The definition, written as plainly as possible: one fused multiply-add chain per output.
private func referenceGemm(_ t: GemmCase, _ ops: GemmOperands) -> [Float] {
    var c = ops.c
    for i in 0..<t.m {
        for j in 0..<t.n {
            var acc: Float = t.accumulate ? c[i * t.ldc + j] : 0
            for p in 0..<t.k {
                let x = t.transA ? ops.a[p * t.lda + i] : ops.a[i * t.lda + p]
                let y = t.transB ? ops.b[j * t.ldb + p] : ops.b[p * t.ldb + j]
                acc = acc.addingProduct(x, y)
            }
            c[i * t.ldc + j] = acc
        }
    }
    return c
}

/// Runs `backend` on the case, as one product or as several pieces of consecutive rows
/// (`rowCuts`) and columns (`colCuts`) computed one after the other.
/// Every size with each transposition and both accumulations, the operands padded (their
/// leading dimensions wider than their rows): with the size's index, for seeding.
private func paddedCases(_ sizes: [(Int, Int, Int)]) -> [(Int, GemmCase)] {
    sizes.enumerated().flatMap { i, size in
        (0..<4).flatMap { trans in
            [false, true].map { accumulate in
                (i, GemmCase(m: size.0, n: size.1, k: size.2, transA: trans & 1 != 0, transB: trans & 2 != 0,
                             padA: 2, padB: 3, padC: 1, accumulate: accumulate))
            }
        }
    }
}

private func runGemm(_ backend: any MatmulBackend, _ t: GemmCase, _ ops: GemmOperands,
             rowCuts: [Int] = [], colCuts: [Int] = []) -> [Float] {
    var c = ops.c
    let rowBounds = [0] + rowCuts.filter { $0 > 0 && $0 < t.m } + [t.m]
    let colBounds = [0] + colCuts.filter { $0 > 0 && $0 < t.n } + [t.n]
    ops.a.withUnsafeBufferPointer { a in
        ops.b.withUnsafeBufferPointer { b in
            c.withUnsafeMutableBufferPointer { c in
                for (i0, i1) in zip(rowBounds, rowBounds.dropFirst()) {
                    for (j0, j1) in zip(colBounds, colBounds.dropFirst()) {
                        backend.gemm(transA: t.transA, transB: t.transB, m: i1 - i0, n: j1 - j0, k: t.k,
                                     a: a.baseAddress! + (t.transA ? i0 : i0 * t.lda), lda: t.lda,
                                     b: b.baseAddress! + (t.transB ? j0 * t.ldb : j0), ldb: t.ldb,
                                     c: c.baseAddress! + i0 * t.ldc + j0, ldc: t.ldc,
                                     accumulate: t.accumulate)
                    }
                }
            }
        }
    }
    return c
}

/// Bitwise equality, except that any NaN matches any NaN: IEEE 754 leaves NaN payloads
/// unspecified, and which operand's payload a fused multiply-add passes on is up to the
/// instruction the compiler picks, so payloads are not part of the portable kernel's contract.
private func sameBits(_ x: Float, _ y: Float) -> Bool {
    x.bitPattern == y.bitPattern || (x.isNaN && y.isNaN)
}

/// Requires `got` to equal `expected` bit for bit, C's padding included; reports the first
/// few differences.
private func expectSameBits(_ got: [Float], _ expected: [Float], _ what: String) {
    #expect(got.count == expected.count)
    var differences = 0
    for i in 0..<min(got.count, expected.count) where !sameBits(got[i], expected[i]) {
        differences += 1
        if differences <= 3 {
            Issue.record("\(what): element \(i) is \(got[i]) (0x\(String(got[i].bitPattern, radix: 16))), expected \(expected[i]) (0x\(String(expected[i].bitPattern, radix: 16)))")
        }
    }
    #expect(differences == 0, "\(what): \(differences) elements differ")
}

@Suite struct PortableBackendTests {
    /// Small and odd shapes, sampled, plus fixed shapes at the edges of the register tile
    /// (8 rows × 32 columns), of the k block (256) and the column block (512), and ~300.
    fileprivate static func shapes() -> [GemmCase] {
        var random = RandomStream(seed: 7, name: "portable-gemm shapes")
        func pick(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(random.next() % UInt64(range.count)) }
        var sizes: [(Int, Int, Int)] = [
            (1, 1, 1), (1, 1, 0), (3, 5, 0), (1, 1, 2), (1, 37, 1), (37, 1, 1), (2, 3, 300),
            (7, 31, 5), (8, 32, 16), (9, 33, 17), (15, 63, 64), (16, 64, 255), (17, 65, 256),
            (24, 96, 257), (8, 1, 513), (1, 513, 3), (33, 530, 9), (5, 1040, 20),
            (299, 301, 300), (300, 64, 41), (64, 300, 260),
        ]
        for _ in 0..<120 { sizes.append((pick(1...70), pick(1...70), pick(0...70))) }
        var cases: [GemmCase] = []
        for (index, (m, n, k)) in sizes.enumerated() {
            // All four transpose combinations on every shape; padding and accumulation vary.
            for trans in 0..<4 {
                let big = m * n * k > 1 << 20
                if big && trans != index % 4 { continue } // the big shapes: one combination each
                var t = GemmCase(m: m, n: n, k: k, transA: trans & 1 != 0, transB: trans & 2 != 0)
                t.padA = [0, 1, 3, 17][pick(0...3)]
                t.padB = [0, 1, 5, 32][pick(0...3)]
                t.padC = [0, 2, 7, 16][pick(0...3)]
                t.accumulate = random.next() % 2 == 0
                cases.append(t)
            }
        }
        return cases
    }

    @Test func matchesTheFusedChainOnManyShapes() {
        for (i, t) in PortableBackendTests.shapes().enumerated() {
            let ops = GemmOperands(t, seed: UInt64(i))
            expectSameBits(runGemm(PortableBackend(), t, ops), referenceGemm(t, ops), "\(t)")
        }
    }

    @Test func matchesTheFusedChainWithZerosAndInfinities() {
        for (i, (m, n, k)) in [(1, 1, 1), (4, 4, 1), (9, 40, 7), (33, 70, 300)].enumerated() {
            for trans in 0..<4 {
                for accumulate in [false, true] {
                    let t = GemmCase(m: m, n: n, k: k, transA: trans & 1 != 0, transB: trans & 2 != 0,
                                     padA: 1, padB: 2, padC: 3, accumulate: accumulate)
                    let ops = GemmOperands(t, seed: 100 + UInt64(i), special: true)
                    expectSameBits(runGemm(PortableBackend(), t, ops), referenceGemm(t, ops), "special \(t)")
                }
            }
        }
    }

    @Test func signedZeros() {
        // (−0)·x sums: the chain starts from +0, so +0 + (−0) = +0; from C = −0 it stays −0.
        let t = GemmCase(m: 2, n: 3, k: 4)
        var ops = GemmOperands(t, seed: 1)
        ops.a = [Float](repeating: -0.0, count: ops.a.count)
        ops.b = [Float](repeating: 1, count: ops.b.count)
        let fresh = runGemm(PortableBackend(), t, ops)
        #expect(fresh.allSatisfy { $0 == 0 && $0.sign == .plus })
        var resumed = t
        resumed.accumulate = true
        ops.c = [Float](repeating: -0.0, count: ops.c.count)
        #expect(runGemm(PortableBackend(), resumed, ops).allSatisfy { $0 == 0 && $0.sign == .minus })
    }

    @Test func sameBitsWhateverTheThreadCountAndSplit() {
        // Cut between threads from 2^10 multiply-adds on (the default threshold is higher).
        let sizes = [(97, 130, 75), (300, 77, 40), (64, 256, 256), (5, 1000, 60), (520, 40, 300)]
        for (i, (m, n, k)) in sizes.enumerated() {
            for trans in 0..<4 {
                let t = GemmCase(m: m, n: n, k: k, transA: trans & 1 != 0, transB: trans & 2 != 0,
                                 padA: 3, padB: 1, padC: 5, accumulate: (i + trans) % 2 == 0)
                let ops = GemmOperands(t, seed: 200 + UInt64(i))
                let expected = referenceGemm(t, ops)
                for threads in [1, 2, 3, 7] {
                    expectSameBits(runGemm(PortableBackend(threads: threads, parallelThreshold: 1 << 10), t, ops), expected,
                                   "\(t) threads=\(threads)")
                }
                expectSameBits(runGemm(PortableBackend(), t, ops, rowCuts: [1, 8, 21, m / 2]), expected,
                               "\(t) in row pieces")
                expectSameBits(runGemm(PortableBackend(threads: 3, parallelThreshold: 1 << 10), t, ops, rowCuts: [m / 3],
                                       colCuts: [n / 3, n / 3 + 17]), expected,
                               "\(t) in row and column pieces")
            }
        }
    }

    /// A library (OpenBLAS, oneDNN) runs on one thread and the lab cuts C into rectangles, one
    /// call each. The library picks its kernel (and summation order) by each call's shape, so
    /// the cut may change bits (it does for some of these shapes); the threads computing the
    /// rectangles must not: the same cut on one thread and on several gives the same bits.
    @Test(arguments: FloatLibrary.allCases)
    func libraryRectanglesGiveTheSameBitsOnAnyThreads(_ library: FloatLibrary) {
        let sizes = [(1, 1, 1), (17, 33, 9), (64, 384, 384), (130, 70, 513), (2560 / 8, 176, 64), (40, 1024, 96),
                     (16, 96, 1024), (17, 64, 1024), (8, 128, 1536), (24, 40, 1024), (3, 400, 1024), (64, 64, 2048)]
        for (i, t) in paddedCases(sizes) {
            let ops = GemmOperands(t, seed: 700 + UInt64(i))
            for pieces in [2, 3] {
                let alone = runGemm(LibraryBackend(library, parallelThreshold: 1, pieces: pieces, threads: 1), t, ops)
                let shared = runGemm(LibraryBackend(library, parallelThreshold: 1, pieces: pieces, threads: 2), t, ops)
                #expect(shared.map(\.bitPattern) == alone.map(\.bitPattern), "\(library) \(t) in \(pieces)")
            }
        }
    }

    /// oneDNN gives a call as many threads as its OpenMP runtime allows the calling thread
    /// (`omp_get_max_threads`, read at each call): the processors, unless `OMP_NUM_THREADS` says
    /// otherwise. Each call of the `onednn` backend first limits its thread to one, so a product
    /// never starts threads of its own on top of the lab's. A new thread starts at the
    /// runtime's default; after one product on it, its limit is 1.
    @Test func oneDNNProductsKeepToTheirThread() {
        #expect(plab_dnnl_confined() == 1, "\(FloatLibrary.onednn.build)")
        let t = GemmCase(m: 64, n: 64, k: 64, transB: true)
        let ops = GemmOperands(t, seed: 11)
        let limits = UncheckedSendable(UnsafeMutableBufferPointer<Int32>.allocate(capacity: 2))
        defer { limits.value.deallocate() }
        let done = DispatchSemaphore(value: 0)
        Thread {
            limits.value[0] = plab_dnnl_thread_limit()
            _ = runGemm(LibraryBackend(.onednn, threads: 1), t, ops)
            limits.value[1] = plab_dnnl_thread_limit()
            done.signal()
        }.start()
        done.wait()
        if getenv("OMP_NUM_THREADS") == nil && PortableBackend.cores > 1 {
            #expect(limits.value[0] > 1, "a new thread may use \(limits.value[0]) threads: the default this limit guards against")
        }
        #expect(limits.value[1] == 1, "after a product the thread's limit is \(limits.value[1])")
    }

    /// A sum of products (`gemmSum`, split-K's pieces) is each term as `gemm` computes it
    /// alone, then the terms added into the first in order: the same bits on every backend
    /// and thread count, whether the terms are cut alike (one job per rectangle) or not
    /// (64·40·103 is above the default size that is cut, 64·40·2 below), and with an empty term.
    @Test func aSumOfProductsIsEachTermAloneThenTheAdditionsInOrder() {
        let shapes: [(m: Int, n: Int, ks: [Int])] = [
            (64, 384, [96, 96, 96, 96]), (64, 1024, [341, 341, 342]), (17, 33, [3, 3, 3]), (1, 1, [1, 2]),
            (64, 40, [103, 2]), (5, 7, [4, 0, 5]), (130, 70, [171, 171])]
        let backends: [any MatmulBackend] = FloatLibrary.allCases.flatMap { library in
            [LibraryBackend(library, pieces: 2, threads: 2), LibraryBackend(library, pieces: 2, threads: 1),
             LibraryBackend(library, parallelThreshold: 1, pieces: 3, threads: 2)] as [any MatmulBackend]
        } + [PortableBackend()]
        for (index, shape) in shapes.enumerated() {
            for trans in 0..<4 {
                let cases = shape.ks.map { GemmCase(m: shape.m, n: shape.n, k: $0, transA: trans & 1 != 0, transB: trans & 2 != 0,
                                                    padA: 2, padB: 3, padC: 1) }
                let operands = cases.enumerated().map { GemmOperands($1, seed: 900 + UInt64(10 * index + $0)) }
                for backend in backends {
                    // Each term alone, then c₀ += c₁, c₀ += c₂, … element by element.
                    var expected = runGemm(backend, cases[0], operands[0])
                    for (t, ops) in zip(cases, operands).dropFirst() {
                        let term = runGemm(backend, t, ops)
                        for i in 0..<t.m { for j in 0..<t.n { expected[i * t.ldc + j] += term[i * t.ldc + j] } }
                    }
                    let a = operands.map { UnsafeMutableBufferPointer<Float>.allocate(capacity: $0.a.count) }
                    let b = operands.map { UnsafeMutableBufferPointer<Float>.allocate(capacity: $0.b.count) }
                    let c = operands.map { UnsafeMutableBufferPointer<Float>.allocate(capacity: $0.c.count) }
                    defer { (a + b + c).forEach { $0.deallocate() } }
                    for (i, ops) in operands.enumerated() {
                        _ = a[i].initialize(from: ops.a); _ = b[i].initialize(from: ops.b); _ = c[i].initialize(from: ops.c)
                    }
                    backend.gemmSum(cases.enumerated().map { i, t in
                        GemmCall(transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, a: a[i].baseAddress!, lda: t.lda,
                                 b: b[i].baseAddress!, ldb: t.ldb, c: c[i].baseAddress!, ldc: t.ldc, accumulate: false)
                    })
                    expectSameBits(Array(c[0]), expected, "\(backend.name) \(cases[0]) ks \(shape.ks) summed")
                }
            }
        }
    }

    @Test(arguments: FloatLibrary.allCases)
    func agreesWithTheLibraries(_ library: FloatLibrary) {
        // Both backends compute each output, C's old value included when accumulating, as a sum
        // of k + 1 terms in some order, so each is within γ_{k+1}·S of the exact value, where
        // S = |C| + Σ_p |A[i][p]|·|B[p][j]| and γ_j = j·u/(1 − j·u), u = 2^-24 (whether or
        // not the products are fused). Their difference is then at most 2·γ_{k+1}·S ≈
        // (k + 1)·2^-23·S; we allow (k + 2)·2^-23·S (covering the 1/(1 − j·u) factor), plus a
        // tiny (k + 2)·2^-149 for subnormal results.
        let sizes = [(1, 1, 1), (17, 33, 9), (64, 256, 256), (130, 70, 513), (256, 256, 256)]
        for (i, t) in paddedCases(sizes) {
            let (m, n, k, accumulate) = (t.m, t.n, t.k, t.accumulate)
            let ops = GemmOperands(t, seed: 300 + UInt64(i))
            let portable = runGemm(PortableBackend(), t, ops)
            // As the machine cuts it, and cut in three at any size (rectangles' offsets).
            let others = [runGemm(LibraryBackend(library), t, ops),
                          runGemm(LibraryBackend(library, parallelThreshold: 1, pieces: 3), t, ops)]
            for other in others {
                var worst = 0.0
                for r in 0..<m {
                    for j in 0..<n {
                        var s = accumulate ? Double(abs(ops.c[r * t.ldc + j])) : 0
                        for p in 0..<k {
                            let x = t.transA ? ops.a[p * t.lda + r] : ops.a[r * t.lda + p]
                            let y = t.transB ? ops.b[j * t.ldb + p] : ops.b[p * t.ldb + j]
                            s += Double(abs(x)) * Double(abs(y))
                        }
                        let bound = Double(k + 2) * 0x1p-23 * s + Double(k + 2) * 0x1p-149
                        let delta = abs(Double(portable[r * t.ldc + j]) - Double(other[r * t.ldc + j]))
                        worst = max(worst, delta / bound)
                    }
                }
                #expect(worst <= 1, "\(t): |portable − \(library)| reaches \(worst) × the bound")
            }
        }
    }
}

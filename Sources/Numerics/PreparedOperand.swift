// One operand of a quantized matrix product as an engine holds it: its quantized values and
// scales, and the layouts laid out once for the kernels that read it (the fused kernel's
// panels, the backend's untransposed copy, the native BF16 kernel's pairs). Products are in
// QuantizedGEMM.swift.

/// One operand prepared for the product: quantized values as stored, and its scales.
public struct PreparedOperand: Sendable {
    /// The quantized values and scales. The values are empty when the operand is held as its
    /// BF16 pairs alone (`valuesInPairsOnly`); `withValues()` gives them back.
    public private(set) var matrix: QuantizedMatrix
    public let transposed: Bool
    /// The values laid out in advance for the fused kernel as the right operand (B), if
    /// `packedAsRightOperand()` made them.
    var packedPanels: PackedPanels?

    public init(matrix: QuantizedMatrix, transposed: Bool) {
        self.matrix = matrix
        self.transposed = transposed
    }

    /// The same operand, with its values also laid out once for the fused kernel (scaled or
    /// limited-accumulation products) as the right operand B: every product that reuses it as
    /// B — a model's weights, between syncs — skips that step. The results are the same bits.
    public func packedAsRightOperand() -> PreparedOperand {
        var copy = withValues()
        copy.packedPanels = ScaledKernel.packAsB(copy)
        return copy
    }

    /// For an operand stored transposed: its values also stored the other way round, op(X)
    /// row-major, if `untransposedForBackend()` made them. The float32 backend path then
    /// reads them without transposing at every product (a model's weights, (out, in), are
    /// used as B = Wᵀ by every forward product). Same values, so the same bits on `portable`,
    /// whose every output is one chain in increasing k whatever the layout.
    var untransposed: [Float]?

    /// This operand's values as a float32 backend reads them as the right operand B (k × n):
    /// `at(p)`, where K index p starts; whether the backend transposes them; their leading
    /// dimension. The untransposed copy when there is one (read untransposed).
    func asBackendB<R>(_ body: (_ at: (Int) -> UnsafePointer<Float>, _ transB: Bool, _ ldb: Int) -> R) -> R {
        let transB = transposed && untransposed == nil
        let ldb = untransposed == nil ? matrix.cols : matrix.rows
        return (untransposed ?? matrix.values).withUnsafeBufferPointer { values in
            body({ p in values.baseAddress! + (transB ? p : p * ldb) }, transB, ldb)
        }
    }

    /// The same operand, with its values also stored untransposed (see `untransposed`); itself
    /// if it is not transposed.
    public func untransposedForBackend() -> PreparedOperand {
        guard transposed else { return self }
        var copy = withValues()
        let rows = matrix.rows, cols = matrix.cols
        copy.untransposed = copy.matrix.values.withUnsafeBufferPointer { v in
            [Float](unsafeUninitializedCapacity: rows * cols) { out, initialized in
                for r in 0..<rows { for c in 0..<cols { out[c * rows + r] = v[r * cols + c] } }
                initialized = rows * cols
            }
        }
        return copy
    }

    /// The values packed as BF16 pairs for the native BF16 product as the right operand B,
    /// if `packedForNativeBF16()` made them: half the bytes of float32, laid out once per sync.
    var packedBF16: BF16Kernel.PackedB?

    /// Whether `packedForNativeBF16()` made this operand's BF16 pairs.
    public var isPackedForNativeBF16: Bool { packedBF16 != nil }

    /// The same operand, with its values also packed for the native BF16 product as B (see
    /// `packedBF16`). Only for an operand whose values are all BF16 values.
    ///
    /// `keepingValues: false` lets the float32 values go once packed: the operand is then
    /// held in half the bytes of its float32 values (a model's weights under a native BF16
    /// engine, whose products read the pairs alone). Every reader of the values gets them
    /// back through `withValues()`, exactly: a BF16 value is its float32's high half.
    public func packedForNativeBF16(keepingValues: Bool = true) -> PreparedOperand {
        var copy = withValues()
        copy.packedBF16 = copy.matrix.values.withUnsafeBufferPointer { v in
            BF16Kernel.PackedB(v.baseAddress!, ldb: matrix.cols, transB: transposed,
                               k: transposed ? matrix.cols : matrix.rows, n: transposed ? matrix.rows : matrix.cols,
                               threads: ParallelWork.threads)
        }
        if !keepingValues { copy.matrix.values = [] }
        return copy
    }

    /// `values` (stored (rows, cols), used transposed when `transposed`) rounded to BF16 and
    /// packed as pairs for the native product as B, never stored rounded as float32: the
    /// operand `PreparedOperand(values, …, quantization: Quantization(format: .bf16))
    /// .packedForNativeBF16(keepingValues: false)` is, with the same bits and counts, without
    /// its float32 values ever being written.
    public static func bf16Pairs(_ values: UnsafeBufferPointer<Float>, rows: Int, cols: Int,
                                 transposed: Bool) -> PreparedOperand {
        precondition(rows > 0 && cols > 0 && values.count == rows * cols,
                     "bf16Pairs: \(values.count) values for a \(rows)x\(cols) matrix")
        let (tileRows, tileCols) = ScaleGranularity.unscaled.tile(rows: rows, cols: cols)
        let packed = BF16Kernel.PackedB(values.baseAddress!, ldb: cols, transB: transposed, k: transposed ? cols : rows,
                                        n: transposed ? rows : cols, threads: ParallelWork.threads, round: true)
        var matrix = QuantizedMatrix(rows: rows, cols: cols, values: [], scales: [1], tileRows: tileRows, tileCols: tileCols,
                                     saturated: 0, nonFinite: 0)
        matrix.saturated = packed.roundingCounts.overflowed
        matrix.nonFinite = packed.roundingCounts.nonFinite
        var operand = PreparedOperand(matrix: matrix, transposed: transposed)
        operand.packedBF16 = packed
        return operand
    }

    /// Whether the operand is held as its BF16 pairs alone, its float32 values let go.
    public var valuesInPairsOnly: Bool { packedBF16 != nil && matrix.values.count != matrix.rows * matrix.cols }

    /// The operand with its float32 values: itself, or (held as pairs alone) a copy with the
    /// values unpacked from the pairs, the same bits.
    public func withValues() -> PreparedOperand {
        guard valuesInPairsOnly, let packed = packedBF16 else { return self }
        var copy = self
        copy.matrix.values = packed.unpacked(transB: transposed)
        return copy
    }

    /// Quantizes a stored (rows, cols) matrix.
    public init(_ values: [Float], rows: Int, cols: Int, transposed: Bool, quantization: Quantization,
                stream: RandomStream = RandomStream(key: 0)) throws(NumericsError) {
        self.matrix = try quantization.quantize(values, rows: rows, cols: cols, stream: stream)
        self.transposed = transposed
    }

    /// Quantizes a stored (rows, cols) matrix read in place.
    public init(_ values: UnsafeBufferPointer<Float>, rows: Int, cols: Int, transposed: Bool, quantization: Quantization,
                stream: RandomStream = RandomStream(key: 0)) throws(NumericsError) {
        self.matrix = try quantization.quantize(values, rows: rows, cols: cols, stream: stream)
        self.transposed = transposed
    }

    /// The length of the K axis's scale tiles: K runs along columns of A (rows of B) as used.
    func kTile(isA: Bool) -> Int {
        let alongColumns = isA != transposed
        return alongColumns ? matrix.tileCols : matrix.tileRows
    }

    /// Scale for logical operand position (i, k) of A (isA) or (k, j) of B.
    func scale(outer: Int, k: Int, isA: Bool) -> Float {
        let kAlongColumns = isA != transposed
        return kAlongColumns ? matrix.scale(row: outer, col: k) : matrix.scale(row: k, col: outer)
    }

    var allScalesOne: Bool { matrix.scales.allSatisfy { $0 == 1 } }
}

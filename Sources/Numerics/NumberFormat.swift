// Number formats as data.
//
// A format is a sign bit, X exponent bits and Y stored mantissa bits, a bias, and a rule for
// what the all-ones exponent field means. Every format the lab emulates is a subset of
// float32 (X ≤ 8, Y ≤ 23), so a value "in format F" is carried as the float32 that equals it.

/// What the largest exponent field encodes.
public enum SpecialValues: String, Sendable, Hashable, Codable {
    /// IEEE 754 style: the all-ones exponent holds ±infinity (mantissa 0) and NaNs
    /// (mantissa ≠ 0). FP32, BF16, FP16, FP8 E5M2 and every generic `eXmY` with Y ≥ 1.
    case ieee
    /// OCP "fn" style (FP8 E4M3, E8M0 scales): no infinity; the all-ones exponent holds
    /// ordinary numbers except when the mantissa is all ones, which is NaN. Overflow becomes
    /// NaN unless saturating. With Y = 0 the whole all-ones exponent is NaN.
    case finiteOnly
}

/// A binary floating-point format narrower than or equal to float32.
///
/// Concretely, a code `s | e | m` (e of X bits, m of Y bits) is
/// `(-1)^s · 2^(e − bias) · (1 + m/2^Y)` for e ≥ 1 and `(-1)^s · 2^(1 − bias) · m/2^Y` for e = 0.
public struct NumberFormat: Sendable, Hashable, CustomStringConvertible {
    /// The canonical name: `fp32`, `bf16`, `fp16`, `e4m3`, `e5m2`, or `eXmY`.
    public let name: String
    public let exponentBits: Int
    public let mantissaBits: Int
    public let bias: Int
    public let specials: SpecialValues

    public init(name: String, exponentBits: Int, mantissaBits: Int, bias: Int? = nil,
                specials: SpecialValues? = nil) {
        precondition((2...8).contains(exponentBits) && (0...23).contains(mantissaBits))
        self.name = name
        self.exponentBits = exponentBits
        self.mantissaBits = mantissaBits
        self.bias = bias ?? ((1 << (exponentBits - 1)) - 1)
        self.specials = specials ?? (mantissaBits == 0 ? .finiteOnly : .ieee)
    }

    public var description: String { name }

    // MARK: The named formats

    public static let fp32 = NumberFormat(name: "fp32", exponentBits: 8, mantissaBits: 23)
    public static let bf16 = NumberFormat(name: "bf16", exponentBits: 8, mantissaBits: 7)
    public static let fp16 = NumberFormat(name: "fp16", exponentBits: 5, mantissaBits: 10)
    /// FP8 E4M3 as in the OCP specification, ml_dtypes `float8_e4m3fn` and PyTorch
    /// `torch.float8_e4m3fn`: bias 7, no infinity, NaN only at S.1111.111, max 448.
    public static let e4m3 = NumberFormat(name: "e4m3", exponentBits: 4, mantissaBits: 3,
                                          specials: .finiteOnly)
    /// FP8 E5M2: IEEE style, bias 15, max 57344.
    public static let e5m2 = NumberFormat(name: "e5m2", exponentBits: 5, mantissaBits: 2)

    /// The formats with names of their own, in the order `formats` lists them.
    public static let named: [NumberFormat] = [.fp32, .bf16, .fp16, .e4m3, .e5m2]

    /// Other spellings people use for the named formats.
    static let aliases: [String: NumberFormat] = [
        "float32": .fp32, "f32": .fp32, "single": .fp32, "e8m23": .fp32,
        "bfloat16": .bf16, "e8m7": .bf16,
        "float16": .fp16, "f16": .fp16, "half": .fp16, "e5m10": .fp16,
        "fp8": .e4m3, "e4m3fn": .e4m3, "fp8-e4m3": .e4m3, "float8_e4m3fn": .e4m3,
        "fp8-e5m2": .e5m2, "float8_e5m2": .e5m2,
    ]

    /// The name a user types, as accepted by `parse`.
    public static let acceptedNames = "fp32 bf16 fp16 e4m3 e5m2 eXmY (X in 2…8, Y in 0…23)"

    /// Parses a format name: one of the named formats, an alias, or `eXmY`.
    public static func parse(_ text: String) throws(NumericsError) -> NumberFormat {
        let key = text.lowercased()
        if let f = named.first(where: { $0.name == key }) { return f }
        if let f = aliases[key] { return f }
        if let (x, y) = parseEXmY(key) {
            guard (2...8).contains(x), (0...23).contains(y) else {
                throw .invalidArgument(
                    "format '\(text)' is out of range: eXmY needs X in 2…8 and Y in 0…23 (every format must fit in float32)")
            }
            // Written another way (`e04m3`, `e8m07`), a named format or alias is still itself.
            let canonical = "e\(x)m\(y)"
            if let f = named.first(where: { $0.name == canonical }) ?? aliases[canonical] { return f }
            return NumberFormat(name: canonical, exponentBits: x, mantissaBits: y)
        }
        let candidates = named.map(\.name) + aliases.keys.sorted()
        let hint = closestMatch(to: key, among: candidates).map { "; did you mean \($0)?" } ?? ""
        throw .invalidArgument("unknown format '\(text)'\(hint) formats: \(acceptedNames)")
    }

    private static func parseEXmY(_ s: String) -> (Int, Int)? {
        guard s.hasPrefix("e"), let m = s.firstIndex(of: "m") else { return nil }
        let xs = s[s.index(after: s.startIndex)..<m]
        let ys = s[s.index(after: m)...]
        guard !xs.isEmpty, !ys.isEmpty, xs.allSatisfy(\.isASCII), ys.allSatisfy(\.isASCII),
              let x = Int(xs), let y = Int(ys), x >= 0, y >= 0 else { return nil }
        return (x, y)
    }

    // MARK: Derived constants

    /// Total bits of an encoding: 1 + X + Y.
    public var bitWidth: Int { 1 + exponentBits + mantissaBits }
    /// The exponent of the smallest normal number, 1 − bias.
    public var minExponent: Int { 1 - bias }
    /// The exponent of the largest finite number.
    public var maxExponent: Int {
        let top = (1 << exponentBits) - 1
        switch specials {
        case .ieee: return top - 1 - bias
        case .finiteOnly: return (mantissaBits == 0 ? top - 1 : top) - bias
        }
    }
    /// The largest finite value. For `finiteOnly` with Y ≥ 1 the top mantissa code is NaN,
    /// so the largest mantissa is 2^Y − 2.
    public var maxFinite: Float {
        let m = mantissaBits
        let topMantissa: Int
        switch specials {
        case .ieee: topMantissa = (1 << m) - 1
        case .finiteOnly: topMantissa = m == 0 ? 0 : (1 << m) - 2
        }
        // (1 + t/2^m) · 2^maxExponent, exact in float32.
        let significand = Float((1 << m) + topMantissa) // ≤ 2^24
        return Float(sign: .plus, exponent: maxExponent - m, significand: significand)
    }
    /// The smallest positive normal value, 2^(1 − bias).
    public var minNormal: Float { Float(sign: .plus, exponent: minExponent, significand: 1) }
    /// The smallest positive subnormal value, 2^(1 − bias − Y) (equal to `minNormal` when
    /// Y = 0: such a format has no subnormals).
    public var minSubnormal: Float {
        Float(sign: .plus, exponent: minExponent - mantissaBits, significand: 1)
    }
    /// Machine epsilon, 2^−Y: the gap between 1 and the next larger value.
    public var epsilon: Float { Float(sign: .plus, exponent: -mantissaBits, significand: 1) }
    /// Whether the format can hold ±infinity.
    public var hasInfinity: Bool { specials == .ieee }
    /// The number of distinct codes, 2^(1+X+Y).
    public var codeCount: Int { 1 << bitWidth }
}

/// Errors from the numerics layer: each names the culprit and what would be accepted.
public enum NumericsError: Error, Equatable, CustomStringConvertible, Sendable {
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .invalidArgument(let message): return message
        }
    }
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a likely
/// typo (distance at most a third of the word's length, and at least 1 allowed).
public func closestMatch(to word: String, among candidates: [String]) -> String? {
    var best: (String, Int)?
    for c in candidates {
        let d = editDistance(word, c)
        if best == nil || d < best!.1 { best = (c, d) }
    }
    guard let (name, distance) = best else { return nil }
    let allowed = max(1, max(word.count, name.count) / 3)
    return distance <= allowed ? name : nil
}

/// Levenshtein distance with adjacent transpositions counted as one edit.
public func editDistance(_ a: String, _ b: String) -> Int {
    let x = Array(a), y = Array(b)
    if x.isEmpty { return y.count }
    if y.isEmpty { return x.count }
    var d = [[Int]](repeating: [Int](repeating: 0, count: y.count + 1), count: x.count + 1)
    for i in 0...x.count { d[i][0] = i }
    for j in 0...y.count { d[0][j] = j }
    for i in 1...x.count {
        for j in 1...y.count {
            let cost = x[i - 1] == y[j - 1] ? 0 : 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1, j > 1, x[i - 1] == y[j - 2], x[i - 2] == y[j - 1] {
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
            }
        }
    }
    return d[x.count][y.count]
}

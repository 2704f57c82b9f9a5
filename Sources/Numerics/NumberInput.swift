// Reading numbers typed by people: decimals and float32 bit patterns.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A number as typed: either a float32 given by its bit pattern (`0x3f800000`), or a decimal
/// held as the double nearest it *rounded to odd*.
///
/// Rounding to odd keeps the information that the decimal lay strictly between two doubles
/// (the last bit is set exactly when the conversion was inexact), so one more rounding to any
/// format of at most 24 significant bits — every format here — gives the same answer as
/// rounding the exact decimal (Boldo & Melquiond, "When double rounding is odd"). Reading the
/// decimal as a float32 first and rounding that would round twice.
public enum NumberInput: Sendable, Equatable {
    case float32Bits(UInt32)
    case decimal(Double)

    /// Parses one number: `[+-]digits[.digits][e[+-]digits]`, `inf`, `infinity`, `nan`
    /// (any case, with a sign), or `0x` followed by 1 to 8 hex digits (a float32 bit pattern).
    public static func parse(_ raw: String) throws(NumericsError) -> NumberInput {
        let text = raw.trimmingSpaces()
        let accepted = "a decimal (e.g. 1.5, -2e-3, inf, nan) or a float32 bit pattern (e.g. 0x3f800000)"
        if text.isEmpty { throw .invalidArgument("empty input; expected \(accepted)") }
        let lower = text.lowercased()
        if lower.hasPrefix("0x") {
            let digits = lower.dropFirst(2)
            guard (1...8).contains(digits.count), let bits = UInt32(digits, radix: 16) else {
                throw .invalidArgument("'\(text)' is not a float32 bit pattern; expected 0x and 1 to 8 hex digits")
            }
            return .float32Bits(bits)
        }
        guard isDecimal(lower) else {
            throw .invalidArgument("'\(text)' is not a number; expected \(accepted)")
        }
        return .decimal(roundToOddDouble(text))
    }

    /// The value as a double (exact for a bit pattern; rounded to odd for a decimal).
    public var doubleValue: Double {
        switch self {
        case .float32Bits(let bits): return Double(Float(bitPattern: bits))
        case .decimal(let d): return d
        }
    }

    private static func isDecimal(_ s: String) -> Bool {
        var body = Substring(s)
        if body.first == "+" || body.first == "-" { body = body.dropFirst() }
        if body == "inf" || body == "infinity" || body == "nan" { return true }
        var mantissa = body
        var exponent: Substring?
        if let e = body.firstIndex(of: "e") {
            mantissa = body[..<e]
            exponent = body[body.index(after: e)...]
        }
        let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, parts.allSatisfy({ $0.allSatisfy { $0 >= "0" && $0 <= "9" } }),
              parts.contains(where: { !$0.isEmpty }) else { return false }
        if var exp = exponent {
            if exp.first == "+" || exp.first == "-" { exp = exp.dropFirst() }
            guard !exp.isEmpty, exp.allSatisfy({ $0 >= "0" && $0 <= "9" }) else { return false }
        }
        return true
    }

    /// strtod under downward and upward rounding: equal results mean the decimal is a
    /// double; otherwise it lies strictly between the two, and the odd one is taken.
    private static func roundToOddDouble(_ text: String) -> Double {
        let saved = fegetround()
        defer { fesetround(saved) }
        fesetround(FE_DOWNWARD)
        let down = strtod(text, nil)
        fesetround(FE_UPWARD)
        let up = strtod(text, nil)
        if down == up || down.isNaN { return down }
        return down.bitPattern & 1 == 1 ? down : up
    }
}

extension Rounder {
    /// Rounds a number as typed, exactly once.
    public func round(_ input: NumberInput, draw: UInt64 = 0) -> Float {
        switch input {
        case .float32Bits(let bits): return Float(bitPattern: roundBits(bits, draw: draw))
        case .decimal(let d): return round(double: d, draw: draw)
        }
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let c = s.first, c.isWhitespace { s = s.dropFirst() }
        while let c = s.last, c.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}

/// The shortest decimal that reads back as the same float32 (`inf`, `-inf`, `nan`, `-nan`
/// for the special values).
public func shortestDecimal(_ x: Float) -> String {
    if x.isNaN { return x.sign == .minus ? "-nan" : "nan" }
    return x.description
}

import Numerics
import Testing

/// The formats' parameters, against the published table (IEEE 754, the OCP 8-bit formats).
@Suite struct FormatParameterTests {
    @Test func namedFormatsMatchTheirSpecifications() {
        // (format, bias, max finite, min normal, min subnormal, epsilon, has inf)
        let table: [(NumberFormat, Int, Float, Float, Float, Float, Bool)] = [
            (.fp32, 127, .greatestFiniteMagnitude, 0x1p-126, 0x1p-149, 0x1p-23, true),
            (.bf16, 127, 0x1.FEp127, 0x1p-126, 0x1p-133, 0x1p-7, true),
            (.fp16, 15, 65504, 0x1p-14, 0x1p-24, 0x1p-10, true),
            (.e4m3, 7, 448, 0x1p-6, 0x1p-9, 0x1p-3, false),
            (.e5m2, 15, 57344, 0x1p-14, 0x1p-16, 0x1p-2, true),
        ]
        for (f, bias, maxFinite, minNormal, minSub, eps, inf) in table {
            #expect(f.bias == bias, "\(f)")
            #expect(f.maxFinite == maxFinite, "\(f) max \(f.maxFinite)")
            #expect(f.minNormal == minNormal, "\(f)")
            #expect(f.minSubnormal == minSub, "\(f)")
            #expect(f.epsilon == eps, "\(f)")
            #expect(f.hasInfinity == inf, "\(f)")
        }
        #expect(NumberFormat.bf16.maxFinite == 3.3895314e38)
    }

    @Test func genericFormatsFollowTheIEEEPattern() throws {
        for x in 2...8 {
            for y in 0...23 {
                let f = try NumberFormat.parse("e\(x)m\(y)")
                let ref = ReferenceFormat(f)
                #expect(Double(f.maxFinite) == ref.maxFinite, "\(f.name)")
                #expect(f.bias == (1 << (x - 1)) - 1)
                #expect(Double(f.minNormal) == ref.minNormal)
            }
        }
        // The generic names of the named IEEE formats are those formats.
        #expect(try NumberFormat.parse("e8m7") == .bf16)
        #expect(try NumberFormat.parse("e5m10") == .fp16)
        #expect(try NumberFormat.parse("e8m23") == .fp32)
        #expect(try NumberFormat.parse("E5M2") == .e5m2)
    }

    @Test func badNamesAreRejectedWithAHint() {
        func message(_ s: String) -> String {
            do { _ = try NumberFormat.parse(s); return "" } catch { return error.description }
        }
        #expect(message("bf61") == "unknown format 'bf61'; did you mean bf16? formats: fp32 bf16 fp16 e4m3 e5m2 eXmY (X in 2…8, Y in 0…23)")
        #expect(message("e9m30").contains("X in 2…8 and Y in 0…23"))
        #expect(message("e1m3").contains("out of range"))
        #expect(message("e4m").contains("unknown format 'e4m'"))
        #expect(message("").contains("unknown format ''"))
        #expect(message("e٣m٢").contains("unknown format")) // non-ASCII digits
    }
}

/// Every code of the small formats: decode agrees with the definition, and rounding a
/// representable value returns it unchanged with the same code.
@Suite struct ExhaustiveCodeTests {
    static let smallFormats: [NumberFormat] = [.bf16, .fp16, .e4m3, .e5m2]

    @Test(arguments: smallFormats)
    func everyCodeRoundTrips(format f: NumberFormat) {
        let ref = ReferenceFormat(f)
        let signShift = f.exponentBits + f.mantissaBits
        var checked = 0
        for mode in RoundingMode.allCases {
            for saturate in [false, true] {
                let rounder = Rounder(format: f, mode: mode, saturate: saturate)
                for code in 0..<UInt32(f.codeCount) {
                    let negative = code >> UInt32(signShift) == 1
                    let magnitudeCode = Int(code & ((1 << UInt32(signShift)) - 1))
                    let field = magnitudeCode >> f.mantissaBits
                    let mantissa = magnitudeCode & ((1 << f.mantissaBits) - 1)
                    let decoded = f.decode(code)
                    if !ref.isFinite(field: field, mantissa: mantissa) {
                        // Infinity (IEEE, mantissa 0) or NaN.
                        if ref.ieee && mantissa == 0 {
                            #expect(decoded == (negative ? -Float.infinity : .infinity))
                        } else {
                            #expect(decoded.isNaN && (decoded.sign == .minus) == negative)
                            #expect(rounder.round(decoded).isNaN)
                        }
                        continue
                    }
                    let expected = ref.value(field: field, mantissa: mantissa)
                    #expect(Double(decoded) == (negative ? -expected : expected), "\(f) code \(code)")
                    let r = rounder.round(decoded, draw: UInt64(code) &* 0x9E37_79B9)
                    #expect(sameFloat(r, decoded), "\(f) \(mode) code \(code): \(decoded) → \(r)")
                    #expect(f.encode(r) == code, "\(f) code \(code) re-encodes as \(f.encode(r))")
                    checked += 1
                }
            }
        }
        #expect(checked > 0)
    }

    @Test func infinityAndNaNEncodings() {
        #expect(NumberFormat.e4m3.encode(.nan) == 0x7F)
        #expect(NumberFormat.e4m3.encode(-.nan) == 0xFF)
        #expect(NumberFormat.e5m2.encode(.infinity) == 0x7C)
        #expect(NumberFormat.e5m2.encode(.nan) == 0x7E)
        #expect(NumberFormat.bf16.encode(.nan) == 0x7FC0)
        #expect(NumberFormat.fp16.encode(-.infinity) == 0xFC00)
        #expect(NumberFormat.fp16.encode(65504) == 0x7BFF)
        #expect(NumberFormat.e4m3.encode(448) == 0x7E)
        #expect(NumberFormat.e4m3.encode(0x1p-9) == 0x01)
    }
}

@Suite struct NaNDecodeTests {
    /// The one FP16 decoder keeps a NaN's sign and payload: code bits s.11111.mmmmmmmmmm give
    /// float32 bits s.11111111.mmmmmmmmmm0000000000000 (written here from the layouts, not
    /// from the decoder); infinities and finite codes are exact (FormatTests).
    @Test func binary16NaNsKeepTheirSignAndPayload() {
        var nanCodes = 0
        for code in UInt32(0)...0xFFFF where (code >> 10) & 0x1F == 0x1F && code & 0x3FF != 0 {
            let expected = (code & 0x8000) << 16 | 0x7F80_0000 | (code & 0x3FF) << 13
            #expect(NumberFormat.fp16.decode(code).bitPattern == expected, "0x\(String(code, radix: 16))")
            #expect(NumberFormat.binary16Values[Int(code)].bitPattern == expected)
            nanCodes += 1
        }
        #expect(nanCodes == 2 * 1023)
        #expect(NumberFormat.fp16.decode(0x7E01).bitPattern == 0x7FC0_2000)   // quiet, payload 1
        #expect(NumberFormat.fp16.decode(0x7C01).bitPattern == 0x7F80_2000)   // signalling stays signalling
        #expect(NumberFormat.binary16Values[0x7C00] == .infinity && NumberFormat.binary16Values[0xFC00] == -.infinity)
        #expect(NumberFormat.binary16Values[0x3C00] == 1 && NumberFormat.binary16Values[0x0001] == 0x1p-24)
        // E4M3's one NaN code per sign keeps its mantissa bits too; rounding gives the canonical NaN.
        #expect(NumberFormat.e4m3.decode(0x7F).bitPattern == 0x7FF0_0000)
        #expect(NumberFormat.e4m3.decode(0xFF).bitPattern == 0xFFF0_0000)
        #expect(Rounder(format: .fp16).round(NumberFormat.fp16.decode(0xFE01)).bitPattern == 0xFFC0_0000)
    }
}

import Numerics

/// The table printed by `formats`: each format's parameters, exactly.
public func formatsTable(_ formats: [NumberFormat] = NumberFormat.named) -> String {
    var table = TextTable(header: ["format", "bits", "s/e/m", "bias", "max finite", "min normal",
                                   "min subnormal", "epsilon", "inf", "NaN"],
                          rightAligned: [1, 3, 4, 5, 6, 7])
    for f in formats {
        let nan: String
        switch f.specials {
        case .ieee: nan = "exp all ones, mantissa ≠ 0"
        case .finiteOnly: nan = f.mantissaBits == 0 ? "exp all ones" : "S.\(String(repeating: "1", count: f.exponentBits)).\(String(repeating: "1", count: f.mantissaBits)) only"
        }
        table.add([
            f.name, "\(f.bitWidth)", "1/\(f.exponentBits)/\(f.mantissaBits)", "\(f.bias)",
            shortestDecimal(f.maxFinite), powerOfTwo(f.minNormal),
            f.mantissaBits == 0 ? "none" : powerOfTwo(f.minSubnormal),
            powerOfTwo(f.epsilon), f.hasInfinity ? "yes" : "no", nan,
        ])
    }
    return table.render() + "\nAny eXmY with X in 2…8 and Y in 0…23 is accepted too (IEEE style; Y = 0 has no infinity)."
}

/// `2^-14 (6.1035156e-05)`: a power of two shown exactly and as a decimal.
func powerOfTwo(_ x: Float) -> String {
    "2^\(x.exponent) (\(shortestDecimal(x)))"
}

import Numerics

/// What `cast` does to a list of typed numbers: round each one to a format and show the
/// result as the shortest decimal that reads back as the same float32, or as the format's
/// own encoding in hex.
public struct CastRequest: Sendable {
    public var format: NumberFormat
    public var rounding: RoundingMode = .nearestEven
    public var saturate = false
    public var seed: UInt64 = 0
    public var showBits = false

    public init(format: NumberFormat) { self.format = format }

    /// Rounds every input or none: the first bad input throws, naming its position.
    /// Stochastic rounding gives input i the draw i of the seed's "cast" stream.
    public func run(_ inputs: [String], describe position: (Int) -> String) throws(NumericsError) -> [String] {
        var parsed: [NumberInput] = []
        parsed.reserveCapacity(inputs.count)
        for (i, text) in inputs.enumerated() {
            do {
                parsed.append(try NumberInput.parse(text))
            } catch {
                throw .invalidArgument("\(position(i)): \(error.description)")
            }
        }
        let rounder = Rounder(format: format, mode: rounding, saturate: saturate)
        let stream = RandomStream(seed: seed, name: "cast")
        let digits = (format.bitWidth + 3) / 4
        return parsed.enumerated().map { i, input in
            let value = rounder.round(input, draw: stream.draw(at: UInt64(i)))
            if showBits {
                let hex = String(format.encode(value), radix: 16)
                return "0x" + String(repeating: "0", count: max(0, digits - hex.count)) + hex
            }
            return shortestDecimal(value)
        }
    }
}

// Fuzz target: numbers and words as typed.
//
// The input is text. It goes through `NumberInput.parse`, `NumberFormat.parse`,
// `RoundingMode.parse`, the value kinds of arguments, `Words.split` and a `cast` of its
// words; the first byte picks the format and rounding. Besides crashes it checks:
// a number's rounded value printed by `shortestDecimal` reads back as the same value; a
// format's name reads back as the same format; words quoted back split into the same words.

import FuzzSupport
import Lab
import Numerics

let formats: [NumberFormat] = NumberFormat.named + [try! NumberFormat.parse("e8m0"), try! NumberFormat.parse("e2m1"),
                                                    try! NumberFormat.parse("e3m2"), try! NumberFormat.parse("e6m9")]
let kinds: [ValueKind] = [.integer(0...Int.max), .integer(-5...5), .real(-1e30...1e30), .real(0...1), .toggle, .format,
                          .choice(["csv", "jsonl"])]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNumbers(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = text(data, size)
    let selector = size > 0 ? Int(data[0]) : 0
    let format = formats[selector % formats.count]
    let mode = RoundingMode.allCases[(selector / formats.count) % RoundingMode.allCases.count]

    if let number = try? NumberInput.parse(input) {
        let value = Rounder(format: format, mode: mode, saturate: selector & 0x80 != 0).round(number, draw: UInt64(size))
        if !value.isNaN {
            // The printed value is exact in the format: reading it back and rounding again
            // (to nearest) changes nothing.
            let printed = shortestDecimal(value)
            guard let back = try? NumberInput.parse(printed) else { fatalError("'\(printed)' does not read back") }
            let again = Rounder(format: format, mode: .nearestEven).round(back)
            require(again.bitPattern == value.bitPattern, "\(format.name): '\(input)' gave \(printed), which reads back as \(again)")
        }
        // (Not infinity: saturation clamps it to the largest finite value.)
        if case .float32Bits(let bits) = number, format == .fp32, Float(bitPattern: bits).isFinite {
            require(value.bitPattern == bits, "the float32 bit pattern \(input) changed when cast to fp32")
        }
    }
    if let parsed = try? NumberFormat.parse(input) {
        require((try? NumberFormat.parse(parsed.name)) == parsed, "format '\(input)' is named '\(parsed.name)', which reads differently")
    }
    _ = try? RoundingMode.parse(input)
    for kind in kinds { _ = try? kind.parse(input) }

    _ = Words.splitForCompletion(input)
    if let words = try? Words.split(input) {
        let quoted = words.map { posixQuoted($0.text) }.joined(separator: " ")
        let again = try? Words.split(quoted)
        require(again?.map(\.text) == words.map(\.text), "words \(words.map(\.text)) quoted as \(quoted) split into \(again.map { $0.map(\.text) } ?? [])")
        var request = CastRequest(format: format)
        request.rounding = mode
        request.saturate = selector & 0x80 != 0
        request.showBits = selector & 0x40 != 0
        request.seed = UInt64(size)
        if let results = try? request.run(words.map(\.text), describe: { "VALUE \($0 + 1)" }) {
            require(results.count == words.count, "cast gave \(results.count) results for \(words.count) values")
        }
    }
    return 0
}

/// A word in single quotes, each `'` in it written `'\''` (scalar by scalar: a quote
/// followed by a combining mark is still a quote).
func posixQuoted(_ word: String) -> String {
    var out = "'"
    for scalar in word.unicodeScalars {
        if scalar == "'" { out += "'\\''" } else { out.unicodeScalars.append(scalar) }
    }
    return out + "'"
}

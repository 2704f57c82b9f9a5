// Commands about number formats and rounding: cast, formats, accumulate.

import JSON
import Foundation
import Numerics

extension Command {
    /// `cast FORMAT VALUE…`: what rounding to a format does to each value.
    public static let cast = Command(
        name: "cast", topic: .numbers,
        summary: "round numbers to a format and show the results",
        details: """
        Each value is rounded once, straight to the format, and shown as the shortest decimal
        that reads back as the same float32 (or with --bits as the format's encoding).
        JSON: {"format", "rounding", "saturate", "inputs": [text], "results": [text]}.
        """,
        arguments: [
            .positional("FORMAT", .format, "the format to round to"),
            .variadic("VALUE", .text, "decimals (1.5, -2e-3, inf, nan) or float32 bit patterns (0x3f800000)", minimum: 1),
            .option("rounding", .choice(RoundingMode.allCases.map(\.rawValue)), "how to round", default: .text(RoundingMode.nearestEven.rawValue)),
            .option("seed", .integer(0...Int.max), "seed of stochastic rounding (default: the session's seed)"),
            .flag("saturate", "clamp overflow to ±max finite instead of the format's rule"),
            .flag("bits", "print the format's encoding in hex instead of the value"),
        ],
        examples: ["cast bf16 1.00390625 0x3f800001", "cast e4m3 500 0.3 --saturate",
                   "cast bf16 1.001 1.001 1.001 --rounding stochastic --seed 7"],
        reports: true
    ) { context in
        let args = context.arguments
        let format = args.format("FORMAT")!
        var request = CastRequest(format: format)
        request.rounding = try RoundingMode.parse(args.text("rounding")!)
        request.seed = args.integer("seed").map(UInt64.init) ?? context.session.seed
        request.saturate = args.flag("saturate")
        request.showBits = args.flag("bits")
        let inputs = args.texts("VALUE")
        let results = try request.run(inputs) { "VALUE \($0 + 1)" }
        context.report(["format": .string(format.name), "rounding": .string(request.rounding.rawValue),
                        "saturate": .bool(request.saturate), "inputs": .array(inputs.map(JSONValue.string)),
                        "results": .array(results.map(JSONValue.string))]) {
            zip(inputs, results).map { "\($0) -> \($1)" }.joined(separator: "\n")
        }
    }

    /// `formats [FORMAT…]`: the exact parameters of number formats.
    public static let formats = Command(
        name: "formats", topic: .numbers,
        summary: "list number formats and their exact parameters",
        details: """
        JSON: {"formats": [{"name", "bits", "exponent_bits", "mantissa_bits", "bias", "max_finite",
        "min_normal", "min_subnormal", "epsilon", "infinity", "specials"}]}.
        """,
        arguments: [.variadic("FORMAT", .format, "formats to show (default: the named ones)")],
        examples: ["formats", "formats bf16 e8m3 --json"],
        reports: true
    ) { context in
        let chosen = context.arguments.list("FORMAT").compactMap { value -> NumberFormat? in
            if case .format(let f) = value { return f }
            return nil
        }
        let formats = chosen.isEmpty ? NumberFormat.named : chosen
        let objects = formats.map { f -> JSONValue in
            .object(["name": .string(f.name), "bits": .int(f.bitWidth), "exponent_bits": .int(f.exponentBits),
                     "mantissa_bits": .int(f.mantissaBits), "bias": .int(f.bias), "max_finite": .float(f.maxFinite),
                     "min_normal": .float(f.minNormal),
                     "min_subnormal": f.mantissaBits == 0 ? .null : .float(f.minSubnormal),
                     "epsilon": .float(f.epsilon), "infinity": .bool(f.hasInfinity),
                     "specials": .string(f.specials.rawValue)])
        }
        context.report(["formats": .array(objects)]) { formatsTable(formats) }
    }

    /// `accumulate N`: adds a small number N times in a format, rounding after every
    /// addition, to show how a sum stalls (and how stochastic rounding keeps it growing).
    public static let accumulate = Command(
        name: "accumulate", topic: .numbers,
        summary: "add a number N times in a format, rounding every sum, and compare with the exact sum",
        details: """
        Each partial sum is rounded to the format, as in a low-precision accumulator. With
        round-to-nearest the sum stalls once the addend falls below half a unit in the last
        place; stochastic rounding keeps it right on average. Appends 20 rows
        (step, sum, exact, rel_error) to the metrics history ('history', 'export').
        Ctrl-C stops it; nothing is recorded then.
        JSON: {"n", "format", "rounding", "addend", "addend_in_format", "sum", "exact",
        "relative_error", "last_change"}.
        """,
        arguments: [
            .positional("N", .integer(1...1_000_000_000_000), "how many additions"),
            .option("format", .format, "the accumulator's format", default: .format(.bf16)),
            .option("rounding", .choice(RoundingMode.allCases.map(\.rawValue)), "how each sum is rounded",
                    default: .text(RoundingMode.nearestEven.rawValue)),
            .option("addend", .real(-1e30...1e30), "the number added each time (itself rounded to the format first)",
                    default: .real(0.001)),
        ],
        examples: ["accumulate 10000", "accumulate 10000 --rounding stochastic", "accumulate 100000 --format fp16 --addend 0.01"],
        reports: true
    ) { context in
        let args = context.arguments
        let n = args.integer("N")!
        let format = args.format("format")!
        let mode = try RoundingMode.parse(args.text("rounding")!)
        let rounder = Rounder(format: format, mode: mode)
        let stream = RandomStream(seed: context.session.seed, name: "accumulate")
        let addend = Rounder(format: format).round(double: args.real("addend")!)
        let every = max(1, n / 20)
        var rows: [[(String, Double)]] = []
        var sum: Float = 0
        var lastChange = 0
        var progress = context.progress("accumulate", total: n)
        let start = DispatchTime.now().uptimeNanoseconds
        var step = 0
        while step < n {
            let stop = min(n, step + 65_536)
            while step < stop {
                let next = rounder.round(double: Double(sum) + Double(addend), draw: stream.draw(at: UInt64(step)))
                step += 1
                if next != sum { lastChange = step }
                sum = next
                if step % every == 0 || step == n {
                    let exact = Double(step) * Double(addend)
                    rows.append([("step", Double(step)), ("sum", Double(sum)), ("exact", exact),
                                 ("rel_error", exact == 0 ? 0 : (Double(sum) - exact) / exact)])
                }
            }
            try progress.advance(to: step)
        }
        progress.finish()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
        let run = context.session.startSingleRun("accumulate-\(format.name)", settings: [
            RunSetting("format", format.name), RunSetting("rounding", mode.rawValue), RunSetting("seed", String(context.session.seed))])
        for row in rows { context.session.metrics.append(row, run: run) }
        let exact = Double(n) * Double(addend)
        let relative = exact == 0 ? 0 : (Double(sum) - exact) / exact
        context.report(["n": .int(n), "format": .string(format.name), "rounding": .string(mode.rawValue),
                        "addend": .number(args.real("addend")!), "addend_in_format": .float(addend),
                        "sum": .float(sum), "exact": .number(exact), "relative_error": .number(relative),
                        "last_change": .int(lastChange)]) {
            let typed = numberText(args.real("addend")!)
            let stored = shortestDecimal(addend) == typed ? "" : " (stored as \(shortestDecimal(addend)))"
            var lines = ["\(n) × \(typed) in \(format.name)\(stored), rounding \(mode.rawValue) after every addition:",
                         "  sum \(shortestDecimal(sum))   exact \(numberText(exact))   relative error \(percent(relative))"]
            if lastChange < n && mode != .stochastic {
                lines.append("  the sum stopped changing after step \(lastChange): adding \(shortestDecimal(addend)) to \(shortestDecimal(sum)) rounds back to \(shortestDecimal(sum))")
            }
            return lines.joined(separator: "\n")
        }
        context.volatile("took \(shortSeconds(seconds)) (\(shortCount(Double(n) / max(seconds, 1e-9))) additions/s)")
    }
}

/// `-97.5%`, `+0.01%`, `0%`: a relative error as a percentage with 3 significant digits.
func percent(_ x: Double) -> String {
    if x == 0 { return "0%" }
    let value = x * 100
    let digits = max(0, 2 - Int(log10(abs(value)).rounded(.down)))
    return (value > 0 ? "+" : "") + String(format: "%.\(min(digits, 6))f%%", value)
}

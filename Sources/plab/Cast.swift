import ArgumentParser
import Foundation
import Lab
import Numerics

struct Cast: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Round numbers read from standard input (one a line) to a format.",
        discussion: reflowed("""
        Each line holds a decimal (1.5, -2e-3, inf, nan) or a float32 bit pattern (0x3f800000).
        Each output line is the rounded value as the shortest decimal that reads back as the
        same float32, or with --bits the format's own encoding in hex. Decimals are rounded
        once, straight to the format. If any line is not a number, nothing is printed and the
        exit status is 1.

        Example:  printf '1.00390625\\n500\\n' | plab cast --to e4m3 --saturate
        """)
    )

    @Option(name: .long, help: "Target format: fp32 bf16 fp16 e4m3 e5m2 or eXmY (X in 2…8, Y in 0…23).")
    var to: String

    @Option(name: .long, help: "nearest (ties to even), zero, or stochastic.")
    var rounding: String = "nearest"

    @Option(name: .long, help: "Seed of stochastic rounding (line i uses draw i).")
    var seed: UInt64 = 0

    @Flag(name: .long, help: "Clamp overflow (and ±inf) to ±max finite instead of the format's rule.")
    var saturate = false

    @Flag(name: .long, help: "Print the format's encoding in hex instead of the value.")
    var bits = false

    func run() throws {
        var lines: [String] = []
        let reader = LineReader(fileDescriptor: STDIN_FILENO)
        while let item = reader.next() {
            guard case .line(let line) = item else {
                throw failure("line \(reader.lineNumber): \(LineReader.problem(with: item) ?? "unreadable")")
            }
            lines.append(line)
        }
        do {
            var request = CastRequest(format: try NumberFormat.parse(to))
            request.rounding = try RoundingMode.parse(rounding)
            request.seed = seed
            request.saturate = saturate
            request.showBits = bits
            let output = try request.run(lines) { "line \($0 + 1)" }
            writeOut(output.map { $0 + "\n" }.joined())
        } catch {
            throw failure(error.description)
        }
    }
}

struct Formats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the number formats and their exact parameters.")

    @Argument(help: "Formats to show (default: the named ones); eXmY accepted.")
    var names: [String] = []

    func run() throws {
        do {
            let formats = names.isEmpty ? NumberFormat.named : try names.map { name throws(NumericsError) in try NumberFormat.parse(name) }
            writeOut(formatsTable(formats) + "\n")
        } catch {
            throw failure(error.description)
        }
    }
}

/// The exit status for bad arguments (sysexits' EX_USAGE), as ArgumentParser uses.
let usageError: Int32 = 64

/// Prints `plab: error: MESSAGE` on standard error and returns the failing exit code.
func failure(_ message: String) -> ExitCode {
    writeOut("plab: error: \(message)\n", to: .standardError)
    return ExitCode.failure
}

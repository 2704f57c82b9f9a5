import ArgumentParser
import CEdit
import Foundation
import Lab

struct Shell: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open the interactive lab shell (the default). Reads commands line by line when standard input is not a terminal.")

    func run() throws {
        let session = Session()
        let interactive = isatty(0) == 1
        if interactive { print("PrecisionLab \(PlabVersion.string) — type 'help' for commands, 'quit' or Ctrl-D to leave.") }
        var failed = false
        while true {
            let line: String
            if interactive {
                guard let raw = readline("plab> ") else { print(""); break }
                line = String(cString: raw)
                free(raw)
                if !line.trimmingCharacters(in: .whitespaces).isEmpty { add_history(line) }
            } else {
                guard let raw = readLine(strippingNewline: true) else { break }
                line = raw
            }
            let result = session.execute(line)
            if !result.output.isEmpty { print(result.output) }
            if let error = result.error {
                var stderr = StandardError()
                print("error: \(error)", to: &stderr)
                failed = true
            }
            if result.quit { break }
        }
        if failed && !interactive { throw ExitCode.failure }
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure the lab's kernels (figures recorded in BENCHMARKS.md).",
        discussion: "Rounding throughput per format and mode on one thread, and matrix products against raw cblas_sgemm.")

    @Argument(help: "What to measure: rounding, gemm, or all.")
    var what: String = "all"

    @Option(help: "Matrix sizes n for n×n×n products.")
    var sizes: [Int] = [256, 512, 1024]

    func run() throws {
        guard ["rounding", "gemm", "all"].contains(what) else {
            throw failure("unknown benchmark '\(what)'; accepted: rounding gemm all")
        }
        guard sizes.allSatisfy({ $0 >= 1 && $0 <= 8192 }) else { throw failure("sizes must be in 1…8192") }
        if what != "gemm" { print(renderBench(benchRounding())) }
        if what != "rounding" { print(renderBench(benchGEMM(sizes: sizes))) }
    }
}

// Fuzz target: session files, read from disk and run.
//
// The input is the file. `readLines` must agree with a plain reading of the bytes (lines
// split at \n, a \r before it dropped, a last line without \n kept; NUL bytes, bad UTF-8
// and over-long lines refused); then up to 16 lines run in a fresh session of the guarded
// registry, going on after failures, which must name lines of the file in order; a file of
// up to 4 lines is also sourced.

import Foundation
import FuzzSupport
import Lab

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSessionFiles(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    Sandbox.run {
        let input = bytes(data, size)
        write(input, to: "fuzz.plab")
        let expected = plainReading(input)
        let lines: [ScriptLine]
        do {
            lines = try readLines(ofFile: "fuzz.plab")
        } catch {
            require(expected == nil, "readLines refused a readable file: \(error)")
            return
        }
        guard let expected else { fatalError("readLines accepted a file with NUL bytes, bad UTF-8 or an over-long line") }
        require(lines.map(\.text) == expected, "readLines read \(lines.map(\.text)); expected \(expected)")
        require(lines.enumerated().allSatisfy { $0.element.number == $0.offset + 1 }, "line numbers are not 1, 2, …")

        let run = Array(lines.prefix(16))
        let result = Session(registry: .fuzzing).run(run, to: CollectedOutput(), keepGoing: true)
        let failed = result.failures.map(\.line)
        require(failed == failed.sorted() && Set(failed).count == failed.count && Set(failed).isSubset(of: run.map(\.number)),
                "the failures of a run name lines \(failed), not lines of the file in order")
        // A short file is sourced too: nested, stopping at its first failure.
        if lines.count <= 4 {
            _ = Session(registry: .fuzzing).execute("source fuzz.plab", to: CollectedOutput())
        }
    }
    return 0
}

/// The lines of a text file read the simple way, or nil when it is not one.
func plainReading(_ bytes: [UInt8]) -> [String]? {
    if bytes.isEmpty { return [] }
    var pieces = bytes.split(separator: 10, omittingEmptySubsequences: false).map(Array.init)
    if bytes.last == 10 { pieces.removeLast() }
    var lines: [String] = []
    for var piece in pieces {
        if piece.last == 13 { piece.removeLast() }
        guard piece.count <= maxLineBytes, !piece.contains(0),
              let text = String(validating: piece, as: UTF8.self) else { return nil }
        lines.append(text)
    }
    return lines
}

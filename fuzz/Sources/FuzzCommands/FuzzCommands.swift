// Fuzz target: command lines, through the parser and the dispatcher.
//
// The input is up to 8 lines, run one after the other in a fresh session of the guarded
// registry (FuzzSupport: cheap work only, files only in the sandbox). Besides crashes it
// checks what the shell promises of every line: a line that fails leaves the settings and
// the metrics history as they were, and every `--json` report is one JSON object.

import Foundation
import FuzzSupport
import Lab

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCommands(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    Sandbox.run {
        let session = Session(registry: .fuzzing)
        for line in text(data, size).split(separator: "\n", omittingEmptySubsequences: false).prefix(8) {
            let line = String(line)
            // The checks alone, as `plab run` does before running a file…
            try? session.registry.validate(line)
            // …and completion of the line as typed (not of paths outside the sandbox).
            if !line.contains("/") && !line.contains("~") { _ = session.completions(for: line) }

            let settingsBefore = session.settings.changed.map { "\($0.name)=\($0.value)" }
            let rowsBefore = session.metrics.count
            let output = CollectedOutput()
            let outcome = session.execute(line, to: output)
            if case .failed(let message) = outcome, !line.trimmingCharacters(in: .whitespaces).hasPrefix("source") {
                // `source` keeps what the lines before its failing one did; nothing else may.
                let settingsAfter = session.settings.changed.map { "\($0.name)=\($0.value)" }
                require(settingsAfter == settingsBefore, "the failed line '\(line)' (\(message)) changed the settings from \(settingsBefore) to \(settingsAfter)")
                require(session.metrics.count == rowsBefore, "the failed line '\(line)' (\(message)) appended to the metrics history")
            }
            for json in output.jsonLines {
                let object = try? JSONSerialization.jsonObject(with: Data(json.utf8))
                require(object is [String: Any], "'\(line)' printed a JSON report that is not one object: \(json)")
            }
            if outcome == .quit { break }
        }
    }
    return 0
}

import Foundation
import Lab

/// The package's root directory.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

/// The shell's own commands and settings, without those the model, engines and RL add, so
/// that tests listing names do not change when a module registers more.
let shellRegistry = Registry(
    commands: [.cast, .formats, .accumulate, .set, .show, .seed, .history, .export, .help, .record, .source, .quit],
    settings: [.seed, .backend, .color], promptParts: [.recording])

/// A session with the shell's own commands only.
func shellSession() -> Session { Session(registry: shellRegistry) }

/// Runs lines in a session, collecting output; returns the outcomes.
@discardableResult
func run(_ lines: String..., in session: Session, output: CollectedOutput = CollectedOutput()) -> [Outcome] {
    lines.map { session.execute($0, to: output) }
}

/// Runs one line in a fresh collector: (outcome, output lines, errors).
func runOne(_ line: String, in session: Session) -> (outcome: Outcome, lines: [String], errors: [String]) {
    let output = CollectedOutput()
    let outcome = session.execute(line, to: output)
    return (outcome, output.lines, output.errors)
}

/// The error message of a line expected to fail ("" if it did not fail).
func failure(_ line: String, in session: Session = shellSession()) -> String {
    if case .failed(let message) = session.execute(line, to: CollectedOutput()) { return message }
    return ""
}

/// Parses a one-line JSON object.
func parseJSON(_ line: String) throws -> [String: Any] {
    let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
    guard let dictionary = object as? [String: Any] else { throw LabError("not a JSON object: \(line)") }
    return dictionary
}

/// A fresh temporary directory, removed by the caller.
func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("plab-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Everything in a session that a failed line must leave alone.
struct StateSnapshot: Equatable {
    var settings: [String]
    var metrics: MetricsHistory
    var recording: Bool

    init(_ session: Session) {
        settings = session.settings.names.map { "\($0)=\(session.settings[$0])" }
        metrics = session.metrics
        recording = session.isRecording
    }
}

extension MetricsHistory {
    /// Appends a row to a run named `test`, started on first use.
    mutating func appendToTestRun(_ row: KeyValuePairs<String, Double>) {
        append(row, run: runIndex(named: "test") ?? startRun(RunInfo(name: "test", settings: [])))
    }
}

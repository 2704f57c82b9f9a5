// The live state of a lab session and the dispatcher that runs one line at a time.

import Foundation
import Numerics

/// The plab version, written into transcript headers.
public let plabVersion = "0.1.0"

/// How one line ended.
public enum Outcome: Sendable, Equatable {
    /// It ran, or was blank or a comment.
    case done
    /// It failed with this one-line message; the session is as it was before the line.
    case failed(String)
    /// Ctrl-C stopped it at a safe point.
    case interrupted
    /// It asked to end the session (`quit`, `exit`).
    case quit

    public var isFailure: Bool {
        switch self {
        case .failed, .interrupted: return true
        case .done, .quit: return false
        }
    }
}

/// The live state of a lab session, and the commands that act on it.
///
/// The session never prints: `execute` sends output to a `SessionOutput` chosen by the
/// caller (a terminal, a transcript, a test). State the model, engines and RL add later
/// goes here as stored properties; a command changes state only after its last check, so
/// a failing line leaves the session as it was (settings are also snapshotted and put back
/// when a command fails). A command stopped by Ctrl-C keeps what it finished: it checks for
/// the interruption only between units of work that leave the state consistent.
public final class Session {
    public let registry: Registry
    public var settings: SettingsStore
    public var metrics = MetricsHistory()
    /// The run the next RL step's row joins while its settings stay the same (see `Runs.swift`).
    var currentRun: (key: RunKey, index: Int)?
    /// The name `run NAME` gave the next run.
    var requestedRunName: String?
    /// Every command, its output and its figures, for `report`.
    public internal(set) var reportLog = ReportLog()
    /// The terminal's width in columns, when output goes to a terminal (the executable
    /// installs it); plots fit it.
    public var terminalWidth: (() -> Int?)?
    /// Whether plots may use colour now (the executable installs it when output is a
    /// terminal: the `color` setting and NO_COLOR decide).
    public var plotColor: (() -> Bool)?
    /// Where long commands draw their progress bar; nil shows nothing (tests, pipes).
    public var progressDisplay: ProgressDisplay?
    /// Reporting commands answer in JSON even without `--json` (`plab run --json`).
    public var reportsInJSON = false
    /// The transcript being recorded by `record FILE`.
    var recorder: TranscriptRecorder?
    /// Where path arguments lead: as given, or in a replay into its scratch directory.
    public var files = FileAccess()
    /// How deep `source` calls are nested (they may not recurse forever).
    var sourceDepth = 0
    /// The live model and engines, made on first use.
    var labStorage: LabState?
    /// The memory, in bytes, that commands may allocate, in place of the system's figure
    /// and of PLAB_MEMORY_LIMIT (tests set it to be independent of the machine); nil reads
    /// them. See `checkMemory`.
    public var availableMemoryOverride: Int?

    /// The live model and engines: made on first use (the lab's default model), and kept on
    /// the matrix-product backend the `backend` setting names.
    public var lab: LabState {
        if labStorage == nil { labStorage = LabState.initial(seed: seed, backend: backend) }
        let lab = labStorage!
        if lab.policy.backend.name != settings.text("backend") { try? lab.policy.setBackend(backend) }
        return lab
    }

    public init(registry: Registry = .standard) {
        self.registry = registry
        settings = SettingsStore(registry.settings)
    }

    /// The seed every random stream derives from (`seed N`).
    public var seed: UInt64 { UInt64(settings.integer("seed")) }

    /// The matrix-product backend named by the `backend` setting.
    public var backend: any MatmulBackend {
        do { return try matmulBackend(named: settings.text("backend")) } catch {
            preconditionFailure("the backend setting holds an unknown backend: \(error)")
        }
    }

    public var isRecording: Bool { recorder != nil }

    /// Closes the transcript being recorded, if any (a replay ends this way).
    public func stopRecording() {
        try? recorder?.close()
        recorder = nil
    }

    /// `plab> `, or with parts registered and active, `plab[bf16|fp16] step 12> `.
    public var prompt: String {
        var tags: [String] = []
        var statuses: [String] = []
        for part in registry.promptParts {
            guard let text = part.text(self) else { continue }
            if part.placement == .tag { tags.append(text) } else { statuses.append(text) }
        }
        var out = "plab"
        if !tags.isEmpty { out += "[" + tags.joined(separator: ",") + "]" }
        if !statuses.isEmpty { out += " " + statuses.joined(separator: " ") }
        return out + "> "
    }

    /// Runs one line: parses it against the registry (every argument typed and checked),
    /// then runs the command. Output and errors go to `output` (and to the transcript being
    /// recorded). `nested` lines come from `source` and are not echoed.
    @discardableResult
    public func execute(_ line: String, to output: SessionOutput, nested: Bool = false) -> Outcome {
        var target: SessionOutput = (!nested && recorder != nil) ? TeeOutput(output, recorder!) : output
        if !nested { target = TeeOutput(target, ReportOutput(session: self)) }
        if line.utf8.count > maxLineBytes {
            let message = "line is \(describeBytes(line.utf8.count)) long; the limit is \(describeBytes(maxLineBytes))"
            target.fail(message)
            return .failed(message)
        }
        let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.hasPrefix("#") { reportLog.comment(String(trimmed.dropFirst()).trimmingCharacters(in: .whitespaces)) }
        if trimmed.isEmpty || trimmed.hasPrefix("#") { return .done }

        let invocation: Invocation
        do {
            invocation = try registry.parse(try Words.split(trimmed))
        } catch {
            if !nested { target.begin(trimmed, transcribed: true) } else { reportLog.begin(trimmed) }
            target.fail(error.message)
            return .failed(error.message)
        }
        let command = invocation.command
        // A line of a sourced file is not echoed, but the report shows it as a command.
        if !nested { target.begin(trimmed, transcribed: command.transcribed) } else { reportLog.begin(trimmed) }
        if invocation.wantsHelp {
            target.write(help(for: command, path: invocation.path), as: .text)
            return .done
        }
        guard let run = command.run else { preconditionFailure("the parser returned a command that cannot run") }
        let json = invocation.arguments.flag("json") || (command.reports && reportsInJSON)
        let context = CommandContext(session: self, arguments: invocation.arguments,
                                     commandPath: invocation.path, json: json, output: target)
        let settingsBefore = settings
        if !nested { Interruption.commandStarted() }
        var thrown: (any Error)?
        do { try run(context) } catch { thrown = error }
        if !nested {
            Interruption.commandEnded()
            progressDisplay?.clear()  // a bar left by a command that stopped early
            releaseFreePages()        // what the command freed is available to the next one
        }
        let outcome: Outcome
        switch thrown {
        case nil:
            outcome = context.quitRequested ? .quit : .done
        case is Interrupted:
            target.fail("interrupted")
            outcome = .interrupted
        case let error?:
            if command.atomic { settings = settingsBefore }
            var message = Session.describe(error)
            if !message.hasPrefix(invocation.path + ":") { message = invocation.path + ": " + message }
            target.fail(message)
            outcome = .failed(message)
        }
        if !nested, let recorder, let error = recorder.writeError {
            // The transcript cannot go on: say so at the command that met the failure.
            self.recorder = nil
            let message = "record: \(error); recording stopped"
            output.fail(message)
            return outcome == .interrupted ? outcome : .failed(message)
        }
        return outcome
    }

    /// A one-line message for any error a command throws.
    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as LabError: return error.message
        case let error as NumericsError: return error.description
        default: return String(describing: error)
        }
    }
}

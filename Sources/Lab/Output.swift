// Where a session's output goes. The session never prints: a terminal, a transcript, a
// JSON-lines stream or a test each implement `SessionOutput`.

import JSON

/// The kind of a piece of output.
public enum OutputKind: Sendable, Equatable {
    /// Text for people (tables, summaries); goes into transcripts as is.
    case text
    /// One JSON object on one line, from a command run with `--json`.
    case json
    /// A line holding a figure that changes from run to run (a timing). Transcripts mark it
    /// with a leading `~ ` and the replay checker compares only that it is there.
    case volatile
    /// Text for people followed by a figure that changes from run to run (a step's
    /// timing): the terminal shows both, transcripts keep only the text.
    case timed(String)

    /// `text` as a person sees it: with a timed line's figure after it.
    public func shown(_ text: String) -> String {
        if case .timed(let tail) = self { return text + tail }
        return text
    }
}

/// Receives what a session produces, command by command.
public protocol SessionOutput: AnyObject {
    /// A command line is about to run. `transcribed` is false for commands that stay out
    /// of transcripts (`record`, `quit`): their output should stay out too.
    func begin(_ line: String, transcribed: Bool)
    /// One or more lines of output (no trailing newline).
    func write(_ text: String, as kind: OutputKind)
    /// The command failed; a one-line message.
    func fail(_ message: String)
}

/// Keeps everything in memory: for tests and for commands that capture output.
public final class CollectedOutput: SessionOutput {
    /// Every output line, in order (text, JSON and volatile alike).
    public private(set) var lines: [String] = []
    /// Every error message, in order.
    public private(set) var errors: [String] = []
    /// The JSON lines only.
    public private(set) var jsonLines: [String] = []
    /// The command lines begun, in order.
    public private(set) var commands: [String] = []

    public init() {}

    /// All output as one string, lines joined by newlines.
    public var text: String { lines.joined(separator: "\n") }

    public func begin(_ line: String, transcribed: Bool) { commands.append(line) }

    public func write(_ text: String, as kind: OutputKind) {
        let split = kind.shown(text).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines += split
        if kind == .json { jsonLines += split }
    }

    public func fail(_ message: String) { errors.append(message) }
}

/// Sends everything to two outputs: the caller's and the session's transcript recorder;
/// `plab run`'s output and its `--transcript`.
public final class TeeOutput: SessionOutput {
    let first: SessionOutput
    let second: SessionOutput

    public init(_ first: SessionOutput, _ second: SessionOutput) {
        self.first = first
        self.second = second
    }

    public func begin(_ line: String, transcribed: Bool) {
        first.begin(line, transcribed: transcribed)
        second.begin(line, transcribed: transcribed)
    }

    public func write(_ text: String, as kind: OutputKind) {
        first.write(text, as: kind)
        second.write(text, as: kind)
    }

    public func fail(_ message: String) {
        first.fail(message)
        second.fail(message)
    }
}

/// What a running command sees: its session, its typed arguments, and where to write.
public final class CommandContext {
    public let session: Session
    public let arguments: ParsedArguments
    /// `record stop`: the words that named the command.
    public let commandPath: String
    /// Whether the command should print one JSON object (it was given `--json`, or the
    /// session reports in JSON, as `plab run --json` asks).
    public let json: Bool
    let output: SessionOutput
    /// Set by `requestQuit()`: the session ends after this command.
    private(set) var quitRequested = false

    init(session: Session, arguments: ParsedArguments, commandPath: String, json: Bool, output: SessionOutput) {
        self.session = session
        self.arguments = arguments
        self.commandPath = commandPath
        self.json = json
        self.output = output
    }

    /// Writes text for people: one or more lines.
    public func print(_ text: String) { write(text, as: .text) }

    /// Writes a report: the JSON object on one line with `--json`, else the text.
    public func report(_ object: JSONObject, text: () -> String) {
        if json { write(object.rendered, as: .json) } else { write(text(), as: .text) }
    }

    /// Writes a report whose text ends in a figure that differs between runs (`timing`,
    /// e.g. "  (0.42 s)"): the terminal shows it, transcripts keep the text without it.
    public func report(_ object: JSONObject, timing: String, text: () -> String) {
        if json { write(object.rendered, as: .json) } else { write(text(), as: .timed(timing)) }
    }

    /// Writes a line holding a figure that differs between runs (a timing); transcripts
    /// mark it so replays skip its content. Not shown with `--json`.
    public func volatile(_ text: String) {
        if !json { write(text, as: .volatile) }
    }

    /// Every write goes here: a progress bar on the terminal is erased first, so output
    /// never starts in the middle of it (the bar is drawn again on the next advance).
    private func write(_ text: String, as kind: OutputKind) {
        session.progressDisplay?.clear()
        output.write(text, as: kind)
    }

    /// A progress meter over `total` units of work, shown on the terminal only; its
    /// `advance` is also the place where an interruption is noticed.
    public func progress(_ label: String, total: Int) -> ProgressMeter {
        ProgressMeter(label: label, total: total, display: session.progressDisplay)
    }

    /// Ends the session once this command returns (`quit`): commands return an action
    /// rather than exiting the process.
    public func requestQuit() { quitRequested = true }
}

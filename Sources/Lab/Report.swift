// `report FILE.html`: the session so far as one self-contained page — each command, what it
// printed, and its plots inline as SVG — that opens offline and can be handed out.

import Foundation
import Plot

/// What the session ran and printed, kept for `report`: the latest `limit` commands, each
/// with at most `outputLimit` lines of text and, where it drew a figure, the figure's SVG in
/// place of its terminal drawing.
public struct ReportLog: Sendable {
    /// A piece of a command's output, in order.
    public enum Part: Sendable, Equatable {
        case text([String])
        case svg(String)
        /// A session file's comment lines: the teacher's narration.
        case comment(String)
    }

    public struct Entry: Sendable, Equatable {
        public var command: String
        public var parts: [Part] = []
        /// Text lines left out past `outputLimit`.
        public var omitted = 0
        var lines = 0

        /// The SVG figures, in order.
        public var svgs: [String] { parts.compactMap { if case .svg(let s) = $0 { return s } else { return nil } } }
    }

    public private(set) var entries: [Entry] = []
    /// Commands dropped from the front once there were more than `limit`.
    public private(set) var dropped = 0
    /// The SVG of a figure whose terminal drawing is the next text written.
    private var pendingFigure: String?
    public static let limit = 1000, outputLimit = 400

    public init() {}

    mutating func begin(_ command: String) {
        if entries.count == ReportLog.limit {
            entries.removeFirst()
            dropped += 1
        }
        entries.append(Entry(command: command))
        pendingFigure = nil
    }

    /// The next text written is `svg`'s terminal drawing: the page shows the SVG instead.
    mutating func expectFigure(_ svg: String) { pendingFigure = svg }

    mutating func write(_ text: String) {
        guard !entries.isEmpty else { return }
        let last = entries.count - 1
        if let svg = pendingFigure {
            entries[last].parts.append(.svg(svg))
            pendingFigure = nil
            return
        }
        var lines: [String] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if entries[last].lines < ReportLog.outputLimit {
                lines.append(String(line))
                entries[last].lines += 1
            } else {
                entries[last].omitted += 1
            }
        }
        guard !lines.isEmpty else { return }
        if case .text(let before)? = entries[last].parts.last {
            entries[last].parts[entries[last].parts.count - 1] = .text(before + lines)
        } else {
            entries[last].parts.append(.text(lines))
        }
    }

    /// A comment line: joins the comment before it, or starts a new entry without a command.
    mutating func comment(_ text: String) {
        if let last = entries.indices.last, entries[last].command.isEmpty, case .comment(let before)? = entries[last].parts.last {
            entries[last].parts[entries[last].parts.count - 1] = .comment(before + " " + text)
            return
        }
        begin("")
        entries[entries.count - 1].parts.append(.comment(text))
    }

    /// Forgets the last entry (the `report` command writing the page).
    mutating func dropLast() { if !entries.isEmpty { entries.removeLast() } }

    /// The page: per command its line, then its output and figures in the order they came.
    public func page(title: String) -> HTMLPage {
        var page = HTMLPage(title: title)
        if dropped > 0 { page.append(.note("The first \(dropped) commands of the session are not shown.")) }
        for entry in entries {
            if !entry.command.isEmpty { page.append(.command(entry.command)) }
            for part in entry.parts {
                switch part {
                case .text(let lines): page.append(.output(lines.joined(separator: "\n")))
                case .svg(let svg): page.append(.svg(svg))
                case .comment(let text): page.append(.note(text))
                }
            }
            if entry.omitted > 0 { page.append(.note("\(entry.omitted) more lines of output not shown.")) }
        }
        return page
    }
}

/// Feeds a command's output into the session's report log.
final class ReportOutput: SessionOutput {
    unowned let session: Session

    init(session: Session) { self.session = session }

    func begin(_ line: String, transcribed: Bool) { session.reportLog.begin(line) }

    func write(_ text: String, as kind: OutputKind) {
        session.reportLog.write(kind.shown(text))
    }

    func fail(_ message: String) { session.reportLog.write("error: " + message) }
}

extension Command {
    /// `report FILE.html`.
    public static let report = Command(
        name: "report", topic: .plots,
        summary: "write the session so far as one self-contained HTML page: commands, outputs, plots",
        details: "The page has no external assets (inline CSS, plots as inline SVG) and opens offline. Plots appear as figures; other output as text. The latest \(ReportLog.limit) commands are kept.",
        arguments: [.positional("FILE", .path(.writeFile), "the page to write (.html)")],
        examples: ["report session.html"],
        transcribed: true
    ) { context in
        let path = context.arguments.text("FILE")!
        let log = context.session.reportLog
        // The report command itself is the last entry: leave it out.
        var shown = log
        shown.dropLast()
        let page = shown.page(title: "plab session")
        try context.writeFile(Data(page.render().utf8), to: path)
        let figures = shown.entries.reduce(0) { $0 + $1.svgs.count }
        let commands = shown.entries.filter { !$0.command.isEmpty }.count
        context.print("wrote \(path): \(commands) command\(commands == 1 ? "" : "s"), \(figures) figure\(figures == 1 ? "" : "s")")
    }
}

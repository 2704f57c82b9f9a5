// `report FILE.html`: the session so far as one self-contained page — each command, what it
// printed, and its plots inline as SVG — that opens offline and can be handed out.

import Foundation
import Plot

/// What the session ran and printed, kept for `report`: the latest `limit` commands, each
/// with at most `outputLimit` lines of output and the SVG of every figure it drew.
public struct ReportLog: Sendable {
    public struct Entry: Sendable, Equatable {
        public var command: String
        public var output: [String] = []
        public var svgs: [String] = []
        /// Lines left out past `outputLimit`.
        public var omitted = 0
    }

    public private(set) var entries: [Entry] = []
    /// Commands dropped from the front once there were more than `limit`.
    public private(set) var dropped = 0
    public static let limit = 1000, outputLimit = 400

    public init() {}

    mutating func begin(_ command: String) {
        if entries.count == ReportLog.limit {
            entries.removeFirst()
            dropped += 1
        }
        entries.append(Entry(command: command))
    }

    mutating func write(_ text: String) {
        guard !entries.isEmpty else { return }
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if entries[entries.count - 1].output.count < ReportLog.outputLimit {
                entries[entries.count - 1].output.append(String(line))
            } else {
                entries[entries.count - 1].omitted += 1
            }
        }
    }

    mutating func attach(svg: String) {
        guard !entries.isEmpty else { return }
        entries[entries.count - 1].svgs.append(svg)
    }

    /// The page: a heading, then per command its line, its output and its figures.
    public func page(title: String) -> HTMLPage {
        var page = HTMLPage(title: title)
        if dropped > 0 { page.append(.note("The first \(dropped) commands of the session are not shown.")) }
        for entry in entries {
            page.append(.command(entry.command))
            // The figures are drawn as SVG below; their terminal drawing is left out.
            let text = entry.svgs.isEmpty ? entry.output : entry.output.filter { $0.hasPrefix("wrote ") || $0.hasPrefix("error:") }
            if !text.isEmpty { page.append(.output(text.joined(separator: "\n"))) }
            if entry.omitted > 0 { page.append(.note("\(entry.omitted) more lines of output not shown.")) }
            for svg in entry.svgs { page.append(.svg(svg)) }
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
        var whole = text
        if case .timed(let tail) = kind { whole += tail }
        session.reportLog.write(whole)
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
        context.print("wrote \(path): \(shown.entries.count) command\(shown.entries.count == 1 ? "" : "s"), \(figures) figure\(figures == 1 ? "" : "s")")
    }
}

extension ReportLog {
    /// Forgets the last entry (the `report` command writing the page).
    mutating func dropLast() { if !entries.isEmpty { entries.removeLast() } }
}

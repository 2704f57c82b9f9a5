// Commands about the session itself: help, record, source, quit.


extension Command {
    /// `help [COMMAND [SUB-COMMAND]]`, also `help SETTING`.
    public static let help = Command(
        name: "help", topic: .session,
        summary: "list commands by topic, or show one command's usage, arguments and example",
        details: "JSON: {\"commands\": [{\"name\", \"topic\", \"summary\", \"usage\"}], \"settings\"}, or for one command {\"name\", \"usage\", \"arguments\", \"examples\", …}.",
        arguments: [.variadic("COMMAND", .text, "a command (and sub-command) or a setting", complete: { session, previous in
            guard let first = previous.first else {
                return session.registry.commands.filter { !$0.hidden }.map(\.name) + session.settings.names
            }
            return session.registry.commands.first { $0.name == first }?.subcommands.map(\.name) ?? []
        })],
        examples: ["help", "help cast", "help record stop", "help backend"],
        reports: true
    ) { context in
        let session = context.session
        let words = context.arguments.texts("COMMAND")
        guard let first = words.first else {
            context.report(session.helpListJSON) { session.helpList }
            return
        }
        if !session.registry.commands.contains(where: { $0.name == first || $0.aliases.contains(first) }),
           let setting = try? session.settings.definition(first), words.count == 1 {
            context.report(["name": .string(setting.name), "accepts": .string(setting.kind.accepted),
                            "default": setting.defaultValue.json, "value": session.settings[setting.name].json,
                            "help": .string(setting.help)]) { session.help(for: setting) }
            return
        }
        var command = try session.registry.command(named: first)
        var path = command.name
        for (i, word) in words.dropFirst().enumerated() {
            if let explain = command.explain, !command.subcommands.contains(where: { $0.name == word }), i == words.count - 2 {
                let text = try explain(word)
                context.report(["name": .string(path), "value": .string(word), "help": .string(text)]) { text }
                return
            }
            guard let sub = command.subcommands.first(where: { $0.name == word }) else {
                let names = command.subcommands.map(\.name)
                throw LabError(names.isEmpty ? "'\(path)' has no sub-commands"
                               : "'\(path)' has no sub-command \(LabError.quoted(word, closestAmong: names)) (sub-commands: \(names.joined(separator: ", ")))")
            }
            command = sub
            path += " " + sub.name
        }
        context.report(session.helpJSON(for: command, path: path)) { session.help(for: command, path: path) }
    }

    /// `record FILE`, `record stop`.
    public static let record = Command(
        name: "record", topic: .session,
        summary: "save what the session prints from now on as a transcript ('plab replay' checks it)",
        details: """
        The file starts with a header (# lines: plab version, date, seed, backend, OpenBLAS,
        settings not at their defaults, commands that rebuild other state), then each command
        on a line 'plab> COMMAND' with its output below, written as the session goes.
        Without FILE: whether recording is on.
        """,
        arguments: [.positional("FILE", .path(.writeFile), "the transcript to write (replaced)", optional: true)],
        subcommands: [
            Command(name: "stop", topic: .session, summary: "stop recording and close the transcript",
                    examples: ["record stop"], transcribed: false) { context in
                guard let recorder = context.session.recorder else { throw LabError("not recording") }
                context.session.recorder = nil
                try recorder.close()
                context.print("stopped recording to \(recorder.path)")
            },
        ],
        examples: ["record session.transcript"],
        transcribed: false
    ) { context in
        let session = context.session
        guard let path = context.arguments.text("FILE") else {
            context.print(session.recorder.map { "recording to \($0.path)" } ?? "not recording")
            return
        }
        if let recorder = session.recorder {
            throw LabError("already recording to \(recorder.path) ('record stop' first)")
        }
        let header = TranscriptHeader(session: session)
        session.recorder = try TranscriptRecorder(path: session.files.forWriting(path), shownAs: path, header: header)
        context.print("recording to \(path)")
        if !header.unrestorable.isEmpty {
            let missing = header.unrestorable
            context.print("warning: no command rebuilds \(missing.joined(separator: " and ")) of this session, so a replay of this transcript starts without \(missing.count == 1 ? "it" : "them")")
        }
    }

    /// `source FILE`.
    public static let source = Command(
        name: "source", topic: .session,
        summary: "run the commands of a session file here, stopping at the first error",
        details: """
        One command a line; blank lines and lines starting with # are skipped. The file is
        read whole and checked first (text, lines of at most 1 MiB), so a binary or broken
        file runs nothing. Errors name the file and line; the lines before a failing one
        keep their effect.
        """,
        arguments: [.positional("FILE", .path(.readFile), "the session file (.plab)")],
        examples: ["source sessions/tour.plab"], atomic: false
    ) { context in
        let session = context.session
        let path = context.arguments.text("FILE")!
        guard session.sourceDepth < 16 else { throw LabError("'source' is nested 16 deep; is a file sourcing itself?") }
        let lines = try readLines(ofFile: try context.readableFile(path), shownAs: path)
        let capture = NestedOutput(context.output)
        session.sourceDepth += 1
        defer { session.sourceDepth -= 1 }
        let result = session.run(lines, to: capture, nested: true)
        if result.interrupted { throw Interrupted() }
        if let failure = result.failures.first { throw LabError("\(path):\(failure.line): \(failure.message)") }
        if result.quit { context.requestQuit() }
    }

    /// `quit`, `exit` (Ctrl-D too).
    public static let quit = Command(
        name: "quit", aliases: ["exit"], topic: .session,
        summary: "leave the shell (also 'exit' and Ctrl-D)",
        examples: ["quit"], transcribed: false
    ) { context in
        context.requestQuit()
    }
}

/// Output of a sourced file's commands: passed on to the `source` command's output, without
/// echoing the lines; errors are kept for `source` to report with the file and line.
final class NestedOutput: SessionOutput {
    let parent: SessionOutput

    init(_ parent: SessionOutput) { self.parent = parent }

    func begin(_ line: String, transcribed: Bool) {}
    func write(_ text: String, as kind: OutputKind) { parent.write(text, as: kind) }
    func fail(_ message: String) {}
}

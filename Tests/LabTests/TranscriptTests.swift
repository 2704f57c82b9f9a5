import Foundation
import Testing
import Lab

/// Transcripts: recording, the format, replay and its difference report.
@Suite struct TranscriptTests {
    func lines(_ text: String) -> [ScriptLine] {
        text.split(separator: "\n", omittingEmptySubsequences: false).enumerated().map {
            ScriptLine(number: $0.offset + 1, text: String($0.element))
        }
    }

    @Test func recordWritesHeaderCommandsAndOutputAsTheSessionGoes() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("t.transcript").path
        let session = shellSession()
        run("set backend portable", "seed 3", "set color off", "record \(path)", in: session)
        #expect(session.prompt == "plab (rec)> ")
        run("cast bf16 1.00390625", in: session)
        // Already on disk before recording stops.
        let partial = try String(contentsOfFile: path, encoding: .utf8)
        #expect(partial.hasSuffix("plab> cast bf16 1.00390625\n1.00390625 -> 1.0\n"))
        run("fromats", "accumulate 100", "record stop", "seed 4", in: session)
        #expect(session.prompt == "plab> ")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let all = text.split(separator: "\n").map(String.init)
        #expect(all[0] == "# plab \(plabVersion) transcript")
        #expect(all[1].hasPrefix("# date: "))
        #expect(all[2] == "# seed: 3")
        #expect(all[3] == "# backend: portable")
        #expect(all[4].hasPrefix("# openblas: "))
        #expect(all[5].hasPrefix("# onednn: oneDNN "))
        #expect(all[6] == "# set: color off")
        #expect(all[7] == "plab> cast bf16 1.00390625")
        #expect(all.contains("error: unknown command 'fromats'; did you mean 'formats'? (try 'help')"))
        #expect(all.contains { $0.hasPrefix("~ took ") }, "the timing is marked volatile")
        #expect(!all.contains { $0.contains("record") || $0.contains("seed 4") })
        // And it replays.
        let transcript = try Transcript(lines: try readLines(ofFile: path), name: path)
        #expect(try transcript.replay(name: path).difference == nil)
    }

    @Test func outputThatLooksLikeACommandIsEscapedAndReadBack() throws {
        var produced: [String] = []
        let writer = TranscriptWriter { produced.append($0) }
        writer.begin("echo", transcribed: true)
        writer.write("plab> not a command\n~ not volatile\n\\ backslash\nplain", as: .text)
        writer.write("0.5 s", as: .volatile)
        #expect(produced == ["plab> echo", "\\plab> not a command", "\\~ not volatile", "\\\\ backslash", "plain", "~ 0.5 s"])
        let transcript = try Transcript(lines: lines("# plab 0.1.0 transcript\n# seed: 0\n# backend: portable\n" + produced.joined(separator: "\n")), name: "t")
        #expect(transcript.entries.count == 1)
        #expect(transcript.entries[0].output.count == 5)
    }

    @Test func replayFindsTheFirstDifferenceAndShowsItInContext() throws {
        let text = """
        # plab 0.1.0 transcript
        # date: 2000-01-01T00:00:00Z
        # seed: 0
        # backend: portable
        plab> cast bf16 1.00390625 1.01171875
        1.00390625 -> 1.0
        1.01171875 -> 1.015625
        plab> cast bf16 3.14159265
        3.14159265 -> 3.15
        plab> seed
        seed = 0
        """
        let result = try Transcript(lines: lines(text), name: "x.transcript").replay(name: "x.transcript")
        let difference = try #require(result.difference)
        let report = difference.split(separator: "\n").map(String.init)
        #expect(report[0] == "replay of x.transcript differs at line 9 (in the output of line 8: plab> cast bf16 3.14159265)")
        #expect(report.contains("  6  1.00390625 -> 1.0"))
        #expect(report.contains("  8  plab> cast bf16 3.14159265"))
        #expect(report.contains("- 9  3.14159265 -> 3.15"))
        #expect(report.contains("+ 9  3.14159265 -> 3.140625"))
        #expect(!result.transcript.contains("plab> seed"), "the replay stops at the first difference")
    }

    @Test func missingAndExtraOutputAreDifferences() throws {
        let header = "# plab 0.1.0 transcript\n# seed: 0\n# backend: portable\n"
        let missing = try Transcript(lines: lines(header + "plab> seed"), name: "m").replay(name: "m")
        #expect(missing.difference?.contains("+ 5  seed = 0") == true)
        #expect(missing.difference?.contains("- 5  (end of the recorded output)") == true)
        let extra = try Transcript(lines: lines(header + "plab> seed\nseed = 0\nmore"), name: "e").replay(name: "e")
        #expect(extra.difference?.contains("- 6  more") == true)
        #expect(extra.difference?.contains("+ 6  (end of the output)") == true)
    }

    @Test func volatileLinesMatchAnyVolatileLine() throws {
        let text = "# plab 0.1.0 transcript\n# seed: 0\n# backend: portable\nplab> accumulate 100 --format fp32 --addend 0.5\n100 × 0.5 in fp32, rounding nearest after every addition:\n  sum 50.0   exact 50   relative error 0%\n~ took 1 hour"
        #expect(try Transcript(lines: lines(text), name: "v").replay(name: "v").difference == nil)
        let unmarked = text.replacingOccurrences(of: "~ took 1 hour", with: "took 1 hour")
        #expect(try Transcript(lines: lines(unmarked), name: "v").replay(name: "v").difference != nil)
    }

    @Test func theHeaderDecidesSeedBackendAndSettings() throws {
        let text = "# plab 0.1.0 transcript\n# seed: 11\n# backend: portable\n# set: color off\nplab> show seed backend color --json\n{\"seed\":11,\"backend\":\"portable\",\"color\":false}"
        let transcript = try Transcript(lines: lines(text), name: "h")
        #expect(try transcript.replay(name: "h").difference == nil)
        let session = try transcript.makeSession(name: "h", registry: shellRegistry)
        #expect(session.backend.name == "portable")
    }

    @Test func aLibraryTranscriptFromAnotherMachineSaysSo() throws {
        for (library, build) in [("openblas", "Pentium; OpenBLAS 0.0.1"), ("onednn", "oneDNN 0.0.1 (sse41, OpenMP)")] {
            let text = "# plab 0.1.0 transcript\n# seed: 0\n# backend: \(library)\n# \(library): \(build)\nplab> seed\nseed = 1"
            let difference = try Transcript(lines: lines(text), name: "o").replay(name: "o").difference ?? ""
            #expect(difference.contains("note: this transcript was made with the \(library) backend on another build or processor (\(build))"))
        }
    }

    @Test func mangledTranscriptsGiveFileAndLine() {
        func error(_ text: String) -> String {
            do { _ = try Transcript(lines: lines(text), name: "bad.transcript").replay(name: "bad.transcript") } catch {
                return (error as? LabError)?.message ?? "\(error)"
            }
            return ""
        }
        #expect(error("hello\nplab> seed") == "bad.transcript:1: not a plab transcript: it should start with '# plab VERSION transcript'")
        #expect(error("") .hasPrefix("bad.transcript:1: not a plab transcript"))
        #expect(error("# plab 0.1.0 transcript\n# seed: x\n# backend: portable") == "bad.transcript:2: seed must be a non-negative integer, not 'x'")
        #expect(error("# plab 0.1.0 transcript\n# backend: portable") == "bad.transcript: the header has no '# seed: N' line")
        #expect(error("# plab 0.1.0 transcript\n# seed: 0") == "bad.transcript: the header has no '# backend: NAME' line")
        #expect(error("# plab 0.1.0 transcript\n# seed: 0\n# backend: cuda").hasPrefix("bad.transcript:3: backend must be one of onednn, openblas, portable, not 'cuda'"))
        #expect(error("# plab 0.1.0 transcript\n# seed: 0\n# backend: portable\n# set: nosuch 1") .hasPrefix("bad.transcript:4: unknown setting 'nosuch'"))
        #expect(error("# plab 0.1.0 transcript\n# seed: 0\n# backend: portable\n# set: color") == "bad.transcript:4: expected '# set: NAME VALUE', found '# set: color'")
        #expect(error("# plab 0.1.0 transcript\n# seed: 0\n# backend: portable\nstray output\nplab> seed").hasPrefix("bad.transcript:4: expected a 'plab> COMMAND' line after the header"))
        #expect(error("# plab 0.1.0 transcript\n# seed: 0\n# backend: portable\nplab> ") == "bad.transcript:4: 'plab> ' with no command")
    }

    /// The shipped sessions: each transcript in sessions/ replays identically, and each
    /// has its session file.
    @Test func everyTranscriptInSessionsReplaysIdentically() throws {
        let directory = packageRoot.appendingPathComponent("sessions")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".transcript") }.sorted()
        #expect(!names.isEmpty)
        for name in names {
            let path = directory.appendingPathComponent(name).path
            let transcript = try Transcript(lines: try readLines(ofFile: path), name: "sessions/" + name)
            #expect(transcript.header.backend == "portable", "\(name): sessions in sessions/ use the portable backend")
            #expect(!transcript.entries.isEmpty)
            let result = try transcript.replay(name: "sessions/" + name)
            #expect(result.difference == nil, "\(result.difference ?? "")")
            let session = directory.appendingPathComponent(name.replacingOccurrences(of: ".transcript", with: ".plab")).path
            #expect(FileManager.default.fileExists(atPath: session), "\(name) has no .plab session file")
        }
    }
}

/// State beyond settings reaches transcript headers through a registered restorer.
@Suite struct StateRestorerTests {
    /// A registry whose state is the metrics history: `note X` appends a row, and the
    /// restorer writes one `note` per row (or nil when a row has no x).
    static let registry: Registry = {
        var registry = shellRegistry
        registry.register(Command(name: "note", topic: .metrics, summary: "append a row",
                                  arguments: [.positional("X", .real(-1e9...1e9), "the value", optional: true)],
                                  examples: ["note 1"], restoresState: true) { context in
            if let x = context.arguments.real("X") { context.session.metrics.appendToTestRun(["x": x]) } else {
                context.session.metrics.appendToTestRun(["y": 0])
            }
        })
        registry.register(StateRestorer("the notes") { session in
            var commands: [String] = []
            for row in session.metrics.rows {
                guard let x = row["x"] else { return nil }
                commands.append("note \(x)")
            }
            return commands
        })
        return registry
    }()

    @Test func recordWritesStateThatReplayRebuilds() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("s.transcript").path
        let session = Session(registry: Self.registry)
        run("note 1.5", "note 2", "record \(path)", "history --json", "record stop", in: session)
        let lines = try readLines(ofFile: path)
        #expect(lines.map(\.text).contains("# state: note 1.5"))
        #expect(lines.map(\.text).contains("# state: note 2.0"))
        let transcript = try Transcript(lines: lines, name: path)
        #expect(try transcript.replay(name: path, registry: Self.registry).difference == nil)
        // Without the state lines the replay starts elsewhere and differs.
        let stripped = lines.filter { !$0.text.hasPrefix("# state:") }
        #expect(try Transcript(lines: stripped, name: path).replay(name: path, registry: Self.registry).difference != nil)
    }

    @Test func recordWarnsWhenStateCannotBeRebuilt() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let session = Session(registry: Self.registry)
        run("note", in: session)
        let r = runOne("record \(dir.appendingPathComponent("w.transcript").path)", in: session)
        #expect(r.lines.last == "warning: no command rebuilds the notes of this session, so a replay of this transcript starts without it")
    }

    @Test func aFailingStateLineIsAnErrorWithItsLine() {
        let text = "# plab 0.1.0 transcript\n# seed: 0\n# backend: portable\n# state: note abc\nplab> seed\nseed = 0"
        let lines = text.split(separator: "\n").enumerated().map { ScriptLine(number: $0.offset + 1, text: String($0.element)) }
        #expect(throws: LabError.self) { try Transcript(lines: lines, name: "t").replay(name: "t", registry: Self.registry) }
        do { _ = try Transcript(lines: lines, name: "t").replay(name: "t", registry: Self.registry) } catch {
            #expect((error as? LabError)?.message.hasPrefix("t:4: the header's '# state: note abc' cannot run: note: X must be a number") == true)
        }
    }
}

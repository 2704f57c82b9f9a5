import Foundation
import Testing
import Lab

/// Bad input: one clear line naming the culprit and what is accepted; the state unchanged.
@Suite struct ErrorTests {
    /// Runs a line that must fail on a session with some state; checks nothing changed.
    func expectFailure(_ line: String, contains parts: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        let session = shellSession()
        run("set backend portable", "seed 9", "accumulate 100", in: session)
        let before = StateSnapshot(session)
        let output = CollectedOutput()
        let outcome = session.execute(line, to: output)
        guard case .failed(let message) = outcome else {
            Issue.record("'\(line)' did not fail", sourceLocation: sourceLocation)
            return
        }
        #expect(!message.contains("\n"), "more than one line: \(message)", sourceLocation: sourceLocation)
        #expect(output.errors == [message], sourceLocation: sourceLocation)
        for part in parts {
            #expect(message.contains(part), "'\(message)' lacks '\(part)'", sourceLocation: sourceLocation)
        }
        #expect(StateSnapshot(session) == before, "'\(line)' changed the state", sourceLocation: sourceLocation)
    }

    @Test func unknownCommandSuggestsTheClosest() {
        expectFailure("fromats", contains: ["unknown command 'fromats'", "did you mean 'formats'?"])
        expectFailure("zzz", contains: ["unknown command 'zzz'", "try 'help'"])
    }

    /// An option, flag or key given twice is a mistake (which one was meant?), not "the last
    /// wins"; the command does not run.
    @Test func anOptionFlagOrKeyGivenTwiceIsRefused() {
        expectFailure("cast bf16 1 --saturate --saturate", contains: ["cast: --saturate is given twice; give it once"])
        expectFailure("cast bf16 1 --rounding zero --rounding=nearest", contains: ["cast: --rounding is given twice ('zero', then 'nearest'); give it once"])
        let s = Session()
        #expect(failure("rollout 4 --samples 2 --samples 3", in: s).contains("rollout: --samples is given twice ('2', then '3'); give it once"))
        #expect(failure("model new hidden=32 hidden=64", in: s).contains("model new: hidden is given twice; give each key once"))
        #expect(failure("precision rollout weights=bf16 weights=fp16", in: s).contains("weights is given twice"))
    }

    @Test func unknownSubcommandOptionAndEnumValueSuggestTheClosest() {
        expectFailure("record stpo", contains: ["record: unknown sub-command 'stpo'", "did you mean 'stop'?"])
        expectFailure("history cleer", contains: ["did you mean 'clear'?"])
        expectFailure("cast bf16 1 --bit", contains: ["cast: unknown option '--bit'", "did you mean '--bits'?", "--saturate"])
        expectFailure("cast bf16 1 --rounding neerest", contains: ["--rounding must be one of nearest, zero, stochastic, not 'neerest'", "did you mean 'nearest'?"])
        expectFailure("set backend portabel", contains: ["backend must be one of onednn, openblas, portable", "did you mean 'portable'?"])
        expectFailure("help fromats", contains: ["did you mean 'formats'?"])
        expectFailure("set seeed 1", contains: ["unknown setting 'seeed'", "did you mean 'seed'?"])
        expectFailure("export cvs x.csv", contains: ["FORMAT must be one of csv, jsonl", "did you mean 'csv'?"])
    }

    @Test func wrongArgumentCountOrType() {
        expectFailure("cast bf16", contains: ["cast: missing VALUE", "usage: cast FORMAT VALUE…"])
        expectFailure("set backend", contains: ["set: missing VALUE"])
        expectFailure("seed 1 2", contains: ["seed: unexpected argument '2'", "usage: seed [N]"])
        expectFailure("seed abc", contains: ["N must be a non-negative integer, not 'abc'"])
        expectFailure("cast bf16 1 --seed", contains: ["--seed needs a value"])
        expectFailure("cast bf16 1 --bits=yes", contains: ["--bits takes no value"])
        expectFailure("cast bf16 abc", contains: ["VALUE 1: 'abc' is not a number"])
        expectFailure("cast bf61 1", contains: ["unknown format 'bf61'; did you mean bf16?"])
        expectFailure("quit now", contains: ["quit: unexpected argument 'now'"])
    }

    @Test func outOfRange() {
        expectFailure("seed -1", contains: ["N must be a non-negative integer, not '-1'"])
        expectFailure("accumulate 0", contains: ["N must be an integer in 1…1000000000000, not '0'"])
        expectFailure("accumulate 10 --addend 1e40", contains: ["--addend must be a number in -1e+30…1e+30"])
        expectFailure("cast e9m30 1", contains: ["X in 2…8 and Y in 0…23"])
        expectFailure("set color maybe", contains: ["color must be on or off, not 'maybe'"])
    }

    @Test func missingOrUnusableFiles() throws {
        expectFailure("source /nonexistent/x.plab", contains: ["cannot use '/nonexistent/x.plab': no such file"])
        expectFailure("source /tmp", contains: ["it is a directory"])
        expectFailure("export csv /nonexistent/dir/m.csv", contains: ["no such directory '/nonexistent/dir'"])
        expectFailure("record /nonexistent/dir/t.transcript", contains: ["no such directory"])
    }

    @Test func binaryFileToSourceRunsNothing() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("binary.plab").path
        try Data("seed 5\n\u{0}\u{1}\u{2}garbage\nseed 6\n".utf8).write(to: URL(fileURLWithPath: path))
        expectFailure("source \(path)", contains: ["\(path):2: binary file"])
        let notUTF8 = dir.appendingPathComponent("latin1.plab").path
        try Data([0x73, 0x65, 0x65, 0x64, 0x20, 0xE9, 0x0A]).write(to: URL(fileURLWithPath: notUTF8))
        expectFailure("source \(notUTF8)", contains: ["\(notUTF8):1: not UTF-8 text"])
    }

    @Test func aTenMegabyteLineIsRefusedWhole() throws {
        let line = "cast bf16 " + String(repeating: "1", count: 10 << 20)
        expectFailure(line, contains: ["line is 10.0 MiB long; the limit is 1 MiB"])
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("long.plab").path
        try Data(("seed 5\n" + line + "\nseed 6\n").utf8).write(to: URL(fileURLWithPath: path))
        expectFailure("source \(path)", contains: ["\(path):2: line is longer than 1 MiB, the limit"])
    }

    @Test func sourceReportsFileAndLineAndStops() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("s.plab").path
        try "# comment\n\nseed 5\nfromats\nseed 6\n".write(toFile: path, atomically: true, encoding: .utf8)
        let session = shellSession()
        let message = failure("source \(path)", in: session)
        #expect(message == "source: \(path):4: unknown command 'fromats'; did you mean 'formats'? (try 'help')")
        #expect(session.seed == 5, "lines before the failing one ran, the one after did not")
    }

    @Test func sourceThatSourcesItselfStops() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("loop.plab").path
        try "source \(path)\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(failure("source \(path)").contains("nested 16 deep"))
    }

    @Test func aFailingCommandPutsSettingsBack() {
        // A command that changes a setting, then fails: the setting is restored.
        var registry = shellRegistry
        registry.register(Command(name: "half", topic: .settings, summary: "sets the seed, then fails", run: { context in
            try context.session.settings.set("seed", to: "99")
            throw LabError("failed after changing the seed")
        }))
        let session = Session(registry: registry)
        #expect(failure("half", in: session) == "half: failed after changing the seed")
        #expect(session.seed == 0)
    }

    @Test func recordingTwiceOrStoppingWhenNotRecording() throws {
        expectFailure("record stop", contains: ["record stop: not recording"])
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let session = shellSession()
        let a = dir.appendingPathComponent("a.transcript").path
        #expect(runOne("record \(a)", in: session).outcome == .done)
        #expect(failure("record \(dir.appendingPathComponent("b").path)", in: session).contains("already recording to \(a)"))
        #expect(session.isRecording)
    }
}

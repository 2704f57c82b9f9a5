import Foundation
import Testing
import Lab

@Suite struct CompletionTests {
    let session = shellSession()

    @Test func commandNames() {
        #expect(session.completions(for: "form") == ["formats"])
        #expect(session.completions(for: "s") == ["seed", "set", "show", "source"])
        #expect(session.completions(for: "").contains("accumulate"))
    }

    @Test func subcommandsOptionsAndValues() {
        #expect(session.completions(for: "record st") == ["stop"])
        #expect(session.completions(for: "history c") == ["clear"])
        #expect(session.completions(for: "cast bf16 1 --sa") == ["--saturate"])
        #expect(session.completions(for: "cast bf16 1 --rounding ") == ["nearest", "stochastic", "zero"])
        #expect(session.completions(for: "cast bf16 1 --rounding s") == ["stochastic"])
        #expect(session.completions(for: "cast ") == ["bf16", "e4m3", "e5m2", "fp16", "fp32"])
        #expect(session.completions(for: "export ") == ["csv", "jsonl", "slime", "verl"])
        #expect(session.completions(for: "accumulate 10 --format e4") == ["e4m3"])
    }

    @Test func settingNamesAndTheirValues() {
        #expect(session.completions(for: "set ") == ["backend", "color", "seed"])
        #expect(session.completions(for: "set backend ") == ["onednn", "openblas", "portable"])
        #expect(session.completions(for: "set color o") == ["off", "on"])
        #expect(session.completions(for: "show b") == ["backend"])
        #expect(session.completions(for: "help rec") == ["record"])
        #expect(session.completions(for: "help record ") == ["stop"])
    }

    @Test func filePaths() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try "".write(to: dir.appendingPathComponent("tour.plab"), atomically: true, encoding: .utf8)
        try "".write(to: dir.appendingPathComponent(".hidden"), atomically: true, encoding: .utf8)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("tours"), withIntermediateDirectories: true)
        let base = dir.path + "/"
        #expect(session.completions(for: "source \(base)to") == [base + "tour.plab", base + "tours/"])
        #expect(session.completions(for: "source \(base)") == [base + "tour.plab", base + "tours/"])
        #expect(session.completions(for: "source \(base).") == [base + ".hidden"])
        #expect(session.completions(for: "export csv \(base)tours/") == [])
    }

    @Test func nothingForUnknownCommandsOrFinishedArguments() {
        #expect(session.completions(for: "zzz ") == [])
        #expect(session.completions(for: "set backend portable ") == [])
    }
}

/// A command and a setting added the way the model, engine and RL modules will add theirs:
/// values in a registry, with no change to the parser, help, completion or loop.
@Suite struct RegistryExtensionTests {
    static let precision = Topic("Precision", order: 20)

    static func makeRegistry() -> Registry {
        var registry = shellRegistry
        registry.register(Setting(name: "temperature", kind: .real(0...10), default: .real(1), help: "sampling temperature"))
        registry.register(Command(
            name: "precision", topic: precision, summary: "show both engines' formats",
            arguments: [],
            subcommands: [
                Command(name: "rollout", topic: precision, summary: "set rollout formats",
                        arguments: [.assignments("FIELD=FORMAT", keys: [("weights", .format), ("kv", .format)], "formats to use")],
                        examples: ["precision rollout weights=e4m3"]) { context in
                    for (key, value) in context.arguments.assignments { context.print("\(key) -> \(value)") }
                },
            ],
            examples: ["precision"], reports: true) { context in
            context.report(["rollout": "bf16", "train": "fp32"]) { "rollout bf16 | train fp32" }
        })
        registry.register(PromptPart(.tag) { _ in "bf16|fp32" })
        registry.register(PromptPart(.status) { $0.settings.real("temperature") != 1 ? "T=\($0.settings.real("temperature"))" : nil })
        return registry
    }

    @Test func aRegisteredCommandParsesHelpsCompletesAndReports() throws {
        let session = Session(registry: Self.makeRegistry())
        #expect(runOne("precision", in: session).lines == ["rollout bf16 | train fp32"])
        #expect(try parseJSON(runOne("precision --json", in: session).lines[0])["train"] as? String == "fp32")
        #expect(runOne("precision rollout weights=e4m3 kv=bf16", in: session).lines == ["weights -> e4m3", "kv -> bf16"])
        #expect(failure("precision rollout wieghts=e4m3", in: session).contains("unknown key 'wieghts'; did you mean 'weights'?"))
        #expect(failure("precision rollout weights=e9m9", in: session).contains("out of range"))
        #expect(failure("precision rollout", in: session).contains("missing FIELD=FORMAT (keys: weights, kv)"))
        #expect(failure("precision rollot", in: session).contains("unknown sub-command 'rollot'; did you mean 'rollout'?"))
        #expect(runOne("help", in: session).lines.contains("Precision"))
        #expect(runOne("help precision", in: session).lines.contains { $0.contains("rollout FIELD=FORMAT…") })
        #expect(session.completions(for: "precision r") == ["rollout"])
        #expect(session.completions(for: "precision rollout ") == ["kv=", "weights="])
        #expect(session.completions(for: "precision rollout weights=e") == ["weights=e4m3", "weights=e5m2"])
    }

    @Test func aRegisteredSettingWorksWithSetShowAndThePrompt() throws {
        let session = Session(registry: Self.makeRegistry())
        #expect(session.prompt == "plab[bf16|fp32]> ")
        #expect(runOne("set temperature 0.7", in: session).lines == ["temperature = 0.7"])
        #expect(session.settings.real("temperature") == 0.7)
        #expect(session.prompt == "plab[bf16|fp32] T=0.7> ")
        #expect(failure("set temperature 11", in: session) == "set: temperature must be a number in 0…10, not '11'")
        #expect(try parseJSON(runOne("show temperature --json", in: session).lines[0])["temperature"] as? Double == 0.7)
        #expect(TranscriptHeader(session: session).lines.contains("# set: temperature 0.7"))
    }
}

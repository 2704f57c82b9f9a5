import Foundation
import Testing
import Lab

/// Each command's happy path, through the dispatcher with output injected.
@Suite struct CommandTests {
    @Test func castRoundsEachValue() {
        let session = shellSession()
        let r = runOne("cast bf16 1.00390625 1.01171875 0x3f800001", in: session)
        #expect(r.outcome == .done)
        #expect(r.lines == ["1.00390625 -> 1.0", "1.01171875 -> 1.015625", "0x3f800001 -> 1.0"])
        #expect(runOne("cast e4m3 500 0.3 --saturate", in: session).lines == ["500 -> 448.0", "0.3 -> 0.3125"])
        #expect(runOne("cast e4m3 448 0.3 --bits", in: session).lines == ["448 -> 0x7e", "0.3 -> 0x2a"])
        #expect(runOne("cast bf16 1.01171875 --rounding=zero", in: session).lines == ["1.01171875 -> 1.0078125"])
    }

    @Test func castStochasticUsesTheSessionSeedUnlessGivenOne() {
        let session = shellSession()
        let values = Array(repeating: "1.001", count: 32).joined(separator: " ")
        let a = runOne("cast bf16 \(values) --rounding stochastic", in: session).lines
        let explicit0 = runOne("cast bf16 \(values) --rounding stochastic --seed 0", in: session).lines
        run("seed 5", in: session)
        let b = runOne("cast bf16 \(values) --rounding stochastic", in: session).lines
        let explicit5 = runOne("cast bf16 \(values) --rounding stochastic --seed 5", in: session).lines
        #expect(a == explicit0)
        #expect(b == explicit5)
        #expect(a != b)
        #expect(Set(a) == ["1.001 -> 1.0", "1.001 -> 1.0078125"])
    }

    @Test func formatsListsNamedOrChosenFormats() {
        let session = shellSession()
        let all = runOne("formats", in: session).lines
        #expect(all.contains { $0.hasPrefix("e4m3") && $0.contains("448.0") })
        let some = runOne("formats e8m3", in: session).lines
        #expect(some.contains { $0.hasPrefix("e8m3") })
        #expect(!some.contains { $0.hasPrefix("fp16") })
    }

    @Test func setShowAndSeed() {
        let session = shellSession()
        #expect(runOne("set backend portable", in: session).lines == ["backend = portable"])
        #expect(session.backend.name == "portable")
        #expect(runOne("seed", in: session).lines == ["seed = 0"])
        #expect(runOne("seed 42", in: session).lines == ["seed = 42"])
        #expect(session.seed == 42)
        #expect(runOne("set seed 7", in: session).outcome == .done)
        #expect(session.seed == 7)
        #expect(runOne("set color off", in: session).lines == ["color = off"])
        let shown = runOne("show", in: session).lines
        #expect(shown[0].hasPrefix("setting"))
        #expect(shown.contains { $0.hasPrefix("backend") && $0.contains("portable") && $0.contains("openblas") })
        #expect(runOne("show seed", in: session).lines.count == 3)
    }

    @Test func accumulateStallsInBF16AndAppendsHistory() throws {
        let session = shellSession()
        let r = runOne("accumulate 10000", in: session)
        #expect(r.outcome == .done)
        #expect(r.lines[1].contains("sum 0.5 "))
        #expect(r.lines.contains { $0.contains("stopped changing after step 383") })
        #expect(session.metrics.count == 20)
        #expect(session.metrics.columns == ["step", "sum", "exact", "rel_error"])
        // Stochastic rounding stays near the exact sum (within 2 where nearest is 9.5
        // off), and is reproducible by seed.
        let s1 = try parseJSON(runOne("accumulate 10000 --rounding stochastic --json", in: session).lines[0])
        let s2 = try parseJSON(runOne("accumulate 10000 --rounding stochastic --json", in: session).lines[0])
        let sum = try #require(s1["sum"] as? Double), exact = try #require(s1["exact"] as? Double)
        #expect(abs(sum - exact) < 2)
        #expect(s2["sum"] as? Double == sum)
        run("seed 1", in: session)
        #expect(try parseJSON(runOne("accumulate 10000 --rounding stochastic --json", in: session).lines[0])["sum"] as? Double != sum)
    }

    @Test func historyAndExport() throws {
        let session = shellSession()
        #expect(runOne("history", in: session).lines[0].hasPrefix("no metrics yet"))
        let run = session.metrics.startRun(RunInfo(name: "a", settings: [RunSetting("preset", "bf16")]))
        session.metrics.append(["step": 1, "reward": 0.5], run: run)
        session.metrics.append(["step": 2, "reward": 0.75, "k3": 1e-4], run: run)
        let table = runOne("history", in: session).lines
        #expect(table[0].split(separator: " ") == ["run", "step", "reward", "k3"])
        #expect(table[3].split(separator: " ") == ["a", "2", "0.75", "1.000e-04"])
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let csv = dir.appendingPathComponent("m.csv").path
        let jsonl = dir.appendingPathComponent("m.jsonl").path
        #expect(runOne("export csv \(csv)", in: session).lines == ["wrote 2 rows to \(csv)"])
        #expect(try String(contentsOfFile: csv, encoding: .utf8) == "run,preset,step,reward,k3\na,bf16,1,0.5,\na,bf16,2,0.75,0.0001\n")
        #expect(runOne("export jsonl \(jsonl)", in: session).outcome == .done)
        let rows = try String(contentsOfFile: jsonl, encoding: .utf8).split(separator: "\n").map { try parseJSON(String($0)) }
        #expect(rows.count == 2)
        #expect(rows[1]["k3"] as? Double == 1e-4)
        #expect(rows[1]["run"] as? String == "a" && rows[1]["preset"] as? String == "bf16")
        #expect(rows[0]["k3"] == nil)
        #expect(runOne("history clear", in: session).lines == ["cleared 2 rows"])
        #expect(session.metrics.count == 0)
    }

    /// The flat storage keeps what the rows had: a cell a row lacks (a column seen before
    /// or after it) stays empty, and is not confused with NaN.
    @Test func historyRowsKeepTheirCellsAndGaps() {
        var history = MetricsHistory()
        let run = history.startRun(RunInfo(name: "r", settings: []))
        history.append(["a": 1, "b": .nan], run: run)
        history.append(["b": 2], run: run)
        history.append(["c": 3, "a": -.infinity], run: run)
        #expect(history.columns == ["a", "b", "c"])
        #expect(history.csv() == "run,a,b,c\nr,1,nan,\nr,,2,\nr,-inf,,3\n")
        #expect(history.count == 3)
        #expect(history.row(1) == ["b": 2])
        #expect(history.lastRows(2) == [["b": 2], ["c": 3, "a": -.infinity]])
        #expect(history.lastRows(10).count == 3)
        #expect(history.row(0)["b"]?.isNaN == true && history.row(0)["c"] == nil)
        history.removeAll()
        #expect(history.count == 0 && history.columns.isEmpty && history.runs.isEmpty && history.csv() == "run\n")
    }

    /// Over every registered command, the model's and RL's included.
    @Test func helpListsEveryVisibleCommandByTopicOneLineEach() {
        let session = Session()
        let lines = runOne("help", in: session).lines
        for command in session.registry.commands where !command.hidden {
            #expect(lines.filter { $0.hasPrefix("  \(command.name) ") }.count == 1, "\(command.name)")
        }
        let topics = ["Numbers", "Settings", "Metrics", "Session"]
        let positions = topics.map { topic in lines.firstIndex(of: topic) ?? -1 }
        #expect(positions == positions.sorted() && !positions.contains(-1))
    }

    /// Over every registered command, the model's and RL's included.
    @Test func helpOfACommandShowsUsageEveryArgumentAndAnExample() {
        let session = Session()
        for command in session.registry.commands where !command.hidden {
            let text = runOne("help \(command.name)", in: session).lines.joined(separator: "\n")
            #expect(text.hasPrefix(command.name), "\(command.name)")
            if command.run != nil {
                for argument in command.allArguments {
                    #expect(text.contains(argument.isOption ? "--" + argument.name : argument.name), "\(command.name) \(argument.name)")
                }
            }
            #expect(text.contains("Example"), "\(command.name) has no example")
        }
        #expect(runOne("cast --help", in: session).lines.first?.hasPrefix("cast FORMAT VALUE…") == true)
        #expect(runOne("help record stop", in: session).lines.first == "record stop")
        #expect(runOne("help backend", in: session).lines.first?.hasPrefix("backend: matrix products") == true)
    }

    /// Every example in every command's help parses (so none can rot). Examples that
    /// write files are parsed, not run.
    @Test func everyExampleParses() throws {
        let registry = Registry.standard
        for command in registry.commands {
            for example in command.examples + command.subcommands.flatMap(\.examples) {
                do { try registry.validate(example) } catch {
                    // A file argument that does not exist here is fine; anything else is not.
                    #expect(error.message.contains("cannot use"), "\(example): \(error.message)")
                }
            }
        }
    }

    @Test func sourceRunsAFilesLinesWithoutEchoingThem() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("s.plab").path
        try "# settings\nseed 5\n\ncast bf16 1.00390625\nquit\nseed 6\n".write(toFile: path, atomically: true, encoding: .utf8)
        let session = shellSession()
        let output = CollectedOutput()
        #expect(session.execute("source \(path)", to: output) == .quit, "a quit in the file ends the session")
        #expect(output.commands == ["source \(path)"])
        #expect(output.lines == ["seed = 5", "1.00390625 -> 1.0"])
        #expect(session.seed == 5)
    }

    @Test func quitAndExitEndTheSession() {
        #expect(runOne("quit", in: shellSession()).outcome == .quit)
        #expect(runOne("exit", in: shellSession()).outcome == .quit)
    }

    @Test func blankLinesAndCommentsDoNothing() {
        let output = CollectedOutput()
        let session = shellSession()
        #expect(run("", "   ", "# a comment", in: session, output: output) == [.done, .done, .done])
        #expect(output.lines.isEmpty && output.commands.isEmpty)
    }
}

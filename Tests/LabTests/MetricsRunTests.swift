import Foundation
import Lab
import Testing

/// Runs: every metrics row in a named run, each run counting its own steps; `history`
/// filters by run and fits 100 columns; `algo NAME` chooses; `compare` gives ratios.
@Suite struct MetricsRunTests {
    /// A lab session with small RL steps (4 prompts × 2 samples).
    func smallSession() -> Session {
        let s = Session()
        run("set backend portable", "set prompts 4", "set samples 2", in: s)
        return s
    }

    @Test func stepsJoinARunUntilThePresetChangesAndEachRunCountsItsOwnSteps() throws {
        let s = smallSession()
        let first = runOne("step 2", in: s).lines
        #expect(first[0].hasPrefix("run bf16-grpo-s0: preset bf16, algo grpo, seed 0"))
        #expect(first[1].hasPrefix("step 1: reward") && first[2].hasPrefix("step 2: reward"))
        run("precision preset fp16", in: s)
        let json = try parseJSON(runOne("step --json", in: s).lines[0])
        #expect(json["run"] as? String == "fp16-grpo-s0")
        #expect(json["step"] as? Int == 1)
        #expect(json["model_step"] as? Int == 3)
        #expect(s.metrics.runs.map(\.name) == ["bf16-grpo-s0", "fp16-grpo-s0"])
        #expect(s.metrics.runs.map(\.rows) == [2, 1])
        #expect((0..<3).map { s.metrics.row($0)["step"] } == [1, 2, 1])
        // The same settings again, after a new model: a new run, numbered.
        run("precision preset bf16", "model new", in: s)
        #expect(runOne("step", in: s).lines[0].hasPrefix("run bf16-grpo-s0-2:"))
        // A change of algorithm or seed starts a run too.
        run("algo gspo", in: s)
        #expect(runOne("step", in: s).lines[0].hasPrefix("run bf16-gspo-s0:"))
        run("seed 3", in: s)
        #expect(runOne("step", in: s).lines[0].hasPrefix("run bf16-gspo-s3:"))
        #expect(s.metrics.runs.count == 5)
    }

    @Test func runNameNamesTheNextRunAndIsChecked() throws {
        let s = smallSession()
        run("step", in: s)
        #expect(runOne("run mine", in: s).lines == ["the next RL step starts run mine"])
        #expect(runOne("step", in: s).lines[0].hasPrefix("run mine: preset bf16"))
        #expect(failure("run mine", in: s) == "run: run mine exists; choose another name (run lists the runs)")
        #expect(failure("run a,b", in: s) == "run: run name 'a,b': use 1–64 letters, digits and . _ - + (no spaces or commas)")
        let listing = try parseJSON(runOne("run --json", in: s).lines[0])
        #expect(listing["current"] as? String == "mine")
        let runs = try #require(listing["runs"] as? [[String: Any]])
        #expect(runs.map { $0["name"] as? String } == ["bf16-grpo-s0", "mine"])
        #expect((runs[1]["settings"] as? [String: Any])?["algo"] as? String == "grpo")
    }

    @Test func historyFiltersByRunFitsAHundredColumnsAndExportCarriesTheRun() throws {
        let s = smallSession()
        run("step", "precision preset fp16", "step 2", in: s)
        let table = runOne("history", in: s).lines
        let tableEnd = try #require(table.firstIndex { $0.contains("more columns") })
        #expect(table[..<tableEnd].allSatisfy { $0.count <= 100 })
        #expect(table[0].split(separator: " ").prefix(6) == ["run", "step", "reward", "accuracy", "k3", "mean_abs_dlogp"])
        #expect(table[2].hasPrefix("bf16-grpo-s0 ") && table[3].hasPrefix("fp16-grpo-s0 "))
        let all = runOne("history --all", in: s).lines
        #expect(all[0].contains("ess") && all[0].count > 100)
        let filtered = try parseJSON(runOne("history --run fp16-grpo-s0 --json", in: s).lines[0])
        let rows = try #require(filtered["rows"] as? [[String: Any]])
        #expect(rows.count == 2 && rows.allSatisfy { $0["run"] as? String == "fp16-grpo-s0" })
        #expect(filtered["count"] as? Int == 3 && filtered["shown"] as? Int == 2)
        #expect(failure("history --run nope", in: s) == "history: no run 'nope' (runs: bf16-grpo-s0, fp16-grpo-s0)")
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let csv = dir.appendingPathComponent("h.csv").path
        run("export csv \(csv)", in: s)
        let lines = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n")
        #expect(lines[0].hasPrefix("run,preset,algo,seed,task,model,lr,prompts,samples,temperature,step,reward,"))
        #expect(lines[3].hasPrefix("fp16-grpo-s0,fp16,grpo,0,addition digits=3,"))
    }

    @Test func algoChoosesTheAlgorithmAndHelpAlgoShowsItsFormula() throws {
        let s = Session()
        #expect(runOne("algo token-tis", in: s).lines[0] == "algo = token-tis (token-level TIS)")
        #expect(s.settings.text("algo") == "token-tis")
        #expect(failure("algo nonsense", in: s).hasPrefix("algo: algo must be"))
        #expect(s.settings.text("algo") == "token-tis")
        let help = runOne("help algo seq-mis", in: s).lines
        #expect(help[0] == "seq-mis — sequence-level MIS")
        #expect(help[1].contains("rho_i * 1[rho_i <= C_seq]"))
        #expect(failure("help algo nonsense", in: s).hasPrefix("help: unknown algorithm 'nonsense'"))
    }

    @Test func compareRatiosAreMultiplesOfTheFirstColumnWhereTheyMeanSomething() {
        #expect(ratioText(1, over: 8) == "0.125×")
        #expect(ratioText(62.1, over: 1) == "62.1×")
        #expect(ratioText(-1e-3, over: -2e-3) == "0.5×")
        #expect(ratioText(1, over: -2) == "-")
        #expect(ratioText(0, over: -2) == "-")
        #expect(ratioText(1, over: 0) == "-")
        #expect(ratioText(.nan, over: 1) == "-")
    }

    /// A step's timing is on its line for people and out of transcripts.
    @Test func timedLinesKeepTheirFigureOutOfTranscripts() {
        let s = smallSession()
        var transcript: [String] = []
        let writer = TranscriptWriter { transcript.append($0) }
        let collected = CollectedOutput()
        s.execute("step", to: writer)
        s.execute("step", to: collected)
        #expect(transcript[2].hasPrefix("step 1: reward") && !transcript[2].hasSuffix(" s)"))
        #expect(collected.lines[0].hasPrefix("step 2: reward") && collected.lines[0].hasSuffix(")"))
        #expect(collected.lines[0].contains("  ("))
    }
}

import Foundation
import Testing
import Lab

/// `--json`: exactly one JSON object on one line, parsed back and checked.
@Suite struct JSONTests {
    /// Runs `line`, checks it printed exactly one line that parses as a JSON object.
    func report(_ line: String, in session: Session = shellSession()) throws -> [String: Any] {
        let output = CollectedOutput()
        #expect(session.execute(line, to: output) == .done, "\(output.errors)")
        #expect(output.lines.count == 1, "\(line) printed \(output.lines.count) lines")
        #expect(output.jsonLines == output.lines)
        return try parseJSON(output.lines.first ?? "")
    }

    /// Over every registered reporting command, the model's and RL's included: the first
    /// example that is not already --json, run with --json.
    @Test func everyReportingCommandPrintsOneObject() throws {
        let session = Session()
        session.metrics.appendToTestRun(["step": 1, "reward": 0.5])
        for command in session.registry.commands where command.reports {
            let example = try #require(command.examples.first { !$0.contains("--json") }, "\(command.name)")
            let object = try report(example + " --json", in: session)
            #expect(!object.isEmpty, "\(example)")
        }
    }

    @Test func castKeys() throws {
        let object = try report("cast e4m3 500 0.3 --saturate --json")
        #expect(object["format"] as? String == "e4m3")
        #expect(object["rounding"] as? String == "nearest")
        #expect(object["saturate"] as? Bool == true)
        #expect(object["inputs"] as? [String] == ["500", "0.3"])
        #expect(object["results"] as? [String] == ["448.0", "0.3125"])
    }

    @Test func formatsKeys() throws {
        let formats = try report("formats fp16 e4m3 --json")["formats"] as! [[String: Any]]
        #expect(formats.map { $0["name"] as? String } == ["fp16", "e4m3"])
        #expect(formats[0]["max_finite"] as? Double == 65504)
        #expect(formats[0]["min_subnormal"] as? Double == 5.9604645e-08)
        #expect(formats[1]["infinity"] as? Bool == false)
        #expect(formats[1]["bias"] as? Int == 7)
    }

    @Test func showSeedHistoryHelpKeys() throws {
        let session = shellSession()
        run("seed 3", "set backend portable", in: session)
        let show = try report("show --json", in: session)
        #expect(show["seed"] as? Int == 3)
        #expect(show["backend"] as? String == "portable")
        #expect(show["color"] as? Bool == true)
        #expect(try report("seed --json", in: session)["seed"] as? Int == 3)
        run("accumulate 1000", in: session)
        let history = try report("history 2 --json", in: session)
        #expect(history["count"] as? Int == 20)
        #expect(history["columns"] as? [String] == ["step", "sum", "exact", "rel_error"])
        let rows = history["rows"] as! [[String: Any]]
        #expect(rows.map { $0["step"] as? Double } == [950, 1000])
        let help = try report("help --json", in: session)
        #expect((help["commands"] as! [[String: Any]]).contains { $0["name"] as? String == "cast" })
        let castHelp = try report("help cast --json", in: session)
        #expect(castHelp["usage"] as? String == "cast FORMAT VALUE… [--rounding nearest|zero|stochastic] [--seed N] [--saturate] [--bits] [--json]")
    }

    @Test func accumulateKeys() throws {
        let object = try report("accumulate 10000 --json")
        for key in ["n", "format", "rounding", "addend", "addend_in_format", "sum", "exact", "relative_error", "last_change"] {
            #expect(object[key] != nil, "missing \(key)")
        }
        #expect(object["sum"] as? Double == 0.5)
        #expect(object["last_change"] as? Int == 383)
    }

    @Test func reportsInJSONMakesEveryReportingCommandAnswerInJSON() throws {
        let session = shellSession()
        session.reportsInJSON = true
        let output = CollectedOutput()
        run("seed 4", "cast bf16 1", "set color off", in: session, output: output)
        #expect(output.jsonLines.count == 2)
        #expect(output.lines.count == 3, "set is not a reporting command and prints text")
    }
}

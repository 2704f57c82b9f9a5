import Foundation
import Lab
import Testing

/// The RL commands through the dispatcher, on the shipped base model.
@Suite struct RLCommandTests {
    func session() -> Session {
        let s = Session()
        run("set backend portable", "set prompts 4", "set samples 4", in: s)
        return s
    }

    @Test func stepAndEvalReportTheKeysScriptsRelyOn() throws {
        let s = session()
        let step = runOne("step 2 --json", in: s)
        #expect(step.errors.isEmpty, "\(step.errors)")
        #expect(step.lines.count == 2) // one object per step
        for (i, line) in step.lines.enumerated() {
            let object = try parseJSON(line)
            for key in ["step", "reward", "accuracy", "k3", "mean_abs_dlogp", "grad_norm", "loss_scale", "skipped"] {
                #expect(object[key] != nil, "step JSON lacks \(key)")
            }
            #expect(object["step"] as? Int == i + 1)
        }
        #expect(s.metrics.count == 2)
        let eval = runOne("eval 8 --greedy --json", in: s)
        let object = try parseJSON(eval.lines[0])
        for key in ["n", "accuracy", "reward", "mean_length"] { #expect(object[key] != nil, "eval JSON lacks \(key)") }
        #expect(object["n"] as? Int == 8)
    }

    @Test func theSameSeedGivesTheSameSteps() throws {
        let a = runOne("step 2 --json", in: session()).lines
        let b = runOne("step 2 --json", in: session()).lines
        #expect(a == b && a.count == 2)
    }

    @Test func badRLInputChangesNothing() {
        let s = session()
        #expect(failure("set lr -1", in: s) == "set: lr must be a number in 0…1, not '-1'")
        #expect(failure("set lr 0", in: s).contains("lr must be in (0, 1] (got 0.0)"))
        #expect(failure("set samples 0", in: s) == "set: samples must be an integer in 1…1024, not '0'")
        #expect(failure("set token_cap 0.5", in: s).contains("at least 1"))
        #expect(failure("set algo grpoo", in: s) == "set: algo must be one of pg, grpo, drgrpo, gspo, token-tis, seq-tis, seq-mis, pg-seq-is, not 'grpoo'; did you mean 'grpo'?")
        #expect(runOne("set algo tis", in: s).lines == ["algo = token-tis"], "an alias stands for its name")
        #expect(failure("set max_len 0", in: s).contains("max_len must be auto or an integer in 1…192"))
        #expect(failure("set loss_scale fast", in: s).contains("loss_scale must be dynamic or a number in 1…"))
        run("set algo grpo", in: s)
        #expect(failure("task division", in: s).contains("division"))
        #expect(s.settings.text("lr") == "0.0003")
        #expect(runOne("task", in: s).lines == ["task: addition digits=3; sanity set: 541 prompts"])
    }

    @Test func algoExplainsEveryAlgorithm() {
        let out = runOne("help algo", in: session()).lines.joined(separator: "\n")
        for name in ["pg", "grpo", "drgrpo", "gspo", "token-tis", "seq-tis", "seq-mis", "pg-seq-is"] {
            #expect(out.contains("\(name) — "), "algo lacks \(name)")
        }
    }
}

import Foundation
import Lab
import Testing

// Steps skipped again and again say why and what would cure it; `set loss_scale dynamic`
// after a static scale starts again from 2^16.

/// An FP16 session on the base model, small steps, portable backend.
private func fp16Session() -> Session {
    let s = Session()
    run("set backend portable", "precision preset fp16", "set prompts 8", "set samples 4", in: s)
    return s
}

@Suite struct SkippedStepTests {
    /// lr 1 in FP16: after two updates the weights are large enough that the FP16 forward
    /// overflows at layer 0; every later step is skipped without touching the weights.
    /// From the second skip in a row the output says the inf/NaN is in the forward
    /// activations, not the gradients, and that the cure is reloading and a lower lr.
    @Test func repeatedForwardSkipsSayWhereAndWhatCures() throws {
        let s = fp16Session()
        run("set lr 1", in: s)
        let out = runOne("step 6", in: s)
        #expect(out.errors.isEmpty, "\(out.errors)")
        let steps = out.lines.filter { $0.hasPrefix("step ") }
        let skipped = steps.filter { $0.contains("SKIPPED") }
        #expect(skipped.count >= 3, "lr 1 in FP16 should blow the forward up: \(steps)")
        #expect(skipped.allSatisfy { $0.contains("non-finite values appear at the output of layer") })
        let advice = out.lines.filter { $0.contains("steps in a row skipped") }
        #expect(advice.count == 1, "advice once per command: \(out.lines)")
        if let line = advice.first {
            #expect(line.contains("the non-finite values appear in the forward activations, not in the gradients"))
            #expect(line.contains("`model load` the last checkpoint") && line.contains("lower `lr` (now 1.0)"))
        }
        #expect(skipped.last?.contains("\(skipped.count) in a row") == true, "\(skipped)")

        // The next command goes on counting, and says it again; JSON carries it on each step.
        let json = try parseJSON(runOne("step 1 --json", in: s).lines[0])
        #expect(json["skip_cause"] as? String == "forward")
        #expect(json["skipped_in_a_row"] as? Int == skipped.count + 1)
        #expect((json["skip_advice"] as? String)?.contains("forward activations") == true)
    }

    /// A static loss scale far too large: the forward is finite, the FP16 gradients
    /// overflow at every step. The advice names the static scale, not the forward.
    @Test func repeatedGradientSkipsAtAStaticScaleBlameTheScale() throws {
        let s = fp16Session()
        run("set loss_scale 1e30", in: s)
        let out = runOne("step 3", in: s)
        #expect(out.errors.isEmpty, "\(out.errors)")
        #expect(out.lines.filter { $0.contains("SKIPPED (inf/NaN in the FP16 gradients") }.count == 3, "\(out.lines)")
        let advice = out.lines.filter { $0.contains("steps in a row skipped") }
        #expect(advice.count == 1)
        #expect(advice.first?.contains("the FP16 gradients overflow at the static loss scale") == true, "\(advice)")
        #expect(advice.first?.contains("`set loss_scale dynamic`") == true)
        #expect(!out.lines.joined().contains("forward activations"))
    }


    @Test func dynamicAfterAStaticScaleStartsFrom65536() throws {
        let s = fp16Session()
        run("set loss_scale 8", in: s)
        #expect(try parseJSON(runOne("step 1 --json", in: s).lines[0])["loss_scale"] as? Double == 8)
        run("set loss_scale dynamic", in: s)
        let json = try parseJSON(runOne("step 1 --json", in: s).lines[0])
        #expect(json["loss_scale"] as? Double == 65536, "dynamic scaling starts from 2^16, not from the static 8")
    }
}

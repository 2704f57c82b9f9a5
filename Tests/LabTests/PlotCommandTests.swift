import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Lab
import Testing

/// The `plot` commands draw session data: the last rollout, the last compare, the history by
/// run. The drawing itself is tested in PlotTests; here, that the right data reaches it,
/// that --svg and `report` write what was drawn, and that bad requests change nothing.
@Suite struct PlotCommandTests {
    func session() -> Session {
        let s = Session()
        run("set backend portable", "set prompts 8", "set samples 2", in: s)
        return s
    }

    /// Whether `text` is well-formed XML.
    func wellFormed(_ text: String) -> Bool { XMLParser(data: Data(text.utf8)).parse() }

    func count(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

    @Test func scatterDrawsEverySampledTokenAndWritesTheSameFigureAsSVG() throws {
        let s = session()
        run("rollout", in: s)
        let tokens = try #require(s.lab.lastPairs).reduce(0) { $0 + $1.count }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("scatter.svg").path
        let out = runOne("plot scatter --svg \(path)", in: s)
        #expect(out.outcome == .done)
        #expect(out.lines.allSatisfy { $0.count <= 80 })   // not a terminal: 80 columns
        #expect(out.lines.contains("\(tokens) tokens; on the diagonal the engines agree"))
        #expect(out.lines.last == "wrote \(path)")
        let svg = try String(contentsOfFile: path, encoding: .utf8)
        #expect(wellFormed(svg))
        #expect(svg.contains("log μ(token) (nats)") && svg.contains("log π(token) (nats)"))
        // One marker per distinct pixel: at most one per token, at least one.
        let markers = count("<circle", in: svg)
        #expect(markers >= 1 && markers <= tokens)
        // The same data gives the same bytes and the same text.
        #expect(runOne("plot scatter", in: s).lines == Array(out.lines.dropLast()))
    }

    @Test func metricsPlotsDrawOneLinePerRunOnALogScaleWhereTheValuesSpanDecades() throws {
        let s = session()
        run("step 2", "precision preset fp16", "step 2", in: s)
        let out = runOne("plot reward k3", in: s).lines
        #expect(out.contains { $0.contains("k3 (nats, log scale)") })
        #expect(out.contains { $0.contains("bf16-grpo-s0") && $0.contains("fp16-grpo-s0") })
        let one = runOne("plot reward --runs fp16-grpo-s0", in: s).lines
        #expect(!one.contains { $0.contains("bf16-grpo-s0") })
        #expect(failure("plot rewrd", in: s).hasPrefix("plot: no column 'rewrd'; did you mean 'reward'?"))
        #expect(failure("plot reward --runs nope", in: s).hasPrefix("plot: no run 'nope'"))
    }

    @Test func rolloutPlotsNeedARolloutAndComparePanelsShareTheirRanges() throws {
        let s = session()
        #expect(failure("plot scatter", in: s) == "plot scatter: no rollout yet; run 'rollout' first")
        #expect(failure("plot hist --compare", in: s) == "plot hist: no compare yet; run 'compare bf16 fp16' first")
        run("compare bf16 fp16", in: s)
        let out = runOne("plot seqratio --compare", in: s).lines
        // Two panels, titled by preset, each with its own fitted slope.
        #expect(out.filter { $0.trimmingCharacters(in: .whitespaces) == "bf16" || $0.trimmingCharacters(in: .whitespaces) == "fp16" }.count == 2)
        #expect(out.filter { $0.hasPrefix("fitted slope") }.count == 2)
        for command in ["plot hist --compare", "plot positions --compare", "plot scatter --compare --prob"] {
            #expect(runOne(command, in: s).outcome == .done, "\(command)")
        }
        run("rollout", in: s)
        #expect(runOne("plot trace bf16 fp16", in: s).lines.contains { $0.hasPrefix("stages: 0 embedding, 1 layer 0") })
    }

    @Test func asciiWhenUnicodeIsOff() {
        let s = session()
        run("rollout", "set unicode off", in: s)
        let lines = runOne("plot hist", in: s).lines
        #expect(!lines.isEmpty)
        // Only the labels may hold non-ASCII (μ, π, −); the drawing itself is ASCII.
        let drawing = lines.filter { $0.contains("|") || $0.contains("+") }
        #expect(!drawing.isEmpty && drawing.allSatisfy { $0.unicodeScalars.allSatisfy { $0.isASCII || "μπ−Δ‖".unicodeScalars.contains($0) } })
    }

    @Test func reportHoldsEachCommandAndOneSVGPerPlot() throws {
        let s = session()
        run("rollout", "plot scatter", "plot hist", "mismatch", in: s)
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("session.html").path
        #expect(runOne("report \(path)", in: s).lines == ["wrote \(path): 7 commands, 2 figures"])
        let html = try String(contentsOfFile: path, encoding: .utf8)
        #expect(count("<svg", in: html) == 2)
        #expect(html.contains("mismatch: ") && html.contains("plot hist"))
        #expect(!html.contains("report \(path)"))
        #expect(!html.contains("http://") && !html.contains("https://") && !html.contains("<script"))
        #expect(wellFormed(html))
    }
}

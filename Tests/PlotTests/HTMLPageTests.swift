import Foundation
import Plot
import Testing

/// The report page: self-contained, escaped, well-formed, deterministic.
@Suite struct HTMLPageTests {
    var page: HTMLPage {
        HTMLPage(title: "Report <1> & \"more\"", blocks: [
            .heading("Mismatch & drift"),
            .command("rollout 16 --note \"<b>\""),
            .output("\u{1B}[34m⣀⡠\u{1B}[0m done <ok> & \u{07}bell\n"),
            .svg(Figure(SampleCharts.scatter).svg()),
            .note("Points on the dashed line: both engines agree. 'Quotes' & <tags> stay text."),
            .svg(Figure(title: "two", panels: [SampleCharts.lines, SampleCharts.histogram]).svg()),
        ])
    }

    @Test func wellFormedWithOneSVGPerBlock() throws {
        let html = page.render()
        #expect(html.hasPrefix("<!DOCTYPE html>\n<html lang=\"en\">\n"))
        let root = try XMLNode.parse(html)
        #expect(root.name == "html")
        #expect(root.elements("svg").count == 2)
        #expect(root.elements("figure").count == 2)
        #expect(!html.contains("<?xml"))                       // declarations stripped when inlined
        #expect(root.elements("title").first?.text == "Report <1> & \"more\"")
        #expect(root.elements("h1").first?.text == "Report <1> & \"more\"")
        #expect(root.elements("h2").map(\.text) == ["Mismatch & drift"])
    }

    @Test func selfContained() {
        let html = page.render()
        for reference in ["http", "src=", "href=", "url(", "@import", "<script", "<link"] {
            #expect(!html.contains(reference), "\(reference)")
        }
        #expect(html.contains("<style>"))
    }

    @Test func commandsOutputsAndNotesAreEscapedText() throws {
        let root = try XMLNode.parse(page.render())
        let pres = root.elements("pre")
        let command = try #require(pres.first { $0.attributes["class"] == "command" })
        #expect(command.elements("span").map { $0.attributes["class"] } == ["prompt"])
        #expect(command.elements("span").map(\.text) == ["plab> "])
        #expect(command.text == "rollout 16 --note \"<b>\"")
        let output = try #require(pres.first { $0.attributes["class"] == "output" })
        #expect(output.text == "⣀⡠ done <ok> & bell")           // colours and the control character removed
        #expect(root.elements("p").map(\.text) == ["Points on the dashed line: both engines agree. 'Quotes' & <tags> stay text."])
    }

    @Test func deterministic() {
        #expect(page.render() == page.render())
    }

    @Test func onlySVGIsInlined() throws {
        let bad = HTMLPage(title: "t", blocks: [
            .svg("<script>alert(1)</script>"),
            .svg("<svg onload=\"alert(1)\"></svg>"),
            .svg("<svg><image href=\"http://example.com/x.png\"/></svg>"),
        ])
        let html = bad.render()
        let root = try XMLNode.parse(html)
        #expect(root.elements("svg").isEmpty)
        #expect(root.elements("pre").map(\.text) == ["<script>alert(1)</script>", "<svg onload=\"alert(1)\"></svg>",
                                                     "<svg><image href=\"http://example.com/x.png\"/></svg>"])
    }
}

/// Writes a sample report for scripts/browser-check to the path in PLAB_SAMPLE_REPORT:
///
///     PLAB_SAMPLE_REPORT=/tmp/plab-sample.html swift test -c release --skip-build --filter PlotTests.SamplePage
///     scripts/browser-check /tmp/plab-sample.html 3
@Suite struct SamplePage {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["PLAB_SAMPLE_REPORT"] != nil))
    func write() throws {
        let path = try #require(ProcessInfo.processInfo.environment["PLAB_SAMPLE_REPORT"])
        let terminal = TerminalStyle(width: 72, height: 12)
        let page = HTMLPage(title: "PrecisionLab sample report", blocks: [
            .note("A sample of every kind of block, drawn from fixed data: what `report` pages look like."),
            .heading("Where the engines disagree"),
            .command("plot scatter"),
            .output(Figure(SampleCharts.scatter).terminal(terminal)),
            .svg(Figure(SampleCharts.scatter).svg()),
            .heading("How far apart"),
            .command("plot hist --svg mismatch.svg"),
            .output(Figure(SampleCharts.histogram).terminal(terminal)),
            .svg(Figure(SampleCharts.histogram).svg()),
            .heading("Training"),
            .command("plot loss --runs train,eval"),
            .svg(Figure(title: "a run", panels: [SampleCharts.lines, SampleCharts.notFinite]).svg()),
            .note("Gaps in a line are steps whose value was not finite; the note under the chart counts them."),
        ])
        let html = page.render()
        try html.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try XMLNode.parse(html).elements("svg").count == 3)
    }
}

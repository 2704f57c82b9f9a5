import Foundation
import Plot
import Testing

/// The terminal renderer: golden pictures (inspected by eye before they were written down),
/// widths, colour, and the cases with nothing or little to draw.
@Suite struct TerminalTests {
    /// `figure` in `style`, without its final newline (the goldens are multi-line literals).
    func draw(_ chart: Chart, _ style: TerminalStyle) -> String {
        let text = Figure(chart).terminal(style)
        #expect(text.hasSuffix("\n"))
        return String(text.dropLast())
    }

    /// Compares with a golden, printing both on a difference.
    func expectGolden(_ actual: String, _ golden: String, _ name: String) {
        #expect(actual == golden, "\(name) differs:\n\(actual)\n--- golden:\n\(golden)")
    }

    @Test func twoLinesWithoutColourUseOneGlyphPerSeries() {
        expectGolden(draw(SampleCharts.lines, TerminalStyle(width: 60, height: 10)), Goldens.linesUnicode, "lines")
    }

    @Test func twoLinesInColourUseBrailleAndANSIColours() {
        let text = draw(SampleCharts.lines, TerminalStyle(width: 60, height: 10, color: true))
        #expect(text.contains("\u{1B}[34m") && text.contains("\u{1B}[31m"))      // blue train, red eval
        expectGolden(stripANSI(text), Goldens.linesColor, "lines in colour")
        for line in text.split(separator: "\n") { #expect(stripANSI(String(line)).count <= 60) }
        // Without colour, no escape sequence at all.
        for chart in SampleCharts.all {
            #expect(!Figure(chart).terminal(TerminalStyle(width: 60, height: 10)).contains("\u{1B}"))
        }
    }

    @Test func scatterWithDiagonalAndDensityShades() {
        expectGolden(draw(SampleCharts.scatter, TerminalStyle(width: 60, height: 12)), Goldens.scatter, "scatter")
    }

    @Test func histogramWithLogCounts() {
        expectGolden(draw(SampleCharts.histogram, TerminalStyle(width: 60, height: 8)), Goldens.histogram, "histogram")
    }

    @Test func asciiFallback() {
        let text = draw(SampleCharts.scatter, TerminalStyle(width: 60, height: 12, unicode: false))
        expectGolden(text, Goldens.scatterASCII, "ASCII scatter")
        #expect(text.unicodeScalars.allSatisfy { $0.isASCII })
        for chart in SampleCharts.all {
            #expect(Figure(chart).terminal(TerminalStyle(width: 60, height: 10, unicode: false)).unicodeScalars.allSatisfy { $0.isASCII })
        }
    }

    @Test func narrowWidth() {
        expectGolden(draw(SampleCharts.lines, TerminalStyle(width: 40, height: 8)), Goldens.narrow, "40 columns")
    }

    @Test func pointsThatAreNotFiniteAreCountedInANote() {
        expectGolden(draw(SampleCharts.notFinite, TerminalStyle(width: 50, height: 6)), Goldens.notFinite, "not finite")
    }

    @Test func emptyDataGivesOneLine() {
        #expect(draw(SampleCharts.empty, TerminalStyle(width: 50, height: 6)) == Goldens.empty)
        let allNaN = Chart(title: "", x: Axis("x"), y: Axis("y"), series: [Series("a", x: [1, 2, 3], y: [.nan, .nan, .nan])])
        #expect(draw(allNaN, TerminalStyle()) == "no finite data to plot (3 points not finite, not drawn)")
        #expect(Figure(title: nil, panels: []).terminal(TerminalStyle()) == "no charts to plot\n")
        #expect(draw(Chart(title: "t", x: Axis("x"), y: Axis("y"), series: []), TerminalStyle()) == "t: no data to plot")
    }

    @Test func logAxesDropValuesThatAreNotPositive() {
        let chart = Chart(title: "", x: Axis("x"), y: Axis("y", scale: .log10),
                          series: [Series("a", style: .points, x: [1, 2, 3, 4], y: [0.1, 0, -1, 10])])
        let text = draw(chart, TerminalStyle(width: 50, height: 6))
        #expect(text.hasSuffix("2 points with y ≤ 0 not drawn (log scale)"))
        #expect(text.contains("y (log scale)"))
        let ascii = draw(chart, TerminalStyle(width: 50, height: 6, unicode: false))
        #expect(ascii.hasSuffix("2 points with y <= 0 not drawn (log scale)"))
    }

    @Test func aSinglePointAndAConstantSeriesAreDrawn() {
        let single = Chart(title: "", x: Axis("x"), y: Axis("y"), series: [Series("a", style: .points, x: [3], y: [7])])
        let text = draw(single, TerminalStyle(width: 40, height: 6))
        // 7 ± 10 %, padded: ticks 6.5, 7, 7.5; the dot on the 7 row, under the x tick 3.
        #expect(text.contains("\n  7 ┤" + String(repeating: " ", count: 16) + "⠈\n"))
        #expect(text.contains("    2.6     2.8      3      3.2     3.4"))
        let constant = Chart(title: "", x: Axis("x"), y: Axis("y"), series: [Series("a", y: [2, 2, 2, 2])])
        let flat = draw(constant, TerminalStyle(width: 40, height: 6))
        #expect(flat.contains("  2 ┤" + String(repeating: "⠉", count: 33)))        // across the whole width, on its tick
        #expect(flat.contains("2.2 ┤") && flat.contains("1.8 ┤"))
    }

    @Test func pointsOutsideAGivenRangeAreCounted() {
        let chart = Chart(title: "", x: Axis("x", range: 0...10), y: Axis("y", range: 0...1),
                          series: [Series("a", style: .points, x: [1, 5, 20, -3], y: [0.5, 2, 0.5, 0.5])])
        #expect(draw(chart, TerminalStyle(width: 50, height: 6)).hasSuffix("3 points outside the axis ranges, not drawn"))
    }

    @Test func noLineIsWiderThanTheWidth() {
        let many = Chart(title: "a title much longer than a narrow terminal is wide, to be cut",
                         x: Axis("a long x axis label", unit: "tokens per second"), y: Axis("y", unit: "nats", scale: .log10),
                         series: (0..<7).map { i in Series("series number \(i)", style: i % 2 == 0 ? .line : .stairs,
                                                           x: [1, 10, 100, 1000], y: [1, 2, 3, 4].map { $0 * Double(i + 1) }) },
                         notes: ["a note that needs wrapping because it goes on and on about rounding and its effect on the ratio"])
        let charts = SampleCharts.all + [many]
        for width in [1, 5, 12, 20, 30, 39, 40, 41, 57, 80, 81, 120, 163] {
            for height in [1, 3, 8, 20] {
                for (unicode, color) in [(true, false), (false, false), (true, true)] {
                    let style = TerminalStyle(width: width, height: height, unicode: unicode, color: color)
                    let figures = charts.map(Figure.init) + [Figure(title: "side by side", panels: charts)]
                    for figure in figures {
                        for line in figure.terminal(style).split(separator: "\n", omittingEmptySubsequences: false) {
                            let visible = stripANSI(String(line))
                            #expect(visible.count <= width, "\(width)×\(height): \(visible)")
                            #expect(visible.last != " ")
                        }
                    }
                }
            }
        }
    }

    @Test func aFiguresTitleIsWrappedWholeNotCut() {
        let title = "Response 6 of the last rollout, token by token"
        let chart = Chart(title: "", x: Axis("x"), y: Axis("y"), series: [Series("a", y: [1, 2, 3])])
        for width in [20, 30, 40, 80] {
            let lines = Figure(title: title, panels: [chart]).terminal(TerminalStyle(width: width, height: 4))
                .split(separator: "\n").map(String.init)
            // The lines above the y axis's title ("y") are the figure's title.
            let titleLines = lines.map { $0.trimmingCharacters(in: .whitespaces) }.prefix { $0 != "y" }
            #expect(titleLines.joined(separator: " ") == title, "width \(width): \(lines)")
            #expect(titleLines.allSatisfy { $0.count <= width })
            #expect((titleLines.count == 1) == (title.count <= width))
        }
        let bars = LabelledBars(title: title, labels: ["a"], axis: Axis("v"), bars: [.init("s", values: [1])])
        let barLines = bars.terminal(TerminalStyle(width: 30)).split(separator: "\n").prefix(2).map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(barLines.joined(separator: " ") == title)
    }

    /// A chart alone wraps its title and its empty-data message; beside another chart each
    /// keeps one line (cut), so that the two panels' rows stay aligned.
    @Test func aChartAloneWrapsItsTitleAndMessages() {
        let title = "Drift of the hidden state, stage by stage, rollout against training"
        let chart = Chart(title: title, x: Axis("x"), y: Axis("y"), series: [Series("a", y: [1, 2, 3])])
        let lines = Figure(title: nil, panels: [chart]).terminal(TerminalStyle(width: 30, height: 4))
            .split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(lines.prefix { $0 != "y" }.joined(separator: " ") == title, "\(lines)")
        let empty = Chart(title: "tail_mean_abs_dlogp", x: Axis("x"), y: Axis("y"), series: [Series("a", y: [.nan, .nan])])
        let message = Figure(title: nil, panels: [empty]).terminal(TerminalStyle(width: 20, height: 4))
        #expect(!message.contains("…"), "\(message)")
        #expect(message.split(separator: "\n").allSatisfy { $0.count <= 20 })
        let side = Figure(title: nil, panels: [chart, chart]).terminal(TerminalStyle(width: 100, height: 4))
            .split(separator: "\n")
        #expect(side.first.map { $0.contains("…") || $0.contains("...") } == true, "beside another, the title is cut to one line: \(side)")
    }

    @Test func controlCharactersInTextBecomeSpaces() {
        let chart = Chart(title: "a\u{1B}[31mb\nc", x: Axis("x\ty"), y: Axis("y"),
                          series: [Series("s\r", x: [1, 2], y: [1, 2]), Series("t", x: [1, 2], y: [2, 1])], notes: ["n\u{7}"])
        let text = Figure(chart).terminal(TerminalStyle(width: 40, height: 4))
        #expect(!text.contains("\u{1B}") && !text.contains("\t") && !text.contains("\r") && !text.contains("\u{7}"))
        #expect(text.hasPrefix(String(repeating: " ", count: (40 - 9) / 2) + "a [31mb c\n"))         // 9 characters, centred
    }

    @Test func panelsSideBySideWhenTheyFit() {
        let figure = Figure(title: "two", panels: [SampleCharts.lines, SampleCharts.histogram])
        let wide = figure.terminal(TerminalStyle(width: 120, height: 8)).split(separator: "\n")
        let narrow = figure.terminal(TerminalStyle(width: 70, height: 8)).split(separator: "\n")
        #expect(wide.contains { $0.contains("loss per step") && $0.contains("tokens by mismatch") })
        #expect(!narrow.contains { $0.contains("loss per step") && $0.contains("tokens by mismatch") })
        #expect(narrow.count > wide.count)
    }

    @Test func seriesStayDistinguishableWithoutColour() {
        let text = draw(SampleCharts.lines, TerminalStyle(width: 60, height: 10, unicode: false))
        #expect(text.contains("* train   o eval"))
        #expect(text.contains("*") && text.contains("o"))
    }

    /// `text` without ANSI escape sequences.
    func stripANSI(_ text: String) -> String {
        text.replacingOccurrences(of: #"\u001B\[[0-9;]*m"#, with: "", options: .regularExpression)
    }
}

/// The golden pictures, each checked by eye: ranges, ticks, labels, legend and notes.
enum Goldens {
    static let linesUnicode = #"""
                       loss per step
loss (nats)
    │×
  1 ┤×××
    │●●×××
0.8 ┤ ●● ××××
    │   ●●  ××××××
0.6 ┤    ●●●     ××××××××
    │      ●●●●●        ××××××××××××××××
0.4 ┤          ●●●●●●●                 ×××××××××
0.2 ┤                ●●●●●●●●●●●●●
    │                            ●●●●●●●●●●●●●●●
    └┬────────────────┬─────────────────┬────────────────┬
     0                50               100              150
                             step
● train   × eval
"""#

    static let linesColor = #"""
                       loss per step
loss (nats)
    │⢢
  1 ┤⢪⠒⡄
    │⠘⢄⠈⠢⡀
0.8 ┤ ⠈⢆ ⠈⠑⢤⣀
    │   ⠣⡀  ⠈⠑⠢⠤⣀⡀
0.6 ┤    ⠈⠲⣀     ⠈⠙⠒⠢⠤⣄⣀⣀
    │      ⠈⠑⠢⣄⡀        ⠈⠉⠉⠑⠒⠒⠢⠤⠤⠤⠤⣀⣀⣀⣀⣀
0.4 ┤          ⠉⠑⠒⠤⢄⣀⡀                 ⠈⠉⠉⠉⠉⠉⠉⠑⠂
0.2 ┤                ⠉⠉⠑⠒⠒⠤⠤⠤⢄⣀⣀⣀⣀
    │                            ⠈⠉⠉⠉⠉⠉⠑⠒⠒⠒⠒⠒⠒⠲⠄
    └┬────────────────┬─────────────────┬────────────────┬
     0                50               100              150
                             step
── train   ── eval
"""#

    static let scatter = #"""
                    log π against log μ
log π (nats)
 0 ┤                                                   ░▒▓
   │                                               ░░▒▒▒▒▒
   │                                         ░░░░░░░░⠁
-2 ┤                                     ⣀░░░░░░
   │                               ⢀░░░⠚░·⠁
   │                          ⢀░░░░░░⠁
-4 ┤                     ⣀⡠░░░░⠙⠁
   │               ⢀⡀░░░⡘░░⠁
-6 ┤         ⢀ ⢄░░⢢⠢⠇⠉
   │     ⢀⣄·⠂░░⠚·⠁
   │ ⡀⢀⠤⠕░⠊⠉⠉
-8 ┤⠐⠊
   └┬────────────┬─────────────┬────────────┬────────────┬
    -8           -6            -4           -2           0
                         log μ (nats)
⠶ tokens   ·· y = x
░ 4+  ▒ 16+  ▓ 64+  █ 256+ points per cell
fitted slope −1.01 per 1K tokens
"""#

    static let histogram = #"""
                     tokens by mismatch
tokens (log scale)
 1k ┤                     ▆▆▆▆▆
    │                ▁▁▁▁▁█████▄▄▄▄▄▄
100 ┤                ████████████████
    │           ▂▂▂▂▂████████████████▅▅▅▅▅
 10 ┤           ██████████████████████████
    │     ▃▃▃▃▃▃██████████████████████████▄▄▄▄▄
  1 ┤     █████████████████████████████████████
    │██████████████████████████████████████████      █████
    └┬─────────┬──────────┬─────────┬──────────┬─────────┬
     0         1          2         3          4         5
                    |log π − log μ| (nats)
"""#

    static let scatterASCII = #"""
                   log pi against log mu
log pi (nats)
 0 +                                                   o*#
   |                                               oo*****
   |                                         oooooooo.
-2 +                                     .oooooo
   |                               .ooo.o/.
   |                          .oooooo.
-4 +                     ..oooo..
   |               ..ooo.oo.
-6 +         . .oo....
   |     ../.oo./.
   | ....o...
-8 +..
   ++------------+-------------+------------+------------+
    -8           -6            -4           -2           0
                        log mu (nats)
. tokens   / y = x
. 1-3  o 4+  * 16+  # 64+ points per cell
fitted slope -1.01 per 1K tokens
"""#

    static let narrow = #"""
             loss per step
loss (nats)
1.5 ┤
    │
  1 ┤××
    │●××××
    │ ●●●×××××××
0.5 ┤   ●●●●●  ×××××××××××××××××
    │        ●●●●●●●●●●●●●●
  0 ┤                     ●●●●●●
    └┬──────────┬─────────┬──────────┬
     0          50       100        150
                   step
● train   × eval
"""#

    static let notFinite = #"""
                      reward
reward
    │                                     ⣀⣀⠤⠤⠔⠒
0.6 ┤                                   ⠈⠉
0.4 ┤                     ⢀
    │      ⢀⡀
0.2 ┤  ⢀⡠⠔⠊⠁
    │⠔⠊⠁
    └┬─────────────┬─────────────┬─────────────┬
     0             2             4             6
                        step
2 points not finite, not drawn
"""#

    static let empty = #"""
rollouts: no data to plot
"""#
}

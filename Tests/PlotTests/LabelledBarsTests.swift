import Foundation
import Plot
import Testing

/// Labelled bars (a response token by token): bar lengths against the axis, the values that
/// get no bar, the terminal's width and characters, and the SVG's elements.
@Suite struct LabelledBarsTests {
    /// Four rows on a linear axis from 0: values 1, 2, 4 and 0 (0 draws as an empty bar).
    let linear = LabelledBars(title: "four rows", labels: ["[a]", "[ bc]", "[日本]", "[<eos>]"],
                              axis: Axis("v"), bars: [.init("x", values: [1, 2, 4, 0])])

    /// The eighths of a cell each row's bar covers in the Unicode rendering.
    func eighths(_ line: Substring) -> Int {
        let partial: [Character: Int] = ["▏": 1, "▎": 2, "▍": 3, "▌": 4, "▋": 5, "▊": 6, "▉": 7, "█": 8, "▓": 8, "▒": 4]
        return line.reduce(0) { $0 + (partial[$1] ?? 0) }
    }

    @Test func barsAreProportionalOnALinearAxisFromZero() {
        let text = linear.terminal(TerminalStyle(width: 80))
        let lines = text.split(separator: "\n")
        #expect(lines[0].contains("four rows"))
        let rows = Array(lines[1...4])
        #expect(rows.map { $0.split(separator: " ").last.map(String.init) } == ["1", "2", "4", "0"])
        let lengths = rows.map(eighths)
        // The axis is 0…4 (nice ticks 0, 1, …, 4): 1 : 2 : 4 : 0, within half an eighth.
        #expect(lengths[3] == 0)
        #expect(lengths[2] > 0 && abs(Double(lengths[0]) * 4 - Double(lengths[2])) <= 2 && abs(Double(lengths[1]) * 2 - Double(lengths[2])) <= 2,
                "\(lengths)")
        // Labels in order after the row numbers.
        #expect(rows[0].hasPrefix("1 [a]") && rows[1].hasPrefix("2 [ bc]") && rows[3].hasPrefix("4 [<eos>]"))
        for line in lines { #expect(line.count <= 80, "\(line)") }
    }

    @Test func valuesThatCannotBeDrawnAreWrittenAndCounted() {
        let bars = LabelledBars(title: "log", labels: ["a", "b", "c", "d"], axis: Axis("v", scale: .log10),
                                bars: [.init("x", values: [1e-6, 0, .nan, 1e-2])])
        let text = bars.terminal(TerminalStyle(width: 70))
        let rows = text.split(separator: "\n")[1...4]
        #expect(rows.map(eighths)[1] == 0 && rows.map(eighths)[2] == 0)
        #expect(rows.map(eighths)[3] > rows.map(eighths)[0])
        #expect(rows.map { $0.split(separator: " ").last.map(String.init) } == ["1.000e-06", "0", "nan", "0.01"])
        #expect(text.contains("2 values not positive or not finite: no bar"))
        let root = try? XMLNode.parse(bars.svg())
        #expect(root?.groups("rows").first?.elements("rect").count == 2)
    }

    /// Wide characters take two terminal columns: the bars still start in one column.
    @Test func barsStartInOneColumnWhateverTheLabelsWidth() {
        let bars = LabelledBars(title: "wide", labels: ["[日本]", "[ab]", "[👍]", "[e\u{301}]"], axis: Axis("v"),
                                bars: [.init("x", values: [1, 2, 3, 4])])
        let rows = bars.terminal(TerminalStyle(width: 70)).split(separator: "\n")[1...4]
        // Columns counted here: CJK and the emoji 2, the combining accent 0, the rest 1.
        func columns(_ s: Substring) -> Int {
            s.unicodeScalars.reduce(0) { n, u in
                if (0x4E00...0x9FFF).contains(u.value) || u.value == 0x1F44D { return n + 2 }
                return u.properties.generalCategory == .nonspacingMark ? n : n + 1
            }
        }
        let starts = rows.map { row in columns(row[..<row.firstIndex { "▏▎▍▌▋▊▉█".contains($0) }!]) }
        #expect(Set(starts).count == 1, "\(starts)")
    }

    @Test func asciiHasNoOtherCharacters() {
        let text = linear.terminal(TerminalStyle(width: 60, unicode: false))
        let nonASCII = text.unicodeScalars.filter { !$0.isASCII }
        // The labels are the caller's text (日本 is the label's, shown as '?').
        #expect(nonASCII.isEmpty, "\(String(String.UnicodeScalarView(nonASCII)))")
        #expect(text.contains("####"))
    }

    @Test func severalSeriesGetABarEachAndALegend() throws {
        let two = LabelledBars(title: "two", labels: ["p", "q"], axis: Axis("v"),
                               bars: [.init("bf16", values: [1, 2]), .init("fp16", values: [0.5, 1])])
        let rows = two.terminal(TerminalStyle(width: 70)).split(separator: "\n")
        #expect(rows[1].hasPrefix("1 p") && rows[2].hasPrefix("   ") && rows[3].hasPrefix("2 q"))
        #expect(rows.contains { $0.contains("bf16") && $0.contains("fp16") })
        let root = try XMLNode.parse(two.svg())
        #expect(root.groups("rows")[0].elements("rect").count == 4)
        #expect(root.groups("legend")[0].elements("text").map(\.text) == ["bf16", "fp16"])
    }

    @Test func svgHasOneLabelPerRowEscapedAndIsDeterministic() throws {
        let svg = linear.svg()
        #expect(svg == linear.svg())
        let root = try XMLNode.parse(svg)
        let labels = root.elements("text").filter { $0.attributes["class"] == "label" }.map(\.text)
        #expect(labels == ["[a]", "[ bc]", "[日本]", "[<eos>]"])
        #expect(svg.contains("[&lt;eos&gt;]"))
        #expect(root.groups("x-ticks")[0].elements("text").map(\.text) == ["0", "1", "2", "3", "4"])
        #expect(root.elements("text").contains { $0.attributes["class"] == "axis-title" && $0.text == "v" })
    }
}

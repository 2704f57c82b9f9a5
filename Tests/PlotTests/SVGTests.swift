import Foundation
import Plot
import Testing

/// The SVG renderer: well-formed, counted element by element, deterministic, escaped.
@Suite struct SVGTests {
    /// Five circles in one series and three squares in another, on known ranges.
    let markers = Chart(title: "markers", x: Axis("x", unit: "s"), y: Axis("y"),
                        series: [Series("a", style: .points, x: [0, 0.2, 0.5, 0.7, 0.97], y: [0, 50, 100, 150, 200]),
                                 Series("b", style: .points, x: [0.1, 0.3, 0.9], y: [10, 20, 30])])

    @Test func standaloneDocument() throws {
        let svg = Figure(markers).svg()
        #expect(svg.hasPrefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"560\" "))
        let root = try XMLNode.parse(svg)
        #expect(root.name == "svg")
        #expect(root.attributes["viewBox"] == "0 0 \(root.attributes["width"]!) \(root.attributes["height"]!)")
        #expect(root.elements("title").first?.text == "markers")
    }

    @Test func seriesMarkersTicksAndTitles() throws {
        let root = try XMLNode.parse(Figure(markers).svg())
        let series = root.groups("series")
        #expect(series.map { $0.attributes["data-name"] } == ["a", "b"])
        #expect(series[0].elements("circle").count == 5 && series[0].elements("rect").isEmpty)
        #expect(series[1].elements("rect").count == 3 && series[1].elements("circle").isEmpty)
        #expect(series[0].attributes["fill"] != series[1].attributes["fill"])
        // x: 0…0.97 → 0, 0.2, …, 1; y: 0…200 → 0, 50, …, 200 (TicksTests).
        #expect(root.groups("x-ticks")[0].elements("text").map(\.text) == ["0", "0.2", "0.4", "0.6", "0.8", "1"])
        #expect(root.groups("y-ticks")[0].elements("text").map(\.text) == ["0", "50", "100", "150", "200"])
        let titles = root.elements("text").filter { $0.attributes["class"] == "axis-title" }.map(\.text)
        #expect(titles == ["x (s)", "y"])
        #expect(root.elements("text").contains { $0.attributes["class"] == "title" && $0.text == "markers" })
        // Two series: a legend with one entry each.
        #expect(root.groups("legend")[0].groups("legend-entry").count == 2)
    }

    /// A title or axis title too long for its room is set in a smaller font (never below 8)
    /// rather than running off the figure; one that fits keeps the preferred size.
    @Test func longTitlesShrinkToFit() throws {
        let long = String(repeating: "mean_abs_dlogp by step ", count: 3)
        let chart = Chart(title: long, x: Axis("step"), y: Axis(long, unit: "nats"), series: [Series("a", x: [0, 1], y: [1, 2])])
        let root = try XMLNode.parse(Figure(chart).svg())
        let title = try #require(root.elements("text").first { $0.attributes["class"] == "title" })
        let size = try #require(title.attributes["font-size"].flatMap(Double.init))
        #expect(size < 14 && size >= 8)
        // 69 characters of 7/12 × 1.1 px per px of font: fits 544 px at the size given.
        #expect(Double(long.count) * 7 / 12 * 1.1 * size <= 544)
        let axis = root.elements("text").filter { $0.attributes["class"] == "axis-title" }
        #expect(axis[0].attributes["font-size"] == nil, "'step' fits")
        #expect(axis[1].attributes["font-size"].flatMap(Double.init).map { $0 < 12 } == true)
        let short = try XMLNode.parse(Figure(markers).svg())
        #expect(short.elements("text").first { $0.attributes["class"] == "title" }?.attributes["font-size"] == "14")
    }

    @Test func panelsSideBySide() throws {
        let figure = Figure(title: "one figure", panels: [SampleCharts.lines, SampleCharts.scatter, SampleCharts.histogram])
        let root = try XMLNode.parse(figure.svg())
        let panels = root.groups("panel")
        #expect(panels.map { $0.attributes["transform"] } == ["translate(0,34)", "translate(560,34)", "translate(1120,34)"])
        #expect(root.attributes["width"] == "1680")
        #expect(root.groups("series").map { $0.attributes["data-name"] } == ["train", "eval", "tokens", "tokens"])
        // Lines: one unbroken polyline each, dashed differently.
        let lines = panels[0].groups("series")
        #expect(lines.map { $0.elements("polyline").count } == [1, 1])
        #expect(lines[0].attributes["stroke-dasharray"] == nil && lines[1].attributes["stroke-dasharray"] != nil)
        // Scatter: the dashed y = x, a legend entry for it, its notes.
        #expect(panels[1].groups("diagonal").count == 1)
        #expect(panels[1].groups("diagonal")[0].attributes["stroke-dasharray"] != nil)
        #expect(panels[1].groups("legend-entry").count == 2)
        #expect(panels[1].elements("text").contains { $0.text == "fitted slope −1.01 per 1K tokens" })
        // Histogram: ten bins, one of them empty.
        #expect(panels[2].groups("series")[0].elements("rect").count == 9)
        #expect(panels[2].elements("text").contains { $0.text == "tokens (log scale)" })
        #expect(root.elements("text").contains { $0.attributes["class"] == "figure-title" && $0.text == "one figure" })
    }

    @Test func deterministic() {
        let figure = Figure(title: "twice", panels: [SampleCharts.lines, SampleCharts.scatter, SampleCharts.histogram])
        let first = figure.svg()
        #expect(first == figure.svg())
        #expect(first == Figure(title: "twice", panels: [SampleCharts.lines, SampleCharts.scatter, SampleCharts.histogram]).svg())
        // Coordinates have at most 2 decimals.
        #expect(first.range(of: #"[0-9]\.[0-9]{3}"#, options: .regularExpression) == nil)
    }

    @Test func textIsEscaped() throws {
        let title = #"a<b & "c" 'd'"#
        let chart = Chart(title: title, x: Axis("x<y", unit: "&"), y: Axis("\"q\""),
                          series: [Series("<&\">", style: .points, x: [1, 2], y: [1, 2]), Series("b", x: [1, 2], y: [2, 1])],
                          notes: ["</text><script>alert(1)</script>"])
        let svg = Figure(chart).svg()
        #expect(!svg.contains("<script"))
        let root = try XMLNode.parse(svg)
        #expect(root.elements("title").first?.text == title)
        #expect(root.groups("series").first?.attributes["data-name"] == "<&\">")
        #expect(root.elements("text").contains { $0.text == "x<y (&)" })
        #expect(root.elements("text").contains { $0.text == "</text><script>alert(1)</script>" })
    }

    @Test func pointsOnTheSamePixelAreWrittenOnce() throws {
        // 1,000 points on 10 places: 10 circles, the merged ones fully opaque, a note.
        let x = (0..<1000).map { Double($0 % 10) }
        let chart = Chart(title: "", x: Axis("x"), y: Axis("y"), series: [Series("a", style: .points, x: x, y: x)])
        let root = try XMLNode.parse(Figure(chart).svg())
        let circles = root.groups("series")[0].elements("circle")
        #expect(circles.count == 10)
        #expect(circles.allSatisfy { $0.attributes["fill-opacity"] == "1" })        // 1 − 0.4^100
        #expect(root.elements("text").contains { $0.text == "990 points at the same pixel as another, drawn once (darker)" })
        // Two points on one pixel: the opacity of two stacked markers, 1 − 0.4² = 0.84.
        let two = Chart(title: "", x: Axis("x"), y: Axis("y"), series: [Series("a", style: .points, x: [0, 0, 1], y: [0, 0, 1])])
        let pair = try XMLNode.parse(Figure(two).svg()).groups("series")[0].elements("circle")
        #expect(pair.map { $0.attributes["fill-opacity"] } == ["0.84", nil])
    }

    @Test func droppedPointsAndEmptyCharts() throws {
        let root = try XMLNode.parse(Figure(SampleCharts.notFinite).svg())
        #expect(root.elements("text").contains { $0.text == "2 points not finite, not drawn" })
        // The line breaks where the points are missing: 0–1, 3 alone, 5–6.
        #expect(root.groups("series")[0].elements("polyline").count == 3)
        let empty = try XMLNode.parse(Figure(SampleCharts.empty).svg())
        #expect(empty.groups("series").isEmpty)
        #expect(empty.elements("text").contains { $0.text == "rollouts: no data to plot" })
        let nothing = try XMLNode.parse(Figure(title: nil, panels: []).svg())
        #expect(nothing.elements("text").map(\.text) == ["no charts to plot"])
    }

    @Test func stairsAndBarsFromEdgesOrLeftEdges() throws {
        /// The number of points of each polyline, and the widths of the bars, of a one-series chart.
        func shapes(_ series: Series) throws -> (polylines: [Int], widths: [String]) {
            let chart = Chart(title: "", x: Axis("x"), y: Axis("y"), series: [series])
            let group = try XMLNode.parse(Figure(chart).svg()).groups("series")[0]
            return (group.elements("polyline").map { $0.attributes["points"]!.split(separator: " ").count },
                    group.elements("rect").map { $0.attributes["width"]! })
        }
        // A schedule: 1 on 0…10, 0.5 on 10…20, 0.25 on 20…30 (edges), or ending at 20 (left edges).
        #expect(try shapes(Series("lr", style: .stairs, x: [0, 10, 20, 30], y: [1, 0.5, 0.25])).polylines == [6])
        #expect(try shapes(Series("lr", style: .stairs, x: [0, 10, 20], y: [1, 0.5, 0.25])).polylines == [5])
        // Bars: with edges, or left edges only (the last as wide as the one before).
        let edges = try shapes(Series("h", style: .bars, x: [0, 1, 2, 3], y: [3, 1, 2])).widths
        let lefts = try shapes(Series("h", style: .bars, x: [0, 1, 2], y: [3, 1, 2])).widths
        #expect(edges.count == 3 && Set(edges).count == 1 && edges == lefts)
    }

    @Test func unpairedValuesAreNoted() throws {
        let chart = Chart(title: "", x: Axis("x"), y: Axis("y"), series: [Series("a", style: .points, x: [1, 2, 3], y: [1, 2])])
        let root = try XMLNode.parse(Figure(chart).svg())
        #expect(root.groups("series")[0].elements("circle").count == 2)
        #expect(root.elements("text").contains { $0.text == "series \"a\": x has 3 values, y has 2; the 1 without a partner not drawn" })
    }
}

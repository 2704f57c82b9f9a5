// A figure as a standalone SVG document: panels side by side, each 560 px wide with a plot
// area 300 px high, the same bytes for the same figure (coordinates rounded to 2 decimals and
// written from integers; nothing depends on a date, a locale or a dictionary's order).
//
// Inside each panel, `<g class="panel">`: the title, light gridlines at the ticks, the y = x
// reference dashed (`<g class="diagonal">`), one `<g class="series" data-name="…">` per series
// (a `<polyline>` per unbroken piece of a line or stairs; one marker per point, `<circle>` for
// the first series, then `<rect>` squares and `<polygon>` triangles and diamonds; a `<rect>`
// per histogram bar), the axes with outward tick marks, `<g class="x-ticks">` and
// `<g class="y-ticks">` holding one `<text>` per tick label, the axis titles, the legend (when
// there are several series or the reference) and the notes.
//
// Colours are Okabe and Ito's palette (distinguishable with the common colour-vision
// deficiencies); lines also differ by dash pattern and points by marker shape, so series stay
// apart in greyscale.
//
// Scatter points are placed on whole pixels, and points of a series that land on the same
// pixel are written once: the one marker gets the opacity the stacked markers would have had,
// 1 − (1 − 0.6)^m for m points, so the picture is the same and the file stays small. A note
// counts the points merged this way.

extension Figure {
    /// The figure as a standalone SVG document (UTF-8 text with an XML declaration).
    public func svg() -> String {
        let anyTitle = panels.contains { !$0.title.isEmpty }
        let band = (title?.isEmpty == false) ? 34.0 : 0
        let laidOut = panels.map { SVGPanel($0, top: anyTitle ? 44 : 20) }
        let width = Double(max(1, panels.count)) * SVGPanel.width
        let height = band + (laidOut.map(\.height).max() ?? 60)
        let w = Markup.number(width), h = Markup.number(height)
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(w)\" height=\"\(h)\" viewBox=\"0 0 \(w) \(h)\" "
        out += "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\" fill=\"#222222\">\n"
        let name = title ?? panels.map(\.title).filter { !$0.isEmpty }.joined(separator: "; ")
        out += "<title>\(Markup.escape(name))</title>\n"
        out += "<rect width=\"\(w)\" height=\"\(h)\" fill=\"#ffffff\"/>\n"
        if let title, !title.isEmpty {
            out += "<text class=\"figure-title\" x=\"\(Markup.number(width / 2))\" y=\"23\" text-anchor=\"middle\" "
            out += "font-size=\"\(Markup.number(SVGPanel.fittedFontSize(title, preferred: 16, bold: true, room: width - 16)))\" "
            out += "font-weight=\"bold\">\(Markup.escape(title))</text>\n"
        }
        if panels.isEmpty {
            out += "<text x=\"\(Markup.number(width / 2))\" y=\"\(Markup.number(band + 30))\" text-anchor=\"middle\">no charts to plot</text>\n"
        }
        for (i, panel) in laidOut.enumerated() {
            panel.write(to: &out, x: Double(i) * SVGPanel.width, y: band)
        }
        out += "</svg>\n"
        return out
    }
}

/// The style of series `index`: colour, dash pattern, marker.
enum SeriesLook {
    /// Okabe–Ito: blue, vermilion, bluish green, orange, reddish purple, sky blue, yellow, black.
    static let palette = ["#0072B2", "#D55E00", "#009E73", "#E69F00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
    static let dashes = ["", "7 3", "2 2", "8 3 2 3", "4 2", "1 3"]
    static let opacity = 0.6
    static let radius = 3.0

    static func color(_ index: Int) -> String { palette[index % palette.count] }
    static func dash(_ index: Int) -> String { dashes[index % dashes.count] }

    /// The marker of series `index` centred at (x, y), with an optional fill opacity.
    static func marker(_ index: Int, x: Double, y: Double, opacity: Double? = nil) -> String {
        let r = radius, n = Markup.number
        let extra = opacity.map { " fill-opacity=\"\(n($0))\"" } ?? ""
        switch index % 5 {
        case 0: return "<circle cx=\"\(n(x))\" cy=\"\(n(y))\" r=\"\(n(r))\"\(extra)/>"
        case 1: return "<rect x=\"\(n(x - r))\" y=\"\(n(y - r))\" width=\"\(n(2 * r))\" height=\"\(n(2 * r))\"\(extra)/>"
        case 2: return polygon([(x, y - 1.2 * r), (x + 1.1 * r, y + 0.8 * r), (x - 1.1 * r, y + 0.8 * r)], extra)
        case 3: return polygon([(x, y - 1.3 * r), (x + 1.3 * r, y), (x, y + 1.3 * r), (x - 1.3 * r, y)], extra)
        default: return polygon([(x, y + 1.2 * r), (x + 1.1 * r, y - 0.8 * r), (x - 1.1 * r, y - 0.8 * r)], extra)
        }
    }

    private static func polygon(_ points: [(Double, Double)], _ extra: String) -> String {
        "<polygon points=\"\(points.map { "\(Markup.number($0.0)),\(Markup.number($0.1))" }.joined(separator: " "))\"\(extra)/>"
    }
}

/// One chart placed in its panel: margins from its labels, legend rows and note lines.
struct SVGPanel {
    static let width = 560.0
    static let plotHeight = 300.0
    static let characterWidth = 7.0      // an estimate for 12 px sans-serif text
    static let legendRow = 18.0, noteLine = 15.0

    /// The font size at which `text` fits `room` pixels by the width estimate (12 px text
    /// is `characterWidth` per character, bold 10% wider): `preferred`, or smaller, never
    /// below 8, so a long title or axis title shrinks instead of running off the figure.
    static func fittedFontSize(_ text: String, preferred: Double, bold: Bool = false, room: Double) -> Double {
        let perPixel = characterWidth / 12 * (bold ? 1.1 : 1)
        let width = Double(text.count) * perPixel * preferred
        return width <= room ? preferred : max(8, (room / (Double(text.count) * perPixel) * 10).rounded(.down) / 10)
    }

    /// ` font-size="…"` when 12 px text would not fit `room`; empty when it fits.
    static func fontSizeAttribute(_ text: String, room: Double) -> String {
        let size = fittedFontSize(text, preferred: 12, room: room)
        return size < 12 ? " font-size=\"\(Markup.number(size))\"" : ""
    }

    let chart: Chart
    let cleaned: Cleaned
    let layout: PanelLayout?
    let top: Double
    let left: Double
    var plotWidth: Double { Self.width - left - 20 }
    /// Legend entries placed in rows: (series index or nil for y = x, x offset, row).
    let legend: [(index: Int?, x: Double, row: Int)]
    let notes: [String]

    init(_ chart: Chart, top: Double) {
        self.chart = chart
        self.top = top
        cleaned = Cleaned(chart)
        guard !cleaned.isEmpty else {
            layout = nil
            left = 20
            legend = []
            notes = []
            return
        }
        let x = AxisLayout(chart.x, name: "x", extent: cleaned.xExtent, maxTicks: 6)
        let y = AxisLayout(chart.y, name: "y", extent: cleaned.yExtent, maxTicks: 6)
        var layout = PanelLayout(chart, cleaned, x: x, y: y)
        left = 30 + Self.characterWidth * Double(y.labels.map(\.count).max() ?? 1) + 8
        let merged = Self.merge(layout, plotWidth: Self.width - left - 20).merged
        if merged > 0 {
            layout.notes.append("\(Cleaned.count(merged, "point")) at the same pixel as another, drawn once (darker)")
        }
        self.layout = layout
        var entries: [(Int?, Double, Int)] = []
        if chart.series.count > 1 || !layout.diagonal.isEmpty {
            var x = 0.0, row = 0
            let names: [(Int?, String)] = chart.series.enumerated().map { ($0.offset, $0.element.name) }
                + (layout.diagonal.isEmpty ? [] : [(nil, "y = x")])
            for (index, name) in names {
                let w = 30 + Self.characterWidth * Double(name.count) + 18
                if x > 0 && left + x + w > Self.width - 10 { x = 0; row += 1 }
                entries.append((index, x, row))
                x += w
            }
        }
        legend = entries
        let perLine = Int((Self.width - 32) / 6.2)
        notes = layout.notes.flatMap { Self.wrap($0, perLine) }
    }

    /// The panel's height: plot, labels, legend rows and notes.
    var height: Double {
        guard layout != nil else { return top + 60 }
        let rows = Double((legend.map(\.row).max() ?? -1) + 1)
        return top + Self.plotHeight + 50 + rows * Self.legendRow + Double(notes.count) * Self.noteLine + 10
    }

    /// The scatter points of each series on whole pixels, duplicates merged: (pixel, count) in
    /// the order first seen, and how many points were merged in all.
    static func merge(_ layout: PanelLayout, plotWidth: Double) -> (points: [[(x: Int, y: Int, count: Int)]], merged: Int) {
        var merged = 0
        let points = layout.series.map { s -> [(x: Int, y: Int, count: Int)] in
            var seen: [Int: Int] = [:]                       // pixel key → index in out
            var out: [(x: Int, y: Int, count: Int)] = []
            for p in s.points {
                let px = Int((p.x * plotWidth).rounded()), py = Int(((1 - p.y) * plotHeight).rounded())
                let key = px * 100_000 + py
                if let i = seen[key] { out[i].count += 1; merged += 1 } else { seen[key] = out.count; out.append((px, py, 1)) }
            }
            return out
        }
        return (points, merged)
    }

    /// `text` wrapped at spaces into lines of at most `limit` characters.
    static func wrap(_ text: String, _ limit: Int) -> [String] {
        var lines: [String] = [], line = ""
        for word in text.split(separator: " ", omittingEmptySubsequences: false) {
            if !line.isEmpty && line.count + 1 + word.count > limit { lines.append(line); line = "" }
            line += line.isEmpty ? String(word) : " " + word
        }
        return lines + [line]
    }

    /// Writes the panel as a `<g>` translated to (x, y).
    func write(to out: inout String, x dx: Double, y dy: Double) {
        let n = Markup.number, e = Markup.escape
        out += "<g class=\"panel\" transform=\"translate(\(n(dx)),\(n(dy)))\">\n"
        if !chart.title.isEmpty {
            let size = Self.fittedFontSize(chart.title, preferred: 14, bold: true, room: Self.width - 16)
            out += "<text class=\"title\" x=\"\(n(Self.width / 2))\" y=\"26\" text-anchor=\"middle\" font-size=\"\(n(size))\" font-weight=\"bold\">\(e(chart.title))</text>\n"
        }
        guard let layout else {
            out += "<text class=\"note\" x=\"\(n(Self.width / 2))\" y=\"\(n(top + 24))\" text-anchor=\"middle\">\(e(Cleaned.emptyMessage(chart, cleaned)))</text>\n</g>\n"
            return
        }
        let px = { (u: Double) in left + u * plotWidth }
        let py = { (v: Double) in top + (1 - v) * Self.plotHeight }
        let bottom = top + Self.plotHeight, right = left + plotWidth
        // Gridlines.
        out += "<g class=\"grid\" stroke=\"#e8e8e8\" stroke-width=\"1\">\n"
        for u in layout.x.tickPositions { out += "<line x1=\"\(n(px(u)))\" y1=\"\(n(top))\" x2=\"\(n(px(u)))\" y2=\"\(n(bottom))\"/>\n" }
        for v in layout.y.tickPositions { out += "<line x1=\"\(n(left))\" y1=\"\(n(py(v)))\" x2=\"\(n(right))\" y2=\"\(n(py(v)))\"/>\n" }
        out += "</g>\n"
        if !layout.diagonal.isEmpty {
            out += "<g class=\"diagonal\" fill=\"none\" stroke=\"#999999\" stroke-width=\"1\" stroke-dasharray=\"5 4\">\n"
            for line in layout.diagonal { out += polyline(line, px, py) }
            out += "</g>\n"
        }
        let scatter = Self.merge(layout, plotWidth: plotWidth).points
        for s in layout.series {
            let color = SeriesLook.color(s.index)
            out += "<g class=\"series\" data-name=\"\(e(s.name))\" "
            switch s.style {
            case .line, .stairs:
                let dash = SeriesLook.dash(s.index)
                out += "fill=\"none\" stroke=\"\(color)\" stroke-width=\"1.5\" stroke-linejoin=\"round\"" + (dash.isEmpty ? "" : " stroke-dasharray=\"\(dash)\"") + ">\n"
                for line in s.polylines { out += polyline(line, px, py) }
            case .points:
                out += "fill=\"\(color)\" fill-opacity=\"\(n(SeriesLook.opacity))\">\n"
                for p in scatter[s.index] {
                    let opacity = p.count == 1 ? nil : 1 - pow1(1 - SeriesLook.opacity, p.count)
                    out += SeriesLook.marker(s.index, x: left + Double(p.x), y: top + Double(p.y), opacity: opacity) + "\n"
                }
            case .bars:
                out += "fill=\"\(color)\" stroke=\"#ffffff\" stroke-width=\"0.5\">\n"
                for b in s.bars {
                    let y0 = py(max(b.y0, b.y1)), y1 = py(min(b.y0, b.y1))
                    out += "<rect x=\"\(n(px(b.x0)))\" y=\"\(n(y0))\" width=\"\(n(px(b.x1) - px(b.x0)))\" height=\"\(n(y1 - y0))\"/>\n"
                }
            }
            out += "</g>\n"
        }
        // Axes, ticks, labels, titles.
        out += "<g class=\"axes\" stroke=\"#444444\" stroke-width=\"1\">\n"
        out += "<line x1=\"\(n(left))\" y1=\"\(n(top))\" x2=\"\(n(left))\" y2=\"\(n(bottom))\"/>\n"
        out += "<line x1=\"\(n(left))\" y1=\"\(n(bottom))\" x2=\"\(n(right))\" y2=\"\(n(bottom))\"/>\n"
        for u in layout.x.tickPositions { out += "<line x1=\"\(n(px(u)))\" y1=\"\(n(bottom))\" x2=\"\(n(px(u)))\" y2=\"\(n(bottom + 5))\"/>\n" }
        for v in layout.y.tickPositions { out += "<line x1=\"\(n(left - 5))\" y1=\"\(n(py(v)))\" x2=\"\(n(left))\" y2=\"\(n(py(v)))\"/>\n" }
        out += "</g>\n<g class=\"x-ticks\" text-anchor=\"middle\">\n"
        for (u, label) in zip(layout.x.tickPositions, layout.x.labels) { out += "<text x=\"\(n(px(u)))\" y=\"\(n(bottom + 19))\">\(e(label))</text>\n" }
        out += "</g>\n<g class=\"y-ticks\" text-anchor=\"end\">\n"
        for (v, label) in zip(layout.y.tickPositions, layout.y.labels) { out += "<text x=\"\(n(left - 8))\" y=\"\(n(py(v)))\" dy=\"0.32em\">\(e(label))</text>\n" }
        out += "</g>\n"
        out += "<text class=\"axis-title\" x=\"\(n(left + plotWidth / 2))\" y=\"\(n(bottom + 40))\" text-anchor=\"middle\"\(Self.fontSizeAttribute(chart.x.title, room: plotWidth))>\(e(chart.x.title))</text>\n"
        let middle = n(top + Self.plotHeight / 2)
        out += "<text class=\"axis-title\" x=\"16\" y=\"\(middle)\" text-anchor=\"middle\" transform=\"rotate(-90 16 \(middle))\"\(Self.fontSizeAttribute(chart.y.title, room: Self.plotHeight + top - 4))>\(e(chart.y.title))</text>\n"
        writeLegend(to: &out, y: bottom + 50)
        if !notes.isEmpty {
            out += "<g class=\"notes\" font-size=\"11\" fill=\"#444444\">\n"
            let first = bottom + 50 + Double((legend.map(\.row).max() ?? -1) + 1) * Self.legendRow + 12
            for (i, note) in notes.enumerated() {
                out += "<text class=\"note\" x=\"16\" y=\"\(n(first + Double(i) * Self.noteLine))\">\(e(note))</text>\n"
            }
            out += "</g>\n"
        }
        out += "</g>\n"
    }

    private func writeLegend(to out: inout String, y: Double) {
        guard !legend.isEmpty else { return }
        let n = Markup.number
        out += "<g class=\"legend\">\n"
        for entry in legend {
            let x = left + entry.x, cy = y + Double(entry.row) * Self.legendRow + 6
            out += "<g class=\"legend-entry\">"
            if let i = entry.index {
                let color = SeriesLook.color(i)
                switch chart.series[i].style {
                case .line, .stairs:
                    let dash = SeriesLook.dash(i)
                    out += "<line x1=\"\(n(x))\" y1=\"\(n(cy))\" x2=\"\(n(x + 24))\" y2=\"\(n(cy))\" stroke=\"\(color)\" stroke-width=\"1.5\""
                        + (dash.isEmpty ? "" : " stroke-dasharray=\"\(dash)\"") + "/>"
                case .points:
                    out += "<g fill=\"\(color)\">" + SeriesLook.marker(i, x: x + 12, y: cy) + "</g>"
                case .bars:
                    out += "<rect x=\"\(n(x + 6))\" y=\"\(n(cy - 5))\" width=\"12\" height=\"10\" fill=\"\(color)\"/>"
                }
                out += "<text x=\"\(n(x + 30))\" y=\"\(n(cy))\" dy=\"0.32em\">\(Markup.escape(chart.series[i].name))</text>"
            } else {
                out += "<line x1=\"\(n(x))\" y1=\"\(n(cy))\" x2=\"\(n(x + 24))\" y2=\"\(n(cy))\" stroke=\"#999999\" stroke-dasharray=\"5 4\"/>"
                out += "<text x=\"\(n(x + 30))\" y=\"\(n(cy))\" dy=\"0.32em\">y = x</text>"
            }
            out += "</g>\n"
        }
        out += "</g>\n"
    }

    /// A `<polyline>` through unit-square points, repeated pixels dropped.
    private func polyline(_ points: [UnitPoint], _ px: (Double) -> Double, _ py: (Double) -> Double) -> String {
        var coordinates: [String] = []
        for p in points {
            let c = "\(Markup.number(px(p.x))),\(Markup.number(py(p.y)))"
            if coordinates.last != c { coordinates.append(c) }
        }
        // A point between two gaps is drawn as a dot: a zero-length piece with a wide round cap.
        let lone = coordinates.count == 1
        if lone { coordinates.append(coordinates[0]) }
        return "<polyline points=\"\(coordinates.joined(separator: " "))\"" + (lone ? " stroke-width=\"4\" stroke-linecap=\"round\"" : "") + "/>\n"
    }
}

/// x^k for a small whole k, without the C library.
private func pow1(_ x: Double, _ k: Int) -> Double {
    var r = 1.0
    for _ in 0..<min(k, 64) { r *= x }
    return r
}

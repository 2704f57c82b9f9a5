// Labelled rows drawn as horizontal bars, one row per label: the tokens of a sequence, each
// with its |Δ log p|, read top to bottom as the text runs. Drawn in the terminal (one line
// per bar, the label before it and the value after it) and as SVG (the same rows), with the
// value axis laid out by the rules every chart follows (Layout.swift, Ticks.swift).
//
// - A value that cannot be drawn (not finite, or ≤ 0 on a log axis) gets no bar; its figure
//   is still written, and a note counts such values.
// - Bars start at the axis's lower end (0 on a linear axis that includes it).
// - Several series put one bar per series in each row, in series order, with a legend.

import Foundation

/// A drawing the shell can show in the terminal and write as SVG.
public protocol Drawing: Sendable {
    /// The drawing as terminal text (lines ending in newlines).
    func terminal(_ style: TerminalStyle) -> String
    /// The drawing as a standalone SVG document.
    func svg() -> String
}

extension Figure: Drawing {}

/// Values of labelled rows as horizontal bars.
public struct LabelledBars: Drawing, Equatable {
    /// One set of values, one per row.
    public struct Bars: Sendable, Equatable {
        public var name: String
        public var values: [Double]
        public init(_ name: String, values: [Double]) {
            self.name = name
            self.values = values
        }
    }

    /// Printed above the rows.
    public var title: String
    /// One label per row, e.g. a token's text.
    public var labels: [String]
    /// The values' axis, along the bars.
    public var axis: Axis
    /// Each with one value per label.
    public var bars: [Bars]
    /// Printed under the rows.
    public var notes: [String]

    public init(title: String, labels: [String], axis: Axis, bars: [Bars], notes: [String] = []) {
        self.title = title
        self.labels = labels
        self.axis = axis
        self.bars = bars
        self.notes = notes
    }

    /// Whether `v` can be drawn on the axis.
    private func drawable(_ v: Double) -> Bool { v.isFinite && (axis.scale == .linear || v > 0) }

    /// The axis fitted to the drawable values (on a linear axis, with 0 included).
    private func layout(maxTicks: Int) -> AxisLayout {
        var values = bars.flatMap(\.values).filter(drawable)
        if axis.scale == .linear { values.append(0) }
        let extent = values.min().map { $0...values.max()! }
        return AxisLayout(axis, name: "value axis", extent: extent, maxTicks: maxTicks)
    }

    /// The notes with one counting the values that have no bar.
    private var allNotes: [String] {
        let hidden = bars.flatMap(\.values).filter { !drawable($0) }.count
        return notes + (hidden == 0 ? [] : ["\(hidden) value\(hidden == 1 ? "" : "s") \(axis.scale == .log10 ? "not positive or not finite" : "not finite"): no bar"])
    }

    /// A value as written beside its bar.
    static func figure(_ v: Double) -> String {
        guard v.isFinite else { return v.isNaN ? "nan" : (v > 0 ? "inf" : "-inf") }
        if v == 0 { return "0" }
        let a = abs(v)
        if a >= 1e-3 && a < 1e4 {
            var s = String(format: "%.4g", v)
            if s.contains("e") { s = String(format: "%.3e", v) }
            return s
        }
        return String(format: "%.3e", v)
    }
}

// MARK: Terminal

extension LabelledBars {
    public func terminal(_ style: TerminalStyle) -> String {
        let width = max(30, style.width)
        let glyphs = Glyphs(unicode: style.unicode)
        var lines: [[Cell]] = []
        lines += TextCells.centeredLines(title, width: width, glyphs: glyphs)
        if labels.isEmpty {
            lines.append(TextCells.fitted("no rows to plot", width: width, glyphs: glyphs))
            return lines.map { TextCells.render($0, color: style.color) + "\n" }.joined()
        }
        let number = String(labels.count).count
        let labelWidth = min(24, labels.map { LabelledBars.columns(TextCells.plain($0, glyphs: glyphs)) }.max() ?? 1)
        let valueWidth = 10
        let left = number + 1 + labelWidth + 1
        let barWidth = max(8, width - left - 1 - valueWidth)
        let axisLayout = layout(maxTicks: max(2, min(6, barWidth / 10)))
        for (row, label) in labels.enumerated() {
            for (s, set) in bars.enumerated() {
                var line: [Cell] = []
                let head = s == 0 ? String(row + 1).leftPadded(to: number) + " " : String(repeating: " ", count: number + 1)
                line += TextCells.plain(head, glyphs: glyphs)
                let text = s == 0 ? LabelledBars.fitted(label, columns: labelWidth, glyphs: glyphs) : []
                line += text + Array(repeating: Cell.blank, count: labelWidth - LabelledBars.columns(text)) + [Cell.blank]
                let v = row < set.values.count ? set.values[row] : .nan
                var eighths = 0
                if drawable(v) { eighths = Int((max(0, min(1, axisLayout.unit(v))) * Double(barWidth * 8)).rounded()) }
                let color = bars.count > 1 || style.color ? s : nil
                line += barCells(eighths: eighths, glyphs: glyphs, series: s, color: color)
                line += [Cell.blank] + TextCells.plain(LabelledBars.figure(v), glyphs: glyphs)
                lines.append(line)
            }
        }
        // The axis under the rows: a rule with ticks, then their labels.
        let positions = axisLayout.tickPositions.map { Int(($0 * Double(barWidth)).rounded()) }
        var rule = Array(repeating: Cell(character: glyphs.horizontal, color: nil), count: barWidth + 1)
        for p in positions where p >= 0 && p <= barWidth { rule[p] = Cell(character: glyphs.xTick, color: nil) }
        lines.append(Array(repeating: .blank, count: left) + rule)
        var tickLine = Array(repeating: Cell.blank, count: left + barWidth + valueWidth + 1)
        var free = 0
        for (p, label) in zip(positions, axisLayout.labels) {
            let cells = TextCells.plain(label, glyphs: glyphs)
            let start = max(free, min(left + p - cells.count / 2, tickLine.count - cells.count))
            guard start + cells.count <= tickLine.count else { continue }
            tickLine.replaceSubrange(start..<(start + cells.count), with: cells)
            free = start + cells.count + 1
        }
        lines.append(tickLine)
        lines.append(TextCells.centered(axis.title, width: left * 2 + barWidth, glyphs: glyphs))
        if bars.count > 1 {
            var legend: [Cell] = []
            for (s, set) in bars.enumerated() {
                if s > 0 { legend += TextCells.plain("   ", glyphs: glyphs) }
                legend += barCells(eighths: 16, glyphs: glyphs, series: s, color: s) + [Cell.blank] + TextCells.plain(set.name, glyphs: glyphs)
            }
            lines.append(legend)
        }
        for note in allNotes { lines += TextCells.wrapped(note, width: width, glyphs: glyphs) }
        return lines.map { TextCells.render($0, color: style.color) + "\n" }.joined()
    }

    /// The terminal columns `cells` take: 2 for an East Asian wide character or an emoji,
    /// 0 for a combining mark on its own, 1 for the others.
    static func columns(_ cells: [Cell]) -> Int {
        cells.reduce(0) { total, cell in
            guard let scalar = cell.character.unicodeScalars.first else { return total }
            let v = scalar.value
            switch scalar.properties.generalCategory {
            case .nonspacingMark, .enclosingMark: return total
            default: break
            }
            let wide = scalar.properties.isEmojiPresentation || (0x1100...0x115F).contains(v) || (0x2E80...0x303E).contains(v)
                || (0x3041...0x33FF).contains(v) || (0x3400...0x4DBF).contains(v) || (0x4E00...0x9FFF).contains(v)
                || (0xA000...0xA4CF).contains(v) || (0xAC00...0xD7A3).contains(v) || (0xF900...0xFAFF).contains(v)
                || (0xFE30...0xFE4F).contains(v) || (0xFF00...0xFF60).contains(v) || (0xFFE0...0xFFE6).contains(v)
                || (0x20000...0x3FFFD).contains(v)
            return total + (wide ? 2 : 1)
        }
    }

    /// `text` cut to at most `columns` terminal columns, with an ellipsis when cut.
    static func fitted(_ text: String, columns limit: Int, glyphs: Glyphs) -> [Cell] {
        let cells = TextCells.plain(text, glyphs: glyphs)
        guard columns(cells) > limit else { return cells }
        let ellipsis = TextCells.plain(glyphs.ellipsis)
        var out: [Cell] = []
        for cell in cells {
            if columns(out + [cell]) + ellipsis.count > limit { break }
            out.append(cell)
        }
        return out + (ellipsis.count <= limit ? ellipsis : [])
    }

    /// A bar `eighths`/8 cells long: eighth blocks in Unicode; in ASCII whole cells of the
    /// series' character (`#`, `=`, `*`, …), a half cell rounded.
    private func barCells(eighths: Int, glyphs: Glyphs, series: Int, color: Int?) -> [Cell] {
        if glyphs.unicode {
            let partial: [Character] = ["▏", "▎", "▍", "▌", "▋", "▊", "▉"]
            let fill: Character = series % 2 == 0 ? "█" : "▓"
            var cells = Array(repeating: Cell(character: fill, color: color), count: eighths / 8)
            if eighths % 8 > 0 { cells.append(Cell(character: series % 2 == 0 ? partial[eighths % 8 - 1] : "▒", color: color)) }
            return cells
        }
        let marks: [Character] = ["#", "=", "*", "+", "%", "@"]
        return Array(repeating: Cell(character: marks[series % marks.count], color: color), count: (eighths + 4) / 8)
    }
}

// MARK: SVG

extension LabelledBars {
    public func svg() -> String {
        let n = Markup.number, e = Markup.escape
        let row = 16.0, barGap = 2.0
        let barHeight = (row - barGap) / Double(max(1, bars.count))
        let shownLabels = labels.map { $0.count > LabelledBars.svgLabelLength ? String($0.prefix(LabelledBars.svgLabelLength - 1)) + "…" : $0 }
        let labelWidth = 12 + 7.5 * Double(shownLabels.map { LabelledBars.columns(TextCells.plain($0)) }.max() ?? 1)
        let numberWidth = 8 + 7 * Double(String(labels.count).count)
        let left = numberWidth + labelWidth, plotWidth = 380.0, valueWidth = 80.0
        let width = left + plotWidth + valueWidth
        let top = 44.0 + (bars.count > 1 ? 20 : 0)
        let bottom = top + Double(labels.count) * row
        let notes = allNotes
        let height = bottom + 50 + Double(notes.count) * 15 + 8
        let axisLayout = layout(maxTicks: 6)
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(n(width))\" height=\"\(n(height))\" viewBox=\"0 0 \(n(width)) \(n(height))\" "
        out += "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\" fill=\"#222222\">\n"
        out += "<title>\(e(title))</title>\n<rect width=\"\(n(width))\" height=\"\(n(height))\" fill=\"#ffffff\"/>\n"
        out += "<text class=\"title\" x=\"\(n(width / 2))\" y=\"24\" text-anchor=\"middle\" font-size=\"\(n(SVGPanel.fittedFontSize(title, preferred: 14, bold: true, room: width - 16)))\" font-weight=\"bold\">\(e(title))</text>\n"
        if bars.count > 1 {
            out += "<g class=\"legend\">\n"
            var x = left
            for (s, set) in bars.enumerated() {
                out += "<rect x=\"\(n(x))\" y=\"38\" width=\"12\" height=\"10\" fill=\"\(SeriesLook.color(s))\"/>"
                out += "<text x=\"\(n(x + 16))\" y=\"47\">\(e(set.name))</text>\n"
                x += 28 + 7 * Double(set.name.count)
            }
            out += "</g>\n"
        }
        let px = { (u: Double) in left + max(0, min(1, u)) * plotWidth }
        out += "<g class=\"grid\" stroke=\"#e8e8e8\" stroke-width=\"1\">\n"
        for u in axisLayout.tickPositions { out += "<line x1=\"\(n(px(u)))\" y1=\"\(n(top))\" x2=\"\(n(px(u)))\" y2=\"\(n(bottom))\"/>\n" }
        out += "</g>\n<g class=\"rows\">\n"
        for r in labels.indices {
            let y = top + Double(r) * row
            out += "<text class=\"index\" x=\"\(n(numberWidth - 6))\" y=\"\(n(y + row / 2))\" dy=\"0.32em\" text-anchor=\"end\" fill=\"#888888\">\(r + 1)</text>"
            let shown = shownLabels[r]
            out += "<text class=\"label\" x=\"\(n(left - 6))\" y=\"\(n(y + row / 2))\" dy=\"0.32em\" text-anchor=\"end\" font-family=\"Menlo, Consolas, monospace\" xml:space=\"preserve\">\(e(shown))</text>\n"
            for (s, set) in bars.enumerated() {
                let v = r < set.values.count ? set.values[r] : .nan
                let by = y + barGap / 2 + Double(s) * barHeight
                if drawable(v) {
                    let w = px(axisLayout.unit(v)) - left
                    out += "<rect x=\"\(n(left))\" y=\"\(n(by))\" width=\"\(n(max(0, w)))\" height=\"\(n(barHeight))\" fill=\"\(SeriesLook.color(s))\"/>"
                }
                out += "<text class=\"value\" x=\"\(n(left + plotWidth + 6))\" y=\"\(n(by + barHeight / 2))\" dy=\"0.32em\" font-size=\"\(n(min(11, barHeight + 1)))\">\(e(LabelledBars.figure(v)))</text>\n"
            }
        }
        out += "</g>\n<g class=\"axes\" stroke=\"#444444\" stroke-width=\"1\">\n"
        out += "<line x1=\"\(n(left))\" y1=\"\(n(top))\" x2=\"\(n(left))\" y2=\"\(n(bottom))\"/>\n"
        out += "<line x1=\"\(n(left))\" y1=\"\(n(bottom))\" x2=\"\(n(left + plotWidth))\" y2=\"\(n(bottom))\"/>\n"
        for u in axisLayout.tickPositions { out += "<line x1=\"\(n(px(u)))\" y1=\"\(n(bottom))\" x2=\"\(n(px(u)))\" y2=\"\(n(bottom + 5))\"/>\n" }
        out += "</g>\n<g class=\"x-ticks\" text-anchor=\"middle\">\n"
        for (u, label) in zip(axisLayout.tickPositions, axisLayout.labels) { out += "<text x=\"\(n(px(u)))\" y=\"\(n(bottom + 19))\">\(e(label))</text>\n" }
        out += "</g>\n"
        out += "<text class=\"axis-title\" x=\"\(n(left + plotWidth / 2))\" y=\"\(n(bottom + 38))\" text-anchor=\"middle\">\(e(axis.title))</text>\n"
        if !notes.isEmpty {
            out += "<g class=\"notes\" font-size=\"11\" fill=\"#444444\">\n"
            for (i, note) in notes.enumerated() { out += "<text class=\"note\" x=\"16\" y=\"\(n(bottom + 58 + Double(i) * 15))\">\(e(note))</text>\n" }
            out += "</g>\n"
        }
        out += "</svg>\n"
        return out
    }
}

extension LabelledBars {
    /// The longest label the SVG writes whole (in characters; a longer one is cut with "…").
    static let svgLabelLength = 24
}

private extension String {
    func leftPadded(to width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}

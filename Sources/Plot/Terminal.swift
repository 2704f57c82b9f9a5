// A figure as terminal text: each panel is its title, the y axis title, the plotting area with
// the y ticks on its left, the x axis with its ticks, their labels, the x axis title, the
// legend, the density key and the notes, in that order:
//
//                  loss per step
//     loss (nats)
//       1 ┤
//         │⠑⠢⢄⡀
//     0.5 ┤   ⠈⠑⠢⢄⡀
//         │       ⠈⠉⠑⠒⠒⠢⠤⠤⢄⣀⣀⡀
//       0 ┤                  ⠈⠉⠉⠉⠑⠒⠒⠒⠒⠒⠒⠒⠒⠒⠒
//         └┬───────┬───────┬───────┬───────┬
//          0       50     100     150     200
//                        step
//
// (one series, 40 columns, height 5). The y tick labels sit on the row holding their value.
// Widths are counted in characters (one column each); no line is longer than the style's
// width, and no line ends in a space. Text that does not fit is cut with an ellipsis; notes
// are wrapped. In ASCII mode every text is transliterated (π → pi, ≤ → <=, others → ?).

extension Figure {
    /// The figure drawn as terminal text, lines ending in a newline (see TerminalStyle).
    public func terminal(_ style: TerminalStyle) -> String {
        let width = max(1, style.width)
        let glyphs = Glyphs(unicode: style.unicode)
        var lines: [[Cell]] = []
        if let title, !title.isEmpty { lines += TextCells.centeredLines(title, width: width, glyphs: glyphs) }
        if panels.isEmpty {
            lines.append(TextCells.fitted("no charts to plot", width: width, glyphs: glyphs))
        }
        let reserve = (title: panels.contains { !$0.title.isEmpty }, yTitle: panels.contains { !$0.y.title.isEmpty })
        let gap = 2
        let sideWidth = panels.count > 1 ? (width - gap * (panels.count - 1)) / panels.count : width
        if panels.count > 1 && sideWidth >= Figure.minimumPanelWidth {
            let rendered = panels.map { TerminalPanel(chart: $0, width: sideWidth, style: style, reserve: reserve, alone: false).lines() }
            let height = rendered.map(\.count).max() ?? 0
            for row in 0..<height {
                var line: [Cell] = []
                for (i, panel) in rendered.enumerated() {
                    if i > 0 { line += Array(repeating: .blank, count: gap) }
                    let cells = row < panel.count ? panel[row] : []
                    line += cells + Array(repeating: .blank, count: max(0, sideWidth - cells.count))
                }
                lines.append(line)
            }
        } else {
            for (i, chart) in panels.enumerated() {
                if i > 0 { lines.append([]) }
                lines += TerminalPanel(chart: chart, width: width, style: style, reserve: reserve, alone: true).lines()
            }
        }
        return lines.map { TextCells.render($0, color: style.color) + "\n" }.joined()
    }
}

/// One chart laid out in a given number of columns.
struct TerminalPanel {
    let chart: Chart
    let width: Int
    let style: TerminalStyle
    /// Keep a title line and a y axis title line even when empty, to align panels side by side.
    let reserve: (title: Bool, yTitle: Bool)
    /// Not beside another panel: titles and messages wrap instead of being cut (beside
    /// another, each takes one line so that the panels' rows stay aligned).
    let alone: Bool

    var glyphs: Glyphs { Glyphs(unicode: style.unicode) }

    /// One line of text, wrapped when the panel is alone, else cut.
    private func text(_ t: String) -> [[Cell]] {
        alone ? TextCells.wrapped(t, width: width, glyphs: glyphs) : [TextCells.fitted(t, width: width, glyphs: glyphs)]
    }

    /// The panel's lines, each at most `width` cells.
    func lines() -> [[Cell]] {
        let cleaned = Cleaned(chart)
        if cleaned.isEmpty { return text(Cleaned.emptyMessage(chart, cleaned)) }
        let rows = max(3, style.height)
        let y = AxisLayout(chart.y, name: "y", extent: cleaned.yExtent, maxTicks: min(6, max(2, (rows + 1) / 2)))
        let gutter = (y.labels.map(\.count).max() ?? 0) + 1
        let columns = width - gutter - 1 - 2
        guard columns >= 8 else {
            return [TextCells.fitted("\(chart.title.isEmpty ? "chart" : chart.title): needs \(width - columns + 8) columns",
                                     width: width, glyphs: glyphs)]
        }
        let (x, xLabels) = fitXAxis(cleaned, columns: columns, offset: gutter + 1)
        let layout = PanelLayout(chart, cleaned, x: x, y: y)

        var canvas = Canvas(columns: columns, rows: rows, seriesCount: chart.series.count)
        for line in layout.diagonal { canvas.reference(line) }
        for s in layout.series { for b in s.bars { canvas.bar(b, series: s.index) } }
        for s in layout.series { for p in s.polylines { canvas.polyline(p, series: s.index) } }
        for s in layout.series { for p in s.points { canvas.point(p, series: s.index) } }
        let mode = drawingMode()
        let area = canvas.cells(mode: mode, glyphs: glyphs, styles: chart.series.map(\.style))

        var out: [[Cell]] = []
        if !chart.title.isEmpty || reserve.title {
            out += alone ? TextCells.centeredLines(chart.title, width: width, glyphs: glyphs)
                         : [TextCells.centered(chart.title, width: width, glyphs: glyphs)]
        }
        if !chart.y.title.isEmpty || reserve.yTitle { out += text(chart.y.title) }
        // Rows of the plotting area, with the y ticks.
        var tickLabels: [Int: String] = [:]
        for (position, label) in zip(y.tickPositions, y.labels) {
            let row = canvas.dot(UnitPoint(x: 0, y: position)).y / 4
            if tickLabels[row] == nil { tickLabels[row] = label }
        }
        for r in 0..<rows {
            let label = tickLabels[r] ?? ""
            var line = TextCells.plain(String(repeating: " ", count: gutter - 1 - label.count) + label + " ")
            line.append(Cell(character: tickLabels[r] == nil ? glyphs.vertical : glyphs.yTick, color: nil))
            out.append(line + area[r])
        }
        // The x axis and its labels.
        var axisLine = TextCells.plain(String(repeating: " ", count: gutter))
        axisLine.append(Cell(character: glyphs.corner, color: nil))
        var rule = Array(repeating: Cell(character: glyphs.horizontal, color: nil), count: columns)
        for position in x.tickPositions { rule[canvas.dot(UnitPoint(x: position, y: 0)).x / 2] = Cell(character: glyphs.xTick, color: nil) }
        out.append(axisLine + rule)
        out.append(xLabels)
        if !chart.x.title.isEmpty {
            let title = TextCells.fitted(chart.x.title, width: width, glyphs: glyphs)
            let start = max(0, min(width - title.count, gutter + 1 + (columns - title.count) / 2))
            out.append(TextCells.plain(String(repeating: " ", count: start)) + title)
        }
        out += legend(layout, mode: mode)
        if case .fine = mode, canvas.hasCell(withAtLeast: Glyphs.shades[0].1) {
            out += TextCells.wrapped(Glyphs.shades.map { "\($0.0) \($0.1)+" }.joined(separator: "  ") + " points per cell",
                                     width: width, glyphs: glyphs)
        }
        if case .coarse(density: true) = mode, canvas.hasCell(withAtLeast: Glyphs.asciiDensity[1].1) {
            out += TextCells.wrapped(". 1-3  o 4+  * 16+  # 64+ points per cell", width: width, glyphs: glyphs)
        }
        for note in layout.notes { out += TextCells.wrapped(note, width: width, glyphs: glyphs) }
        return out
    }

    /// Fine when braille can tell the series apart (Unicode, and colour or a single series).
    func drawingMode() -> Canvas.Mode {
        if style.unicode && (style.color || chart.series.count <= 1) { return .fine }
        let loneScatter = chart.series.count == 1 && chart.series[0].style == .points
        return .coarse(density: loneScatter && !style.unicode)
    }

    /// The x axis with as many ticks (at most 6) as have labels that fit, and the labels' line.
    private func fitXAxis(_ cleaned: Cleaned, columns: Int, offset: Int) -> (AxisLayout, [Cell]) {
        var best: (AxisLayout, [Cell])?
        for maxTicks in stride(from: 6, through: 2, by: -1) {
            let x = AxisLayout(chart.x, name: "x", extent: cleaned.xExtent, maxTicks: maxTicks)
            let probe = Canvas(columns: columns, rows: 1, seriesCount: 1)
            var line = Array(repeating: Cell.blank, count: width)
            var end = 0          // first free column
            var fits = true
            for (position, label) in zip(x.tickPositions, x.labels) {
                let center = offset + probe.dot(UnitPoint(x: position, y: 0)).x / 2
                let start = min(max(0, center - (label.count - 1) / 2), width - label.count)
                if start < end + (end == 0 ? 0 : 1) || start < 0 { fits = false; continue }
                for (i, ch) in label.enumerated() { line[start + i] = Cell(character: ch, color: nil) }
                end = start + label.count
            }
            if fits { return (x, line) }
            if best == nil || maxTicks == 2 { best = (x, line) }
        }
        return best!
    }

    /// The legend (when there are several series or the y = x reference), wrapped.
    private func legend(_ layout: PanelLayout, mode: Canvas.Mode) -> [[Cell]] {
        guard chart.series.count > 1 || !layout.diagonal.isEmpty else { return [] }
        var entries: [[Cell]] = []
        for (i, s) in chart.series.enumerated() {
            let sample: String
            switch mode {
            case .fine: sample = s.style == .bars ? "█" : s.style == .points ? "⠶" : "──"
            case .coarse(let density):
                sample = density ? "." : (chart.series.count == 1 && !style.unicode && s.style == .bars) ? "#" : String(glyphs.mark(i))
            }
            entries.append(sample.map { Cell(character: $0, color: i) } + [.blank] + TextCells.plain(s.name, glyphs: glyphs))
        }
        if !layout.diagonal.isEmpty {
            let sample: [Cell] = style.unicode ? [Cell(character: "·", color: Cell.faint), Cell(character: "·", color: Cell.faint)]
                                               : [Cell(character: "/", color: Cell.faint)]
            entries.append(sample + TextCells.plain(" y = x"))
        }
        var lines: [[Cell]] = []
        var line: [Cell] = []
        for entry in entries {
            let entry = Array(entry.prefix(width))
            if !line.isEmpty && line.count + 3 + entry.count > width {
                lines.append(line)
                line = []
            }
            if !line.isEmpty { line += Array(repeating: .blank, count: 3) }
            line += entry
        }
        if !line.isEmpty { lines.append(line) }
        return lines
    }
}

/// Text as cells: fitting, centring, wrapping, ASCII transliteration, and the final string.
enum TextCells {
    /// Cells of `text` in the default colour (transliterated when `glyphs` is ASCII); control
    /// characters (newlines, tabs, escape) become spaces, so text cannot break a line or send
    /// the terminal a sequence.
    static func plain(_ text: String, glyphs: Glyphs? = nil) -> [Cell] {
        let text = glyphs.map { $0.unicode } == false ? ascii(text) : text
        return text.map { ch in
            let control = ch.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }
            return Cell(character: control ? " " : ch, color: nil)
        }
    }

    /// `text` cut to `width` with an ellipsis when longer.
    static func fitted(_ text: String, width: Int, glyphs: Glyphs) -> [Cell] {
        let cells = plain(text, glyphs: glyphs)
        guard cells.count > width else { return cells }
        let ellipsis = plain(glyphs.ellipsis)
        if width <= ellipsis.count { return Array(cells.prefix(width)) }
        return Array(cells.prefix(width - ellipsis.count)) + ellipsis
    }

    /// `text` centred in `width` (cut when longer).
    static func centered(_ text: String, width: Int, glyphs: Glyphs) -> [Cell] {
        let cells = fitted(text, width: width, glyphs: glyphs)
        return Array(repeating: .blank, count: (width - cells.count) / 2) + cells
    }

    /// `text` wrapped at spaces, each line centred in `width`: a figure's title, which is the
    /// one line a reader must see whole.
    static func centeredLines(_ text: String, width: Int, glyphs: Glyphs) -> [[Cell]] {
        wrapped(text, width: width, glyphs: glyphs).map { Array(repeating: .blank, count: max(0, width - $0.count) / 2) + $0 }
    }

    /// `text` wrapped at spaces into lines of at most `width` (a longer word is split).
    static func wrapped(_ text: String, width: Int, glyphs: Glyphs) -> [[Cell]] {
        let cells = plain(text, glyphs: glyphs)
        var lines: [[Cell]] = []
        var rest = cells[...]
        while rest.count > width {
            let window = rest.prefix(width + 1)
            let cut = window.lastIndex { $0.character == " " }
            if let cut, cut > rest.startIndex {
                lines.append(Array(rest[rest.startIndex..<cut]))
                rest = rest[(cut + 1)...]
            } else {
                lines.append(Array(rest.prefix(width)))
                rest = rest.dropFirst(width)
            }
        }
        lines.append(Array(rest))
        return lines
    }

    /// A line of cells as text: trailing spaces dropped, ANSI colours only when `color`.
    static func render(_ line: [Cell], color: Bool) -> String {
        var cells = line[...]
        while cells.last?.character == " " { cells = cells.dropLast() }
        guard color else { return String(cells.map(\.character)) }
        var out = ""
        var current: Int?
        for cell in cells {
            let wanted = cell.character == " " ? current : cell.color
            if wanted != current {
                if current != nil { out += "\u{1B}[0m" }
                if let wanted { out += "\u{1B}[\(ansi(wanted))m" }
                current = wanted
            }
            out.append(cell.character)
        }
        if current != nil { out += "\u{1B}[0m" }
        return out
    }

    /// The ANSI foreground colour of a series (blue, vermilion-red, green, yellow, magenta,
    /// cyan, the nearest the 8-colour palette has to the SVG's), grey for the reference.
    static func ansi(_ index: Int) -> Int {
        index == Cell.faint ? 90 : [34, 31, 32, 33, 35, 36][index % 6]
    }

    /// `text` in ASCII: common mathematical and Greek characters by name, others as "?".
    static func ascii(_ text: String) -> String {
        let table: [Character: String] = [
            "−": "-", "–": "-", "—": "-", "≤": "<=", "≥": ">=", "≠": "!=", "≈": "~", "±": "+/-", "×": "x",
            "·": ".", "‖": "||", "…": "...", "→": "->", "←": "<-", "∞": "inf", "“": "\"", "”": "\"", "‘": "'", "’": "'",
            "α": "alpha", "β": "beta", "γ": "gamma", "δ": "delta", "Δ": "Delta", "ε": "eps", "θ": "theta",
            "λ": "lambda", "μ": "mu", "π": "pi", "ρ": "rho", "σ": "sigma", "τ": "tau", "Σ": "Sum", "√": "sqrt",
        ]
        var out = ""
        for ch in text {
            if ch.isASCII { out.append(ch) } else { out += table[ch] ?? "?" }
        }
        return out
    }
}

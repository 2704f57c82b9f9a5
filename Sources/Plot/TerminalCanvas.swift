// The terminal's plotting area: a grid of character cells that shapes from a PanelLayout are
// drawn into, and the rule that turns each cell into one character.
//
// Two ways of drawing, chosen per chart:
// - fine (Unicode, and colour or a single series): every cell is a braille character of 2×4
//   dots, so lines and points are placed at twice the column and four times the row
//   resolution. A cell where 4 or more points of a scatter land is shaded by their count
//   instead, in steps of 4: ░ 4–15, ▒ 16–63, ▓ 64–255, █ 256 or more. Bars are full blocks
//   topped by a lower-eighth block (▁▂▃▄▅▆▇), so their heights read to 1/8 of a row.
// - coarse (ASCII, or Unicode without colour and several series, where braille dots of
//   different series would look alike): one glyph per cell, each series its own
//   (ASCII * o + x # @; Unicode ● × ○ + ■ ◆). An ASCII chart whose only series is a scatter
//   shows the count per cell instead: . 1–3, o 4–15, * 16–63, # 64 or more. A bar fills a
//   cell when it covers at least half of it.
// Layers, bottom to top: the y = x reference (· or /, only where nothing else is drawn),
// bars, lines and stairs, points; within a layer, later series on top. A bar narrower than a
// column is merged into the column holding its middle, which shows the tallest of them.

/// One character of output and its colour (an index into the series palette; -1 for the
/// diagonal's faint grey; nil for the default colour).
struct Cell: Equatable {
    var character: Character
    var color: Int?

    static let blank = Cell(character: " ", color: nil)
    /// The colour index of the y = x reference.
    static let faint = -1
}

/// The glyphs of one rendering, Unicode or ASCII.
struct Glyphs {
    let unicode: Bool

    var vertical: Character { unicode ? "│" : "|" }
    var horizontal: Character { unicode ? "─" : "-" }
    var yTick: Character { unicode ? "┤" : "+" }
    var xTick: Character { unicode ? "┬" : "+" }
    var corner: Character { unicode ? "└" : "+" }
    var diagonal: Character { unicode ? "·" : "/" }
    var ellipsis: String { unicode ? "…" : "..." }

    /// Fine mode's shades and the counts from which each is used.
    static let shades: [(Character, Int)] = [("░", 4), ("▒", 16), ("▓", 64), ("█", 256)]
    /// ASCII counts per cell for a lone scatter.
    static let asciiDensity: [(Character, Int)] = [(".", 1), ("o", 4), ("*", 16), ("#", 64)]
    /// Lower eighths of a cell, index = eighths covered.
    static let eighths: [Character] = [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"]

    /// The coarse glyph of series `index`.
    func mark(_ index: Int) -> Character {
        let marks: [Character] = unicode ? ["●", "×", "○", "+", "■", "◆"] : ["*", "o", "+", "x", "#", "@"]
        return marks[index % marks.count]
    }
}

/// The grid of cells of a plotting area.
struct Canvas {
    let columns: Int
    let rows: Int
    let seriesCount: Int

    private var dots: [UInt8]
    private var dotOwner: [Int]
    /// Points per cell and series: `counts[cell * seriesCount + series]`.
    private var counts: [Int]
    /// Coarse mode: the series on top of each cell and its layer.
    private var coarseOwner: [Int]
    private var coarseLayer: [Int]
    private var barOwner: [Int]
    private var barEighths: [Int]
    private var diagonal: [Bool]

    init(columns: Int, rows: Int, seriesCount: Int) {
        self.columns = columns
        self.rows = rows
        self.seriesCount = max(1, seriesCount)
        let cells = columns * rows
        dots = Array(repeating: 0, count: cells)
        dotOwner = Array(repeating: -1, count: cells)
        counts = Array(repeating: 0, count: cells * self.seriesCount)
        coarseOwner = Array(repeating: -1, count: cells)
        coarseLayer = Array(repeating: 0, count: cells)
        barOwner = Array(repeating: -1, count: cells)
        barEighths = Array(repeating: 0, count: cells)
        diagonal = Array(repeating: false, count: cells)
    }

    // MARK: Drawing, in the unit square

    /// The dot nearest a unit-square position: x in 0..<2·columns, y in 0..<4·rows from the top.
    func dot(_ p: UnitPoint) -> (x: Int, y: Int) {
        let x = Int((min(max(p.x, 0), 1) * Double(2 * columns - 1)).rounded())
        let y = Int(((1 - min(max(p.y, 0), 1)) * Double(4 * rows - 1)).rounded())
        return (x, y)
    }

    /// Draws a polyline (already clipped) of series `series`.
    mutating func polyline(_ points: [UnitPoint], series: Int) {
        guard let first = points.first else { return }
        var previous = dot(first)
        setDot(previous, series: series)
        for p in points.dropFirst() {
            let next = dot(p)
            for d in Self.bresenham(previous, next) { setDot(d, series: series) }
            previous = next
        }
    }

    /// Draws one point of a scatter.
    mutating func point(_ p: UnitPoint, series: Int) {
        let d = dot(p)
        setDot(d, series: series, layer: 3)
        counts[cell(d) * seriesCount + series] += 1
    }

    /// Marks the y = x reference's cells.
    mutating func reference(_ points: [UnitPoint]) {
        guard let first = points.first else { return }
        var previous = dot(first)
        diagonal[cell(previous)] = true
        for p in points.dropFirst() {
            let next = dot(p)
            for d in Self.bresenham(previous, next) { diagonal[cell(d)] = true }
            previous = next
        }
    }

    /// Draws a histogram bar.
    mutating func bar(_ b: UnitBar, series: Int) {
        let x0 = b.x0 * Double(columns), x1 = b.x1 * Double(columns)
        var covered = (0..<columns).filter { Double($0) + 0.5 >= x0 && Double($0) + 0.5 < x1 }
        if covered.isEmpty { covered = [min(columns - 1, max(0, Int((x0 + x1) / 2)))] }
        let base = b.y0 * Double(rows), top = b.y1 * Double(rows)     // in rows, from the bottom
        for column in covered {
            for r in 0..<rows {
                let fromBottom = Double(r)
                let coverage: Double
                if top >= base {
                    coverage = fromBottom + 1 <= base.rounded(.down) ? 0 : min(max(top - fromBottom, 0), 1)
                } else {
                    coverage = min(fromBottom + 1, base) - max(fromBottom, top)
                }
                let eighths = top >= base ? Int((coverage * 8).rounded()) : (coverage >= 0.5 ? 8 : 0)
                guard eighths > 0 else { continue }
                let c = (rows - 1 - r) * columns + column
                if series > barOwner[c] || (series == barOwner[c] && eighths > barEighths[c]) {
                    barOwner[c] = series
                    barEighths[c] = eighths
                }
                if coverage >= 0.5 { claim(c, series: series, layer: 1) }
            }
        }
    }

    private func cell(_ d: (x: Int, y: Int)) -> Int { (d.y / 4) * columns + d.x / 2 }

    private mutating func setDot(_ d: (x: Int, y: Int), series: Int, layer: Int = 2) {
        let c = cell(d)
        // Braille dot numbering: left column 1, 2, 3, 7 and right column 4, 5, 6, 8, top down.
        let bits: [[UInt8]] = [[0x01, 0x02, 0x04, 0x40], [0x08, 0x10, 0x20, 0x80]]
        dots[c] |= bits[d.x % 2][d.y % 4]
        if layer >= 2 { dotOwner[c] = series }
        claim(c, series: series, layer: layer)
    }

    private mutating func claim(_ c: Int, series: Int, layer: Int) {
        if layer > coarseLayer[c] || (layer == coarseLayer[c] && series >= coarseOwner[c]) {
            coarseLayer[c] = layer
            coarseOwner[c] = series
        }
    }

    /// The dots on the segment from a to b, both ends included.
    static func bresenham(_ a: (x: Int, y: Int), _ b: (x: Int, y: Int)) -> [(x: Int, y: Int)] {
        var x = a.x, y = a.y
        let dx = abs(b.x - a.x), dy = -abs(b.y - a.y)
        let sx = a.x < b.x ? 1 : -1, sy = a.y < b.y ? 1 : -1
        var error = dx + dy
        var out: [(x: Int, y: Int)] = []
        while true {
            out.append((x, y))
            if x == b.x && y == b.y { return out }
            let e2 = 2 * error
            if e2 >= dy { error += dy; x += sx }
            if e2 <= dx { error += dx; y += sy }
        }
    }

    // MARK: Cells to characters

    /// How the cells are turned into characters.
    enum Mode {
        case fine
        /// `density`: the lone series is an ASCII scatter, shown by count per cell.
        case coarse(density: Bool)
    }

    /// Whether some cell holds at least `count` points.
    func hasCell(withAtLeast count: Int) -> Bool {
        (0..<(columns * rows)).contains { c in total(c) >= count }
    }

    private func total(_ c: Int) -> Int {
        counts[(c * seriesCount)..<((c + 1) * seriesCount)].reduce(0, +)
    }

    /// The series with the most points in cell `c` (the later one on a tie).
    private func densest(_ c: Int) -> Int {
        var best = 0
        for s in 0..<seriesCount where counts[c * seriesCount + s] >= counts[c * seriesCount + best] { best = s }
        return best
    }

    /// The rows of characters, top to bottom.
    func cells(mode: Mode, glyphs: Glyphs, styles: [SeriesStyle]) -> [[Cell]] {
        (0..<rows).map { r in
            (0..<columns).map { column in
                let c = r * columns + column
                switch mode {
                case .fine: return fineCell(c)
                case .coarse(let density): return coarseCell(c, density: density, glyphs: glyphs, styles: styles)
                }
            }
        }
    }

    private func fineCell(_ c: Int) -> Cell {
        let n = total(c)
        if let shade = Glyphs.shades.last(where: { n >= $0.1 }) {
            return Cell(character: shade.0, color: densest(c))
        }
        if dots[c] != 0 {
            return Cell(character: Character(Unicode.Scalar(0x2800 + UInt32(dots[c]))!), color: dotOwner[c] >= 0 ? dotOwner[c] : densest(c))
        }
        if barOwner[c] >= 0 { return Cell(character: Glyphs.eighths[barEighths[c]], color: barOwner[c]) }
        if diagonal[c] { return Cell(character: "·", color: Cell.faint) }
        return .blank
    }

    private func coarseCell(_ c: Int, density: Bool, glyphs: Glyphs, styles: [SeriesStyle]) -> Cell {
        if density {
            let n = total(c)
            if let level = Glyphs.asciiDensity.last(where: { n >= $0.1 }) { return Cell(character: level.0, color: 0) }
        } else if coarseOwner[c] >= 0 {
            let s = coarseOwner[c]
            if styles.count == 1 && !glyphs.unicode {
                return Cell(character: styles[0] == .bars ? "#" : glyphs.mark(0), color: s)
            }
            return Cell(character: glyphs.mark(s), color: s)
        }
        if diagonal[c] { return Cell(character: glyphs.diagonal, color: Cell.faint) }
        return .blank
    }
}

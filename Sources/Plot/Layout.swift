// What both renderers share: the data cleaned (Cleaned), the axes fitted (AxisLayout), and the
// shapes placed in the plot area's unit square and clipped to it (PanelLayout). A renderer
// only maps the unit square to dots or pixels and draws; every decision about which points
// are drawn, the ranges and the ticks is made here, once. The rules are listed in Plot.swift.

import Foundation

/// A position in the plot area: (0, 0) is the bottom left corner, (1, 1) the top right.
struct UnitPoint: Equatable, Sendable {
    var x: Double
    var y: Double
}

/// A histogram bar in the plot area, already clipped to it: x0 < x1, y0 is the baseline.
struct UnitBar: Equatable, Sendable {
    var x0: Double, x1: Double, y0: Double, y1: Double
}

/// The chart's data after dropping what cannot be drawn, in data units.
struct Cleaned {
    /// One series' drawable parts: polylines (line, stairs), points, or bars.
    struct SeriesData {
        var index: Int
        var name: String
        var style: SeriesStyle
        /// For lines and stairs: the runs between gaps (stairs already as their step path);
        /// for points: one run holding every point.
        var runs: [[(x: Double, y: Double)]] = []
        /// For bars: left edge, right edge, height.
        var bars: [(x0: Double, x1: Double, y: Double)] = []
    }

    var series: [SeriesData] = []
    /// The smallest and largest drawable x and y (bars on a linear y axis include 0).
    var xExtent: ClosedRange<Double>?
    var yExtent: ClosedRange<Double>?
    /// What was dropped, as sentences.
    var notes: [String] = []
    var notFinite = 0

    /// True when nothing at all can be drawn.
    var isEmpty: Bool { series.allSatisfy { $0.runs.allSatisfy(\.isEmpty) && $0.bars.isEmpty } }

    /// The data of `chart` that can be drawn on its axes' scales.
    init(_ chart: Chart) {
        let logX = chart.x.scale == .log10, logY = chart.y.scale == .log10
        var nonPositiveX = 0, nonPositiveY = 0
        var xs: [Double] = [], ys: [Double] = []
        var smallestBar = Double.infinity      // the lowest positive bar on a log y axis
        /// Whether a coordinate can be drawn; counts the reason when it cannot.
        func usable(_ v: Double, log: Bool, count: inout Int) -> Bool {
            if !v.isFinite { return false }
            if log && v <= 0 { count += 1; return false }
            return true
        }
        for (index, s) in chart.series.enumerated() {
            var data = SeriesData(index: index, name: s.name, style: s.style)
            let edges = (s.style == .bars || s.style == .stairs) && s.x.count == s.y.count + 1
            let n = min(s.x.count, s.y.count)
            if !edges && s.x.count != s.y.count {
                notes.append("series \"\(s.name)\": x has \(s.x.count) values, y has \(s.y.count); "
                             + "the \(max(s.x.count, s.y.count) - n) without a partner not drawn")
            }
            var run: [(x: Double, y: Double)] = []
            for i in 0..<n {
                let x = s.x[i], y = s.y[i]
                if !x.isFinite || !y.isFinite { notFinite += 1; data.close(&run); continue }
                if !usable(x, log: logX, count: &nonPositiveX) { data.close(&run); continue }
                if s.style == .bars {
                    let right: Double
                    if i + 1 < s.x.count { right = s.x[i + 1] } else if i > 0 { right = x + (x - s.x[i - 1]) } else { right = x + 1 }
                    if !right.isFinite { notFinite += 1; continue }
                    if logX && right <= 0 { nonPositiveX += 1; continue }
                    if logY && y < 0 { nonPositiveY += 1; continue }
                    xs += [x, right]
                    if !logY { ys += [y, 0] } else if y > 0 { ys.append(y); smallestBar = min(smallestBar, y) }
                    if !(logY && y == 0) { data.bars.append((min(x, right), max(x, right), y)) }
                    continue
                }
                if !usable(y, log: logY, count: &nonPositiveY) { data.close(&run); continue }
                xs.append(x); ys.append(y)
                if s.style == .stairs, let last = run.last { run.append((x, last.y)) }
                run.append((x, y))
            }
            if s.style == .stairs, edges, let last = run.last, n > 0, run.last!.x == s.x[n - 1] {
                let end = s.x[n]
                if end.isFinite && !(logX && end <= 0) { run.append((end, last.y)); xs.append(end) }
            }
            data.close(&run)
            series.append(data)
        }
        // Bars rise from the bottom of a log axis: put it below the lowest bar, so that it shows.
        if smallestBar.isFinite { ys.append(smallestBar / 2) }
        xExtent = xs.isEmpty ? nil : xs.min()!...xs.max()!
        yExtent = ys.isEmpty ? nil : ys.min()!...ys.max()!
        if notFinite > 0 { notes.append("\(Self.count(notFinite, "point")) not finite, not drawn") }
        if nonPositiveX > 0 { notes.append("\(Self.count(nonPositiveX, "point")) with x ≤ 0 not drawn (log scale)") }
        if nonPositiveY > 0 { notes.append("\(Self.count(nonPositiveY, "point")) with y ≤ 0 not drawn (log scale)") }
    }

    /// "1 point", "3 points".
    static func count(_ n: Int, _ noun: String) -> String { n == 1 ? "1 \(noun)" : "\(n) \(noun)s" }

    /// The one line shown instead of an empty chart.
    static func emptyMessage(_ chart: Chart, _ cleaned: Cleaned) -> String {
        let what = cleaned.notFinite > 0 ? "no finite data to plot" : "no data to plot"
        let detail = cleaned.notes.isEmpty ? "" : " (\(cleaned.notes.joined(separator: "; ")))"
        return (chart.title.isEmpty ? "" : "\(chart.title): ") + what + detail
    }
}

extension Cleaned.SeriesData {
    /// Ends the current run: a gap in a line, or for points simply more points.
    mutating func close(_ run: inout [(x: Double, y: Double)]) {
        guard !run.isEmpty else { return }
        if style == .points, !runs.isEmpty { runs[0] += run } else { runs.append(run) }
        run = []
    }
}

/// An axis fitted to its data: range, ticks, their labels and positions.
struct AxisLayout {
    var axis: Axis
    var lo: Double
    var hi: Double
    var ticks: [Tick]
    var labels: [String]
    /// A sentence when the given range could not be used.
    var note: String?

    /// Where a value lies along the axis: 0 at `lo`, 1 at `hi`.
    func unit(_ v: Double) -> Double {
        switch axis.scale {
        case .linear:
            // Halved when the span overflows (data near ±Double.greatestFiniteMagnitude).
            return (hi - lo).isFinite ? (v - lo) / (hi - lo) : (v / 2 - lo / 2) / (hi / 2 - lo / 2)
        case .log10: return (log10(v) - log10(lo)) / (log10(hi) - log10(lo))
        }
    }

    /// The ticks' positions along the axis.
    var tickPositions: [Double] { ticks.map { unit($0.value) } }

    /// The axis fitted to `extent` (nil: no data) with at most `maxTicks` ticks.
    init(_ axis: Axis, name: String, extent: ClosedRange<Double>?, maxTicks: Int) {
        self.axis = axis
        let log = axis.scale == .log10
        var given = axis.range
        if let r = given, !(r.lowerBound.isFinite && r.upperBound.isFinite) || (log && r.lowerBound <= 0) {
            note = log ? "\(name) range ignored: a log axis needs positive bounds" : "\(name) range ignored: not finite"
            given = nil
        }
        var lo: Double, hi: Double
        if let r = given {
            (lo, hi) = (r.lowerBound, r.upperBound)
        } else if let e = extent {
            (lo, hi) = (e.lowerBound, e.upperBound)
        } else {
            (lo, hi) = log ? (1, 10) : (0, 1)
        }
        if hi - lo <= 1e-12 * max(lo.magnitude, hi.magnitude) {
            // A single value: a sensible range around it.
            if log { (lo, hi) = (lo / 2, lo * 2) } else if lo == 0 { (lo, hi) = (-1, 1) } else {
                let d = lo.magnitude * 0.1
                (lo, hi) = (lo - d, lo + d)
            }
            given = nil
        }
        let fitted = log ? NiceTicks.log(lo, hi, maxCount: maxTicks, extend: given == nil)
                         : NiceTicks.linear(lo, hi, maxCount: maxTicks, extend: given == nil, integral: axis.integral)
        self.lo = fitted.range.lowerBound
        self.hi = fitted.range.upperBound
        ticks = fitted.ticks
        labels = TickLabels.labels(fitted.ticks, scale: axis.scale)
    }
}


/// A chart laid out in the unit square: every shape to draw, already clipped, and the notes.
struct PanelLayout {
    /// One series' shapes.
    struct Shapes {
        var index: Int
        var name: String
        var style: SeriesStyle
        /// Polylines inside the unit square (lines, stairs).
        var polylines: [[UnitPoint]] = []
        /// Points inside the unit square.
        var points: [UnitPoint] = []
        /// Bars clipped to the unit square.
        var bars: [UnitBar] = []
    }

    var chart: Chart
    var x: AxisLayout
    var y: AxisLayout
    var series: [Shapes] = []
    /// The y = x reference, clipped; empty when not asked for or outside the ranges.
    var diagonal: [[UnitPoint]] = []
    /// The chart's own notes, then what was dropped.
    var notes: [String]

    /// Places the cleaned data on the fitted axes.
    init(_ chart: Chart, _ cleaned: Cleaned, x: AxisLayout, y: AxisLayout) {
        self.chart = chart
        self.x = x
        self.y = y
        notes = chart.notes + cleaned.notes + [x.note, y.note].compactMap { $0 }
        var outside = 0
        let tolerance = 1e-9
        func inside(_ p: UnitPoint) -> Bool {
            p.x >= -tolerance && p.x <= 1 + tolerance && p.y >= -tolerance && p.y <= 1 + tolerance
        }
        for data in cleaned.series {
            var shapes = Shapes(index: data.index, name: data.name, style: data.style)
            for run in data.runs {
                let unitRun = run.map { UnitPoint(x: x.unit($0.x), y: y.unit($0.y)) }
                outside += unitRun.filter { !inside($0) }.count
                if data.style == .points {
                    shapes.points += unitRun.filter(inside)
                } else {
                    // A position that is not finite (only for data near the largest Double) is a gap.
                    for piece in unitRun.split(whereSeparator: { !($0.x.isFinite && $0.y.isFinite) }) {
                        shapes.polylines += Clip.polylines(Array(piece))
                    }
                }
            }
            for bar in data.bars {
                let x0 = x.unit(bar.x0), x1 = x.unit(bar.x1)
                let base = y.axis.scale == .log10 ? 0 : min(max(y.unit(0), 0), 1)
                let top = y.unit(bar.y)
                if x1 < -tolerance || x0 > 1 + tolerance || top < -tolerance || top > 1 + tolerance { outside += 1 }
                let clipped = UnitBar(x0: max(x0, 0), x1: min(x1, 1), y0: base, y1: min(max(top, 0), 1))
                if clipped.x0 < clipped.x1 && clipped.y0 != clipped.y1 { shapes.bars.append(clipped) }
            }
            series.append(shapes)
        }
        if outside > 0 { notes.append("\(Cleaned.count(outside, "point")) outside the axis ranges, not drawn") }
        if chart.diagonal {
            diagonal = Clip.polylines(Self.identityLine(x, y))
            if diagonal.isEmpty { notes.append("y = x lies outside the plotted ranges") }
        }
    }

    /// y = x over the values both axes show: two points, or a curve when one axis is log.
    private static func identityLine(_ x: AxisLayout, _ y: AxisLayout) -> [UnitPoint] {
        let lo = max(x.lo, y.lo), hi = min(x.hi, y.hi)
        guard lo < hi else { return [] }
        let steps = x.axis.scale == y.axis.scale ? 1 : 128
        return (0...steps).map { i in
            let t = Double(i) / Double(steps)
            let v = x.axis.scale == .log10 ? lo * pow(hi / lo, t) : lo + (hi - lo) * t
            return UnitPoint(x: x.unit(v), y: y.unit(v))
        }
    }
}


/// Clipping to the unit square.
enum Clip {
    /// The part of segment a→b inside the unit square (Liang–Barsky), or nil.
    static func segment(_ a: UnitPoint, _ b: UnitPoint) -> (UnitPoint, UnitPoint)? {
        var t0 = 0.0, t1 = 1.0
        let dx = b.x - a.x, dy = b.y - a.y
        for (p, q) in [(-dx, a.x), (dx, 1 - a.x), (-dy, a.y), (dy, 1 - a.y)] {
            if p == 0 {
                if q < 0 { return nil }
            } else {
                let r = q / p
                if p < 0 { if r > t1 { return nil }; t0 = max(t0, r) } else { if r < t0 { return nil }; t1 = min(t1, r) }
            }
        }
        // Ends that were inside stay exactly as they were, so that pieces join up again.
        return (t0 == 0 ? a : UnitPoint(x: a.x + t0 * dx, y: a.y + t0 * dy),
                t1 == 1 ? b : UnitPoint(x: a.x + t1 * dx, y: a.y + t1 * dy))
    }

    /// A polyline cut to the unit square: the pieces inside, each at least one segment long
    /// (a run of a single point inside gives a one-point polyline).
    static func polylines(_ run: [UnitPoint]) -> [[UnitPoint]] {
        if run.count == 1 {
            let p = run[0]
            return (0...1).contains(p.x) && (0...1).contains(p.y) ? [run] : []
        }
        var pieces: [[UnitPoint]] = []
        var current: [UnitPoint] = []
        for i in 1..<run.count {
            guard let (a, b) = segment(run[i - 1], run[i]) else {
                if !current.isEmpty { pieces.append(current); current = [] }
                continue
            }
            if let last = current.last, last == a {
                current.append(b)
            } else {
                if !current.isEmpty { pieces.append(current) }
                current = [a, b]
            }
        }
        if !current.isEmpty { pieces.append(current) }
        return pieces
    }
}

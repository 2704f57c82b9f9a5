// Charts for the lab: drawn in the terminal and as SVG, gathered into a self-contained HTML page.
//
// The API, all of it (nothing here prints or writes files; the caller does):
//
//     enum AxisScale    { case linear, log10 }
//     struct Axis       (label, unit: String?, scale, range: ClosedRange<Double>?)
//         var title: String                                    ("label (unit, log scale)")
//         func ticks(for: ClosedRange<Double>?, maxCount: Int) -> AxisTicks (values, labels, range)
//     enum SeriesStyle  { case line, points, bars, stairs }
//     struct Series     (name, style, x: [Double], y: [Double])
//     struct Chart      (title, x: Axis, y: Axis, series: [Series], diagonal: Bool, notes: [String])
//     struct Figure     (title: String?, panels: [Chart])
//         func terminal(_ style: TerminalStyle) -> String      (Terminal.swift)
//         func svg() -> String                                 (SVG.swift)
//     struct TerminalStyle (width, height, unicode, color)
//     struct LabelledBars (title, labels, axis, bars, notes)    (LabelledBars.swift: rows
//                       of labelled bars, e.g. a response token by token; a `Drawing` as
//                       Figure is)
//     struct HTMLPage   (title, prompt, blocks: [HTMLPage.Block]) (HTMLPage.swift)
//         func render() -> String
//
// The rules both renderers share live in Layout.swift (cleaning the data, fitting ranges,
// mapping to the plot area, clipping) and Ticks.swift (nice ticks and their labels):
//
// - A point is drawn only if both coordinates are finite, and on a log axis positive. The
//   others are counted in a note under the chart ("3 points not finite, not drawn"); on a line
//   they leave a gap. A histogram bar of height 0 on a log y axis is an empty bin, not a
//   dropped point.
// - A fitted range (`Axis.range == nil`) covers the data: widened to the nice ticks enclosing
//   it when the data still covers 3/4 of the axis, else padded by 4 % at each end (see
//   `NiceTicks.linear`). Bars on a linear y axis always include 0; on a log y axis they rise
//   from the bottom of the axis, which is put below the lowest bar (at half its height or
//   lower) so that every non-empty bin shows. A single value or a constant series gets ±10 %
//   around it (±1 around 0; on a log axis, a factor of 2 either side).
// - A given range is kept as it is; data outside it is not drawn and counted in a note.
// - Ticks are 1, 2 or 5 × 10^k apart, 4 to 6 of them when the range allows; on a log axis,
//   1-2-5 within a decade for short ranges, else whole decades (every 2nd, 3rd, 5th… when
//   there are many). Labels: see `TickLabels` in Ticks.swift.
// - Histogram bars (`.bars`) span x[i] to x[i+1]: give one more x than y (the bin edges), or
//   as many (the last bar then as wide as the one before it; a single bar is 1 wide).
// - Stairs hold y[i] from x[i] to x[i+1] (a step function, like a learning-rate schedule);
//   with one more x than y the last step ends at the last x.

/// How an axis maps values to positions.
public enum AxisScale: Sendable, Equatable {
    /// Equal distances for equal differences.
    case linear
    /// Equal distances for equal ratios; labelled "(log scale)". Only positive values are drawn.
    case log10
}

/// One axis of a chart: what it measures, in which unit, on which scale, over which range.
public struct Axis: Sendable, Equatable {
    /// The quantity, e.g. "log π(token)".
    public var label: String
    /// Its unit, e.g. "nats"; printed in parentheses after the label.
    public var unit: String?
    /// Linear or logarithmic.
    public var scale: AxisScale
    /// The range to show; `nil` fits the data and widens it to nice ticks.
    public var range: ClosedRange<Double>?
    /// The quantity counts (steps, tokens, positions): ticks at whole numbers only.
    public var integral: Bool

    /// An axis with a label, and optionally a unit, a scale, a fixed range, and whether its
    /// quantity counts (ticks at whole numbers only).
    public init(_ label: String, unit: String? = nil, scale: AxisScale = .linear, range: ClosedRange<Double>? = nil,
                integral: Bool = false) {
        self.label = label
        self.unit = unit
        self.scale = scale
        self.range = range
        self.integral = integral
    }

    /// The axis title as printed: "label (unit, log scale)", each part only when present.
    public var title: String {
        var inParentheses: [String] = []
        if let unit, !unit.isEmpty { inParentheses.append(unit) }
        if scale == .log10 { inParentheses.append("log scale") }
        if inParentheses.isEmpty { return label }
        return label.isEmpty ? "(\(inParentheses.joined(separator: ", ")))"
                             : "\(label) (\(inParentheses.joined(separator: ", ")))"
    }
}

/// The ticks an axis shows: their values, labels, and the range of the axis.
public struct AxisTicks: Sendable, Equatable {
    /// The tick values, ascending; each the Double nearest a short decimal (0.6, not 0.6000000000000001).
    public var values: [Double]
    /// Their labels (see `TickLabels` in Ticks.swift).
    public var labels: [String]
    /// The range the axis covers: the given one, or the data's widened or padded.
    public var range: ClosedRange<Double>
}

extension Axis {
    /// The ticks this axis shows for data spanning `extent` (nil: no data), with at most
    /// `maxCount` ticks (the SVG uses 6; the terminal fewer when rows or columns are few).
    public func ticks(for extent: ClosedRange<Double>?, maxCount: Int = 6) -> AxisTicks {
        let layout = AxisLayout(self, name: "axis", extent: extent, maxTicks: maxCount)
        return AxisTicks(values: layout.ticks.map(\.value), labels: layout.labels, range: layout.lo...layout.hi)
    }
}

/// How a series is drawn.
public enum SeriesStyle: Sendable, Equatable {
    /// Points joined in order; a point that cannot be drawn leaves a gap.
    case line
    /// A scatter; dense places are shaded by count in the terminal.
    case points
    /// Histogram bars from x[i] to x[i+1], from 0 (or the bottom of a log axis) to y[i].
    case bars
    /// A step function: y[i] held from x[i] to x[i+1].
    case stairs
}

/// A named sequence of (x, y) pairs.
public struct Series: Sendable, Equatable {
    /// The name shown in the legend.
    public var name: String
    /// How it is drawn.
    public var style: SeriesStyle
    /// The x values (for bars, the left edges, or all the edges).
    public var x: [Double]
    /// The y values.
    public var y: [Double]

    /// A series from its x and y values.
    public init(_ name: String, style: SeriesStyle = .line, x: [Double], y: [Double]) {
        self.name = name
        self.style = style
        self.x = x
        self.y = y
    }

    /// A series of y values against their positions 0, 1, 2, …
    public init(_ name: String, style: SeriesStyle = .line, y: [Double]) {
        self.init(name, style: style, x: y.indices.map(Double.init), y: y)
    }
}

/// One chart: two axes, its series, an optional y = x reference, notes under it.
public struct Chart: Sendable, Equatable {
    /// Printed above the chart.
    public var title: String
    /// The horizontal axis.
    public var x: Axis
    /// The vertical axis.
    public var y: Axis
    /// Drawn in order; later series on top.
    public var series: [Series]
    /// Draws the y = x reference faintly (e.g. a scatter of log π against log μ).
    public var diagonal: Bool
    /// Printed under the chart, before the notes the renderer adds about dropped points.
    public var notes: [String]

    /// A chart from its parts.
    public init(title: String, x: Axis, y: Axis, series: [Series], diagonal: Bool = false, notes: [String] = []) {
        self.title = title
        self.x = x
        self.y = y
        self.series = series
        self.diagonal = diagonal
        self.notes = notes
    }
}

/// One or more charts shown together: side by side in SVG; in the terminal side by side when
/// each gets at least `Figure.minimumPanelWidth` columns, else one above the other.
public struct Figure: Sendable, Equatable {
    /// Printed above all panels, if present.
    public var title: String?
    /// The charts, left to right.
    public var panels: [Chart]

    /// The narrowest a terminal panel may be when panels are placed side by side.
    public static let minimumPanelWidth = 40

    /// A figure of several panels.
    public init(title: String? = nil, panels: [Chart]) {
        self.title = title
        self.panels = panels
    }

    /// A figure of one chart.
    public init(_ chart: Chart) {
        self.init(title: nil, panels: [chart])
    }
}

/// How a figure is drawn in the terminal.
public struct TerminalStyle: Sendable, Equatable {
    /// Columns available; no output line is longer (counted in characters).
    public var width: Int
    /// Rows of each panel's plotting area (title, tick labels, axis titles, legend and notes
    /// come on top of it); at least 3 are used.
    public var height: Int
    /// Braille, block shades and box drawing when true; plain ASCII when false.
    public var unicode: Bool
    /// ANSI colours for the series when true; no escape sequence at all when false.
    public var color: Bool

    /// A terminal style; the defaults suit an 80-column terminal without colour.
    public init(width: Int = 80, height: Int = 16, unicode: Bool = true, color: Bool = false) {
        self.width = width
        self.height = height
        self.unicode = unicode
        self.color = color
    }
}

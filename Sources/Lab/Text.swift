// Rendering for people: aligned tables.

/// A plain-text table: a header row, then rows, columns padded to their widest cell.
/// Columns listed in `rightAligned` are right-aligned (numbers), others left-aligned.
public struct TextTable {
    public var header: [String]
    public var rows: [[String]] = []
    public var rightAligned: Set<Int> = []

    public init(header: [String], rightAligned: Set<Int> = []) {
        self.header = header
        self.rightAligned = rightAligned
    }

    public mutating func add(_ row: [String]) { rows.append(row) }

    /// The columns the rendered table takes: its longest line.
    public var width: Int { render().split(separator: "\n").map(\.count).max() ?? 0 }

    public func render() -> String {
        let all = [header] + rows
        let columns = all.map(\.count).max() ?? 0
        var widths = [Int](repeating: 0, count: columns)
        for row in all { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func line(_ row: [String]) -> String {
            var parts: [String] = []
            for i in 0..<columns {
                let cell = i < row.count ? row[i] : ""
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                parts.append(rightAligned.contains(i) ? pad + cell : cell + pad)
            }
            return String(parts.joined(separator: "  ").reversed().drop(while: { $0 == " " }).reversed())
        }
        var out = [line(header), String(repeating: "-", count: widths.reduce(0, +) + 2 * max(0, columns - 1))]
        out += rows.map(line)
        return out.joined(separator: "\n")
    }
}

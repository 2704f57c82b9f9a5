// Escaping and number writing for the SVG and HTML the module produces.

/// Text made safe for XML and HTML, and numbers written the same way everywhere.
enum Markup {
    /// `text` safe inside an element or a double-quoted attribute: `&`, `<`, `>`, `"` and `'`
    /// as entities; characters XML 1.0 does not allow (C0 controls other than tab, newline and
    /// carriage return; U+FFFE, U+FFFF) dropped.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            case "\t", "\n", "\r": out.unicodeScalars.append(scalar)
            default:
                if scalar.value < 0x20 || scalar.value == 0xFFFE || scalar.value == 0xFFFF { continue }
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// `v` rounded to 2 decimals, without trailing zeros: 12, 12.5, 12.05, -0.5 (never "-0").
    /// Written from integers, so the same on every machine and in every locale.
    static func number(_ v: Double) -> String {
        guard v.isFinite else { return "0" }
        let hundredths = (v * 100).rounded()
        guard hundredths.magnitude < 1e15 else { return String(Int(hundredths / 100)) }
        let n = Int(hundredths)
        if n == 0 { return "0" }
        let sign = n < 0 ? "-" : ""
        let whole = n.magnitude / 100, fraction = n.magnitude % 100
        if fraction == 0 { return "\(sign)\(whole)" }
        let digits = fraction % 10 == 0 ? "\(fraction / 10)" : (fraction < 10 ? "0\(fraction)" : "\(fraction)")
        return "\(sign)\(whole).\(digits)"
    }

    /// Removes ANSI escape sequences (`ESC [ … final`), so terminal output can be shown in a page.
    static func strippingANSI(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        var scalars = text.unicodeScalars.makeIterator()
        while let s = scalars.next() {
            guard s == "\u{1B}" else { out.append(s); continue }
            guard let next = scalars.next() else { break }
            if next == "[" {
                // Parameters and intermediates up to the final byte, 0x40–0x7E.
                while let c = scalars.next(), !(0x40...0x7E).contains(c.value) {}
            }
        }
        return String(out)
    }
}

// Sweep files: a session with placeholders and a grid in its header.
//
//     # sweep: preset = bf16, fp16, fp32
//     # sweep: (algo, lr) = (grpo, 3e-4), (seq-mis, 1e-4)     tied values: one axis
//     # sweep: seed = 1, 2, 3
//     # sweep-exclude: preset = fp32, algo = seq-mis          drop those points
//     precision preset {preset}
//     set algo {algo}
//     set lr {lr}
//     seed {seed}
//     step 300 --json
//
// The grid is the product of its axes in the order they are written (the first varies
// slowest); exclusions drop the points that match every one of their conditions. A point's
// session is the file with each `{key}` of its command lines replaced by the point's
// value; comments are kept as written, so a point's line numbers are the file's.

import Foundation

/// One axis of the grid: a key and its values, or keys whose values are tied together.
public struct SweepAxis: Sendable, Equatable {
    /// One key, or the tied keys of `(a, b) = …`.
    public var keys: [String]
    /// The values in order; each has one entry per key.
    public var values: [[String]]
    /// The line that declared it.
    public var line: Int
}

/// A `# sweep-exclude:` line: the points whose values match all its conditions are dropped.
public struct SweepExclusion: Sendable, Equatable {
    public var conditions: [(key: String, value: String)]
    public var line: Int

    public static func == (a: SweepExclusion, b: SweepExclusion) -> Bool {
        a.line == b.line && a.conditions.map(\.key) == b.conditions.map(\.key)
            && a.conditions.map(\.value) == b.conditions.map(\.value)
    }

    func matches(_ values: [String: String]) -> Bool {
        conditions.allSatisfy { values[$0.key] == $0.value }
    }
}

/// One point of the grid: its values and the name its files take.
public struct SweepPoint: Sendable, Equatable {
    /// Its place among the points kept (0-based; the Slurm array index).
    public var index: Int
    /// Filesystem-safe and unique in the sweep: `preset-bf16_algo-grpo_seed-1`.
    public var name: String
    /// The value of each key, in grid order.
    public var assignments: [(key: String, value: String)]

    public static func == (a: SweepPoint, b: SweepPoint) -> Bool {
        a.index == b.index && a.name == b.name && a.assignments.map(\.key) == b.assignments.map(\.key)
            && a.assignments.map(\.value) == b.assignments.map(\.value)
    }

    /// The value of `key`, or nil if the grid has no such key.
    public func value(of key: String) -> String? { assignments.first { $0.key == key }?.value }

    /// `preset = bf16, algo = grpo, seed = 1`.
    public var described: String { assignments.map { "\($0.key) = \($0.value)" }.joined(separator: ", ") }
}

/// A parsed and checked sweep file.
public struct SweepFile: Sendable {
    /// The most points planned without `--yes`.
    public static let pointLimit = 500

    /// The file's name as shown in messages.
    public let name: String
    /// Its lines as read.
    public let lines: [ScriptLine]
    public private(set) var axes: [SweepAxis] = []
    public private(set) var exclusions: [SweepExclusion] = []

    /// Every key, in grid order.
    public var keys: [String] { axes.flatMap(\.keys) }

    /// The file's text, lines joined with newlines: what a plan is compared by.
    public var source: String { lines.map(\.text).joined(separator: "\n") + "\n" }

    /// Parses and checks a sweep file: every error names `name:LINE` and what is accepted.
    public init(lines: [ScriptLine], name: String) throws(LabError) {
        self.name = name
        self.lines = lines
        var placeholders: [(key: String, line: Int)] = []
        for line in lines {
            let trimmed = line.text.trimmingCharacters(in: .whitespaces)
            if trimmed.hasPrefix("#") {
                try header(trimmed, line: line.number)
            } else {
                placeholders += SweepFile.placeholders(in: line.text).map { ($0, line.number) }
            }
        }
        guard let first = axes.first else {
            throw LabError("\(name):1: no grid: a sweep file declares its axes in header lines such as '# sweep: preset = bf16, fp16' and uses them as {preset} in its commands")
        }
        let keys = self.keys
        for use in placeholders where !keys.contains(use.key) {
            let known = keys.map { "{\($0)}" }.joined(separator: ", ")
            throw LabError("\(name):\(use.line): unknown placeholder \(LabError.quoted("{\(use.key)}", closestAmong: keys.map { "{\($0)}" })) (the grid's keys: \(known); a key is declared by '# sweep: KEY = V1, V2')")
        }
        for axis in axes {
            for key in axis.keys where !placeholders.contains(where: { $0.key == key }) {
                throw LabError("\(name):\(axis.line): key '\(key)' is never used: no command line holds {\(key)}; use it in a command, or remove it from the grid")
            }
        }
        for exclusion in exclusions {
            for condition in exclusion.conditions {
                guard let axis = axes.first(where: { $0.keys.contains(condition.key) }) else {
                    throw LabError("\(name):\(exclusion.line): the exclusion names an unknown key, \(LabError.quoted(condition.key, closestAmong: keys)) (the grid's keys: \(keys.joined(separator: ", ")))")
                }
                let column = axis.keys.firstIndex(of: condition.key)!
                let values = axis.values.map { $0[column] }
                guard values.contains(condition.value) else {
                    throw LabError("\(name):\(exclusion.line): \(condition.key) has no value \(LabError.quoted(condition.value, closestAmong: values)) (its values: \(values.joined(separator: ", ")))")
                }
            }
        }
        let all = SweepFile.product(axes)
        for exclusion in exclusions where !all.contains(where: exclusion.matches) {
            throw LabError("\(name):\(exclusion.line): this exclusion matches no point of the grid (tied values never meet so)")
        }
        if !all.contains(where: { values in !exclusions.contains { $0.matches(values) } }) {
            throw LabError("\(name):\(first.line): every point of the grid is excluded")
        }
    }

    /// The points kept, named, in grid order; more than `pointLimit` are refused unless
    /// `allowMany` (`--yes`).
    public func points(allowMany: Bool = false) throws(LabError) -> [SweepPoint] {
        let kept = SweepFile.product(axes).filter { values in !exclusions.contains { $0.matches(values) } }
        if kept.count > SweepFile.pointLimit && !allowMany {
            let sizes = axes.map { String($0.values.count) }.joined(separator: " × ")
            throw LabError("\(name):\(axes[0].line): \(kept.count) points (\(sizes)\(exclusions.isEmpty ? "" : ", less exclusions")) is more than \(SweepFile.pointLimit); pass --yes to plan them all, or make the grid smaller")
        }
        let keys = self.keys
        let names = SweepFile.names(for: kept.map { values in keys.map { ($0, values[$0]!) } })
        return kept.enumerated().map { index, values in
            SweepPoint(index: index, name: names[index], assignments: keys.map { ($0, values[$0]!) })
        }
    }

    /// The session of `point`: every line of the file, each `{key}` of a command line
    /// replaced by the point's value (so its line numbers are the file's), then a comment
    /// naming the point.
    public func session(for point: SweepPoint) -> [String] {
        var out = lines.map { line in
            line.text.trimmingCharacters(in: .whitespaces).hasPrefix("#") ? line.text : substitute(line.text, point)
        }
        out.append("# sweep point \(point.name): \(point.described)")
        return out
    }

    /// The RL steps `point` runs: the sum of N over its `step N` lines (1 for a bare `step`).
    public func steps(for point: SweepPoint) -> Int {
        var total = 0
        for line in lines where !line.text.trimmingCharacters(in: .whitespaces).hasPrefix("#") {
            guard let words = try? Words.split(substitute(line.text, point)), words.first?.text == "step" else { continue }
            total += words.dropFirst().first.flatMap { Int($0.text) } ?? 1
        }
        return total
    }

    /// Checks every command line of every point against `registry` (the command exists and
    /// its arguments are accepted), so a mistyped value fails here and not hours into a run.
    public func validate(_ points: [SweepPoint], registry: Registry) throws(LabError) {
        for line in lines where !line.text.trimmingCharacters(in: .whitespaces).hasPrefix("#") {
            var seen: Set<String> = []
            for point in points {
                let text = substitute(line.text, point)
                guard seen.insert(text).inserted else { continue }
                do { try registry.validate(text.trimmingCharacters(in: .whitespaces)) } catch {
                    throw LabError("\(name):\(line.number): in point \(point.name): \(error.message)")
                }
            }
        }
    }

    private func substitute(_ text: String, _ point: SweepPoint) -> String {
        var out = text
        for (key, value) in point.assignments { out = out.replacingOccurrences(of: "{\(key)}", with: value) }
        return out
    }
}

// MARK: - Reading the header

extension SweepFile {
    /// Reads one comment line: a grid line, an exclusion, or an ordinary comment. A comment
    /// that looks like a misspelt grid line (`# sweeps:`) is refused rather than ignored.
    private mutating func header(_ text: String, line: Int) throws(LabError) {
        let body = text.dropFirst().trimmingCharacters(in: .whitespaces)
        guard body.lowercased().hasPrefix("sweep"), let colon = body.firstIndex(of: ":") else { return }
        let keyword = String(body[..<colon]).trimmingCharacters(in: .whitespaces)
        guard keyword.allSatisfy({ $0.isLetter || $0 == "-" }) else { return }
        let rest = String(body[body.index(after: colon)...])
        switch keyword {
        case "sweep": try axis(rest, line: line)
        case "sweep-exclude": try exclusion(rest, line: line)
        default:
            throw LabError("\(name):\(line): unknown header \(LabError.quoted("# \(keyword):", closestAmong: ["# sweep:", "# sweep-exclude:"])) (a sweep file's header lines are '# sweep: KEY = V1, V2', '# sweep: (K1, K2) = (A1, A2), (B1, B2)' and '# sweep-exclude: KEY = V, KEY = V')")
        }
    }

    private mutating func axis(_ text: String, line: Int) throws(LabError) {
        guard let equals = text.firstIndex(of: "=") else {
            throw LabError("\(name):\(line): expected '# sweep: KEY = V1, V2' or '# sweep: (K1, K2) = (A1, A2), (B1, B2)'")
        }
        let left = text[..<equals].trimmingCharacters(in: .whitespaces)
        let right = String(text[text.index(after: equals)...])
        let tied = left.hasPrefix("(")
        var keys: [String]
        if tied {
            guard left.hasSuffix(")") else { throw LabError("\(name):\(line): tied keys are written '(K1, K2) = …'; missing ')'") }
            keys = left.dropFirst().dropLast().split(separator: ",", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }
        } else {
            keys = [left]
        }
        for key in keys { try checkKey(key, line: line) }
        if tied && keys.count < 2 { throw LabError("\(name):\(line): tie two keys or more: '(K1, K2) = (A1, A2), …'; one key is written 'K = V1, V2'") }
        for (i, key) in keys.enumerated() {
            if keys[..<i].contains(key) { throw LabError("\(name):\(line): key '\(key)' appears twice in the tie") }
            if let other = axes.first(where: { $0.keys.contains(key) }) {
                throw LabError("\(name):\(line): key '\(key)' is already on line \(other.line); a key has one axis (list all its values there, or tie it)")
            }
        }
        let items = try SweepFile.items(right, name: name, line: line)
        var values: [[String]] = []
        if tied {
            for item in items {
                guard case .tuple(let tuple) = item else {
                    throw LabError("\(name):\(line): tied values are written in parentheses, one per key: (\(keys.joined(separator: ", "))) = (…), (…)")
                }
                guard tuple.count == keys.count else {
                    throw LabError("\(name):\(line): (\(tuple.joined(separator: ", "))) has \(tuple.count) value\(tuple.count == 1 ? "" : "s"); (\(keys.joined(separator: ", "))) needs \(keys.count)")
                }
                values.append(tuple)
            }
        } else {
            for item in items {
                guard case .value(let value) = item else {
                    throw LabError("\(name):\(line): parentheses tie values of several keys: '(K1, K2) = (A1, A2), …'; for one key write 'KEY = V1, V2' (quote a value that holds parentheses)")
                }
                values.append([value])
            }
        }
        guard !values.isEmpty else { throw LabError("\(name):\(line): '\(keys.joined(separator: ", "))' has no values; write '# sweep: KEY = V1, V2'") }
        for (i, value) in values.enumerated() where values[..<i].contains(value) {
            throw LabError("\(name):\(line): the value \(value.count == 1 ? "'\(value[0])'" : "(\(value.joined(separator: ", ")))") is listed twice")
        }
        axes.append(SweepAxis(keys: keys, values: values, line: line))
    }

    private mutating func exclusion(_ text: String, line: Int) throws(LabError) {
        var conditions: [(key: String, value: String)] = []
        for part in SweepFile.split(text) {
            guard let equals = part.firstIndex(of: "=") else {
                throw LabError("\(name):\(line): expected '# sweep-exclude: KEY = VALUE, KEY = VALUE'; found '\(part.trimmingCharacters(in: .whitespaces))'")
            }
            let key = part[..<equals].trimmingCharacters(in: .whitespaces)
            try checkKey(key, line: line)
            let value = try SweepFile.unquoted(String(part[part.index(after: equals)...]), name: name, line: line)
            guard !value.isEmpty else { throw LabError("\(name):\(line): '\(key) =' has no value") }
            if conditions.contains(where: { $0.key == key }) { throw LabError("\(name):\(line): key '\(key)' appears twice in the exclusion") }
            conditions.append((key, value))
        }
        guard !conditions.isEmpty else { throw LabError("\(name):\(line): an exclusion needs a condition: '# sweep-exclude: KEY = VALUE'") }
        exclusions.append(SweepExclusion(conditions: conditions, line: line))
    }

    private func checkKey(_ key: String, line: Int) throws(LabError) {
        guard !key.isEmpty else { throw LabError("\(name):\(line): a key is missing before '='") }
        guard let first = key.first, first.isASCII, first.isLetter || first == "_",
              key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
            throw LabError("\(name):\(line): '\(key)' is not a key: a key is letters, digits and '_', starting with a letter (it is used as {\(key)})")
        }
    }
}

// MARK: - Values, placeholders, the product, names

extension SweepFile {
    enum Item { case value(String), tuple([String]) }

    /// The right side of `=`: values or parenthesised tuples separated by commas; a value in
    /// double quotes may hold commas, parentheses and spaces at its ends.
    static func items(_ text: String, name: String, line: Int) throws(LabError) -> [Item] {
        var items: [Item] = []
        var rest = Substring(text)
        func skipSpaces() { rest = rest.drop { $0 == " " || $0 == "\t" } }
        skipSpaces()
        if rest.isEmpty { return [] }
        while true {
            skipSpaces()
            if rest.first == "(" {
                guard let close = closingParenthesis(in: rest) else {
                    throw LabError("\(name):\(line): '(' without its ')'")
                }
                let inside = rest[rest.index(after: rest.startIndex)..<close]
                var tuple: [String] = []
                for part in split(String(inside)) {
                    let value = try unquoted(part, name: name, line: line)
                    guard !value.isEmpty else { throw LabError("\(name):\(line): an empty value in (\(inside)); every value needs text") }
                    tuple.append(value)
                }
                items.append(.tuple(tuple))
                rest = rest[rest.index(after: close)...]
                skipSpaces()
                if rest.isEmpty { return items }
                guard rest.first == "," else { throw LabError("\(name):\(line): expected ',' after (\(inside))") }
                rest = rest.dropFirst()
            } else {
                let end = topLevelComma(in: rest) ?? rest.endIndex
                let value = try unquoted(String(rest[..<end]), name: name, line: line)
                guard !value.isEmpty else { throw LabError("\(name):\(line): an empty value (value \(items.count + 1)); every value needs text") }
                items.append(.value(value))
                if end == rest.endIndex { return items }
                rest = rest[rest.index(after: end)...]
            }
        }
    }

    /// `text` cut at the commas outside double quotes.
    static func split(_ text: String) -> [String] {
        var parts: [String] = []
        var rest = Substring(text)
        while let comma = topLevelComma(in: rest) {
            parts.append(String(rest[..<comma]))
            rest = rest[rest.index(after: comma)...]
        }
        parts.append(String(rest))
        return parts
    }

    /// A value with its spaces trimmed and its double quotes (if any) removed.
    static func unquoted(_ text: String, name: String, line: Int) throws(LabError) -> String {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let quotes = trimmed.filter { $0 == "\"" }.count
        if quotes == 0 { return trimmed }
        guard quotes == 2, trimmed.hasPrefix("\""), trimmed.hasSuffix("\""), trimmed.count >= 2 else {
            throw LabError("\(name):\(line): a quoted value is written \"…\" as a whole; found \(trimmed)")
        }
        return String(trimmed.dropFirst().dropLast())
    }

    private static func topLevelComma(in text: Substring) -> Substring.Index? {
        var quoted = false
        for index in text.indices {
            if text[index] == "\"" { quoted.toggle() } else if text[index] == "," && !quoted { return index }
        }
        return nil
    }

    private static func closingParenthesis(in text: Substring) -> Substring.Index? {
        var quoted = false
        for index in text.indices.dropFirst() {
            if text[index] == "\"" { quoted.toggle() } else if text[index] == ")" && !quoted { return index }
        }
        return nil
    }

    /// The keys of the `{key}` placeholders in `text`, in order (`{` not followed by a key
    /// and `}` is left as it is).
    static func placeholders(in text: String) -> [String] {
        var keys: [String] = []
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{") {
            rest = rest[rest.index(after: open)...]
            guard let close = rest.firstIndex(of: "}") else { break }
            let key = rest[..<close]
            if let first = key.first, first.isASCII, first.isLetter || first == "_",
               key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) {
                keys.append(String(key))
                rest = rest[rest.index(after: close)...]
            }
        }
        return keys
    }

    /// Every combination of the axes' values, the first axis varying slowest.
    static func product(_ axes: [SweepAxis]) -> [[String: String]] {
        var points: [[String: String]] = [[:]]
        for axis in axes {
            points = points.flatMap { point in
                axis.values.map { values in
                    var next = point
                    for (key, value) in zip(axis.keys, values) { next[key] = value }
                    return next
                }
            }
        }
        return points
    }

    /// Names for points: `key-value` pairs joined by `_`, every character other than a
    /// letter, digit, `.`, `+` or `-` made `_`, at most 120 characters; a name that would
    /// equal an earlier one (ignoring case, for case-insensitive file systems) gets `-2`,
    /// `-3`, ….
    public static func names(for points: [[(key: String, value: String)]]) -> [String] {
        var taken: Set<String> = []
        return points.map { assignments in
            let raw = assignments.map { "\($0.key)-\(safe($0.value))" }.joined(separator: "_")
            let base = raw.count > 120 ? String(raw.prefix(120)) : raw
            var name = base
            var n = 2
            while taken.contains(name.lowercased()) {
                name = "\(base)-\(n)"
                n += 1
            }
            taken.insert(name.lowercased())
            return name
        }
    }

    private static func safe(_ value: String) -> String {
        String(value.map { $0.isASCII && ($0.isLetter || $0.isNumber || ".+-".contains($0)) ? $0 : "_" })
    }
}

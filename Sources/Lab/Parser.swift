// From words to a command and its typed arguments. Every check happens here, before the
// command runs, so a mistyped line changes nothing.

import Foundation
import Numerics

/// A parsed line: the command reached (through sub-commands) and its arguments.
struct Invocation {
    var command: Command
    /// `record stop`.
    var path: String
    var arguments: ParsedArguments
    /// `--help` was among the words: show the command's help instead of running it.
    var wantsHelp = false
}

extension Registry {
    /// Checks a line without running it: the command exists and every argument is
    /// accepted (files included). Throws the error running it would report.
    public func validate(_ line: String) throws(LabError) {
        let words = try Words.split(line)
        if !words.isEmpty { _ = try parse(words) }
    }

    /// The command named `name` (or one of its aliases), or an error with the closest name.
    func command(named name: String) throws(LabError) -> Command {
        if let c = commands.first(where: { $0.name == name || $0.aliases.contains(name) }) { return c }
        let names = commands.filter { !$0.hidden }.map(\.name)
        throw LabError("unknown command \(LabError.quoted(name, closestAmong: names)) (try 'help')")
    }

    /// Finds the command and binds the words to its arguments.
    func parse(_ words: [Word]) throws(LabError) -> Invocation {
        var command = try command(named: words[0].text)
        var path = command.name
        var rest = Array(words.dropFirst())
        // Descend into sub-commands while the next word names one.
        while !command.subcommands.isEmpty {
            if let word = rest.first, !word.quoted, let sub = command.subcommands.first(where: { $0.name == word.text }) {
                command = sub
                path += " " + sub.name
                rest.removeFirst()
                continue
            }
            if command.run != nil {
                // The command itself takes the words; but a near miss of a sub-command name
                // (`record stpo`) is far likelier a typo than a file called that.
                let names = command.subcommands.filter { !$0.hidden }.map(\.name)
                if let word = rest.first, !word.quoted, let near = closestMatch(to: word.text, among: names),
                   !word.text.contains("/"), !word.text.contains("."), !FileManager.default.fileExists(atPath: word.text) {
                    throw LabError("\(path): unknown sub-command '\(word.text)'; did you mean '\(near)'? (for a file of that name, write ./\(word.text))")
                }
                break
            }
            if rest.contains(where: { !$0.quoted && $0.text == "--help" }) { break }
            let names = command.subcommands.filter { !$0.hidden }.map(\.name)
            guard let word = rest.first else {
                throw LabError("\(path): missing sub-command: one of \(names.joined(separator: ", "))")
            }
            throw LabError("\(path): unknown sub-command \(LabError.quoted(word.text, closestAmong: names)) (sub-commands: \(names.joined(separator: ", ")))")
        }
        if rest.contains(where: { !$0.quoted && $0.text == "--help" }) {
            return Invocation(command: command, path: path, arguments: ParsedArguments(), wantsHelp: true)
        }
        let arguments = try bind(rest, to: command, path: path)
        return Invocation(command: command, path: path, arguments: arguments)
    }

    /// Binds words to the command's declared arguments: options by name, `key=value` words
    /// to the assignments argument, the rest to positionals in order.
    private func bind(_ words: [Word], to command: Command, path: String) throws(LabError) -> ParsedArguments {
        let usage = "usage: " + command.usage(path: path).replacingNewlines(with: " | ")
        var parsed = ParsedArguments()
        var positionalWords: [Word] = []
        let specs = command.allArguments
        let assignmentSpec = specs.first { if case .assignments = $0.style { return true } else { return false } }
        var i = 0
        var optionsEnded = false
        while i < words.count {
            let word = words[i]
            i += 1
            if !word.quoted && !optionsEnded && word.text == "--" { optionsEnded = true; continue }
            if !word.quoted && !optionsEnded && word.text.hasPrefix("--") && word.text.count > 2 {
                var name = String(word.text.dropFirst(2))
                var inlineValue: String?
                if let eq = name.firstIndex(of: "=") {
                    inlineValue = String(name[name.index(after: eq)...])
                    name = String(name[..<eq])
                }
                guard let spec = specs.first(where: { $0.isOption && $0.name == name }) else {
                    let names = command.options.map { "--" + $0.name }
                    let accepted = names.isEmpty ? "it takes no options" : "options: " + names.joined(separator: " ")
                    throw LabError("\(path): unknown option \(LabError.quoted("--" + name, closestAmong: names)) (\(accepted))")
                }
                if case .flag = spec.style {
                    if inlineValue != nil { throw LabError("\(path): --\(name) takes no value") }
                    if !parsed.flags.insert(name).inserted { throw LabError("\(path): --\(name) is given twice; give it once") }
                    continue
                }
                guard let text = inlineValue ?? (i < words.count ? words[i].text : nil) else {
                    throw LabError("\(path): --\(name) needs a value: \(spec.kind.accepted)")
                }
                if inlineValue == nil { i += 1 }
                let quoted = inlineValue == nil && words[i - 1].quoted
                // Given twice is a mistake (which one was meant?), not "the last wins".
                if let earlier = parsed.values[name]?.first {
                    throw LabError("\(path): --\(name) is given twice ('\(earlier)', then '\(text)'); give it once")
                }
                parsed.values[name] = [try parseValue(text, quoted: quoted, spec, path: path, label: "--" + name)]
                continue
            }
            if let spec = assignmentSpec, case .assignments(let keys, _) = spec.style, !word.quoted, let eq = word.text.firstIndex(of: "=") {
                let key = String(word.text[..<eq])
                let text = String(word.text[word.text.index(after: eq)...])
                guard let entry = keys.first(where: { $0.key == key }) else {
                    let names = keys.map(\.key)
                    throw LabError("\(path): unknown key \(LabError.quoted(key, closestAmong: names)) (keys: \(names.joined(separator: ", ")))")
                }
                if parsed.assignments.contains(where: { $0.0 == key }) {
                    throw LabError("\(path): \(key) is given twice; give each key once")
                }
                do { parsed.assignments.append((key, try entry.kind.parse(text))) } catch {
                    throw LabError("\(path): \(error.describe(as: key))")
                }
                continue
            }
            positionalWords.append(word)
        }
        // Positionals in declared order; optional ones take a word only when it is not
        // needed by a required one after them.
        let positionals = specs.filter(\.isPositional)
        var next = 0
        for (index, spec) in positionals.enumerated() {
            let requiredAfter = positionals[(index + 1)...].reduce(0) { count, later in
                switch later.style {
                case .positional(optional: false): return count + 1
                case .variadic(let minimum): return count + minimum
                default: return count
                }
            }
            let available = positionalWords.count - next
            switch spec.style {
            case .positional(let optional):
                if available - requiredAfter >= 1 || (!optional && available >= 1) {
                    let word = positionalWords[next]
                    parsed.values[spec.name] = [try parseValue(word.text, quoted: word.quoted, spec, path: path, label: spec.name)]
                    next += 1
                } else if !optional {
                    throw LabError("\(path): missing \(spec.name) (\(usage))")
                }
            case .variadic(let minimum):
                let take = max(0, available - requiredAfter)
                if take < minimum {
                    throw LabError("\(path): missing \(spec.name)\(minimum > 1 ? " (at least \(minimum))" : "") (\(usage))")
                }
                var values: [Value] = []
                for word in positionalWords[next..<(next + take)] {
                    values.append(try parseValue(word.text, quoted: word.quoted, spec, path: path, label: spec.name))
                }
                parsed.values[spec.name] = values
                next += take
            default: break
            }
        }
        if next < positionalWords.count {
            throw LabError("\(path): unexpected argument '\(positionalWords[next].text)' (\(usage))")
        }
        if let spec = assignmentSpec, case .assignments(let keys, let minimum) = spec.style, parsed.assignments.count < minimum {
            throw LabError("\(path): missing \(spec.name) (keys: \(keys.map(\.key).joined(separator: ", ")))")
        }
        for spec in specs {
            if case .option(let defaultValue?) = spec.style, parsed.values[spec.name] == nil {
                parsed.values[spec.name] = [defaultValue]
            }
        }
        return parsed
    }

    private func parseValue(_ text: String, quoted: Bool, _ spec: ArgumentSpec, path: String, label: String) throws(LabError) -> Value {
        do { return try spec.kind.parse(text, quoted: quoted) } catch { throw LabError("\(path): \(error.describe(as: label))") }
    }
}

extension String {
    func replacingNewlines(with separator: String) -> String {
        split(separator: "\n").joined(separator: separator)
    }
}

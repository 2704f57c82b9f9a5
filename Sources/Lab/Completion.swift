// Tab completion, from the same command values the parser reads.

import Foundation

extension Session {
    /// The words that could replace the word being typed at the end of `prefix` (the line
    /// up to the cursor): command names, sub-commands, options, option and argument values
    /// (names, formats, settings), `key=` keys, and file paths. Sorted, without duplicates.
    public func completions(for prefix: String) -> [String] {
        let (words, partial) = Words.splitForCompletion(prefix)
        return Array(Set(candidates(words: words.map(\.text), partial: partial).filter { $0.hasPrefix(partial) })).sorted()
    }

    private func candidates(words: [String], partial: String) -> [String] {
        guard let first = words.first else { return registry.commands.filter { !$0.hidden }.map(\.name) }
        guard var command = registry.commands.first(where: { $0.name == first || $0.aliases.contains(first) }) else { return [] }
        var rest = Array(words.dropFirst())
        while let word = rest.first, let sub = command.subcommands.first(where: { $0.name == word }) {
            command = sub
            rest.removeFirst()
        }
        var out: [String] = []
        if rest.isEmpty && !command.subcommands.isEmpty {
            out += command.subcommands.filter { !$0.hidden }.map(\.name)
        }
        if command.run == nil { return out }
        let specs = command.allArguments

        // The value of an option typed just before.
        if let last = rest.last, last.hasPrefix("--"),
           let spec = specs.first(where: { $0.isOption && "--" + $0.name == last }), case .option = spec.style {
            return values(for: spec, partial: partial, previous: [])
        }
        if partial.hasPrefix("-") {
            return specs.filter { $0.isOption && !rest.contains("--" + $0.name) }.map { "--" + $0.name }
        }
        // key=value words.
        if let spec = specs.first(where: { if case .assignments = $0.style { return true } else { return false } }),
           case .assignments(let keys, _) = spec.style {
            if let eq = partial.firstIndex(of: "=") {
                let key = String(partial[..<eq])
                guard let entry = keys.first(where: { $0.key == key }) else { return [] }
                return entry.kind.candidates.map { key + "=" + $0 }
            }
            out += keys.map { $0.key + "=" }
        }
        // Positionals: which one is being typed?
        var positional: [String] = []
        var skipNext = false
        for word in rest {
            if skipNext { skipNext = false; continue }
            if word.hasPrefix("--") {
                if let spec = specs.first(where: { "--" + $0.name == word }), case .option = spec.style { skipNext = true }
                continue
            }
            if word.contains("="), specs.contains(where: { if case .assignments = $0.style { return true } else { return false } }) { continue }
            positional.append(word)
        }
        let positionals = specs.filter(\.isPositional)
        var spec: ArgumentSpec?
        if positional.count < positionals.count { spec = positionals[positional.count] }
        else if let last = positionals.last, case .variadic = last.style { spec = last }
        if let spec { out += values(for: spec, partial: partial, previous: positional) }
        return out
    }

    private func values(for spec: ArgumentSpec, partial: String, previous: [String]) -> [String] {
        if let complete = spec.complete { return complete(self, previous) }
        if case .path = spec.kind { return fileCompletions(partial) }
        return spec.kind.candidates
    }
}

/// Paths that extend `partial`: entries of its directory whose names start with its last
/// component (hidden ones only when that starts with a dot), directories ending in `/`.
public func fileCompletions(_ partial: String) -> [String] {
    let slash = partial.lastIndex(of: "/")
    let directoryPart = slash.map { String(partial[...$0]) } ?? ""
    let base = slash.map { String(partial[partial.index(after: $0)...]) } ?? partial
    let directory = directoryPart.isEmpty ? "." : expandTilde(directoryPart)
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
    return names.filter { $0.hasPrefix(base) && (base.hasPrefix(".") || !$0.hasPrefix(".")) }.map { name in
        var isDirectory: ObjCBool = false
        let full = (directory as NSString).appendingPathComponent(name)
        _ = FileManager.default.fileExists(atPath: full, isDirectory: &isDirectory)
        return directoryPart + name + (isDirectory.boolValue ? "/" : "")
    }
}

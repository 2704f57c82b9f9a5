// `help`: generated from the registry, so a new command documents itself.

import JSON

extension Session {
    /// Every visible command, grouped by topic, one line each.
    public var helpList: String {
        let visible = registry.commands.filter { !$0.hidden }
        let width = visible.map(\.name.count).max() ?? 0
        var lines = ["Commands ('help COMMAND' shows its arguments and an example):"]
        let topics = Set(visible.map(\.topic)).sorted { ($0.order, $0.name) < ($1.order, $1.name) }
        for topic in topics {
            lines.append("")
            lines.append(topic.name)
            for command in visible where command.topic == topic {
                lines.append("  " + command.name.padded(to: width) + "  " + command.summary)
            }
        }
        lines.append("")
        lines.append("Settings ('set NAME VALUE', 'show', 'help NAME'): " + settings.names.joined(separator: ", "))
        lines.append("Words: \"quote words\" with spaces; --json makes a reporting command print one JSON object.")
        return lines.joined(separator: "\n")
    }

    /// `help --json`: every visible command with its topic, summary and usage.
    var helpListJSON: JSONObject {
        let commands = registry.commands.filter { !$0.hidden }.map { command -> JSONValue in
            .object(["name": .string(command.name), "topic": .string(command.topic.name),
                     "summary": .string(command.summary), "usage": .string(command.usage(path: command.name))])
        }
        return ["commands": .array(commands), "settings": .array(settings.names.map(JSONValue.string))]
    }

    /// `help COMMAND`: usage, description, every argument, sub-commands and an example.
    public func help(for command: Command, path: String) -> String {
        var lines = [command.usage(path: path), "", command.summary.capitalizedFirst + "."]
        if !command.details.isEmpty { lines += ["", command.details] }
        let arguments = command.run == nil ? [] : command.allArguments
        if !arguments.isEmpty {
            lines += ["", "Arguments:"]
            let labels = arguments.map(\.helpLabel)
            let width = labels.map(\.count).max() ?? 0
            for (label, argument) in zip(labels, arguments) {
                lines.append("  " + label.padded(to: width) + "  " + argument.helpLine)
            }
        }
        let subs = command.subcommands.filter { !$0.hidden }
        if !subs.isEmpty {
            lines += ["", "Sub-commands:"]
            let width = subs.map { ($0.name + " " + $0.allArguments.filter(\.isPositional).map(\.usage).joined(separator: " ")).count }.max() ?? 0
            for sub in subs {
                let label = sub.name + " " + sub.allArguments.filter(\.isPositional).map(\.usage).joined(separator: " ")
                lines.append("  " + label.padded(to: width) + "  " + sub.summary)
            }
        }
        let examples = command.examples + subs.flatMap(\.examples)
        if !examples.isEmpty {
            lines += ["", examples.count == 1 ? "Example:" : "Examples:"]
            lines += examples.map { "  " + $0 }
        }
        return lines.joined(separator: "\n")
    }

    /// `help COMMAND --json`.
    func helpJSON(for command: Command, path: String) -> JSONObject {
        let arguments = (command.run == nil ? [] : command.allArguments).map { argument -> JSONValue in
            var object: JSONObject = ["name": .string(argument.isOption ? "--" + argument.name : argument.name),
                                      "help": .string(argument.help)]
            if case .flag = argument.style {} else { object["accepts"] = .string(argument.kind.accepted) }
            if case .option(let value?) = argument.style { object["default"] = value.json }
            return .object(object)
        }
        return ["name": .string(path), "topic": .string(command.topic.name), "summary": .string(command.summary),
                "usage": .string(command.usage(path: path)), "arguments": .array(arguments),
                "subcommands": .array(command.subcommands.filter { !$0.hidden }.map { .string($0.name) }),
                "examples": .array((command.examples + command.subcommands.flatMap(\.examples)).map(JSONValue.string))]
    }

    /// `help NAME` for a setting: what it accepts, its default, its current value.
    func help(for setting: Setting) -> String {
        "\(setting.name): \(setting.help)\n  accepts \(setting.kind.accepted); default \(setting.defaultValue); now \(settings[setting.name])\n  e.g. set \(setting.name) \(setting.defaultValue)"
    }
}

extension ArgumentSpec {
    /// `FORMAT`, `--seed N`, `--bits`.
    var helpLabel: String {
        switch style {
        case .option: return "--\(name) \(kind.placeholder.count > 12 ? "VALUE" : kind.placeholder)"
        case .flag: return "--\(name)"
        default: return usage.trimmingCharacters(in: ["[", "]"])
        }
    }

    /// The help text, with what is accepted and the default where they add something.
    var helpLine: String {
        var line = help
        switch style {
        case .flag: break
        case .assignments(let keys, _):
            line += " (keys: " + keys.map { "\($0.key)=\($0.kind.placeholder)" }.joined(separator: " ") + ")"
        default:
            if case .text = kind {} else { line += "; \(kind.accepted)" }
        }
        if case .option(let value?) = style { line += " (default \(value))" }
        return line
    }
}

extension String {
    func padded(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }

    var capitalizedFirst: String { prefix(1).uppercased() + dropFirst() }
}

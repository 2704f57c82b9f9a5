import ArgumentParser
import Lab

struct Plab: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plab",
        abstract: "PrecisionLab: see why RL fine-tuning breaks when rollout and training round differently.",
        version: PlabVersion.string,
        subcommands: [Shell.self, Run.self, Replay.self, Sweep.self, Cast.self, Formats.self, Bench.self],
        defaultSubcommand: Shell.self
    )
}

enum PlabVersion {
    static let string = plabVersion
}

/// Help text written with line breaks for the source, as paragraphs that the argument
/// parser wraps to the terminal: the lines of each paragraph are joined. Blank lines end
/// paragraphs; a line that starts with a space or with `Example` stays a line of its own.
func reflowed(_ text: String) -> String {
    var out: [String] = []
    for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
        let keep = line.isEmpty || line.hasPrefix(" ") || line.hasPrefix("Example")
        if !keep, let last = out.last, !last.isEmpty, !last.hasPrefix(" "), !last.hasPrefix("Example") {
            out[out.count - 1] = last + " " + line
        } else {
            out.append(line)
        }
    }
    return out.joined(separator: "\n")
}

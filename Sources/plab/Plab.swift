import ArgumentParser
import Lab

struct Plab: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plab",
        abstract: "PrecisionLab: see why RL fine-tuning breaks when rollout and training round differently.",
        version: PlabVersion.string,
        subcommands: [Shell.self, Run.self, Replay.self, Cast.self, Formats.self, Bench.self],
        defaultSubcommand: Shell.self
    )
}

enum PlabVersion {
    static let string = plabVersion
}

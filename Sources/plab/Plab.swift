import ArgumentParser
import Numerics

struct Plab: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plab",
        abstract: "PrecisionLab: see why RL fine-tuning breaks when rollout and training round differently.",
        version: PlabVersion.string,
        subcommands: [Shell.self, Cast.self, Formats.self, Bench.self],
        defaultSubcommand: Shell.self
    )
}

enum PlabVersion {
    static let string = "0.1.0"
}

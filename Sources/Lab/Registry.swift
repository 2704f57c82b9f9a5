// The one list of what the shell knows. To add a command: write a file that defines a
// `Command` value (see Commands/) and list it below; to add a setting, define a `Setting`
// and list it below. The parser, help, completion, `--json`, `show` and transcript headers
// need no change. State that settings do not capture (a loaded model) reaches transcript
// headers through a `StateRestorer`.

/// The commands, settings and prompt parts of a session.
public struct Registry: Sendable {
    public private(set) var commands: [Command]
    public private(set) var settings: [Setting]
    public private(set) var promptParts: [PromptPart]
    public private(set) var restorers: [StateRestorer]

    public init(commands: [Command], settings: [Setting], promptParts: [PromptPart] = [],
                restorers: [StateRestorer] = []) {
        self.commands = []
        self.settings = settings
        self.promptParts = promptParts
        self.restorers = restorers
        for command in commands { register(command) }
        precondition(Set(settings.map(\.name)).count == settings.count, "two settings share a name")
    }

    /// Adds a command; its name and aliases must be new.
    public mutating func register(_ command: Command) {
        let taken = Set(commands.flatMap { [$0.name] + $0.aliases })
        precondition(([command.name] + command.aliases).allSatisfy { !taken.contains($0) },
                     "command '\(command.name)' is registered twice")
        commands.append(command)
    }

    /// Adds a setting; its name must be new.
    public mutating func register(_ setting: Setting) {
        precondition(!settings.contains { $0.name == setting.name }, "setting '\(setting.name)' is registered twice")
        settings.append(setting)
    }

    /// The commands a transcript header's `# state:` line may run ("model load", "set", …).
    public var stateCommandPaths: [String] {
        func paths(_ command: Command, _ prefix: String) -> [String] {
            let path = prefix.isEmpty ? command.name : prefix + " " + command.name
            return (command.restoresState ? [path] : []) + command.subcommands.flatMap { paths($0, path) }
        }
        return commands.flatMap { paths($0, "") }
    }

    /// Adds a part to the prompt.
    public mutating func register(_ part: PromptPart) { promptParts.append(part) }

    /// Adds a way to write state into transcript headers.
    public mutating func register(_ restorer: StateRestorer) { restorers.append(restorer) }

    /// Everything the lab has today.
    public static let standard = Registry(
        commands: [
            // Numbers
            .cast, .formats, .accumulate,
            // Model, engines, mismatch
            .model, .lora, .memory, .precision, .engine, .rollout, .mismatch, .compare, .score, .trace,
            // RL
            .task, .pretrain, .sanity, .eval, .step, .algo,
            // Settings
            .set, .show, .seed,
            // Metrics
            .history, .run, .export,
            // Plots
            .plot, .report,
            // Session
            .help, .record, .source, .quit,
        ],
        settings: [.seed, .backend, .color, .unicode, .plotWidth, .temperature, .topP, .topK, .maxNew, .prompts] + Setting.rlSettings,
        promptParts: [.precision, .recording],
        restorers: [.model, .rollouts, .metrics]
    )
}

/// A piece of the prompt, shown when `text` returns non-nil: tags go in brackets after
/// `plab` (`plab[bf16|fp16]>`), statuses after it (`plab step 12>`).
public struct PromptPart: Sendable {
    public enum Placement: Sendable { case tag, status }
    public var placement: Placement
    public var text: @Sendable (Session) -> String?

    public init(_ placement: Placement, text: @escaping @Sendable (Session) -> String?) {
        self.placement = placement
        self.text = text
    }

    /// `bf16|fp16`: the rollout and training engines' formats, once a model exists.
    public static let precision = PromptPart(.tag) { session in
        guard let lab = session.labStorage else { return nil }
        let pair = lab.policy.engines
        return "\(pair.rollout.shortName)|\(pair.training.shortName)"
    }

    /// `(rec)` while a transcript is being recorded.
    public static let recording = PromptPart(.status) { $0.isRecording ? "(rec)" : nil }
}

/// State beyond the settings that a transcript must start from (a loaded model, engine
/// profiles), written into transcript headers as commands that rebuild it from a fresh
/// session: `# state: model load ckpt/base`. A replay runs them, silently, before the
/// transcript's commands. `commands` returns nil when no command can rebuild the state (a
/// model trained in this session); `record` then warns that a replay will start elsewhere.
public struct StateRestorer: Sendable {
    /// What the state is, for the warning: "the model".
    public var name: String
    public var commands: @Sendable (Session) -> [String]?

    public init(_ name: String, commands: @escaping @Sendable (Session) -> [String]?) {
        self.name = name
        self.commands = commands
    }
}

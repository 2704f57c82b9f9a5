// Runs: every metrics row belongs to a named run, and each run counts its own steps. An RL
// step joins the current run while the model, the engines, the algorithm, the seed and the
// task stay the same; a change of any of them (or `run NAME`) starts the next run.

import Engines
import JSON
import RL

/// What must stay the same for RL steps to be in one run.
struct RunKey: Equatable {
    var modelGeneration: Int
    var engines: EnginePair
    var algorithm: Algorithm
    var seed: UInt64
    var task: TaskSpec
}

extension Session {
    /// The run the next RL step's row joins: the current one while its key holds and no
    /// `run NAME` is pending, else a new one named by `run NAME` or automatically
    /// (`bf16-grpo-s0`, numbered on repeats).
    func runForStep(_ trainer: Trainer) -> Int {
        let key = runKey(trainer)
        if !startsNewRun(trainer) { return currentRun!.index }
        let lab = self.lab
        let preset = presetLabel
        let name = requestedRunName ?? metrics.freshRunName("\(preset)-\(key.algorithm.rawValue)-s\(seed)")
        requestedRunName = nil
        let settings: [RunSetting] = [
            RunSetting("preset", preset), RunSetting("algo", key.algorithm.rawValue), RunSetting("seed", String(seed)),
            RunSetting("task", key.task.description), RunSetting("model", lab.origin),
            RunSetting("lr", self.settings.text("lr")), RunSetting("prompts", self.settings.text("prompts")),
            RunSetting("samples", self.settings.text("samples")), RunSetting("temperature", self.settings.text("temperature")),
        ]
        let index = metrics.startRun(RunInfo(name: name, settings: settings))
        currentRun = (key, index)
        return index
    }

    /// Whether the next RL step starts a new run.
    func startsNewRun(_ trainer: Trainer) -> Bool {
        guard let current = currentRun else { return true }
        return current.key != runKey(trainer) || requestedRunName != nil
    }

    private func runKey(_ trainer: Trainer) -> RunKey {
        RunKey(modelGeneration: lab.generation, engines: lab.policy.engines, algorithm: trainer.settings.algorithm,
               seed: seed, task: lab.task.spec)
    }

    /// A run of its own for a measurement that is not an RL step (`accumulate`): `base`,
    /// numbered on repeats; the next RL step starts a new run after it.
    func startSingleRun(_ base: String, settings: [RunSetting]) -> Int {
        currentRun = nil
        return metrics.startRun(RunInfo(name: metrics.freshRunName(base), settings: settings))
    }

    /// The engines' preset name, or `custom` once a field was changed.
    var presetLabel: String {
        let lab = self.lab
        if let name = lab.presetName, let preset = Preset(rawValue: name), preset.engines(for: lab.policy.config) == lab.policy.engines {
            return name
        }
        return "custom"
    }
}

extension Command {
    /// `run [NAME]`: the runs of the metrics history, or a name for the next one.
    public static let run = Command(
        name: "run", topic: .metrics,
        summary: "list the runs of the metrics history, or name the next run",
        details: """
        Every row of `history` belongs to a run. RL steps stay in one run while the model,
        the engines, the algorithm, the seed and the task stay the same; changing any of them
        (`model load`, `precision preset`, `set algo`, `seed`, `task`) starts a new run, named
        PRESET-ALGO-sSEED (bf16-grpo-s0), numbered on repeats (bf16-grpo-s0-2). `run NAME`
        starts the next run under that name, whatever changed. Each run counts its own steps.
        JSON: {"current": name or null, "runs": [{"name", "rows", "settings": {…}}]}.
        """,
        arguments: [.positional("NAME", .text, "the next run's name (letters, digits, . _ - +)", optional: true)],
        examples: ["run", "run bf16-baseline", "run --json"],
        reports: true
    ) { context in
        let session = context.session
        if let name = context.arguments.text("NAME") {
            try checkRunName(name, in: session.metrics)
            session.requestedRunName = name
            context.print("the next RL step starts run \(name)")
            return
        }
        let runs = session.metrics.runs
        let current = session.currentRun.map { runs[$0.index].name }
        context.report(["current": current.map(JSONValue.string) ?? .null,
                        "runs": .array(runs.map { .object(["name": .string($0.name), "rows": .int($0.rows),
                                                             "settings": .object($0.settingsJSON)]) })]) {
            guard !runs.isEmpty else { return "no runs yet (RL steps and accumulate start runs)" }
            let keys = session.metrics.settingKeys.filter { $0 != "model" }
            var table = TextTable(header: ["run", "rows"] + keys, rightAligned: [1])
            for run in runs {
                table.add([run.name + (run.name == current ? " *" : ""), String(run.rows)] + keys.map { run.value(of: $0) ?? "" })
            }
            return table.render() + (current != nil ? "\n(* the current run)" : "")
        }
    }
}

/// A run name must be new, and a word that lists and files can carry.
func checkRunName(_ name: String, in metrics: MetricsHistory) throws(LabError) {
    let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+")
    guard !name.isEmpty, name.count <= 64, name.allSatisfy({ allowed.contains($0) }) else {
        throw LabError("run name '\(name)': use 1–64 letters, digits and . _ - + (no spaces or commas)")
    }
    guard metrics.runIndex(named: name) == nil else {
        throw LabError("run \(name) exists; choose another name (run lists the runs)")
    }
}

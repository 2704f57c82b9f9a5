// Commands over the settings store: set, show, seed.

import Engines
import JSON
import Numerics

extension Command {
    /// `set NAME VALUE`.
    public static let set = Command(
        name: "set", topic: .settings,
        summary: "change a setting ('show' lists them)",
        arguments: [
            .positional("NAME", .text, "the setting", complete: { session, _ in session.settings.names }),
            .positional("VALUE", .text, "its new value, of the setting's type", complete: { session, previous in
                guard let name = previous.first, let setting = try? session.settings.definition(name) else { return [] }
                return setting.kind.candidates
            }),
        ],
        examples: ["set backend portable", "set seed 7"],
        restoresState: true
    ) { context in
        let name = context.arguments.text("NAME")!, text = context.arguments.text("VALUE")!, session = context.session
        // A live model's engines move to a new backend now, their weights prepared again the
        // way its products read them: refused with the figures when they would not fit, and
        // then nothing changes.
        if name == "backend", let lab = session.labStorage {
            var probe = session.settings
            let chosen = try probe.set(name, to: text).description
            if lab.policy.backend.name != chosen {
                let backend = try matmulBackend(named: chosen)
                let engines = MemoryEstimate.engineWeights(lab.policy.config, lab.policy.engines, backend: backend)
                try session.checkMemory(MemoryEstimate([("engine copies", engines)]), advice: "free memory or use a smaller model")
                try lab.policy.setBackend(backend)
            }
        }
        let value = try session.settings.set(name, to: text)
        context.print("\(name) = \(value)")
    }

    /// `show [NAME…]`.
    public static let show = Command(
        name: "show", topic: .settings,
        summary: "show settings: value, default and what each accepts",
        details: "JSON: one key per setting, with its value.",
        arguments: [.variadic("NAME", .text, "settings to show (default: all)", complete: { session, _ in session.settings.names })],
        examples: ["show", "show backend", "show --json"],
        reports: true
    ) { context in
        let store = context.session.settings
        var definitions: [Setting] = []
        for name in context.arguments.texts("NAME") { definitions.append(try store.definition(name)) }
        if definitions.isEmpty { definitions = store.definitions }
        var object = JSONObject()
        for setting in definitions { object[setting.name] = store[setting.name].json }
        context.report(object) {
            var table = TextTable(header: ["setting", "value", "default", "accepts"])
            for setting in definitions {
                // A free-form setting (checked by its own rule) is described by its help.
                var accepts = setting.kind.accepted
                if case .text = setting.kind { accepts = setting.help }
                table.add([setting.name, store[setting.name].description, setting.defaultValue.description, accepts])
            }
            return table.render()
        }
    }

    /// `seed [N]`: the session's seed, shown or set.
    public static let seed = Command(
        name: "seed", topic: .settings,
        summary: "show the seed of every random stream, or set it",
        details: "The same as 'set seed N'. JSON: {\"seed\"}.",
        arguments: [.positional("N", Setting.seed.kind, "the new seed", optional: true)],
        examples: ["seed 42"],
        reports: true, restoresState: true
    ) { context in
        if let n = context.arguments.integer("N") { try context.session.settings.set("seed", to: String(n)) }
        let seed = context.session.settings.integer("seed")
        context.report(["seed": .int(seed)]) { "seed = \(seed)" }
    }
}

// `memory`: what the live model holds and what the large commands would need at the
// current settings, against the memory available — the figures the commands check before
// they allocate (Engines/MemoryEstimate.swift, Lab/Memory.swift).

import JSON
import Engines
import Foundation
import Mismatch

extension Command {
    /// `memory`: the estimates the memory check uses, without running anything.
    public static let memory = Command(
        name: "memory", topic: .model,
        summary: "the memory the live model holds and what rollout, step and pretrain would need, against what is available",
        details: """
        The same estimates the commands check before they allocate (model new, model load,
        rollout, compare, step, pretrain, eval, sanity build, score, trace, precision, engine):
        a command that needs more than is available is refused with both figures and the
        setting to lower, and nothing changes. Available: MemAvailable capped by the memory
        cgroup's headroom (Linux), the physical memory (macOS), or PLAB_MEMORY_LIMIT (bytes,
        or K, M, G, T) when set. Rows: the live model as `model new` counts it (master weights,
        the engines' copies; the optimizer moments come with the first update), `rollout` with the prompts setting, one
        `step` and one `pretrain` step at the current settings.
        JSON: {"available", "source", "model", "rollout", "step", "pretrain"}, each estimate
        {"total", "terms": {name: bytes}} in bytes.
        """,
        examples: ["memory", "memory --json"],
        reports: true
    ) { context in
        let session = context.session, lab = session.lab
        let trainer = try session.syncedTrainer()
        let config = lab.policy.config
        let n = session.settings.integer("prompts")
        let rolloutPrompts = taskPrompts(n, lab: lab, round: lab.rolloutCount)
        let rows: [(key: String, label: String, estimate: MemoryEstimate)] = [
            ("model", "model (held)", .model(config, engines: lab.policy.engines, backend: lab.policy.backend)),
            ("rollout", "rollout \(n)", rolloutEstimate(rolloutPrompts, session: session)),
            ("step", "step", trainer.stepEstimate),
            ("pretrain", "pretrain", trainer.pretrainEstimate),
        ]
        let available = try session.availableMemory()
        var object: JSONObject = ["available": available.map { .int($0.bytes) } ?? .null,
                                  "source": available.map { .string($0.source) } ?? .null]
        for row in rows {
            var terms = JSONObject()
            for t in row.estimate.terms { terms[t.name] = .int(t.bytes) }
            object[row.key] = .object(["total": .int(row.estimate.total), "terms": .object(terms)])
        }
        context.report(object) {
            var table = TextTable(header: ["", "needs", "largest parts"], rightAligned: [1])
            for row in rows {
                let parts = row.estimate.largestFirst.prefix(3).map { "\($0.name) \(memoryFigure($0.bytes))" }
                table.add([row.label, memoryFigure(row.estimate.total),
                           parts.joined(separator: ", ") + (row.estimate.terms.count > 3 ? ", …" : "")])
            }
            return table.render()
        }
        // The available figure differs from run to run: a volatile line in transcripts.
        context.volatile(available.map { "available: \(memoryFigure($0.bytes)) (\($0.described))" } ?? "available: unknown")
    }
}

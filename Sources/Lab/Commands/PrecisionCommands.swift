// Commands about the engines' precision and implementation: precision, engine.

import JSON
import Engines
import Model
import Numerics
import RL

/// The fields of a profile that `precision rollout|train|both FIELD=VALUE` sets.
enum ProfileField: String, CaseIterable {
    case weights, weightScaling = "weight_scaling", activation, gemmInput = "gemm_input",
         gemmGradInput = "gemm_grad_input", gemmScaling = "gemm_scaling", scaleRule = "scale_rule", accumulate,
         gradient, kv, probs, otherWeights = "other_weights", scaleFormula = "scale_formula",
         pow2Scales = "pow2_scales", saturate, lmHead = "lm_head"

    var help: String {
        switch self {
        case .weights: return "format of linear weights"
        case .weightScaling: return "their scaling: unscaled, tensor, RxC blocks, or 1xG groups along K (MX)"
        case .activation: return "format of stored activations"
        case .gemmInput: return "format of every per-product operand (x in FProp and WGrad; also sets dy)"
        case .gemmGradInput: return "format of the gradient operand dy of DGrad and WGrad (e5m2: HYBRID)"
        case .gemmScaling: return "their scaling along K: unscaled, tensor, 1xG groups (Gx1 in WGrad)"
        case .scaleRule: return "current, or delayed[/HISTORY[/MARGIN]] (per-tensor, TransformerEngine)"
        case .accumulate: return "fp32, hopper (14 bits, promoted every 128), or BITS/STEP/INTERVAL"
        case .gradient: return "format of gradients between operators (training)"
        case .kv: return "format of keys and values entering attention (the rollout's KV cache)"
        case .probs: return "format of attention probabilities before P·V"
        case .otherWeights: return "format of embedding and norm weights"
        case .scaleFormula: return "amax/max (DeepSeek, vLLM), max/amax (TransformerEngine, verl), mx (E8M0, OCP MX)"
        case .pow2Scales: return "round scales up to powers of two"
        case .saturate: return "clamp overflow to ±max finite in quantized operands"
        case .lmHead: return "quantized (the recipe above) or plain (activation format, fp32 accumulation, as DeepSeek-V3 and vLLM)"
        }
    }

    /// Applies `value` to a profile.
    func apply(_ value: String, to p: inout PrecisionProfile) throws(NumericsError) {
        func toggle() throws(NumericsError) -> Bool {
            switch value.lowercased() {
            case "on", "true", "yes", "1": return true
            case "off", "false", "no", "0": return false
            default: throw .invalidArgument("\(rawValue)=\(value): expected on or off")
            }
        }
        switch self {
        case .weights: p.weights.format = try NumberFormat.parse(value)
        case .weightScaling:
            let g = try ScaleGranularity.parse(value)
            if case .columnGroups = g { throw .invalidArgument("weight_scaling=\(value): weights take unscaled, tensor, RxC blocks or 1xG groups along K") }
            p.weights.granularity = g
        case .activation: p.activation = try NumberFormat.parse(value)
        case .gemmInput:
            let f = try NumberFormat.parse(value)
            p.fprop.input.format = f
            p.dgrad.input.format = f
            p.wgrad.input.format = f
            p.wgradActivation.format = f
        case .gemmGradInput:
            let f = try NumberFormat.parse(value)
            p.dgrad.input.format = f
            p.wgrad.input.format = f
        case .scaleRule: p.scaleRule = try ScaleRule.parse(value)
        case .gemmScaling:
            let g = try ScaleGranularity.parse(value)
            switch g {
            case .unscaled, .tensor:
                p.fprop.input.granularity = g; p.dgrad.input.granularity = g
                p.wgrad.input.granularity = g; p.wgradActivation.granularity = g
            case .rowGroups(let n):
                p.fprop.input.granularity = g; p.dgrad.input.granularity = g
                p.wgrad.input.granularity = .columnGroups(n); p.wgradActivation.granularity = .columnGroups(n)
            default:
                throw .invalidArgument("gemm_scaling=\(value): the per-product operands take unscaled, tensor or 1xG groups along K (WGrad then uses Gx1 along the tokens)")
            }
        case .accumulate:
            let a: Accumulation
            switch value.lowercased() {
            case "fp32": a = .fp32
            case "hopper": a = .hopperFP8
            default:
                let parts = value.split(separator: "/").compactMap { Int($0) }
                guard parts.count == 3 else {
                    throw .invalidArgument("accumulate=\(value): expected fp32, hopper, or BITS/STEP/INTERVAL (e.g. 14/32/128)")
                }
                a = .limited(bits: parts[0], step: parts[1], interval: parts[2])
                // Validate now so a bad value changes nothing.
                _ = try QuantizedGEMM(recipe: GemmRecipe(accumulation: a), backend: PortableBackend())
                    .multiply([1], [1], m: 1, n: 1, k: 1)
            }
            p.fprop.accumulation = a; p.dgrad.accumulation = a; p.wgrad.accumulation = a
        case .gradient: p.gradient = try NumberFormat.parse(value)
        case .kv: p.kvCache = try NumberFormat.parse(value)
        case .probs: p.probabilities = try NumberFormat.parse(value)
        case .otherWeights: p.otherWeights = try NumberFormat.parse(value)
        case .scaleFormula:
            let f = try ScaleFormula.parse(value)
            p.weights.formula = f; p.fprop.input.formula = f; p.dgrad.input.formula = f; p.wgrad.input.formula = f
            p.wgradActivation.formula = f
        case .pow2Scales:
            let on = try toggle()
            p.weights.powerOfTwoScales = on; p.fprop.input.powerOfTwoScales = on
            p.dgrad.input.powerOfTwoScales = on; p.wgrad.input.powerOfTwoScales = on
            p.wgradActivation.powerOfTwoScales = on
        case .lmHead:
            switch value.lowercased() {
            case "quantized": p.quantizedHead = true
            case "plain": p.quantizedHead = false
            default: throw .invalidArgument("lm_head=\(value): expected quantized or plain")
            }
        case .saturate:
            let on = try toggle()
            p.weights.saturate = on; p.fprop.input.saturate = on; p.dgrad.input.saturate = on; p.wgrad.input.saturate = on
            p.wgradActivation.saturate = on
        }
    }

    /// The field's value in a profile, for display.
    func show(_ p: PrecisionProfile) -> String {
        switch self {
        case .weights: return p.weights.format.name
        case .weightScaling: return p.weights.granularity.description
        case .activation: return p.activation.name
        case .gemmInput: return p.fprop.input.format.name
        case .gemmGradInput: return p.dgrad.input.format.name
        case .gemmScaling: return p.fprop.input.granularity.description
        case .scaleRule: return p.scaleRule.description
        case .accumulate:
            if case .limited(let b, let s, let i) = p.fprop.accumulation { return "\(b)/\(s)/\(i)" }
            return "fp32"
        case .gradient: return p.gradient.name
        case .kv: return p.kvCache.name
        case .probs: return p.probabilities.name
        case .otherWeights: return p.otherWeights.name
        case .scaleFormula: return p.fprop.input.granularity == .unscaled && p.weights.granularity == .unscaled ? "-" : p.fprop.input.formula.rawValue
        case .pow2Scales: return p.weights.powerOfTwoScales ? "on" : "off"
        case .saturate: return p.weights.saturate ? "on" : "off"
        case .lmHead: return p.quantizedHead ? "quantized" : "plain"
        }
    }
}


/// Field names as the parser's assignment keys.
let profileFieldKeys: [(key: String, kind: ValueKind)] = ProfileField.allCases.map { ($0.rawValue, .text) }

/// The two profiles side by side; rows that differ are marked with `*`.
func precisionTable(_ pair: EnginePair) -> String {
    var table = TextTable(header: ["", "field", "rollout", "train"])
    for f in ProfileField.allCases {
        let r = f.show(pair.rollout), t = f.show(pair.training)
        table.add([r == t ? "" : "*", f.rawValue, r, t])
    }
    for ((name, r), (_, t)) in zip(pair.rollout.sources.states, pair.training.sources.states) {
        table.add([r == t ? "" : "*", name, r, t])
    }
    return table.render()
}

/// Both engines' implementation switches side by side; rows that differ are marked with `*`.
func sourcesTable(_ pair: EnginePair) -> String {
    var table = TextTable(header: ["", "source", "rollout", "train"])
    for ((name, a), (_, b)) in zip(pair.rollout.sources.states, pair.training.sources.states) {
        table.add([a == b ? "" : "*", name, a, b])
    }
    return table.render()
}

func profileJSON(_ p: PrecisionProfile) -> JSONValue {
    var members: JSONObject = [:]
    for f in ProfileField.allCases { members[f.rawValue] = .string(f.show(p)) }
    for (name, state) in p.sources.states { members[name] = .string(state) }
    return .object(members)
}

extension Command {
    /// `precision`, `precision preset NAME`, `precision rollout|train|both FIELD=VALUE…`.
    public static let precision = Command(
        name: "precision", topic: .engines,
        summary: "show or change the precision of the rollout and training engines",
        details: """
        Rows marked * differ between the engines. Every change re-syncs the weights into the
        engines (quantized the way each profile says). Fields:
        \(ProfileField.allCases.map { "  \($0.rawValue): \($0.help)" }.joined(separator: "\n"))
        JSON: {"preset", "rollout": {…}, "train": {…}}.
        """,
        subcommands: [precisionPreset, precisionSet("rollout"), precisionSet("train"), precisionSet("both"), precisionFlow],
        examples: ["precision", "precision preset fp16", "precision rollout weights=e4m3 weight_scaling=16x16 gemm_input=e4m3 gemm_scaling=1x16",
                   "precision train gemm_grad_input=e5m2", "precision both gemm_scaling=tensor scale_rule=delayed/16/0",
                   "precision both kv=e4m3"],
        reports: true
    ) { context in
        let lab = context.session.lab
        let pair = lab.policy.engines
        context.report(["preset": lab.presetName.map(JSONValue.string) ?? .null,
                        "rollout": profileJSON(pair.rollout), "train": profileJSON(pair.training)]) {
            "preset: \(lab.presetName ?? "custom")\n" + precisionTable(pair)
        }
    }

    static let precisionPreset = Command(
        name: "preset", topic: .engines,
        summary: "set both engines from a named preset",
        details: Preset.allCases.map { "\($0.rawValue): \($0.summary)" }.joined(separator: "\n"),
        arguments: [.positional("NAME", .choice(Preset.allCases.map(\.rawValue)), "the preset")],
        examples: ["precision preset bf16", "precision preset fp8-unified"],
        restoresState: true
    ) { context in
        let lab = context.session.lab
        let preset = try Preset.parse(context.arguments.text("NAME")!)
        let pair = preset.engines(for: lab.policy.config)
        try checkEngineMemory(pair, session: context.session)
        try lab.policy.setEngines(pair)
        lab.presetName = preset.rawValue
        context.print("precision: \(preset.rawValue) — \(preset.summary); engine switches at their defaults")
    }

    static let precisionFlow = Command(
        name: "flow", topic: .engines,
        summary: "every matrix product and cast of each engine, and whether rollout ⊆ training forward",
        details: """
        Lists, for one forward of each engine, the matrix products (operands with their format,
        scaling and scale rule; accumulation; output format) and the casts (where values are
        stored in another format), then the training backward. Steps marked * differ between
        the engines. The on-policy condition of Jet-RL holds when every rollout step appears in
        the training forward with the identical quantization. Listed apart: implementation
        differences (mismatch sources, see `engine`), which change the arithmetic, not the
        formats; and the caveats of per-tensor and delayed scaling, whose scales depend on the
        batch or on each engine's history even when the formats agree. Last, the elements that
        overflowed their format in each engine since the precision was set (clamped when
        saturating, inf/NaN otherwise), and the non-zero elements of 8-bit operands that
        became zero (how gradients vanish in FP8).
        JSON: {"forward": [{"step", "kind", "rollout", "train", "differs"}], "backward": […],
        "contained", "differences", "implementation_differences", "caveats", "overflows": {"rollout", "train"},
        "underflows": {"rollout", "train"}}.
        """,
        examples: ["precision flow", "precision preset fp8-rollout", "precision flow --json"],
        reports: true
    ) { context in
        let lab = context.session.lab
        let pair = lab.policy.engines
        func cell(_ s: FlowStep) -> String {
            s.kind == .cast ? s.output : "\(s.operandText) → \(s.output), accumulate \(s.accumulation)"
        }
        func json(_ s: FlowStep) -> JSONValue {
            var o: JSONObject = ["output": .string(s.output)]
            if s.kind == .gemm {
                var ops: JSONObject = [:]
                for operand in s.operands { ops[operand.name] = .string(operand.rule) }
                o["operands"] = .object(ops)
                o["accumulate"] = .string(s.accumulation)
            }
            return .object(o)
        }
        let sparse = lab.policy.config.isMixtureOfExperts
        let model = lab.policy.config
        let forward = Array(zip(pair.rollout.forwardFlow(for: model), pair.training.forwardFlow(for: model)))
        let differing = pair.flowDifferences(for: model).map(\.rollout.name)
        let backward = pair.training.backwardFlow
        let sources = pair.implementationDifferences
        let counts = [("rollout", lab.policy.rollout.kernel.state), ("train", lab.policy.training.kernel.state)]
        var overflows: JSONObject = [:], underflows: JSONObject = [:]
        for (engine, state) in counts {
            var o: JSONObject = [:]
            var u: JSONObject = [:]
            for role in OperandRole.allCases {
                o[role.rawValue] = .number(Double(state.overflows[role] ?? 0))
                u[role.rawValue] = .number(Double(state.underflows[role] ?? 0))
            }
            overflows[engine] = .object(o)
            underflows[engine] = .object(u)
        }
        let report: JSONObject = [
            "forward": .array(forward.map { r, t in
                .object(["step": .string(r.name), "kind": .string(r.kind.rawValue), "rollout": json(r), "train": json(t),
                         "differs": .bool(cell(r) != cell(t))])
            }),
            "backward": .array(backward.map { .object(["step": .string($0.name), "kind": .string($0.kind.rawValue), "train": json($0)]) }),
            "contained": .bool(differing.isEmpty),
            "differences": .array(differing.map(JSONValue.string)),
            "implementation_differences": .array(sources.map(JSONValue.string)),
            "caveats": .array(pair.flowCaveats.map(JSONValue.string)),
            "routing_replay": sparse ? .string(context.session.settings.text("routing_replay")) : .null,
            "overflows": .object(overflows),
            "underflows": .object(underflows),
        ]
        context.report(report) {
            var table = TextTable(header: ["", "forward", "engine", "operands → output"])
            var switchOnly = false
            for (r, t) in forward {
                if cell(r) == cell(t) {
                    table.add(["", r.name, "both", cell(r)])
                } else {
                    // `~`: the step differs only by an implementation switch (logits_fp32).
                    let mark = differing.contains(r.name) ? "*" : "~"
                    switchOnly = switchOnly || mark == "~"
                    table.add([mark, r.name, "rollout", cell(r)])
                    table.add(["", "", "train", cell(t)])
                }
            }
            var back = TextTable(header: ["", "training backward", "", "operands → output"])
            for s in backward { back.add(["", s.name, "train", cell(s)]) }
            var text = "preset: \(lab.presetName ?? "custom")\n" + table.render() + "\n" + back.render() + "\n"
            text += "* differs in precision" + (switchOnly ? "; ~ differs only by an implementation switch (logits_fp32, router_fp32, lora_merged)" : "") + "\n"
            if differing.isEmpty {
                text += "on-policy condition holds: every product and cast of the rollout is in the training forward with the same quantization\n"
            } else {
                text += "on-policy condition fails: the training forward does not repeat the rollout's \(differing.joined(separator: ", "))\n"
            }
            for caveat in pair.flowCaveats { text += "but: \(caveat)\n" }
            if sparse {
                let replay = RoutingReplay(rawValue: context.session.settings.text("routing_replay")) ?? .off
                text += "routing: " + (replay == .r3 ? "the training forward replays the rollout's experts (routing_replay r3); the routers' disagreement no longer reaches the experts used\n"
                    : replay == .r2 ? "each engine routes with its own router; later minibatches replay π_old's experts (routing_replay r2)\n"
                    : "each engine routes with its own router: where they disagree, a token goes to other experts in training than in the rollout (routing_replay off)\n")
            }
            text += sources.isEmpty ? "implementation differences: none\n"
                : "implementation differences (arithmetic, not formats; see `engine`): \(sources.joined(separator: ", "))\n"
            for (engine, state) in counts {
                let parts = OperandRole.allCases.compactMap { role in state.overflows[role].map { "\(role.rawValue) \($0)" } }
                text += "overflowed in \(engine) since the precision was set: \(parts.isEmpty ? "none" : parts.joined(separator: ", "))\n"
                let flushed = OperandRole.allCases.compactMap { role in state.underflows[role].map { "\(role.rawValue) \($0)" } }
                text += "flushed to zero in \(engine) (8-bit operands): \(flushed.isEmpty ? "none" : flushed.joined(separator: ", "))\n"
            }
            return String(text.dropLast())
        }
    }

    static func precisionSet(_ which: String) -> Command {
        Command(
            name: which, topic: .engines,
            summary: which == "both" ? "set fields of both engines" : "set fields of the \(which) engine",
            arguments: [.assignments("FIELD=VALUE", keys: profileFieldKeys, "fields to set")],
            examples: ["precision \(which) activation=fp16 weights=fp16"],
            restoresState: true
        ) { context in
            try editEngines(which, context) { (profile: inout PrecisionProfile, key: String, value: String) throws in
                guard let field = ProfileField(rawValue: key) else { throw LabError("unknown field '\(key)'") }
                try field.apply(value, to: &profile)
            } show: { precisionTable($0) }
        }
    }

    /// `engine`, `engine rollout|train|both SOURCE=on|off…`.
    public static let engine = Command(
        name: "engine", topic: .engines,
        summary: "show or switch the implementation differences (mismatch sources) of each engine",
        details: """
        Sources: split_k (split-K products; on = 4 pieces, or a number), chunked_softmax
        (flash-decoding attention; on = chunks of 16, or a number), fused_norm (residual add +
        RMSNorm in one kernel), fused_silu (silu(gate)·up in one kernel), logits_fp32 (logits
        kept in float32). Defaults: the rollout engine does what an inference engine does, the
        training engine what a training framework does. JSON: {"rollout": {…}, "train": {…}}.
        """,
        subcommands: [engineSet("rollout"), engineSet("train"), engineSet("both")],
        examples: ["engine", "engine rollout split_k=off chunked_softmax=off", "engine both fused_norm=off"],
        reports: true
    ) { context in
        let pair = context.session.lab.policy.engines
        var r: JSONObject = [:], t: JSONObject = [:]
        for (name, state) in pair.rollout.sources.states { r[name] = .string(state) }
        for (name, state) in pair.training.sources.states { t[name] = .string(state) }
        context.report(["rollout": .object(r), "train": .object(t)]) {
            return sourcesTable(pair)
        }
    }

    static func engineSet(_ which: String) -> Command {
        Command(
            name: which, topic: .engines,
            summary: which == "both" ? "switch sources of both engines" : "switch sources of the \(which) engine",
            arguments: [.assignments("SOURCE=on|off", keys: MismatchSources.names.map { ($0, .text) }, "sources to switch")],
            examples: ["engine \(which) split_k=off fused_norm=on"],
            restoresState: true
        ) { context in
            try editEngines(which, context) { (profile: inout PrecisionProfile, key: String, value: String) throws in
                try profile.sources.set(key, value)
            } show: { sourcesTable($0) }
        }
    }
}

/// Applies the command's KEY=VALUE words to the rollout engine, the training engine or both
/// (`which`), then sets the pair (all or nothing: a bad word changes neither) and shows it.
private func editEngines(_ which: String, _ context: CommandContext,
                         apply: (inout PrecisionProfile, String, String) throws -> Void,
                         show: (EnginePair) -> String) throws {
    let lab = context.session.lab
    var pair = lab.policy.engines
    for (key, value) in context.arguments.assignments {
        if which != "train" { try apply(&pair.rollout, key, value.description) }
        if which != "rollout" { try apply(&pair.training, key, value.description) }
    }
    try checkEngineMemory(pair, session: context.session)
    try lab.policy.setEngines(pair)
    lab.presetName = nil
    context.print(show(pair))
}

/// Refuses a switch of engines whose new copies of the weights (built beside the live
/// engines, which go only once the new ones stand) would not fit in memory.
func checkEngineMemory(_ pair: EnginePair, session: Session) throws {
    let config = session.lab.policy.config
    try session.checkMemory(MemoryEstimate([("engine copies", MemoryEstimate.engineWeights(config, pair, backend: session.lab.policy.backend))]),
                            advice: "free memory or use a smaller model")
}

extension StateRestorer {
    /// The rollouts the model has drawn: each draws prompts and samples from its own
    /// stream, and no command sets that count, so a transcript recorded after a rollout
    /// replays its rollouts from the first stream: `record` warns.
    public static let rollouts = StateRestorer("the count of rollouts already drawn") { session in
        guard let lab = session.labStorage, lab.rolloutCount > 0 else { return [] }
        return nil
    }

    /// The metrics history: no command rebuilds its rows, so `record` warns when it has some.
    public static let metrics = StateRestorer("the metrics history") { session in
        session.metrics.count > 0 ? nil : []
    }

    /// The live model and both engines' precision, as commands that rebuild them in a fresh
    /// session (which starts on the base model with the bf16 preset).
    public static let model = StateRestorer("the model and engines") { session in
        guard let lab = session.labStorage else { return [] }
        guard lab.isRestorable else { return nil }
        var commands: [String] = []
        if let rebuild = lab.restoreCommand { commands += rebuild.split(separator: "\n").map(String.init) }
        let pair = lab.policy.engines
        if let name = lab.presetName, let preset = Preset(rawValue: name), preset.engines(for: lab.policy.config) == pair {
            if preset != .bf16 { commands.append("precision preset \(name)") }
            return commands
        }
        for (which, profile) in [("rollout", pair.rollout), ("train", pair.training)] {
            let fields = ProfileField.allCases.map { field -> String in
                field == .scaleFormula ? "scale_formula=\(profile.fprop.input.formula.rawValue)" : "\(field.rawValue)=\(field.show(profile))"
            }
            commands.append("precision \(which) " + fields.joined(separator: " "))
            let s = profile.sources
            commands.append("engine \(which) split_k=\(s.splitK > 1 ? String(s.splitK) : "off") chunked_softmax=\(s.softmaxChunk > 0 ? String(s.softmaxChunk) : "off") fused_norm=\(s.fusedResidualNorm ? "on" : "off") fused_silu=\(s.fusedSiluMul ? "on" : "off") logits_fp32=\(s.logitsFP32 ? "on" : "off") router_fp32=\(s.routerFP32 ? "on" : "off") lora_merged=\(s.loraMerged ? "on" : "off")")
        }
        return commands
    }
}

// Commands about the engines' precision and implementation: precision, engine.

import Engines
import Mismatch
import Model
import Numerics

/// The fields of a profile that `precision rollout|train|both FIELD=VALUE` sets.
enum ProfileField: String, CaseIterable {
    case weights, weightScaling = "weight_scaling", activation, gemmInput = "gemm_input",
         gemmScaling = "gemm_scaling", accumulate, gradient, kv, probs, otherWeights = "other_weights",
         scaleFormula = "scale_formula", pow2Scales = "pow2_scales", saturate

    var help: String {
        switch self {
        case .weights: return "format of linear weights"
        case .weightScaling: return "their scaling: unscaled, tensor, or RxC blocks"
        case .activation: return "format of stored activations"
        case .gemmInput: return "format of the activation operand of every matrix product"
        case .gemmScaling: return "its scaling along K: unscaled, tensor, 1xG groups"
        case .accumulate: return "fp32, hopper (14 bits, promoted every 128), or BITS/STEP/INTERVAL"
        case .gradient: return "format of gradients between operators (training)"
        case .kv: return "format of the KV cache (rollout)"
        case .probs: return "format of attention probabilities before P·V"
        case .otherWeights: return "format of embedding and norm weights"
        case .scaleFormula: return "amax/max (DeepSeek, vLLM) or max/amax (TransformerEngine, verl)"
        case .pow2Scales: return "round scales up to powers of two"
        case .saturate: return "clamp overflow to ±max finite in quantized operands"
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
            if case .rowGroups = g { throw .invalidArgument("weight_scaling=\(value): weights take unscaled, tensor or RxC blocks") }
            if case .columnGroups = g { throw .invalidArgument("weight_scaling=\(value): weights take unscaled, tensor or RxC blocks") }
            p.weights.granularity = g
        case .activation: p.activation = try NumberFormat.parse(value)
        case .gemmInput:
            let f = try NumberFormat.parse(value)
            p.fprop.input.format = f
            p.dgrad.input.format = f
            p.wgrad.input.format = f
        case .gemmScaling:
            let g = try ScaleGranularity.parse(value)
            switch g {
            case .unscaled, .tensor:
                p.fprop.input.granularity = g; p.dgrad.input.granularity = g; p.wgrad.input.granularity = g
            case .rowGroups(let n):
                p.fprop.input.granularity = g; p.dgrad.input.granularity = g; p.wgrad.input.granularity = .columnGroups(n)
            default:
                throw .invalidArgument("gemm_scaling=\(value): activations take unscaled, tensor or 1xG groups")
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
        case .pow2Scales:
            let on = try toggle()
            p.weights.powerOfTwoScales = on; p.fprop.input.powerOfTwoScales = on
            p.dgrad.input.powerOfTwoScales = on; p.wgrad.input.powerOfTwoScales = on
        case .saturate:
            let on = try toggle()
            p.weights.saturate = on; p.fprop.input.saturate = on; p.dgrad.input.saturate = on; p.wgrad.input.saturate = on
        }
    }

    /// The field's value in a profile, for display.
    func show(_ p: PrecisionProfile) -> String {
        switch self {
        case .weights: return p.weights.format.name
        case .weightScaling: return p.weights.granularity.description
        case .activation: return p.activation.name
        case .gemmInput: return p.fprop.input.format.name
        case .gemmScaling: return p.fprop.input.granularity.description
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
        Fields: \(ProfileField.allCases.map(\.rawValue).joined(separator: ", ")).
        Rows marked * differ between the engines. Every change re-syncs the weights into the
        engines (quantized the way each profile says). JSON: {"preset", "rollout": {…}, "train": {…}}.
        """,
        subcommands: [precisionPreset, precisionSet("rollout"), precisionSet("train"), precisionSet("both")],
        examples: ["precision", "precision preset fp16", "precision rollout weights=e4m3 weight_scaling=16x16 gemm_input=e4m3 gemm_scaling=1x16"],
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
        examples: ["precision preset bf16", "precision preset fp8-unified"]
    ) { context in
        let lab = context.session.lab
        let preset = try Preset.parse(context.arguments.text("NAME")!)
        try lab.policy.setEngines(preset.engines(for: lab.policy.config))
        lab.presetName = preset.rawValue
        context.print("precision: \(preset.rawValue) — \(preset.summary)")
    }

    static func precisionSet(_ which: String) -> Command {
        Command(
            name: which, topic: .engines,
            summary: which == "both" ? "set fields of both engines" : "set fields of the \(which) engine",
            arguments: [.assignments("FIELD=VALUE", keys: profileFieldKeys, "fields to set")],
            examples: ["precision \(which) activation=fp16 weights=fp16"]
        ) { context in
            let lab = context.session.lab
            var pair = lab.policy.engines
            for (key, value) in context.arguments.assignments {
                guard let field = ProfileField(rawValue: key) else { throw LabError("unknown field '\(key)'") }
                if which != "train" { try field.apply(value.description, to: &pair.rollout) }
                if which != "rollout" { try field.apply(value.description, to: &pair.training) }
            }
            try lab.policy.setEngines(pair)
            lab.presetName = nil
            context.print(precisionTable(pair))
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
            var table = TextTable(header: ["", "source", "rollout", "train"])
            for ((name, a), (_, b)) in zip(pair.rollout.sources.states, pair.training.sources.states) {
                table.add([a == b ? "" : "*", name, a, b])
            }
            return table.render()
        }
    }

    static func engineSet(_ which: String) -> Command {
        Command(
            name: which, topic: .engines,
            summary: which == "both" ? "switch sources of both engines" : "switch sources of the \(which) engine",
            arguments: [.assignments("SOURCE=on|off", keys: MismatchSources.names.map { ($0, .text) }, "sources to switch")],
            examples: ["engine \(which) split_k=off fused_norm=on"]
        ) { context in
            let lab = context.session.lab
            var pair = lab.policy.engines
            for (key, value) in context.arguments.assignments {
                if which != "train" { try pair.rollout.sources.set(key, value.description) }
                if which != "rollout" { try pair.training.sources.set(key, value.description) }
            }
            try lab.policy.setEngines(pair)
            lab.presetName = nil
            var table = TextTable(header: ["", "source", "rollout", "train"])
            for ((name, a), (_, b)) in zip(pair.rollout.sources.states, pair.training.sources.states) {
                table.add([a == b ? "" : "*", name, a, b])
            }
            context.print(table.render())
        }
    }
}

extension StateRestorer {
    /// The live model and both engines' precision, as commands that rebuild them in a fresh
    /// session (which starts on the base model with the bf16 preset).
    public static let model = StateRestorer("the model and engines") { session in
        guard let lab = session.labStorage else { return [] }
        guard lab.isRestorable else { return nil }
        var commands: [String] = []
        if let rebuild = lab.restoreCommand { commands.append(rebuild) }
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
            commands.append("engine \(which) split_k=\(s.splitK > 1 ? String(s.splitK) : "off") chunked_softmax=\(s.softmaxChunk > 0 ? String(s.softmaxChunk) : "off") fused_norm=\(s.fusedResidualNorm ? "on" : "off") fused_silu=\(s.fusedSiluMul ? "on" : "off") logits_fp32=\(s.logitsFP32 ? "on" : "off")")
        }
        return commands
    }
}

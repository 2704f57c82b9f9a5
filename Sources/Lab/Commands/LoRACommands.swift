// Commands about LoRA adapters on the live model: lora, lora add, lora merge, lora drop.

import JSON
import Engines
import Model
import Numerics
import RL

extension Command {
    /// `lora`: the live model's adapters.
    public static let lora = Command(
        name: "lora", topic: .model,
        summary: "show the live model's LoRA adapters, or add, merge or drop them",
        details: """
        LoRA (PEFT's LoraConfig): on each targeted linear layer y = x·Wᵀ + (α/r)·(x·Aᵀ)·Bᵀ, with
        A (r, in) and B (out, r); the model itself is frozen and only A and B train (AdamW,
        float32 master copies). The training engine computes the adapters beside the weights;
        the rollout engine does the same, or with `engine rollout lora_merged=on` uses
        W + (α/r)·B·A merged and rounded to its weight format, as a serving engine that merges
        before a weight sync. `model save` writes the adapters in PEFT's layout
        (adapter_config.json, adapter_model.safetensors) beside the base model, which
        `PeftModel.from_pretrained` loads; `model load` reads them back.
        JSON: {"rank", "alpha", "scaling", "targets", "trainable", "parameters"} (rank 0 and no
        targets without adapters).
        """,
        subcommands: [loraAdd, loraMerge, loraDrop],
        examples: ["lora", "lora add r=8 alpha=16 targets=q_proj,v_proj", "lora merge"],
        reports: true
    ) { context in
        let c = context.session.lab.policy.config
        let lora = c.lora
        let trainable = lora.map { _ in c.parameterCount - c.withoutAdapters.parameterCount } ?? c.parameterCount
        let json: JSONObject = [
            "rank": .int(lora?.rank ?? 0), "alpha": .number(lora?.alpha ?? 0), "scaling": .number(Double(lora?.scaling ?? 0)),
            "targets": .array((lora?.targets ?? []).map { .string(LoRASpec.moduleName($0)!) }),
            "trainable": .int(trainable), "parameters": .int(c.parameterCount),
        ]
        context.report(json) {
            guard let lora else {
                return "no adapters: every parameter trains (lora add r=8 alpha=16 targets=q_proj,v_proj adds some)"
            }
            return "LoRA: rank \(lora.rank), alpha \(formatNumber(lora.alpha)) (scaling α/r = \(formatNumber(Double(lora.scaling)))) on "
                + lora.targets.map { LoRASpec.moduleName($0)! }.joined(separator: " ")
                + " of \(c.numHiddenLayers) layers: \(trainable) trainable parameters of \(c.parameterCount) (\(String(format: "%.2f", 100 * Double(trainable) / Double(c.parameterCount)))%)"
        }
    }

    static let loraAdd = Command(
        name: "add", topic: .model,
        summary: "put LoRA adapters on the live model (A as PEFT initialises it, B zero: the model is unchanged)",
        details: "r is the rank (default 8), alpha the scale numerator (default 16; the update is (alpha/r)·B·A), targets the linear layers, comma-separated: q_proj k_proj v_proj o_proj gate_proj up_proj down_proj, or all-linear (default q_proj,v_proj, PEFT's default for Llama). From then on only the adapters train; a new optimizer state starts. A model with adapters takes no others until `lora merge` or `lora drop`.",
        arguments: [
            .assignments("KEY=VALUE", keys: [("r", .integer(1...1024)), ("alpha", .real(1e-6...1e6)), ("targets", .text)],
                         "the adapters' rank, alpha and target modules", minimum: 0),
            .option("seed", .integer(0...Int.max), "seed of A's initial values (default: the session's seed)"),
        ],
        examples: ["lora add", "lora add r=4 alpha=8 targets=all-linear", "lora add r=16 alpha=32 targets=q_proj,k_proj,v_proj,o_proj --seed 2"],
        restoresState: true
    ) { context in
        let session = context.session, lab = session.lab
        let base = lab.policy.config
        if let existing = base.lora {
            throw LabError("lora add: the model already has adapters (rank \(existing.rank) on \(existing.targets.map { LoRASpec.moduleName($0)! }.joined(separator: ","))); `lora merge` folds them into the weights, `lora drop` removes them")
        }
        var rank = 8, alpha = 16.0, names = ["q_proj", "v_proj"]
        for (key, value) in context.arguments.assignments {
            switch (key, value) {
            case ("r", .integer(let n)): rank = n
            case ("alpha", .real(let x)): alpha = x
            case ("alpha", .integer(let n)): alpha = Double(n)
            case ("targets", .text(let t)): names = t.split(separator: ",").map { String($0) }
            default: throw LabError("lora add: unexpected \(key)=\(value)")
            }
        }
        let spec: LoRASpec
        do throws(NumericsError) {
            spec = LoRASpec(rank: rank, alpha: alpha, targets: try LoRASpec.kinds(names))
        } catch { throw LabError("lora add: \(error.description)") }
        var config = base
        config.lora = spec
        do throws(NumericsError) { try config.validate() } catch { throw LabError("lora add: \(error.description)") }
        let seed = context.arguments.integer("seed").map(UInt64.init) ?? session.seed
        // Before the adapters are allocated: a rank too large for the memory is refused here.
        try session.checkMemory(.model(config, engines: lab.policy.engines, backend: session.backend), advice: "use a smaller rank or fewer target modules")
        var weights = ModelWeights(config: config)
        weights.data.replaceSubrange(0..<lab.policy.master.data.count, with: lab.policy.master.data)
        weights.initializeAdapters(stream: RandomStream(seed: seed, name: "lora"))
        let targets = spec.targets.map { LoRASpec.moduleName($0)! }.joined(separator: ",")
        try replaceModel(context, weights: weights, origin: "\(lab.origin) + LoRA r=\(rank)",
                         command: "lora add r=\(rank) alpha=\(formatNumber(alpha)) targets=\(targets) --seed \(seed)")
        let trainable = config.parameterCount - base.parameterCount
        context.print("LoRA: rank \(rank), alpha \(formatNumber(alpha)) on \(spec.targets.map { LoRASpec.moduleName($0)! }.joined(separator: " ")): \(trainable) trainable parameters of \(config.parameterCount); the model itself is frozen")
    }

    static let loraMerge = Command(
        name: "merge", topic: .model,
        summary: "fold the adapters into the weights, W + (α/r)·B·A in float32, and remove them (PEFT's merge_and_unload)",
        examples: ["lora merge"],
        restoresState: true
    ) { context in
        let lab = context.session.lab
        guard lab.policy.config.lora != nil else { throw LabError("lora merge: the model has no adapters (lora add puts some on)") }
        let merged = lab.policy.master.mergingAdapters()
        try replaceModel(context, weights: merged, origin: "\(lab.origin), merged", command: nil)
        context.print("merged the adapters into the weights: \(merged.config.parameterCount) parameters, every one trains again")
    }

    static let loraDrop = Command(
        name: "drop", topic: .model,
        summary: "remove the adapters, leaving the model as it was before `lora add`",
        examples: ["lora drop"],
        restoresState: true
    ) { context in
        let lab = context.session.lab
        let config = lab.policy.config
        guard config.lora != nil else { throw LabError("lora drop: the model has no adapters") }
        var weights = ModelWeights(config: config.withoutAdapters)
        weights.data.replaceSubrange(0..<weights.data.count, with: lab.policy.master.data[0..<weights.data.count])
        try replaceModel(context, weights: weights, origin: "\(lab.origin), adapters dropped", command: nil)
        context.print("dropped the adapters: \(weights.config.parameterCount) parameters, every one trains again")
    }

    /// Puts `weights` in place of the live model with the engines' precision, the task,
    /// sanity set and step kept and a fresh optimizer state (the layout changed). Throws
    /// with nothing changed when the engines cannot hold it. `command` extends the commands
    /// that rebuild the model (nil: it can no longer be rebuilt by commands).
    private static func replaceModel(_ context: CommandContext, weights: ModelWeights, origin: String, command: String?) throws {
        let session = context.session, lab = session.lab
        try session.checkMemory(.model(weights.config, engines: lab.policy.engines, backend: session.backend), advice: "use a smaller rank or fewer target modules")
        let policy = try Policy(master: weights, engines: lab.policy.engines, backend: session.backend)
        let trainer = try Trainer(policy: policy, task: lab.task.spec, seed: session.seed)
        try trainer.setTask(lab.task, keepingSanitySet: false)
        try trainer.setSanitySet(lab.trainer.sanitySet)
        let restorable = lab.isRestorable && command != nil
        let rebuild = [lab.restoreCommand, command].compactMap { $0 }.joined(separator: "\n")
        lab.replace(policy: policy, vocabulary: lab.vocabulary, origin: origin, step: lab.step, restoreCommand: rebuild,
                    trainer: trainer, configDefaults: lab.configDefaults, tokenizer: lab.tokenizer)
        lab.isRestorable = restorable
    }
}

/// 16 for 16.0, 0.5 for 0.5.
private func formatNumber(_ x: Double) -> String {
    x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : String(x)
}

// Commands about the live model: model, model new, model load, model save.

import JSON
import Engines
import Files
import Foundation
import Model
import Numerics
import RL
import Storage

extension Topic {
    public static let model = Topic("Model", order: 20)
    public static let engines = Topic("Engines and precision", order: 30)
    public static let mismatch = Topic("Mismatch", order: 40)
}

extension Command {
    /// `model`, `model new …`, `model load DIR`, `model save DIR`.
    public static let model = Command(
        name: "model", topic: .model,
        summary: "show the live model, or make, load or save one",
        details: """
        JSON: {"hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
        "num_hidden_layers", "vocab_size", "rope_theta", "rms_norm_eps", "max_position_embeddings",
        "tie_word_embeddings", "parameters", "model_type", "head_dim", "attention_bias" (biases
        on q, k, v), "qk_norm", "origin", "step", "config_defaults"}; config_defaults lists the
        config.json keys the loaded checkpoint lacked (the defaults of its transformers
        configuration class were taken for them).
        """,
        subcommands: [modelNew, modelInit, modelLoad, modelSave],
        examples: ["model", "model new layers=2 hidden=32 heads=2 --seed 3", "model save /tmp/m", "model load /tmp/m"],
        reports: true
    ) { context in
        let lab = context.session.lab
        let c = lab.policy.config
        context.report(configJSON(c, lab: lab)) {
            var table = TextTable(header: ["", ""], rightAligned: [])
            table.add(["origin", lab.origin])
            table.add(["parameters", "\(c.parameterCount)"])
            table.add(["layers", "\(c.numHiddenLayers)"])
            table.add(["hidden / intermediate", "\(c.hiddenSize) / \(c.intermediateSize)"])
            table.add(["heads / kv heads / head dim", "\(c.numAttentionHeads) / \(c.numKeyValueHeads) / \(c.headDim)"])
            table.add(["vocabulary", "\(c.vocabSize) tokens" + (lab.tokenizer.map { ", tokenizer.json (\($0.tokenizer.vocabularySize) ids): text in and out" } ?? "")])
            table.add(["rope theta / rms eps", "\(c.ropeTheta) / \(c.rmsNormEps)"])
            table.add(["max positions", "\(c.maxPositionEmbeddings)"])
            table.add(["tied embeddings", c.tieWordEmbeddings ? "yes" : "no"])
            table.add(["family", "\(c.checkpointFamily.rawValue) (\(c.checkpointFamily.architecture))"])
            let extras = [c.qkvBias ? (c.outputBias ? "biases on q, k, v, o" : "biases on q, k, v") : nil,
                          c.qkNorm ? "per-head RMSNorm of q and k before RoPE" : nil].compactMap { $0 }
            if !extras.isEmpty { table.add(["attention", extras.joined(separator: "; ")]) }
            if c.isMixtureOfExperts {
                table.add(["MLP", "sparse: \(c.numLocalExperts) experts, top \(c.numExpertsPerTok) per token, weights renormalised (Mixtral)"])
            }
            if let lora = c.lora {
                table.add(["LoRA", "rank \(lora.rank), alpha \(lora.alpha) on \(lora.targets.map { LoRASpec.moduleName($0)! }.joined(separator: " ")): \(c.parameterCount - c.withoutAdapters.parameterCount) trainable, the rest frozen (lora)"])
            }
            if !lab.configDefaults.isEmpty {
                table.add(["defaults taken", lab.configDefaults.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                           + " (config.json lacks them: transformers' \(c.checkpointFamily.configClass) defaults)"])
            }
            table.add(["training steps", "\(lab.step)"])
            return table.render().split(separator: "\n", omittingEmptySubsequences: false).dropFirst(2).joined(separator: "\n")
        }
    }

    static let modelNew = Command(
        name: "new", topic: .model,
        summary: "a new model with random weights from the seed",
        details: "Unset sizes keep the lab's default model (4 layers, width 64, 4 heads, 2 kv heads, SwiGLU width 176). family=qwen2 gives q, k and v biases (Qwen2), family=qwen3 per-head q and k norms (Qwen3), mistral is Llama's block under Mistral's name; head_dim=D sets the heads' width apart from hidden/heads (Qwen3's shapes), attention_bias=on biases on q, k, v and o (llama, qwen3). Biases start at 0 and norms at 1, as transformers initialises them. experts=E puts a sparse mixture of E SwiGLU experts (each of width intermediate) in every layer's MLP, with a router sending each token to its top_k most probable experts (default 2), their weights renormalised to sum 1: Mixtral's block, saved as a checkpoint MixtralForCausalLM loads. The engines keep their precision when it fits the new shapes.",
        arguments: [
            .assignments("SIZE=N", keys: [("hidden", .integer(2...4096)), ("layers", .integer(0...64)),
                                          ("heads", .integer(1...256)), ("kv_heads", .integer(1...256)),
                                          ("intermediate", .integer(1...16384)), ("max_pos", .integer(1...8192)),
                                          ("theta", .real(1.0001...1e9)), ("tied", .toggle),
                                          ("experts", .integer(0...256)), ("top_k", .integer(1...256)),
                                          ("family", .choice(["llama", "mistral", "qwen2", "qwen3"])),
                                          ("head_dim", .integer(2...4096)), ("attention_bias", .toggle)],
                         "shape settings", minimum: 0),
            .option("seed", .integer(0...Int.max), "seed of the initial weights (default: the session's seed)"),
            .option("std", .real(1e-6...10), "standard deviation of the initial weights", default: .real(Double(LabState.initStd))),
        ],
        examples: ["model new", "model new layers=2 hidden=32 heads=2 kv_heads=1 intermediate=96 --seed 5",
                   "model new experts=8 top_k=2 intermediate=48", "model new family=qwen3 head_dim=32 hidden=64 heads=4 kv_heads=2"],
        restoresState: true
    ) { context in
        var config = LlamaConfig.labDefault
        for (key, value) in context.arguments.assignments {
            switch (key, value) {
            case ("hidden", .integer(let n)): config.hiddenSize = n
            case ("layers", .integer(let n)): config.numHiddenLayers = n
            case ("heads", .integer(let n)): config.numAttentionHeads = n
            case ("kv_heads", .integer(let n)): config.numKeyValueHeads = n
            case ("intermediate", .integer(let n)): config.intermediateSize = n
            case ("max_pos", .integer(let n)): config.maxPositionEmbeddings = n
            case ("theta", .real(let x)): config.ropeTheta = Float(x)
            case ("theta", .integer(let n)): config.ropeTheta = Float(n)
            case ("tied", .toggle(let on)): config.tieWordEmbeddings = on
            case ("experts", .integer(let n)): config.numLocalExperts = n
            case ("top_k", .integer(let n)): config.numExpertsPerTok = n
            case ("family", .text(let name)): config.family = ModelFamily(rawValue: name)!
            case ("head_dim", .integer(let n)): config.explicitHeadDim = n
            case ("attention_bias", .toggle(let on)): config.attentionBias = on
            default: throw LabError("model new: unexpected \(key)=\(value)")
            }
        }
        let keys = Set(context.arguments.assignments.map(\.0))
        if keys.contains("top_k") && !config.isMixtureOfExperts {
            throw LabError("model new: top_k=\(config.numExpertsPerTok) needs experts=E (a sparse MLP with E ≥ top_k experts); the dense MLP has no router")
        }
        if config.isMixtureOfExperts && !keys.contains("top_k") { config.numExpertsPerTok = min(2, config.numLocalExperts) }
        if config.isMixtureOfExperts && config.numExpertsPerTok > config.numLocalExperts {
            throw LabError("model new: top_k=\(config.numExpertsPerTok) is more than experts=\(config.numLocalExperts); each token goes to top_k of the experts, so top_k must be 1…\(config.numLocalExperts)")
        }
        let session = context.session, lab = session.lab
        let seed = context.arguments.integer("seed").map(UInt64.init) ?? session.seed
        let std = Float(context.arguments.real("std") ?? Double(LabState.initStd))
        do throws(NumericsError) { try config.validate() } catch {
            // The shape's rules speak config.json's names; here the user typed the shell's keys.
            var message = error.description
            for (name, key) in [("num_attention_heads", "heads"), ("num_key_value_heads", "kv_heads"), ("hidden_size", "hidden"),
                                ("intermediate_size", "intermediate"), ("num_hidden_layers", "layers"),
                                ("max_position_embeddings", "max_pos"), ("num_local_experts", "experts"),
                                ("num_experts_per_tok", "top_k"), ("rope_theta", "theta")] {
                message = message.replacingOccurrences(of: name, with: key)
            }
            throw LabError("model new: \(message)")
        }
        try session.checkMemory(.model(config, engines: lab.policy.engines, backend: session.backend), advice: "lower hidden, layers or intermediate")
        var weights = ModelWeights(config: config)
        weights.initialize(std: std, stream: RandomStream(seed: seed, name: "init"))
        let policy = try Policy(master: weights, engines: lab.policy.engines, backend: session.backend)
        let c = config
        let experts = c.isMixtureOfExperts ? " experts=\(c.numLocalExperts) top_k=\(c.numExpertsPerTok)" : ""
        let family = (c.family == .llama ? "" : " family=\(c.family.rawValue)") + (c.explicitHeadDim.map { " head_dim=\($0)" } ?? "")
            + (c.attentionBias ? " attention_bias=on" : "")
        let rebuild = "model new hidden=\(c.hiddenSize) layers=\(c.numHiddenLayers) heads=\(c.numAttentionHeads) kv_heads=\(c.numKeyValueHeads) intermediate=\(c.intermediateSize) max_pos=\(c.maxPositionEmbeddings) theta=\(c.ropeTheta) tied=\(c.tieWordEmbeddings ? "on" : "off")\(experts)\(family) --seed \(seed) --std \(std)"
        let trainer = try Trainer(policy: policy, task: lab.task.spec, seed: session.seed)
        // The live vocabulary when it names the new model's rows (a model loaded with another
        // vocabulary, or a tokenizer's, leaves the lab's standard one).
        let vocabulary = lab.vocabulary.count == config.vocabSize ? lab.vocabulary : .standard
        lab.replace(policy: policy, vocabulary: vocabulary, origin: "new (seed \(seed))", step: 0, restoreCommand: rebuild,
                    trainer: trainer)
        let sparse = config.isMixtureOfExperts ? ", \(config.numLocalExperts) experts (top \(config.numExpertsPerTok)) per layer" : ""
        let block = config.family == .llama && config.explicitHeadDim == nil && !config.attentionBias ? ""
            : ", \(config.family.rawValue)" + (config.explicitHeadDim.map { ", head_dim \($0)" } ?? "") + (config.attentionBias ? ", attention biases" : "")
        context.print("new model: \(config.parameterCount) parameters, \(config.numHiddenLayers) layer\(config.numHiddenLayers == 1 ? "" : "s"), width \(config.hiddenSize)\(block)\(sparse) (seed \(seed))")
    }

    static let modelInit = Command(
        name: "init", topic: .model,
        summary: "fresh weights of the default shape from the seed, as the base model starts (std 0.02)",
        arguments: [.option("seed", .integer(0...Int.max), "seed of the weights (default: the session's seed)")],
        examples: ["model init", "model init --seed 1"],
        restoresState: true
    ) { context in
        let session = context.session, lab = session.lab
        let seed = context.arguments.integer("seed").map(UInt64.init) ?? session.seed
        let weights = BaseModel.initialWeights(seed: seed)
        let policy = try Policy(master: weights, engines: lab.policy.engines, backend: session.backend)
        let trainer = try Trainer(policy: policy, task: lab.task.spec, seed: session.seed)
        lab.replace(policy: policy, vocabulary: .standard, origin: "init (seed \(seed))", step: 0,
                    restoreCommand: "model init --seed \(seed)", trainer: trainer)
        context.print("fresh model: \(weights.config.parameterCount) parameters (seed \(seed), std \(BaseModel.initStd))")
    }

    static let modelLoad = Command(
        name: "load", topic: .model,
        summary: "load a checkpoint directory (this lab's, or a Llama, Mistral, Mixtral, Qwen2 or Qwen3 safetensors checkpoint)",
        arguments: [.positional("DIR", .path(.directory), "the checkpoint directory")],
        examples: ["model load checkpoints/base-addition"],
        restoresState: true
    ) { context in
        let path = context.arguments.text("DIR")!
        let directory = try context.existingDirectory(path)
        let session = context.session, lab = session.lab
        // The engines keep their precision when it fits the checkpoint's shapes.
        func engines(for config: LlamaConfig) -> EnginePair {
            if (try? Policy.validate(lab.policy.engines, config: config)) != nil { return lab.policy.engines }
            return (Preset(rawValue: lab.presetName ?? "") ?? .bf16).engines(for: config)
        }
        // From config.json, before any tensor is read.
        let checkpoint = try loadCheckpoint(from: URL(fileURLWithPath: directory)) { config, stateBytes throws(NumericsError) in
            do throws(LabError) {
                try session.checkMemory(.load(config, engines: engines(for: config), backend: session.backend, optimizerStateBytes: stateBytes),
                                        advice: "free memory or load a smaller model")
            } catch { throw .invalidArgument(error.message) }
        }
        let config = checkpoint.weights.config
        let text = try ModelTokenizer(checkpoint: checkpoint)
        let vocabulary = try text.map { $0.vocabulary(size: config.vocabSize, special: checkpoint.specialTokens) } ?? vocabularyOf(checkpoint)
        let engines = engines(for: config)
        let policy = try Policy(master: checkpoint.weights, engines: engines, backend: session.backend)
        let trainer = try Trainer(policy: policy, task: lab.task.spec, seed: session.seed)
        if config == LlamaConfig.labDefault || checkpoint.lab?.extra["rl"] != nil { try trainer.restore(from: checkpoint) }
        lab.replace(policy: policy, vocabulary: vocabulary, origin: "loaded from \(path)", step: checkpoint.lab?.step ?? 0,
                    restoreCommand: "model load \(path)", trainer: trainer, configDefaults: checkpoint.configDefaults, tokenizer: text)
        context.print("loaded \(path): \(config.parameterCount) parameters, \(config.numHiddenLayers) layers, width \(config.hiddenSize), vocabulary \(config.vocabSize)")
        if let text {
            let ends = text.endTokens.isEmpty ? "no end-of-sequence id" : "sequences end at \(text.endTokens.map { "#\($0)" }.joined(separator: ", "))"
            context.print("tokenizer: \(CheckpointFile.tokenizer), \(text.tokenizer.vocabularySize) tokens; text in and out (quote it: score \"…\"); \(ends)")
        }
        if let defaults = ConfigDefault.summary(checkpoint.configDefaults, family: config.checkpointFamily) { context.print(defaults) }
    }

    static let modelSave = Command(
        name: "save", topic: .model,
        summary: "save the model as a checkpoint directory that transformers loads (LlamaForCausalLM, or its family's class)",
        details: "Writes config.json, model.safetensors and lab.json (vocabulary, seed, step) atomically: an existing checkpoint there is replaced whole or not at all. Only a checkpoint (a directory holding config.json and no sub-directories) or an empty directory is replaced; the working directory, its ancestors and / are refused.",
        arguments: [.positional("DIR", .text, "the directory to write (created, or a checkpoint replaced whole)"),
                    .flag("no-optimizer", "leave out the optimizer state (a model to share, 5× smaller)")],
        examples: ["model save /tmp/my-model", "model save /tmp/shared --no-optimizer"]
    ) { context in
        let path = context.arguments.text("DIR")!
        let real = context.session.files.forWriting(path)
        do throws(FileError) { try FileWriting.refuseProtected(real, as: "a checkpoint directory", shownAs: path) } catch {
            throw LabError(error.message)
        }
        let parent = FileWriting.parentDirectory(of: real)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw LabError("model save: '\(FileWriting.parentDirectory(of: path))' is not an existing directory to save into")
        }
        let lab = context.session.lab
        // With the trainer's state (task, sanity set, step, optimizer moments, loss scaler),
        // so that `model load` continues exactly; --no-optimizer leaves the moments out.
        var checkpoint = try lab.trainer.checkpoint(includeOptimizer: !context.arguments.flag("no-optimizer"))
        checkpoint.lab?.vocabulary = lab.vocabulary.tokens
        checkpoint.specialTokens = SpecialTokenIDs(bos: Int(lab.vocabulary.bos), eos: Int(lab.vocabulary.eos), pad: Int(lab.vocabulary.pad))
        if let text = lab.tokenizer {
            checkpoint.tokenizerJSON = text.json
            checkpoint.generationConfigJSON = text.generationJSON
            checkpoint.specialTokens = text.special
        }
        try saveCheckpoint(checkpoint, to: URL(fileURLWithPath: real), shownAs: path)
        context.print("saved \(path)")
    }
}

func configJSON(_ c: LlamaConfig, lab: LabState) -> JSONObject {
    ["hidden_size": .int(c.hiddenSize), "intermediate_size": .int(c.intermediateSize),
     "num_attention_heads": .int(c.numAttentionHeads), "num_key_value_heads": .int(c.numKeyValueHeads),
     "num_hidden_layers": .int(c.numHiddenLayers), "vocab_size": .int(c.vocabSize), "rope_theta": .float(c.ropeTheta),
     "rms_norm_eps": .float(c.rmsNormEps), "max_position_embeddings": .int(c.maxPositionEmbeddings),
     "tie_word_embeddings": .bool(c.tieWordEmbeddings), "parameters": .int(c.parameterCount),
     "num_local_experts": .int(c.numLocalExperts), "lora_rank": .int(c.lora?.rank ?? 0), "num_experts_per_tok": .int(c.isMixtureOfExperts ? c.numExpertsPerTok : 0),
     "model_type": .string(c.checkpointFamily.rawValue), "head_dim": .int(c.headDim),
     "attention_bias": .bool(c.qkvBias), "qk_norm": .bool(c.qkNorm),
     "origin": .string(lab.origin), "step": .int(lab.step),
     "config_defaults": .array(lab.configDefaults.map { .string($0.key) })]
}

/// The vocabulary a checkpoint names (lab.json), with its special tokens; the standard one
/// when it names none and the size matches; else placeholder names t0, t1, …. A lab.json
/// vocabulary must have exactly `vocab_size` tokens: one string per embedding row.
func vocabularyOf(_ checkpoint: Checkpoint) throws(LabError) -> Vocabulary {
    let size = checkpoint.weights.config.vocabSize
    let special = checkpoint.specialTokens
    if let tokens = checkpoint.lab?.vocabulary {
        guard tokens.count == size else {
            throw LabError("\(CheckpointFile.lab): the vocabulary has \(tokens.count) tokens but \(CheckpointFile.config) has vocab_size \(size); a vocabulary names exactly one token per embedding row")
        }
        func id(_ given: Int?, _ name: String, _ fallback: Int32) -> Int32 {
            if let given, given >= 0, given < size { return Int32(given) }
            return tokens.firstIndex(of: name).map { Int32($0) } ?? fallback
        }
        return Vocabulary(tokens: tokens, bos: id(special.bos, "<bos>", 1), eos: id(special.eos, "<eos>", 2),
                          pad: id(special.pad, "<pad>", 0))
    }
    if size == Vocabulary.standard.count { return .standard }
    func clamp(_ v: Int?, _ fallback: Int32) -> Int32 { v.map { Int32(min(max($0, 0), size - 1)) } ?? min(fallback, Int32(size - 1)) }
    return Vocabulary(tokens: (0..<size).map { "t\($0)" }, bos: clamp(special.bos, 1), eos: clamp(special.eos, 2), pad: clamp(special.pad, 0))
}

// LoRA adapters in PEFT's layout: `adapter_config.json` (a `LoraConfig`) and
// `adapter_model.safetensors` (the factors, named `base_model.model.<module>.lora_A.weight`
// and `.lora_B.weight`), which `PeftModel.from_pretrained(base, DIR)` loads. A checkpoint of
// a model with adapters holds both beside the base model's files.

import Foundation
import JSON
import Model
import Numerics

/// The file names of PEFT's adapter layout.
public enum AdapterFile {
    public static let config = "adapter_config.json"
    public static let model = "adapter_model.safetensors"
    /// PEFT's prefix of the wrapped model's tensor names.
    public static let prefix = "base_model.model."
}

extension LoRASpec {
    /// PEFT's `adapter_config.json` for these adapters (keys sorted; no dropout, no bias,
    /// plain α/r scaling).
    public func peftJSON() -> Data {
        let targets = self.targets.map { "\"\(LoRASpec.moduleName($0)!)\"" }.joined(separator: ", ")
        let entries: [(String, String)] = [
            ("alpha_pattern", "{}"), ("base_model_name_or_path", "null"), ("bias", "\"none\""),
            ("fan_in_fan_out", "false"), ("inference_mode", "true"), ("init_lora_weights", "true"),
            ("layers_to_transform", "null"), ("lora_alpha", JSONValue.number(alpha).serialized), ("lora_dropout", "0.0"),
            ("modules_to_save", "null"), ("peft_type", "\"LORA\""), ("r", "\(rank)"), ("rank_pattern", "{}"),
            ("target_modules", "[\(targets)]"), ("task_type", "\"CAUSAL_LM\""), ("use_dora", "false"), ("use_rslora", "false"),
        ]
        return Data(("{\n" + entries.map { "  \"\($0.0)\": \($0.1)" }.joined(separator: ",\n") + "\n}\n").utf8)
    }

    /// Reads PEFT's `adapter_config.json`. Required: `r`, `target_modules` (a list of
    /// module names, or "all-linear"); `lora_alpha` defaults to 8 as in PEFT; `peft_type`,
    /// when given, must be "LORA". Refused, because the lab's layer does not compute them:
    /// rsLoRA, DoRA, a bias, dropout above 0, `fan_in_fan_out`, per-module rank or alpha
    /// patterns, `layers_to_transform`, `modules_to_save`. Other keys are ignored.
    public static func peftConfig(from data: Data) throws(NumericsError) -> LoRASpec {
        func fail(_ message: String) -> NumericsError { .invalidArgument("\(AdapterFile.config): \(message)") }
        let parsed: JSONValue
        do throws(JSONReadError) { parsed = try JSONValue(parsing: data) } catch {
            throw fail("not valid JSON: \(error)")
        }
        guard let json = parsed.objectValue else { throw fail("expected a JSON object (a PEFT LoraConfig)") }
        func present(_ key: String) -> JSONValue? {
            guard let v = json[key], !v.isNull else { return nil }
            return v
        }
        if let type = present("peft_type"), type.stringValue != "LORA" {
            throw fail("peft_type is \(CheckpointIO.describe(type)); only LORA adapters are read")
        }
        guard let r = present("r")?.intValue else {
            throw fail("'r' (the rank, a positive integer) is missing or not an integer; found \(CheckpointIO.describe(present("r")))")
        }
        let alpha: Double
        if let a = present("lora_alpha") {
            guard let d = a.doubleValue, d.isFinite else { throw fail("'lora_alpha' must be a number; found \(CheckpointIO.describe(a))") }
            alpha = d
        } else {
            alpha = 8
        }
        var names: [String] = []
        switch present("target_modules") {
        case .some(.string(let s)) where s == "all-linear": names = ["all-linear"]
        case .some(.array(let list)):
            for item in list {
                guard let s = item.stringValue else { throw fail("target_modules must list module names; found \(CheckpointIO.describe(item))") }
                names.append(s)
            }
        case let other:
            throw fail("target_modules must be a list of module names (q_proj, …) or \"all-linear\"; found \(CheckpointIO.describe(other)) (regular expressions are not read)")
        }
        for (key, accepted) in [("use_rslora", "false"), ("use_dora", "false"), ("fan_in_fan_out", "false")] {
            if let v = present(key), v.boolValue != false { throw fail("\(key) is \(CheckpointIO.describe(v)); the lab's LoRA layer needs \(accepted)") }
        }
        if let bias = present("bias"), bias.stringValue != "none" {
            throw fail("bias is \(CheckpointIO.describe(bias)); only \"none\" is read (the lab's adapters train no biases of their own)")
        }
        // Dropout acts only while PEFT trains; at inference, which is what both engines
        // compute, it does nothing, and the lab's adapters train without it.
        if let dropout = present("lora_dropout"), !dropout.isNull, !((dropout.doubleValue ?? -1) >= 0 && (dropout.doubleValue ?? 1) < 1) {
            throw fail("lora_dropout is \(CheckpointIO.describe(dropout)); a probability in [0, 1) is read (and ignored: dropout acts only in PEFT's training)")
        }
        for key in ["rank_pattern", "alpha_pattern"] {
            if let v = present(key), !(v.objectValue?.members.isEmpty ?? false) { throw fail("\(key) must be empty: one rank and alpha for every module") }
        }
        for key in ["layers_to_transform", "modules_to_save"] {
            if let v = present(key), !(v.arrayValue?.isEmpty ?? false) { throw fail("\(key) must be null: adapters on every layer, nothing else trained") }
        }
        do throws(NumericsError) {
            return LoRASpec(rank: r, alpha: alpha, targets: try LoRASpec.kinds(names))
        } catch {
            throw fail(error.description)
        }
    }
}

extension ModelWeights {
    /// The adapters' factors under PEFT's names (float32).
    public func peftAdapterTensors() throws(NumericsError) -> SafeTensorsFile {
        var file = SafeTensorsFile(metadata: ["format": "pt"])
        guard config.lora != nil else { return file }
        for slot in slots[config.baseTensorCount...] {
            try file.add(AdapterFile.prefix + slot.name, shape: slot.shape, values: Array(data[slot.offset..<(slot.offset + slot.count)]))
        }
        return file
    }

    /// Fills the adapters' factors from PEFT's tensors: every factor the configuration implies
    /// must be there with its shape (an adapter made for another base model does not fit),
    /// and nothing else. `label` names the file in errors.
    public mutating func fillAdapters(from file: SafeTensorsFile, label: String) throws(NumericsError) {
        guard config.lora != nil else { return }
        try ModelWeights.checkAdapters(file, for: config, label: label)
        for slot in slots[config.baseTensorCount...] {
            let t = file[AdapterFile.prefix + slot.name]!
            data.replaceSubrange(slot.offset..<(slot.offset + slot.count), with: t.values)
        }
    }

    /// Checks PEFT's tensors against the adapters `config` describes, before any weights of
    /// that shape are allocated: every factor there with its shape, and nothing else.
    public static func checkAdapters(_ file: SafeTensorsFile, for config: LlamaConfig, label: String) throws(NumericsError) {
        guard config.lora != nil else { return }
        let adapterSlots = ModelWeights.layout(of: config)[config.baseTensorCount...]
        let expected = Set(adapterSlots.map { AdapterFile.prefix + $0.name })
        let unexpected = file.names.filter { !expected.contains($0) }
        if !unexpected.isEmpty {
            throw .invalidArgument("\(label) holds tensors its \(AdapterFile.config) does not describe on this model: \(CheckpointIO.listed(unexpected))")
        }
        for slot in adapterSlots {
            let name = AdapterFile.prefix + slot.name
            guard let t = file[name] else {
                throw .invalidArgument("\(label) has no tensor '\(name)' (shape \(slot.shape) expected)")
            }
            guard t.shape == slot.shape else {
                throw .invalidArgument("tensor '\(name)' has shape \(t.shape) in \(label) but this model needs \(slot.shape): the adapter was made for another base model")
            }
        }
    }
}

// Checkpoints: a directory that Hugging Face `LlamaForCausalLM.from_pretrained` (or the
// family's class: Mistral, Mixtral, Qwen2, Qwen3) loads, plus what the lab adds.
//
//     config.json              Hugging Face configuration keys of the model's family
//     model.safetensors        the parameters, Hugging Face names, F32 ("format": "pt")
//     lab.json                 optional: vocabulary, task, seed, step, free-form extra state
//     lab_state.safetensors    optional: named float arrays (optimizer moments, …)
//     adapter_config.json      with LoRA adapters: PEFT's LoraConfig (PEFTAdapter.swift)
//     adapter_model.safetensors  the adapters' factors, PEFT's names
//     tokenizer.json           optional: a Hugging Face tokenizer, kept as its bytes
//     generation_config.json   optional: the end-of-sequence ids; kept as its bytes
//
// Atomicity. A save builds the complete new directory beside the destination (a hidden
// sibling `.NAME.plab-save-…`), flushes every file to disk, then swaps it into place with
// one atomic rename (over a missing destination) or an atomic exchange (over an existing
// one: `renameat2(RENAME_EXCHANGE)` on Linux, `renamex_np(RENAME_SWAP)` on macOS), and
// finally deletes the old directory. Guarantees:
// - a crash at any point leaves under the destination name either the complete old
//   checkpoint or the complete new one, never a partial file or a mix of the two (at worst
//   a hidden `.NAME.plab-save-PID-…` sibling is left behind, which nothing reads and the
//   next save into the same directory removes once process PID is gone);
// - a save that fails (bad input, disk full, no permission) leaves the old checkpoint as
//   it was and removes what it had written;
// - a concurrent `loadCheckpoint` opens the directory once, opens every file through that
//   handle, and then checks that the path still names the same directory: so it reads
//   all old files or all new ones (open files stay readable after the swap deletes them);
//   if the directory was replaced while it opened them, it starts again;
// - files in the destination that are not the checkpoint's own (a README, tokenizer files)
//   are carried over into the new directory (hard links, or copies).
// Where the file system cannot exchange two directories, the save falls back to two
// renames; between them the destination is briefly absent (a reader then gets a "no
// checkpoint" error, never a mix), and a crash there leaves the old checkpoint under the
// hidden name `.NAME.plab-old-…` beside it.

import Files
import Foundation
import Model
import Numerics
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: Checkpoint

/// The file names of a checkpoint directory.
public enum CheckpointFile {
    public static let config = "config.json"
    public static let model = "model.safetensors"
    public static let lab = "lab.json"
    public static let labState = "lab_state.safetensors"
    public static let tokenizer = "tokenizer.json"
    public static let generationConfig = "generation_config.json"
}

/// A model with what the lab keeps beside it: the contents of a checkpoint directory.
public struct Checkpoint: Sendable {
    /// The parameters (and through them the configuration).
    public var weights: ModelWeights
    /// lab.json; nil for a plain Hugging Face model.
    public var lab: LabMetadata?
    /// lab_state.safetensors: named float arrays (optimizer state, …); nil when absent.
    public var labState: SafeTensorsFile?
    /// Token ids from config.json.
    public var specialTokens: SpecialTokenIDs
    /// The optional config.json keys a loaded checkpoint lacked, with the defaults taken
    /// (empty for a checkpoint built in memory).
    public var configDefaults: [ConfigDefault] = []
    /// tokenizer.json's bytes, as read (the Tokenizer module parses them); a save writes
    /// them back unchanged.
    public var tokenizerJSON: [UInt8]?
    /// generation_config.json's `eos_token_id` (a number or a list), when the file has one:
    /// the ids that end a generated sequence.
    public var generationEndTokens: [Int]?
    /// generation_config.json's bytes, as read; a save writes them back unchanged.
    public var generationConfigJSON: [UInt8]?

    /// A checkpoint value.
    public init(weights: ModelWeights, lab: LabMetadata? = nil, labState: SafeTensorsFile? = nil,
                specialTokens: SpecialTokenIDs = SpecialTokenIDs()) {
        self.weights = weights
        self.lab = lab
        self.labState = labState
        self.specialTokens = specialTokens
    }

    /// Tensor names of rotary-embedding buffers that some exporters save; they are
    /// recomputed from the configuration, so loading skips them.
    public static func isIgnoredTensor(_ name: String) -> Bool {
        name.hasSuffix("rotary_emb.inv_freq") || name.hasSuffix("rotary_emb.original_inv_freq")
    }
}

/// Saves a checkpoint directory atomically (see the guarantees at the top of this file).
///
/// Writes config.json (with the special token ids), model.safetensors (F32, Hugging Face
/// names, without `lm_head.weight` when the embeddings are tied), lab.json when `lab` is
/// given, lab_state.safetensors when `labState` is given, tokenizer.json and
/// generation_config.json when their bytes are; a model with LoRA adapters also gets PEFT's adapter_config.json and
/// adapter_model.safetensors. Creates missing parent
/// directories. Fails without touching the destination if the weights do not fit their
/// configuration or a token id is outside the vocabulary. Refuses an empty path, `/`, the
/// working directory and its ancestors, and an existing directory that is neither empty
/// nor a checkpoint (it holds config.json) or that holds sub-directories: a save replaces
/// a checkpoint, never another tree. Removes the temporary directories that interrupted
/// saves into the same parent directory left behind (those whose process is gone). `label`
/// is the path as the user gave it, for messages.
public func saveCheckpoint(weights: ModelWeights, lab: LabMetadata?, labState: SafeTensorsFile? = nil,
                           specialTokens: SpecialTokenIDs = SpecialTokenIDs(), tokenizerJSON: [UInt8]? = nil,
                           generationConfigJSON: [UInt8]? = nil, to directory: URL, shownAs label: String? = nil) throws(NumericsError) {
    let config = weights.config
    do throws(NumericsError) {
        try config.validate()
    } catch {
        throw .invalidArgument("cannot save: the configuration is invalid: \(error.description)")
    }
    let expected = weights.slots.reduce(0) { $0 + $1.count }
    guard weights.data.count == expected, weights.slots.map(\.name) == config.parameterShapes.map(\.name) else {
        throw .invalidArgument("cannot save: the weights hold \(weights.data.count) values but their configuration needs \(expected)")
    }
    for (key, id) in [("bos", specialTokens.bos), ("eos", specialTokens.eos), ("pad", specialTokens.pad)] {
        if let id, !(0..<config.vocabSize).contains(id) {
            throw .invalidArgument("cannot save: \(key)_token_id \(id) is outside the vocabulary 0..<\(config.vocabSize)")
        }
    }

    do throws(FileError) {
        try FileWriting.refuseProtected(directory.path, as: "a checkpoint directory", shownAs: label ?? directory.path)
    } catch {
        throw .invalidArgument(error.message)
    }
    let destination = directory.standardizedFileURL.resolvingSymlinksInPath()
    let parent = destination.deletingLastPathComponent()
    let name = destination.lastPathComponent
    let shown = label ?? destination.path
    let fm = FileManager.default
    do {
        try fm.createDirectory(at: parent, withIntermediateDirectories: true)
    } catch {
        throw .invalidArgument("cannot create the directory \(parent.path) to hold the checkpoint: \(error.localizedDescription)")
    }
    var isDirectory: ObjCBool = false
    let exists = fm.fileExists(atPath: destination.path, isDirectory: &isDirectory)
    if exists && !isDirectory.boolValue {
        throw .invalidArgument("\(shown) exists and is not a directory; a checkpoint is a directory")
    }
    if exists { try CheckpointIO.checkReplaceable(destination.path, shownAs: shown) }
    CheckpointIO.removeLeftovers(in: parent.path)

    let staging = parent.appendingPathComponent(".\(name)\(CheckpointIO.stagingMarker)\(getpid())-\(UUID().uuidString)")
    guard mkdir(staging.path, 0o755) == 0 else {
        throw .invalidArgument("cannot create a temporary directory beside \(destination.path) (the parent directory must be writable): \(String(cString: strerror(errno)))")
    }
    do throws(NumericsError) {
        func file(_ fileName: String) -> String { staging.appendingPathComponent(fileName).path }
        try CheckpointIO.writeNewFile(config.huggingFaceJSON(specialTokens: specialTokens), to: file(CheckpointFile.config))

        // The model itself; with adapters, they go to PEFT's files beside it.
        var model = SafeTensorsFile(metadata: ["format": "pt"])
        for slot in weights.slots.prefix(config.baseTensorCount) {
            let values = Array(weights.data[slot.offset..<(slot.offset + slot.count)])
            try model.add(slot.name, shape: slot.shape, values: values)
        }
        try CheckpointIO.writeNewFile(model.encoded(), to: file(CheckpointFile.model))
        if let lora = config.lora {
            try CheckpointIO.writeNewFile(lora.peftJSON(), to: file(AdapterFile.config))
            try CheckpointIO.writeNewFile(weights.peftAdapterTensors().encoded(), to: file(AdapterFile.model))
        }

        if let lab {
            let data: Data
            do throws(NumericsError) {
                data = try lab.encoded()
            } catch {
                throw NumericsError.invalidArgument("cannot save lab.json: \(error.description)")
            }
            try CheckpointIO.writeNewFile(data, to: file(CheckpointFile.lab))
        }
        if let labState {
            try CheckpointIO.writeNewFile(labState.encoded(), to: file(CheckpointFile.labState))
        }
        if let tokenizerJSON {
            try CheckpointIO.writeNewFile(Data(tokenizerJSON), to: file(CheckpointFile.tokenizer))
        }
        if let generationConfigJSON {
            try CheckpointIO.writeNewFile(Data(generationConfigJSON), to: file(CheckpointFile.generationConfig))
        }
        if exists { try CheckpointIO.carryOver(from: destination.path, to: staging.path) }
        CheckpointIO.syncDirectory(staging.path)
        try CheckpointIO.install(staging.path, at: destination.path)
    } catch {
        try? fm.removeItem(at: staging)
        throw error
    }
    CheckpointIO.syncDirectory(parent.path)
}

/// Saves a checkpoint value (see `saveCheckpoint(weights:lab:labState:specialTokens:to:)`).
public func saveCheckpoint(_ checkpoint: Checkpoint, to directory: URL, shownAs label: String? = nil) throws(NumericsError) {
    try saveCheckpoint(weights: checkpoint.weights, lab: checkpoint.lab, labState: checkpoint.labState,
                       specialTokens: checkpoint.specialTokens, tokenizerJSON: checkpoint.tokenizerJSON,
                       generationConfigJSON: checkpoint.generationConfigJSON, to: directory, shownAs: label)
}

/// Loads a checkpoint directory: any Hugging Face Llama checkpoint with F32, BF16 or F16
/// tensors in model.safetensors, plus lab.json and lab_state.safetensors when present, and
/// LoRA adapters in PEFT's layout (adapter_config.json, adapter_model.safetensors) when the
/// directory holds them.
///
/// Every tensor the configuration implies must be present with its shape; rotary
/// `inv_freq` buffers are skipped; any other tensor is an error naming it. With tied
/// embeddings `lm_head.weight` may be absent, or must equal the embedding exactly.
/// Weights and lab_state arrays must be finite: a NaN or an infinity (in F32, BF16 or F16)
/// is refused with the tensors named and their NaN, +inf and −inf counted, unless
/// `acceptNonFinite` (to inspect a damaged checkpoint as it is). Absent optional
/// config.json keys take transformers' defaults and are listed in `configDefaults`.
/// Returns a complete new value or throws: nothing the caller holds is changed.
///
/// `admit`, if given, sees the configuration from config.json and the size in bytes of
/// lab_state.safetensors (0 when there is none) before any tensor is read; it throws to
/// refuse the checkpoint (the lab checks that the model fits in memory).
public func loadCheckpoint(from directory: URL, limits: SafeTensorsLimits = .default,
                           acceptNonFinite: Bool = false,
                           admit: ((LlamaConfig, _ optimizerStateBytes: Int) throws(NumericsError) -> Void)? = nil)
    throws(NumericsError) -> Checkpoint {
    // Open every file through one directory handle, then check that the path still names
    // that directory: if so, the files opened (and those found absent) are one save's,
    // and stay readable whatever happens to the path afterwards. If a save replaced the
    // directory meanwhile, open the new one.
    for _ in 0..<5 {
        let handle = try CheckpointIO.OpenDirectory(path: directory.path)
        let files: CheckpointIO.CheckpointFiles
        do throws(NumericsError) {
            files = try CheckpointIO.CheckpointFiles(handle)
        } catch {
            if handle.wasReplaced() { continue }
            throw error
        }
        if handle.wasReplaced() { continue }
        return try CheckpointIO.load(files, limits: limits, acceptNonFinite: acceptNonFinite, admit: admit)
    }
    throw .invalidArgument("\(directory.path) was replaced five times while being opened; is something saving to it in a loop?")
}

// MARK: Health

/// The NaNs and infinities of one tensor.
public struct NonFiniteCount: Sendable, Hashable {
    public var tensor: String
    public var nan = 0
    public var positiveInfinity = 0
    public var negativeInfinity = 0

    /// The counts of `values`; nil when every value is finite.
    public init?(tensor: String, _ values: UnsafeBufferPointer<Float>) {
        self.tensor = tensor
        for v in values where !v.isFinite {
            if v.isNaN { nan += 1 } else if v > 0 { positiveInfinity += 1 } else { negativeInfinity += 1 }
        }
        if nan + positiveInfinity + negativeInfinity == 0 { return nil }
    }

    /// "model.norm.weight (3 NaN, 1 +inf)".
    public var description: String {
        let parts = [(nan, "NaN"), (positiveInfinity, "+inf"), (negativeInfinity, "-inf")].filter { $0.0 > 0 }
        return "\(tensor) (\(parts.map { "\($0.0) \($0.1)" }.joined(separator: ", ")))"
    }
}


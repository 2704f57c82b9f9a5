// The file-system side of checkpoints: the atomic directory swap, carrying files over,
// leftovers of interrupted saves, and reading a directory that may be replaced while it is
// read (the guarantees are at the top of Checkpoint.swift).

import Files
import JSON
import Foundation
import Model
import Numerics
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: Plumbing

extension CheckpointIO {
    /// Names a save does not carry over from the directory it replaces: the checkpoint's
    /// own files (the tokenizer and generation config included: they belong to the model
    /// saved, which writes its own when it has them) and any other copy of the weights
    /// (sharded safetensors, PyTorch pickles).
    static func isCheckpointOwned(_ name: String) -> Bool {
        if [CheckpointFile.config, CheckpointFile.model, CheckpointFile.lab, CheckpointFile.labState,
            AdapterFile.config, AdapterFile.model, CheckpointFile.tokenizer, CheckpointFile.generationConfig,
            "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"].contains(name) {
            return true
        }
        return (name.hasPrefix("model-") && name.hasSuffix(".safetensors"))
            || (name.hasPrefix("pytorch_model-") && name.hasSuffix(".bin"))
    }

    /// The part of a staging directory's name after `.NAME`; then the saving process's id.
    static let stagingMarker = ".plab-save-"
    static let asideMarker = ".plab-old-"

    /// Refuses to replace a directory that is not a checkpoint: one that is neither empty
    /// nor holds config.json, or that holds a sub-directory (a save never copies a tree).
    static func checkReplaceable(_ path: String, shownAs label: String) throws(NumericsError) {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: path) } catch {
            throw .invalidArgument("cannot list \(label) to replace it: \(error.localizedDescription)")
        }
        guard !names.isEmpty else { return }
        guard names.contains(CheckpointFile.config) else {
            throw .invalidArgument("\(label) is a directory that is not a checkpoint (it has no \(CheckpointFile.config)); a save replaces only a checkpoint or an empty directory: give a new name")
        }
        for entry in names.sorted() {
            var st = stat()
            if lstat(path + "/" + entry, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
                throw .invalidArgument("\(label) holds the directory '\(entry)'; a save replaces a checkpoint's files and never copies a tree: move it out or give a new name")
            }
        }
    }

    /// Removes the `.NAME.plab-save-PID-…` directories in `parent` left by saves whose
    /// process no longer runs (a crash, a kill, a double Ctrl-C), whatever NAME they were
    /// saving, and the `.NAME.plab-old-PID-…` ones whose NAME is back in place (while NAME
    /// is missing, the old copy is the only checkpoint left, and stays).
    static func removeLeftovers(in parent: String) {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: parent) else { return }
        for entry in entries where entry.hasPrefix(".") {
            for marker in [stagingMarker, asideMarker] {
                guard let range = entry.range(of: marker) else { continue }
                let name = String(entry[entry.index(after: entry.startIndex)..<range.lowerBound])
                let rest = entry[range.upperBound...]
                guard !name.isEmpty, let dash = rest.firstIndex(of: "-"), let pid = pid_t(rest[..<dash]), pid > 0 else { continue }
                if marker == asideMarker && !FileManager.default.fileExists(atPath: parent + "/" + name) { continue }
                if kill(pid, 0) != 0 && errno == ESRCH { removeQuietly(parent + "/" + entry) }
            }
        }
    }

    /// Links (or copies) the files of `old` that are not the checkpoint's own into `new`
    /// (a README, tokenizer files); `checkReplaceable` has made sure there is no directory.
    static func carryOver(from old: String, to new: String) throws(NumericsError) {
        let fm = FileManager.default
        let names: [String]
        do {
            names = try fm.contentsOfDirectory(atPath: old)
        } catch {
            throw .invalidArgument("cannot list \(old) to keep its other files: \(error.localizedDescription)")
        }
        for entry in names where !isCheckpointOwned(entry) {
            let source = old + "/" + entry, target = new + "/" + entry
            var st = stat()
            guard lstat(source, &st) == 0, (st.st_mode & S_IFMT) != S_IFDIR else {
                throw .invalidArgument("cannot keep \(source) in the new checkpoint: it is a directory")
            }
            if link(source, target) == 0 { continue }
            do {
                try fm.copyItem(atPath: source, toPath: target)
            } catch {
                throw .invalidArgument("cannot keep \(source) in the new checkpoint: \(error.localizedDescription)")
            }
        }
    }

    /// Moves the finished staging directory to `destination`, atomically replacing what is
    /// there, and deletes the replaced directory.
    static func install(_ staging: String, at destination: String) throws(NumericsError) {
        if rename(staging, destination) == 0 { return }
        let renameError = errno
        // rename(2) replaces only an empty directory; otherwise exchange the two.
        guard renameError == ENOTEMPTY || renameError == EEXIST else {
            throw .invalidArgument("cannot move the new checkpoint into place at \(destination): \(String(cString: strerror(renameError)))")
        }
        if exchange(staging, destination) {
            removeQuietly(staging)   // now the old checkpoint
            return
        }
        // No atomic exchange on this file system: two renames, with the destination absent
        // for a moment in between.
        let aside = FileWriting.parentDirectory(of: destination) + "/."
            + FileWriting.lastComponent(of: destination) + asideMarker + "\(getpid())-" + UUID().uuidString
        guard rename(destination, aside) == 0 else {
            throw .invalidArgument("cannot move the old checkpoint at \(destination) aside: \(String(cString: strerror(errno)))")
        }
        guard rename(staging, destination) == 0 else {
            let message = String(cString: strerror(errno))
            _ = rename(aside, destination)
            throw .invalidArgument("cannot move the new checkpoint into place at \(destination): \(message)")
        }
        removeQuietly(aside)
    }

    /// Exchanges two paths atomically; false if the system or file system cannot.
    static func exchange(_ a: String, _ b: String) -> Bool {
        #if os(Linux)
        typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
        guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "renameat2") else { return false }
        let renameat2 = unsafeBitCast(symbol, to: RenameAt2.self)
        let renameExchange: UInt32 = 1 << 1   // RENAME_EXCHANGE in <linux/fs.h>
        return renameat2(AT_FDCWD, a, AT_FDCWD, b, renameExchange) == 0
        #elseif canImport(Darwin)
        return renamex_np(a, b, UInt32(RENAME_SWAP)) == 0
        #else
        return false
        #endif
    }

    static func removeQuietly(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// A directory opened once, so that every file of a checkpoint is read from it even if
    /// the path is given to another directory meanwhile.
    final class OpenDirectory {
        let fd: Int32
        let path: String
        let device: UInt64, inode: UInt64

        init(path: String) throws(NumericsError) {
            let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else {
                let e = errno
                if e == ENOENT { throw .invalidArgument("no checkpoint at \(path): the directory does not exist") }
                if e == ENOTDIR { throw .invalidArgument("\(path) is not a directory; a checkpoint is a directory holding \(CheckpointFile.config) and \(CheckpointFile.model)") }
                throw .invalidArgument("cannot open the checkpoint directory \(path): \(String(cString: strerror(e)))")
            }
            var st = stat()
            _ = fstat(fd, &st)
            self.fd = fd
            self.path = path
            self.device = UInt64(st.st_dev)
            self.inode = UInt64(st.st_ino)
        }

        deinit { close(fd) }

        /// Whether the path now names another directory (or nothing).
        func wasReplaced() -> Bool {
            var st = stat()
            guard stat(path, &st) == 0 else { return true }
            return UInt64(st.st_dev) != device || UInt64(st.st_ino) != inode
        }

        /// Whether the directory holds an entry of that name.
        func has(_ name: String) -> Bool {
            var st = stat()
            return fstatat(fd, name, &st, 0) == 0
        }

        /// Opens a file of the directory; nil if there is none of that name.
        func openFile(_ name: String) throws(NumericsError) -> OpenFile? {
            try OpenFile(path: name, relativeTo: fd, label: name, missingOK: true)
        }

        /// The entries, for messages.
        func listing() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
        }
    }

    /// Reads a whole small file (JSON), refusing one larger than `limit` bytes.
    static func readSmall(_ file: OpenFile, limit: Int) throws(NumericsError) -> Data {
        guard file.size <= limit else {
            throw .invalidArgument("\(file.label) is \(file.size) bytes, more than the \(limit) accepted for it")
        }
        return try file.readAll()
    }

    /// The files of one checkpoint, opened (or found absent) through one directory handle.
    struct CheckpointFiles {
        let directory: OpenDirectory
        let config, model, modelIndex, lab, labState, adapterConfig, adapterModel, tokenizer, generationConfig: OpenFile?

        init(_ directory: OpenDirectory) throws(NumericsError) {
            self.directory = directory
            adapterConfig = try directory.openFile(AdapterFile.config)
            adapterModel = try directory.openFile(AdapterFile.model)
            config = try directory.openFile(CheckpointFile.config)
            model = try directory.openFile(CheckpointFile.model)
            modelIndex = try directory.openFile(TensorIndex.indexFile)
            lab = try directory.openFile(CheckpointFile.lab)
            labState = try directory.openFile(CheckpointFile.labState)
            tokenizer = try directory.openFile(CheckpointFile.tokenizer)
            generationConfig = try directory.openFile(CheckpointFile.generationConfig)
        }
    }

    static func load(_ files: CheckpointFiles, limits: SafeTensorsLimits,
                     acceptNonFinite: Bool = false,
                     admit: ((LlamaConfig, Int) throws(NumericsError) -> Void)? = nil) throws(NumericsError) -> Checkpoint {
        let dir = files.directory
        guard let configFile = files.config else {
            throw .invalidArgument("\(dir.path) has no \(CheckpointFile.config); a checkpoint directory holds \(CheckpointFile.config) and \(CheckpointFile.model) (found: \(listed(dir.listing())))")
        }
        var (config, tokens, defaults) = try LlamaConfig.huggingFaceConfig(from: try readSmall(configFile, limit: 16 << 20))
        guard let count = config.checkedParameterCount, count <= limits.maxTotalElements else {
            throw .invalidArgument("config.json describes a model of more than \(limits.maxTotalElements) parameters, the limit for loading")
        }
        // LoRA adapters beside the model: PEFT's two files, both or neither.
        var adapterTensors: SafeTensorsFile?
        switch (files.adapterConfig, files.adapterModel) {
        case (nil, nil): break
        case (let configFile?, let modelFile?):
            let spec = try LoRASpec.peftConfig(from: try readSmall(configFile, limit: 1 << 20))
            config.lora = spec
            do throws(NumericsError) { try spec.validate(for: config) } catch {
                throw .invalidArgument("\(AdapterFile.config): \(error.description)")
            }
            adapterTensors = try SafeTensorsFile.parse(modelFile.source(), limits: limits, include: nil)
        case (nil, _?):
            throw .invalidArgument("\(dir.path) has \(AdapterFile.model) but no \(AdapterFile.config) to say what its adapters are")
        case (_?, nil):
            throw .invalidArgument("\(dir.path) has \(AdapterFile.config) but no \(AdapterFile.model) with the adapters' weights")
        }
        try admit?(config, files.labState?.size ?? 0)

        // The weights: model.safetensors, or the shards model.safetensors.index.json names.
        // Only headers are read here; each tensor goes straight into its place below.
        let keep = { (name: String) in !Checkpoint.isIgnoredTensor(name) }
        var tensors = TensorIndex()
        if let modelFile = files.model {
            try tensors.add(modelFile, limits: limits, include: keep)
        } else if let indexFile = files.modelIndex {
            tensors = try TensorIndex.sharded(index: [UInt8](try readSmall(indexFile, limit: 64 << 20)),
                                              open: { name throws(NumericsError) in try dir.openFile(name) },
                                              limits: limits, include: keep)
        } else {
            let hint = dir.has("pytorch_model.bin") ? " (found pytorch_model.bin: only safetensors weights are read)" : ""
            throw .invalidArgument("\(dir.path) has no \(CheckpointFile.model) and no \(TensorIndex.indexFile)\(hint)")
        }
        // Every tensor is checked before the weights are allocated (the files hold them then),
        // and the layout's names only once the files can hold that many: a few bytes of
        // config.json must not make the loader fill gigabytes with zeros, or name millions
        // of layers.
        let weightsFile = tensors.files.count == 1 ? tensors.files[0] : "the \(tensors.files.count) shards"
        guard config.numHiddenLayers <= tensors.count else {
            throw .invalidArgument("config.json has num_hidden_layers \(config.numHiddenLayers) but \(weightsFile) \(tensors.files.count == 1 ? "holds" : "hold") only \(tensors.count) tensors (\(config.tensorsPerLayer) a layer)")
        }
        let slots = Array(ModelWeights.layout(of: config).prefix(config.baseTensorCount))
        let expected = Set(slots.map(\.name))
        let tiedHead = config.tieWordEmbeddings ? "lm_head.weight" : nil
        let unexpected = tensors.names.filter { !expected.contains($0) && $0 != tiedHead }
        if !unexpected.isEmpty {
            throw .invalidArgument("\(weightsFile) holds tensors a model with this config.json has not: \(listed(unexpected))")
        }
        var total = 0
        for slot in slots {
            guard let shape = tensors.shape(slot.name) else {
                throw .invalidArgument("\(weightsFile) has no tensor '\(slot.name)' (shape \(slot.shape) expected from config.json)")
            }
            guard shape == slot.shape else {
                let defaults = ConfigDefault.summary(defaults, family: config.checkpointFamily).map { " (\($0))" } ?? ""
                throw .invalidArgument("tensor '\(slot.name)' has shape \(shape) in \(weightsFile) but config.json implies \(slot.shape)\(defaults)")
            }
            total += slot.count
            guard total <= limits.maxTotalElements else {
                throw .invalidArgument("the tensors read add up to more than \(limits.maxTotalElements) elements (the limit) at '\(slot.name)'")
            }
        }
        if let adapterTensors { try ModelWeights.checkAdapters(adapterTensors, for: config, label: AdapterFile.model) }
        var weights = ModelWeights(config: config)
        var failure: NumericsError?
        weights.data.withUnsafeMutableBufferPointer { dst in
            do throws(NumericsError) {
                for slot in slots where slot.count > 0 {
                    try tensors.read(slot.name, into: dst.baseAddress! + slot.offset, count: slot.count)
                }
            } catch { failure = error }
        }
        if let failure { throw failure }
        if let tiedHead, tensors.contains(tiedHead) {
            let embedding = weights.embedding
            let headShape = tensors.shape(tiedHead)!
            guard headShape == embedding.shape else {
                throw .invalidArgument("tie_word_embeddings is true but lm_head.weight has shape \(headShape), not the embedding's \(embedding.shape)")
            }
            let head = (shape: headShape, values: try tensors.values(tiedHead))
            if let i = head.values.indices.first(where: { head.values[$0].bitPattern != weights.data[embedding.offset + $0].bitPattern }) {
                throw .invalidArgument("tie_word_embeddings is true but lm_head.weight differs from model.embed_tokens.weight (first at element \(i): \(head.values[i]) vs \(weights.data[embedding.offset + i])); drop lm_head.weight or set tie_word_embeddings to false")
            }
        }

        if let adapterTensors { try weights.fillAdapters(from: adapterTensors, label: AdapterFile.model) }

        var lab: LabMetadata?
        if let labFile = files.lab {
            let data = try readSmall(labFile, limit: limits.maxHeaderBytes)
            do throws(NumericsError) {
                lab = try LabMetadata(decoding: data)
            } catch {
                throw .invalidArgument("\(CheckpointFile.lab) is not valid lab metadata: \(error.description)")
            }
            if let version = lab?.formatVersion, version > LabMetadata.currentFormatVersion || version < 1 {
                throw .invalidArgument("\(CheckpointFile.lab) has format_version \(version); this lab reads 1…\(LabMetadata.currentFormatVersion)")
            }
        }
        var labState: SafeTensorsFile?
        if let stateFile = files.labState {
            labState = try SafeTensorsFile.parse(stateFile.source(), limits: limits, include: nil)
        }

        // Health, once every file is known to be well formed: no NaN or infinity.
        if !acceptNonFinite {
            // (A tied lm_head.weight equals the embedding bit for bit: counted there.)
            let counts = weights.data.withUnsafeBufferPointer { data in
                weights.slots.compactMap { slot in
                    NonFiniteCount(tensor: slot.name, UnsafeBufferPointer(rebasing: data[slot.offset..<(slot.offset + slot.count)]))
                }
            }
            try refuseNonFinite(counts, in: weightsFile, what: "weights")
            if let state = labState {
                let counts = state.names.compactMap { name in
                    state[name]!.values.withUnsafeBufferPointer { NonFiniteCount(tensor: name, $0) }
                }
                try refuseNonFinite(counts, in: CheckpointFile.labState, what: "values")
            }
        }
        var checkpoint = Checkpoint(weights: weights, lab: lab, labState: labState, specialTokens: tokens)
        checkpoint.configDefaults = defaults
        if let tokenizerFile = files.tokenizer { checkpoint.tokenizerJSON = [UInt8](try readSmall(tokenizerFile, limit: 256 << 20)) }
        if let generationFile = files.generationConfig {
            let bytes = [UInt8](try readSmall(generationFile, limit: 1 << 20))
            checkpoint.generationEndTokens = try generationEndTokens(bytes, vocabSize: config.vocabSize)
            checkpoint.generationConfigJSON = bytes
        }
        return checkpoint
    }

    /// generation_config.json's `eos_token_id`: a number, a list of numbers, or absent/null
    /// (nil); each inside the vocabulary.
    static func generationEndTokens(_ bytes: [UInt8], vocabSize: Int) throws(NumericsError) -> [Int]? {
        let name = CheckpointFile.generationConfig
        let json: JSONValue
        do throws(JSONReadError) { json = try JSONReader.read(bytes) } catch {
            throw .invalidArgument("\(name) is not JSON: \(error.description)")
        }
        guard let object = json.objectValue else { throw .invalidArgument("\(name) is not a JSON object") }
        guard let raw = object["eos_token_id"], !raw.isNull else { return nil }
        let ids = raw.arrayValue.map { $0.map(\.intValue) } ?? [raw.intValue]
        guard !ids.isEmpty, ids.allSatisfy({ $0 != nil }) else {
            throw .invalidArgument("\(name): eos_token_id \(describe(raw)) is not a token id or a list of token ids")
        }
        let values = ids.map { $0! }
        if let bad = values.first(where: { !(0..<vocabSize).contains($0) }) {
            throw .invalidArgument("\(name): eos_token_id \(bad) is outside the vocabulary 0..<\(vocabSize)")
        }
        return values
    }

    /// Refuses a file whose tensors hold non-finite values: one line naming the file, the
    /// tensors (the first four) and what each holds.
    static func refuseNonFinite(_ counts: [NonFiniteCount], in file: String, what: String) throws(NumericsError) {
        guard !counts.isEmpty else { return }
        let tensors = listed(counts.map(\.description), limit: 4)
        throw .invalidArgument("\(file): non-finite \(what) in \(counts.count) tensor\(counts.count == 1 ? "" : "s"): \(tensors); the checkpoint is damaged or diverged (only finite \(what) are loaded)")
    }
}

// Fuzz target: checkpoint directories — config.json, lab.json, model.safetensors,
// lab_state.safetensors, a shard index, tokenizer.json and generation_config.json.
//
// The input is config.json, optionally followed by the other files, each after a marker
// line: `\n@@lab.json\n`, `\n@@model.safetensors\n`, `\n@@lab_state.safetensors\n` (a file
// whose marker is absent is absent). Each file goes through its own parser, and what a
// parser accepts must survive being written and read again unchanged; then the files are
// written to a directory of the sandbox, loaded with `loadCheckpoint`, and loaded into a
// session with `model load` (vocabulary, engines, trainer state).

import Foundation
import FuzzSupport
import Lab
import Model
import Storage

let markers = ["lab.json", "model.safetensors", "lab_state.safetensors", "model.safetensors.index.json", "tokenizer.json",
               "generation_config.json"]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpoint(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    Sandbox.run {
        let files = split(bytes(data, size))

        if let config = files["config.json"] { checkConfig(Data(config)) }
        if let lab = files["lab.json"] { checkLabMetadata(Data(lab)) }
        for name in ["model.safetensors", "lab_state.safetensors"] {
            if let tensors = files[name] { checkSafeTensors(Data(tensors)) }
        }

        let directory = Sandbox.scratch("ckpt")
        for (name, contents) in files { write(contents, to: directory + "/" + name) }
        _ = try? loadCheckpoint(from: URL(fileURLWithPath: directory))
        _ = Session(registry: .fuzzing).execute("model load ckpt", to: CollectedOutput())
    }
    return 0
}

/// The files of an input: config.json before the first marker, each other file after its own.
func split(_ input: [UInt8]) -> [String: [UInt8]] {
    var found: [(name: String, start: Int, end: Int)] = []
    for name in markers {
        let marker = Array("\n@@\(name)\n".utf8)
        if let range = firstRange(of: marker, in: input) { found.append((name, range.lowerBound, range.upperBound)) }
    }
    found.sort { $0.start < $1.start }
    var files: [String: [UInt8]] = [:]
    files["config.json"] = Array(input[..<(found.first?.start ?? input.count)])
    for (i, part) in found.enumerated() {
        let end = i + 1 < found.count ? found[i + 1].start : input.count
        files[part.name] = part.end <= end ? Array(input[part.end..<end]) : []
    }
    return files
}

func firstRange(of needle: [UInt8], in haystack: [UInt8]) -> Range<Int>? {
    guard needle.count <= haystack.count else { return nil }
    for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] {
        if Array(haystack[start..<(start + needle.count)]) == needle { return start..<(start + needle.count) }
    }
    return nil
}

/// A config.json that reads must read back the same from the JSON the lab writes for it.
func checkConfig(_ data: Data) {
    guard let read = try? LlamaConfig.huggingFaceConfig(from: data) else { return }
    let (config, tokens) = (read.config, read.specialTokens)
    do {
        let back = try LlamaConfig.huggingFaceConfig(from: config.huggingFaceJSON(specialTokens: tokens))
        let (again, againTokens) = (back.config, back.specialTokens)
        require(again == config && againTokens == tokens, "config.json does not survive a round trip: \(config) became \(again)")
        require(back.defaults.isEmpty, "the config.json the lab writes lacks keys: \(back.defaults)")
    } catch {
        fatalError("the config.json written for \(config) does not read back: \(error)")
    }
}

/// Lab metadata that reads must be written, read back equal, and written the same again.
func checkLabMetadata(_ data: Data) {
    guard let metadata = try? LabMetadata(decoding: data) else { return }
    do {
        let text = try metadata.encoded()
        let again = try LabMetadata(decoding: text)
        require(again == metadata, "lab.json does not survive a round trip: \(metadata) became \(again)")
        let textAgain = try again.encoded()
        require(textAgain == text, "lab.json is not written the same way twice")
    } catch {
        fatalError("lab metadata that was read cannot be written and read back: \(error)")
    }
}

/// A safetensors file that reads must read back the same, bit for bit, once written (as F32).
func checkSafeTensors(_ data: Data) {
    guard let file = try? SafeTensorsFile.decode(data) else { return }
    do {
        let again = try SafeTensorsFile.decode(file.encoded())
        require(again.names == file.names && again.metadata == file.metadata, "safetensors names or metadata changed in a round trip")
        for name in file.names {
            let a = file[name]!, b = again[name]!
            require(a.shape == b.shape && a.values.map(\.bitPattern) == b.values.map(\.bitPattern),
                         "tensor '\(name)' changed in a round trip")
        }
    } catch {
        fatalError("a safetensors file that was read cannot be written and read back: \(error)")
    }
}

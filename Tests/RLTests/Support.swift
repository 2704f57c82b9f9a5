import Engines
import Foundation
import Model
import Numerics
import RL

/// A fresh default-size model from a seed (Hugging Face's initial scale 0.02).
func freshWeights(seed: UInt64 = 7, config: LlamaConfig = .labDefault) -> ModelWeights {
    var w = ModelWeights(config: config)
    w.initialize(std: 0.02, stream: RandomStream(seed: seed, name: "init"))
    return w
}

/// A small model (2 layers, width 32) for tests that take many steps.
let smallConfig = LlamaConfig(hiddenSize: 32, intermediateSize: 64, numAttentionHeads: 2, numKeyValueHeads: 1,
                              numHiddenLayers: 2, vocabSize: Vocabulary.standard.count, maxPositionEmbeddings: 64)

func makePolicy(_ preset: Preset = .fp32, weights: ModelWeights = freshWeights()) throws -> Policy {
    try Policy(master: weights, engines: preset.engines(hiddenSize: weights.config.hiddenSize), backend: PortableBackend())
}

/// Environment switch for the long runs (benchmarks, sanity runs): off in the normal suite.
func environment(_ name: String) -> String? { ProcessInfo.processInfo.environment[name] }

/// Appends a line to the log file named by PLAB_RL_LOG (progress of long runs, unbuffered).
func log(_ line: String) {
    guard let path = environment("PLAB_RL_LOG") else { print(line); return }
    if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
    guard let h = FileHandle(forWritingAtPath: path) else { return }
    h.seekToEndOfFile()
    h.write((line + "\n").data(using: .utf8)!)
    try? h.close()
}

/// The repository root (this file is Tests/RLTests/Support.swift).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

// The reference logits that Hugging Face computed for the fixture checkpoints (test support).

import Foundation
import Model
import Numerics
import Storage

// MARK: Reference logits

/// The reference logits written by `scripts/reference/make_llama_fixture.py` beside a
/// fixture checkpoint (`logits.safetensors`): token sequences and, for each position,
/// the next-token logits Hugging Face computed in float32.
public struct ReferenceLogits: Sendable {
    /// One token sequence and its logits.
    public struct TokenSequence: Sendable {
        /// The input token ids.
        public let tokens: [Int]
        /// Row-major (tokens.count × vocabSize): row t = logits after tokens[0...t].
        public let logits: [Float]
        /// The vocabulary size V (the row length).
        public let vocabSize: Int
    }

    /// The sequences, in order (`input_ids.0`/`logits.0`, `input_ids.1`/`logits.1`, …).
    public let sequences: [TokenSequence]
    /// The file's metadata: versions of torch and transformers, script, seed.
    public let metadata: [String: String]

    /// Reads a reference logits file: pairs `input_ids.<i>` [T] (token ids as exact F32
    /// integers) and `logits.<i>` [T, V], for i = 0, 1, … without gaps.
    public static func read(contentsOf url: URL) throws(NumericsError) -> ReferenceLogits {
        let file = try SafeTensorsFile.read(contentsOf: url)
        var sequences: [TokenSequence] = []
        while let ids = file["input_ids.\(sequences.count)"] {
            let i = sequences.count
            guard ids.shape.count == 1 else {
                throw .invalidArgument("\(url.lastPathComponent): input_ids.\(i) has shape \(ids.shape); expected [T]")
            }
            var tokens: [Int] = []
            for v in ids.values {
                guard v >= 0, v < 0x1p24, v == v.rounded() else {
                    throw .invalidArgument("\(url.lastPathComponent): input_ids.\(i) holds \(v), not a token id (a non-negative integer below 2^24)")
                }
                tokens.append(Int(v))
            }
            let logits = try file.tensor("logits.\(i)")
            guard logits.shape.count == 2, logits.shape[0] == tokens.count, logits.shape[1] >= 1 else {
                throw .invalidArgument("\(url.lastPathComponent): logits.\(i) has shape \(logits.shape); expected [\(tokens.count), V]")
            }
            sequences.append(TokenSequence(tokens: tokens, logits: logits.values, vocabSize: logits.shape[1]))
        }
        guard !sequences.isEmpty else {
            throw .invalidArgument("\(url.lastPathComponent): no input_ids.0 tensor; expected pairs input_ids.<i>, logits.<i>")
        }
        return ReferenceLogits(sequences: sequences, metadata: file.metadata)
    }
}


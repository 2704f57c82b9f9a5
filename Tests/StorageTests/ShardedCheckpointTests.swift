import Foundation
import Model
import Numerics
import Storage
import Testing

// Sharded checkpoints: model.safetensors.index.json and the shards it names, as
// transformers writes them (Tests/Fixtures/tiny-llama-sharded, make_sharded_fixture.py:
// the tiny Llama in bfloat16 in three shards).

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")

/// A copy of the sharded fixture in a fresh directory, to damage.
private func shardedCopy() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("plab-shards-\(UUID().uuidString)")
    try FileManager.default.copyItem(at: fixtures.appendingPathComponent("tiny-llama-sharded"), to: dir)
    return dir
}

/// The index's JSON rewritten through `edit`.
private func editIndex(_ dir: URL, _ edit: (inout [String: String]) -> Void) throws {
    let url = dir.appendingPathComponent("model.safetensors.index.json")
    var object = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    var map = try #require(object["weight_map"] as? [String: String])
    edit(&map)
    object["weight_map"] = map
    try JSONSerialization.data(withJSONObject: object).write(to: url)
}

@Suite struct ShardedCheckpointTests {
    /// The shards hold exactly what the one-file BF16 fixture holds.
    @Test func shardsLoadAsTheOneFileCheckpoint() throws {
        let shards = try FileManager.default.contentsOfDirectory(atPath: fixtures.appendingPathComponent("tiny-llama-sharded").path)
        #expect(shards.filter { $0.hasSuffix(".safetensors") }.count == 3)
        let sharded = try loadCheckpoint(from: fixtures.appendingPathComponent("tiny-llama-sharded"))
        let single = try loadCheckpoint(from: fixtures.appendingPathComponent("tiny-llama-bf16"))
        #expect(sharded.weights.config == single.weights.config)
        #expect(sharded.weights.data.map(\.bitPattern) == single.weights.data.map(\.bitPattern))
    }

    @Test func aMissingShardIsNamed() throws {
        let dir = try shardedCopy()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.removeItem(at: dir.appendingPathComponent("model-00002-of-00003.safetensors"))
        let message = failure { () throws(NumericsError) in try loadCheckpoint(from: dir) }
        #expect(message.contains("1 of 3 shards are missing") && message.contains("model-00002-of-00003.safetensors"), "\(message)")
    }

    @Test func anIndexThatDoesNotFitItsShardsIsRefused() throws {
        let dir = try shardedCopy()
        defer { try? FileManager.default.removeItem(at: dir) }
        let name = "model.layers.0.mlp.down_proj.weight"
        var wrong = ""
        try editIndex(dir) { map in
            wrong = map.values.first { $0 != map[name] }!
            map[name] = wrong
        }
        let moved = failure { () throws(NumericsError) in try loadCheckpoint(from: dir) }
        #expect(moved.contains("weight_map puts '\(name)' in \(wrong)"), "\(moved)")

        try editIndex(dir) { $0[name] = "../elsewhere.safetensors" }
        let outside = failure { () throws(NumericsError) in try loadCheckpoint(from: dir) }
        #expect(outside.contains("shards are files in the checkpoint's directory"), "\(outside)")

        try editIndex(dir) { $0[name] = nil }
        let unlisted = failure { () throws(NumericsError) in try loadCheckpoint(from: dir) }
        #expect(unlisted.contains("has no tensor '\(name)'"), "\(unlisted)")
    }
}

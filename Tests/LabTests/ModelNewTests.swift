import Foundation
import Lab
import Testing

/// `model new` for each family the lab reads: the shape made is the one asked for, the
/// identical engines agree exactly on it (decode and forward alike, its extra tensors
/// included), and a save loads back as the same model under the family's name.
@Suite struct ModelNewTests {
    static let families: [(words: String, modelType: String, headDim: Int, qkNorm: Bool, bias: Bool)] = [
        ("", "llama", 8, false, false),
        ("family=mistral", "mistral", 8, false, false),
        ("family=qwen2", "qwen2", 8, false, false),
        ("family=qwen3 head_dim=16", "qwen3", 16, true, false),
        ("attention_bias=on", "llama", 8, false, true),
    ]

    @Test(arguments: families.indices)
    func eachFamilyIsMadeSavedAndLoadedBack(_ index: Int) throws {
        let family = Self.families[index]
        let s = Session()
        run("set backend portable", in: s)
        let made = runOne("model new layers=2 hidden=32 heads=4 kv_heads=2 intermediate=48 \(family.words) --seed 3", in: s)
        #expect(made.errors.isEmpty, "\(made.errors)")
        let model = try parseJSON(runOne("model --json", in: s).lines[0])
        #expect(model["model_type"] as? String == family.modelType)
        #expect(model["head_dim"] as? Int == family.headDim)
        #expect(model["qk_norm"] as? Bool == family.qkNorm)
        // "attention_bias" says whether q, k and v have biases: Qwen2's always do.
        #expect(model["attention_bias"] as? Bool == (family.bias || family.modelType == "qwen2"))
        // Parameters counted here: embedding and LM head 2·50·32, final norm 32; per layer
        // two norms (64), q and o 2·32·(4·D), k and v 2·32·(2·D), gate, up, down 3·32·48,
        // Qwen2's q, k, v biases (4·D + 2·2·D), the biases on all four (and o's 32), Qwen3's
        // q and k norms (2·D).
        let d = family.headDim
        var layer = 64 + 2 * 32 * 4 * d + 2 * 32 * 2 * d + 3 * 32 * 48
        if family.modelType == "qwen2" || family.bias { layer += 4 * d + 2 * 2 * d }
        if family.bias { layer += 32 }
        if family.qkNorm { layer += 2 * d }
        #expect(model["parameters"] as? Int == 2 * 50 * 32 + 32 + 2 * layer)

        run("precision preset identical", in: s)
        let rollout = try parseJSON(runOne("rollout 4 --json", in: s).lines[0])
        #expect(rollout["k3"] as? Double == 0 && rollout["max_abs_dlogp"] as? Double == 0)

        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let saved = dir.appendingPathComponent("m")
        #expect(runOne("model save \(saved.path)", in: s).errors.isEmpty)
        let config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: saved.appendingPathComponent("config.json"))) as? [String: Any])
        #expect(config["model_type"] as? String == family.modelType)
        let loaded = Session()
        run("set backend portable", in: loaded)
        #expect(runOne("model load \(saved.path)", in: loaded).errors.isEmpty)
        let again = try parseJSON(runOne("model --json", in: loaded).lines[0])
        for key in ["model_type", "head_dim", "qk_norm", "attention_bias", "parameters"] {
            #expect("\(again[key] ?? "-")" == "\(model[key] ?? "-")", "\(key)")
        }
    }

    @Test func combinationsNoFamilyHasAreRefusedAndChangeNothing() throws {
        let s = Session()
        let before = try parseJSON(runOne("model --json", in: s).lines[0])
        for (words, expected) in [("family=qwen2 experts=4", "is Mixtral's; the qwen2 family has a dense one"),
                                  ("family=mistral attention_bias=on", "belongs to the llama and qwen3 families, not mistral"),
                                  ("family=qwen3 head_dim=15", "head_dim 15 must be even"),
                                  ("family=gemma", "family must be one of llama, mistral, qwen2, qwen3"),
                                  // The shape's rules name the keys typed, not config.json's.
                                  ("heads=3", "model new: heads (3) must divide hidden (64)"),
                                  ("heads=4 kv_heads=3", "kv_heads (3) must divide heads (4)")] {
            let message = failure("model new \(words)", in: s)
            #expect(message.contains(expected), "\(words): \(message)")
        }
        let after = try parseJSON(runOne("model --json", in: s).lines[0])
        #expect(after["parameters"] as? Int == before["parameters"] as? Int && after["model_type"] as? String == before["model_type"] as? String)
    }
}

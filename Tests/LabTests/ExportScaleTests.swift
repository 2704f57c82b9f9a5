import Foundation
import Testing
import Lab

/// `export verl` and `export slime`: golden outputs for three recipes, and the parts of a
/// recipe each framework has no setting for.
@Suite struct ExportScaleTests {
    /// The output of `export FRAMEWORK` after `lines`, in a fresh session.
    func export(_ framework: String, after lines: [String]) throws -> String {
        let session = Session()
        let output = CollectedOutput()
        for line in lines + ["export \(framework)"] {
            #expect(session.execute(line, to: output) == .done, "\(line): \(output.errors)")
        }
        let text = output.lines.drop { !$0.hasPrefix("# \(framework) ") }
        return text.joined(separator: "\n") + "\n"
    }

    static let recipes: [(name: String, lines: [String])] = [
        ("fp16-token-tis", ["precision preset fp16", "set algo token-tis"]),
        ("bf16-seq-mis", ["precision preset bf16", "set algo seq-mis"]),
        ("fp8-rollout", ["precision preset fp8-rollout"]),
    ]

    @Test(arguments: ["verl", "slime"])
    func threeRecipesGiveTheirGoldenOutput(framework: String) throws {
        for recipe in Self.recipes {
            let golden = packageRoot.appendingPathComponent("Tests/Fixtures/export/export-\(framework)-\(recipe.name).txt")
            let expected = try String(contentsOf: golden, encoding: .utf8)
            #expect(try export(framework, after: recipe.lines) == expected, "\(framework) \(recipe.name)")
        }
    }

    @Test func whatAFrameworkLacksIsSaidNotGuessed() throws {
        let fp32 = try export("verl", after: ["precision preset fp32", "set advantage raw"])
        #expect(fp32.contains("# no counterpart: training in float32: fsdp_config.dtype is bfloat16 or float16"))
        #expect(fp32.contains("# no counterpart: advantage raw: verl's GRPO advantage is always centred on the group mean\n"))
        #expect(!fp32.contains("fsdp_config.dtype="))
        let unified = try export("verl", after: ["precision preset fp8-unified"])
        #expect(unified.contains("# no counterpart: FP8 training products"))
        let mx = try export("slime", after: ["precision preset mxfp8-rollout", "set algo pg"])
        #expect(mx.contains("# no counterpart: MXFP8 rollout"))
        #expect(mx.contains("# no counterpart: algo pg: slime's policy losses are PPO-clip or GSPO"))
        let staticScale = try export("verl", after: ["precision preset fp16", "set loss_scale 1024"])
        #expect(staticScale.contains("# no counterpart: loss_scale 1024 (static): verl's ShardedGradScaler is fixed at 2^16 and growth_interval=400\n"))
        let slimeStatic = try export("slime", after: ["precision preset fp16", "set loss_scale 1024"])
        #expect(slimeStatic.contains("\n--loss-scale 1024\n"))
    }

    @Test func algorithmsMapToTheirCorrections() throws {
        let gspo = try export("verl", after: ["set algo gspo"])
        #expect(gspo.contains("actor_rollout_ref.actor.policy_loss.loss_mode=gspo\n"))
        #expect(gspo.contains("actor_rollout_ref.actor.clip_ratio_low=0.0003\nactor_rollout_ref.actor.clip_ratio_high=0.0004\n"))
        let pgSeqIS = try export("verl", after: ["set algo pg-seq-is", "set seq_cap 5"])
        #expect(pgSeqIS.contains("algorithm.rollout_correction.bypass_mode=True\nalgorithm.rollout_correction.loss_type=reinforce\nalgorithm.rollout_correction.rollout_is=sequence\nalgorithm.rollout_correction.rollout_is_threshold=5\n"))
        let drgrpo = try export("verl", after: ["set algo drgrpo", "set max_len 12"])
        #expect(drgrpo.contains("algorithm.norm_adv_by_std_in_grpo=False\n"))
        #expect(drgrpo.contains("actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum-norm\nactor_rollout_ref.actor.loss_scale_factor=12\n"))
        let seqTIS = try export("slime", after: ["set algo seq-tis", "set minibatches 4"])
        #expect(seqTIS.contains("tis_mode: truncate"))
        #expect(seqTIS.contains("--global-batch-size 128\n"))
        let json = try parseJSON({
            let session = Session(), output = CollectedOutput()
            session.execute("export verl --json", to: output)
            return output.jsonLines.first ?? ""
        }())
        #expect(json["framework"] as? String == "verl")
        #expect((json["settings"] as? [String])?.contains("algorithm.adv_estimator=grpo") == true)
        #expect((json["missing"] as? [String])?.count == 2)
    }
}

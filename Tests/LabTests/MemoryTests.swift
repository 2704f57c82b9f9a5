import Engines
import Foundation
import Lab
import Model
import Testing

/// Memory checked before it is spent: a command that would not fit is refused with both
/// figures and nothing changes; ordinary commands are not refused. The session's figure is
/// set in each test, so nothing here depends on this machine's memory.
@Suite struct MemoryCheckTests {
    static let gib = 1 << 30

    func session(available: Int) -> Session {
        let s = Session()
        run("set backend portable", in: s)
        s.availableMemoryOverride = available
        return s
    }

    /// The number before " GB" after `prefix` in a message ("needs about 482.1 GB" gives 482.1).
    func gigabytes(after prefix: String, in message: String) -> Double? {
        guard let range = message.range(of: prefix) else { return nil }
        return Double(message[range.upperBound...].prefix { $0 != " " })
    }

    /// `set backend` moves a live model's engines at once: refused with the figures, and
    /// nothing changed, when their new copies would not fit; otherwise the engines run on the
    /// new backend when the command returns.
    @Test func aBackendSwitchThatWouldNotFitIsRefusedAndNothingChanges() {
        let s = session(available: 1 << 10)
        #expect(s.lab.policy.backend.name == "portable")
        let message = failure("set backend openblas", in: s)
        #expect(message.contains("needs about") && message.contains("engine copies"), "\(message)")
        #expect(s.settings.text("backend") == "portable")
        #expect(s.lab.policy.backend.name == "portable")
        #expect(failure("set backend blas", in: s).contains("openblas"))
        s.availableMemoryOverride = 16 * Self.gib
        run("set backend openblas", in: s)
        #expect(s.settings.text("backend") == "openblas")
        #expect(s.lab.policy.backend.name == "openblas")
        run("set backend onednn", in: s)
        #expect(s.settings.text("backend") == "onednn")
        #expect(s.lab.policy.backend.name == "onednn")
    }

    /// The command that aborted the process with "failed to allocate 68723228704 bytes".
    @Test func theModelThatAbortedIsRefusedAndTheLiveModelStays() throws {
        let s = session(available: 16 * Self.gib)
        let before = s.lab.policy
        let message = failure("model new hidden=4096 layers=64 intermediate=16384 heads=32 kv_heads=32", in: s)
        #expect(message.hasPrefix("model new: needs about "), "\(message)")
        #expect(!message.contains("\n"))
        // The float32 weights alone are 68,723,228,672 bytes. Under the bf16 preset both
        // engines prepare the weights alike and share one copy: a rounded copy of all
        // parameters and the linear ones (all but the embedding's 0.2%) in two layouts for the
        // products, so at least (1 + 1 + 2·0.99)·68.72 GB = 273.5 GB in all. The optimizers'
        // moments come with the first update, not with the model.
        #expect(message.contains("weights 68.7 GB"), "\(message)")
        let total = try #require(gigabytes(after: "needs about ", in: message))
        #expect(total >= 273.5 && total < 2 * 68.72 + 3 * 68.72, "\(message)")
        // 16 GiB = 17,179,869,184 bytes.
        #expect(message.contains("but 17.2 GB is available (the session's limit)"), "\(message)")
        #expect(message.hasSuffix("; lower hidden, layers or intermediate"), "\(message)")
        #expect(s.lab.policy === before)
        #expect(s.lab.policy.config == before.config)
        #expect(s.lab.origin.hasPrefix("base model"))
    }

    /// The rollout that grew to 7 GB in 6 s unchecked: refused, the model and its (absent)
    /// last rollout as they were.
    @Test func aRolloutOverBudgetIsRefusedAndChangesNothing() throws {
        let s = session(available: 16 * Self.gib)
        run("model new max_pos=8192", "set max_new 4096", in: s)
        let policy = s.lab.policy
        let message = failure("rollout 4096", in: s)
        #expect(message.hasPrefix("rollout: needs about "), "\(message)")
        #expect(message.contains("GB (activations "), "\(message)")
        #expect(message.hasSuffix("but 17.2 GB is available (the session's limit); lower N or max_new"), "\(message)")
        run("set prompts 1024", in: s)
        #expect(failure("rollout", in: s).hasSuffix("lower the prompts setting or max_new"))
        #expect(s.lab.policy === policy)
        #expect(s.lab.rolloutCount == 0, "the new model has made no rollout")
        #expect(s.lab.lastRollout == nil)
    }

    /// On the default model, 4096 prompts of up to 9 + 200 positions: the training forward
    /// alone holds 4096 × 209 rows of 1,795 floats (the hidden state after each of the 4
    /// layers and the embedding, one layer's cache, the final norm's), 6.2 GB.
    @Test func aLongRolloutOnTheDefaultModelIsRefusedUnderOneGigabyte() throws {
        let s = session(available: Self.gib)
        run("set prompts 4", "rollout", in: s)
        let last = try #require(s.lab.lastRollout)
        let count = s.lab.rolloutCount
        run("set max_new 200", in: s)
        let message = failure("rollout 4096", in: s)
        #expect(message.contains("activations 6.2 GB"), "\(message)")
        #expect(message.hasSuffix("but 1.1 GB is available (the session's limit); lower N or max_new"), "\(message)")
        #expect(failure("compare bf16 fp16 --prompts 4096", in: s).hasSuffix("lower --prompts (or the prompts setting) or max_new"))
        #expect(s.lab.rolloutCount == count)
        #expect(s.lab.lastRollout?.responses == last.responses)
        #expect(s.settings.text("max_new") == "200", "a refused command does not touch the settings")
    }

    /// The everyday commands at their default settings run on a machine with 1 GiB free.
    @Test func theDefaultCommandsFitInOneGigabyte() throws {
        let s = session(available: Self.gib)
        for line in ["rollout", "mismatch", "compare bf16 fp16", "step", "pretrain 1", "eval 8 --heldout",
                     "score <bos> 12+34=46 <eos>", "trace", "precision preset fp8-unified", "engine both split_k=off",
                     "model new", "memory"] {
            let r = runOne(line, in: s)
            #expect(r.outcome == .done, "\(line): \(r.errors)")
        }
    }

    /// More tokens than the model has positions: the rotary table ends at max_pos, and the
    /// forward read past it (NaN drifts) before this was checked.
    @Test func traceRefusesMoreTokensThanPositions() {
        let s = session(available: Self.gib)
        let tokens = Array(repeating: "1", count: 300).joined(separator: " ")
        #expect(failure("trace <bos> \(tokens)", in: s) == "trace: 301 tokens exceed the model's 256 positions")
        #expect(failure("score <bos> \(tokens)", in: s) == "score: 301 tokens exceed the model's 256 positions")
    }

    @Test func aCheckpointTooLargeIsRefusedFromItsConfigBeforeAnyTensorIsRead() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let s = session(available: Self.gib)
        let path = dir.appendingPathComponent("m").path
        #expect(runOne("model save \(path)", in: s).outcome == .done)
        // Tensors that cannot be read: a check made after reading them would report that instead.
        try Data("not safetensors".utf8).write(to: URL(fileURLWithPath: path).appendingPathComponent("model.safetensors"))
        let before = s.lab.policy
        s.availableMemoryOverride = 1 << 20
        let message = failure("model load \(path)", in: s)
        #expect(message.hasPrefix("model load: needs about "), "\(message)")
        #expect(message.contains("but 1.0 MB is available (the session's limit); free memory or load a smaller model"), "\(message)")
        #expect(s.lab.policy === before)
        s.availableMemoryOverride = Self.gib
        #expect(!failure("model load \(path)", in: s).contains("needs about"), "with room, the damaged file is what fails")
    }

    /// `memory` reports the estimates the commands check; the live default model's weights
    /// are its 191,296 parameters in float32.
    @Test func memoryReportsTheEstimates() throws {
        let s = session(available: Self.gib)
        let r = runOne("memory --json", in: s)
        let object = try parseJSON(try #require(r.lines.first))
        #expect(object["available"] as? Int == Self.gib)
        #expect(object["source"] as? String == "the session's limit")
        let model = try #require(object["model"] as? [String: Any])
        let terms = try #require(model["terms"] as? [String: Any])
        #expect(terms["weights"] as? Int == 191_296 * 4)
        for key in ["rollout", "step", "pretrain"] {
            let estimate = try #require(object[key] as? [String: Any], "memory lacks \(key)")
            let total = try #require(estimate["total"] as? Int)
            #expect(total > 0 && total < Self.gib)
        }
        let text = runOne("memory", in: s).lines
        #expect(text.contains { $0.hasPrefix("step ") })
    }

    @Test func memoryLimitSizes() {
        #expect(AvailableMemory.parseSize("8G") == 8 << 30)
        #expect(AvailableMemory.parseSize("8GiB") == 8 << 30)
        #expect(AvailableMemory.parseSize("512m") == 512 << 20)
        #expect(AvailableMemory.parseSize("1.5K") == 1536)
        #expect(AvailableMemory.parseSize("1073741824") == 1 << 30)
        for bad in ["", "G", "lots", "-1G", "1e3", "8X", "99999999T"] {
            #expect(AvailableMemory.parseSize(bad) == nil, "'\(bad)'")
        }
    }

    #if os(Linux)
    @Test func theSystemFigureIsRead() throws {
        let available = try #require(AvailableMemory.system())
        #expect(available.bytes > 0)
        #expect(["MemAvailable", "cgroup limit"].contains(available.source))
    }
    #endif
}

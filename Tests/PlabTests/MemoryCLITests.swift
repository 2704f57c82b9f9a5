import Foundation
import Testing

/// The memory check through the executable, with PLAB_MEMORY_LIMIT standing for the
/// machine's figure.
@Suite struct MemoryCLITests {
    /// The line that ended the session with SIGABRT ("failed to allocate 68723228704
    /// bytes"): now one error line, and the session goes on with the model it had.
    @Test func theModelThatAbortedIsRefusedAndTheSessionGoesOn() throws {
        let r = try runPlab([], input: "model new hidden=4096 layers=64 intermediate=16384 heads=32 kv_heads=32\nmodel --json\n",
                            environment: ["PLAB_MEMORY_LIMIT": "16G"])
        #expect(r.status == 1, "\(r.stderr)")
        let errors = r.stderr.split(separator: "\n")
        #expect(errors.count == 1, "\(r.stderr)")
        #expect(r.stderr.hasPrefix("plab: error: <stdin>:1: model new: needs about "), "\(r.stderr)")
        #expect(r.stderr.contains("but 17.2 GB is available (PLAB_MEMORY_LIMIT); lower hidden, layers or intermediate"), "\(r.stderr)")
        #expect(r.lines.count == 1)
        #expect(r.lines.first?.contains("\"parameters\":191296") == true, "\(r.stdout)")
    }

    @Test func aLimitThatIsNotASizeIsNamed() throws {
        let r = try runPlab([], input: "rollout 4\n", environment: ["PLAB_MEMORY_LIMIT": "lots"])
        #expect(r.status == 1)
        #expect(r.stderr == "plab: error: <stdin>:1: rollout: PLAB_MEMORY_LIMIT='lots' is not a size; accepted: bytes, or a number with K, M, G or T (powers of 1024), e.g. 8G\n")
    }
}

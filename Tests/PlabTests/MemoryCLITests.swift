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
        #expect(r.stderr.contains("but 17.2 GB is available (PLAB_MEMORY_LIMIT=16G, in powers of 1024); lower hidden, layers or intermediate"), "\(r.stderr)")
        #expect(r.lines.count == 1)
        #expect(r.lines.first?.contains("\"parameters\":191296") == true, "\(r.stdout)")
    }

    @Test func aLimitThatIsNotASizeIsNamed() throws {
        let r = try runPlab([], input: "rollout 4\n", environment: ["PLAB_MEMORY_LIMIT": "lots"])
        #expect(r.status == 1)
        #expect(r.stderr == "plab: error: <stdin>:1: rollout: PLAB_MEMORY_LIMIT='lots' is not a size; accepted: bytes, or a number with K, M, G or T (powers of 1024), e.g. 8G\n")
    }

    #if os(Linux)
    /// What a command freed goes back to the system when it ends, so that the next
    /// command's check sees it available (MemAvailable does not see memory free inside a
    /// process). A rollout of 48 × 200 tokens on a 3 M-parameter model peaks about 240 MB above
    /// where it ends (KV cache, hidden states, the recomputation's logits), in blocks the lab
    /// keeps in its heap while it runs.
    @Test func memoryAFinishedCommandFreedIsHandedBack() throws {
        let process = Process()
        process.executableURL = plabExecutable
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { try? stdin.fileHandleForWriting.close(); process.waitUntilExit() }
        let lines = """
            set backend portable
            model new hidden=256 layers=4 heads=4 kv_heads=4 intermediate=704 max_pos=512 --std 0.02
            set top_k 1
            set max_new 200
            rollout 48
            seed

            """
        try stdin.fileHandleForWriting.write(contentsOf: Data(lines.utf8))
        // `seed` answers once the rollout has ended.
        var output = ""
        while !output.contains("seed = 0\n") {
            let data = stdout.fileHandleForReading.availableData
            if data.isEmpty { break }
            output += String(decoding: data, as: UTF8.self)
        }
        #expect(output.contains("48 sequences, 9497 response tokens"), "\(output)")
        let status = try String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8)
        func kib(_ key: String) -> Int {
            status.split(separator: "\n").first { $0.hasPrefix(key) }.flatMap { Int($0.split(separator: " ")[1]) } ?? 0
        }
        let peak = kib("VmHWM:"), now = kib("VmRSS:")
        #expect(peak - now > 150_000, "resident \(now) KiB after a peak of \(peak) KiB")
    }
    #endif
}

// The executable never reports success for output it could not write, never spins on
// endless input, and a save killed half-way leaves the old checkpoint whole.

import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

private let isRoot = getuid() == 0

/// A fresh temporary directory holding character devices made by the test (root only):
/// `full` (writes fail with ENOSPC), `zero` (endless NUL bytes).
private func deviceDirectory() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("plab-devices-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    #expect(mknod(dir.appendingPathComponent("full").path, S_IFCHR | 0o666, deviceNumber(1, 7)) == 0)
    #expect(mknod(dir.appendingPathComponent("zero").path, S_IFCHR | 0o666, deviceNumber(1, 5)) == 0)
    return dir
}

/// Runs plab with standard output sent to `stdoutPath` and standard input from `stdinPath`.
private func runPlab(_ arguments: [String], stdout stdoutPath: String, stdin stdinPath: String = "/dev/null",
                     timeout: TimeInterval = 60) throws -> (status: Int32, stderr: String) {
    let process = Process()
    process.executableURL = plabExecutable
    process.arguments = arguments
    process.standardInput = FileHandle(forReadingAtPath: stdinPath)
    process.standardOutput = FileHandle(forWritingAtPath: stdoutPath)
    let stderr = Pipe()
    process.standardError = stderr
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
}

@Suite struct StandardOutputFailureTests {
    @Test(.enabled(if: isRoot, "making device nodes needs root"))
    func aFullStandardOutputIsAnErrorForEveryCommand() throws {
        let dir = try deviceDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let full = dir.appendingPathComponent("full").path
        let session = dir.appendingPathComponent("s.plab").path
        try "seed 3\ncast bf16 1.5\n".write(toFile: session, atomically: true, encoding: .utf8)
        let numbers = dir.appendingPathComponent("numbers").path
        try "1.5\n".write(toFile: numbers, atomically: true, encoding: .utf8)
        let tour = packageRoot.appendingPathComponent("sessions/tour.transcript").path
        for arguments in [["formats"], ["run", session], ["run", session, "--json"], ["cast", "--to", "bf16"], ["replay", tour]] {
            let r = try runPlab(arguments, stdout: full, stdin: arguments[0] == "cast" ? numbers : "/dev/null")
            #expect(r.status == 1, "\(arguments)")
            #expect(r.stderr.contains("plab: error: standard output: No space left on device"), "\(arguments): \(r.stderr)")
        }
        #expect(fileType(full) == S_IFCHR)
    }

    @Test func aClosedPipeEndsQuietly() throws {
        let process = Process()
        process.executableURL = plabExecutable
        process.arguments = ["run", packageRoot.appendingPathComponent("sessions/tour.plab").path, "--backend", "portable"]
        let stdout = Pipe(), stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        try stdout.fileHandleForReading.close()
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal || process.terminationStatus == 141)
        #expect(String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).isEmpty)
    }
}

private func fileType(_ path: String) -> mode_t {
    var st = stat()
    return lstat(path, &st) == 0 ? st.st_mode & S_IFMT : 0
}

@Suite struct EndlessInputTests {
    @Test(.enabled(if: isRoot, "making device nodes needs root"))
    func anEndlessStreamOfZerosIsRefusedAtOnce() throws {
        let dir = try deviceDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let zero = dir.appendingPathComponent("zero").path
        let run = try runPlab(["run", zero], stdout: "/dev/null", timeout: 20)
        #expect(run.status == 1 && run.stderr.contains("\(zero):1: binary file"))
        let piped = try runPlab([], stdout: "/dev/null", stdin: zero, timeout: 20)
        #expect(piped.status == 1 && piped.stderr.contains("<stdin>:1: binary data (a NUL byte)"))
        let source = dir.appendingPathComponent("source.plab").path
        try "source \(zero)\n".write(toFile: source, atomically: true, encoding: .utf8)
        let sourced = try runPlab(["run", source], stdout: "/dev/null", timeout: 20)
        #expect(sourced.status == 1 && sourced.stderr.contains("\(zero):1: binary file"))
        let cast = try runPlab(["cast", "--to", "bf16"], stdout: "/dev/null", stdin: zero, timeout: 20)
        #expect(cast.status == 1 && cast.stderr.contains("line 1: binary data"))
    }

    @Test func aBadOptionValueOfRunIsAUsageError() throws {
        let r = try runPlab(["run", packageRoot.appendingPathComponent("sessions/tour.plab").path, "--backend", "gpu"])
        #expect(r.status == 64)
        #expect(r.stderr == "plab: error: backend must be one of onednn, openblas, portable, not 'gpu'\n")
    }
}

@Suite struct KilledSaveTests {
    /// SIGKILL in the middle of `model save` over an existing checkpoint: the old one still
    /// loads bit for bit, and the next save removes the half-written staging directory.
    @Test func aSaveKilledHalfWayLeavesTheOldCheckpoint() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("plab-kill-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let ckpt = dir.appendingPathComponent("ckpt").path
        let copy = dir.appendingPathComponent("copy").path
        // The old checkpoint: a small model.
        let first = try runPlab([], input: "model new layers=1 hidden=16 heads=2 kv_heads=1 intermediate=32 --seed 1\nmodel save \(ckpt)\n")
        #expect(first.status == 0, "\(first.stderr)")
        let oldBytes = try Data(contentsOf: URL(fileURLWithPath: ckpt + "/model.safetensors"))

        // A large model (about 100 MB of weights) saved over it, killed once its staging
        // directory exists.
        let process = Process()
        process.executableURL = plabExecutable
        let input = Pipe()
        process.standardInput = input
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        try input.fileHandleForWriting.write(contentsOf: Data("model new layers=8 hidden=512 heads=8 kv_heads=8 intermediate=2048 --seed 2\nmodel save \(ckpt)\n".utf8))
        var killed = false
        let deadline = Date().addingTimeInterval(120)
        while process.isRunning && Date() < deadline {
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
            if entries.contains(where: { $0.hasPrefix(".ckpt.plab-save-") }) {
                kill(process.processIdentifier, SIGKILL)
                killed = true
                break
            }
            usleep(200)
        }
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
        #expect(killed, "the save was caught half-way")
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".ckpt.plab-save-") }
        #expect(left.count == 1, "the killed save left its staging directory")

        // The old checkpoint is whole: same bytes, and it loads.
        #expect(try Data(contentsOf: URL(fileURLWithPath: ckpt + "/model.safetensors")) == oldBytes)
        let load = try runPlab([], input: "model load \(ckpt)\nmodel save \(copy)\n")
        #expect(load.status == 0, "\(load.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: copy + "/model.safetensors")) == oldBytes)

        // The next save into the same name removes the leftover.
        let again = try runPlab([], input: "model load \(ckpt)\nmodel save \(ckpt)\n")
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix(".ckpt.plab-") }.isEmpty)
    }
}

/// A device number as glibc's makedev(3) builds it (a macro, so not visible to Swift).
private func deviceNumber(_ major: UInt64, _ minor: UInt64) -> dev_t {
    dev_t(((major & 0xfff) << 8) | ((major & ~0xfff) << 32) | (minor & 0xff) | ((minor & ~0xff) << 12))
}

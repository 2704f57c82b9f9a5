import Foundation

/// The plab executable built by `swift build -c release` (scripts/test builds it first).
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

var plabExecutable: URL {
    for config in ["release", "debug"] {
        let url = packageRoot.appendingPathComponent(".build/\(config)/plab")
        if FileManager.default.isExecutableFile(atPath: url.path) { return url }
    }
    fatalError("plab is not built; run `swift build -c release --product plab` first")
}

struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
    var lines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init) }
}

/// Runs plab with arguments and standard input; waits for it to finish.
func runPlab(_ arguments: [String], input: String = "", environment: [String: String] = [:]) throws -> RunResult {
    let process = Process()
    process.executableURL = plabExecutable
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    process.environment = env
    let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
    process.standardInput = stdin
    process.standardOutput = stdout
    process.standardError = stderr
    try process.run()
    // Write input and read both outputs concurrently so no pipe fills up.
    let writer = Thread {
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try? stdin.fileHandleForWriting.close()
    }
    writer.start()
    nonisolated(unsafe) var errData = Data()
    let errReader = Thread { errData = stderr.fileHandleForReading.readDataToEndOfFile() }
    errReader.start()
    let outData = stdout.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    while errReader.isExecuting || !errReader.isFinished { Thread.sleep(forTimeInterval: 0.001) }
    return RunResult(status: process.terminationStatus,
                     stdout: String(decoding: outData, as: UTF8.self),
                     stderr: String(decoding: errData, as: UTF8.self))
}

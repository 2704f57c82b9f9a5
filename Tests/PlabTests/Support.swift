import Foundation

/// The package's root directory.
let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent()

/// The plab executable under test: `$PLAB_EXECUTABLE` if set; else the one built next to
/// this test bundle (whatever the scratch path); else `.build/release` or `.build/debug`.
let plabExecutable: URL = {
    let fm = FileManager.default
    if let path = ProcessInfo.processInfo.environment["PLAB_EXECUTABLE"], !path.isEmpty {
        return URL(fileURLWithPath: path)
    }
    var candidates: [URL] = []
    if let bundle = Bundle.main.executableURL { candidates.append(bundle.deletingLastPathComponent()) }
    candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
    for directory in candidates {
        // The test bundle sits in the build directory (on macOS inside a .xctest bundle).
        var dir = directory
        for _ in 0..<4 {
            let url = dir.appendingPathComponent("plab")
            var isDirectory: ObjCBool = false
            if fm.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue,
               fm.isExecutableFile(atPath: url.path) { return url }
            dir = dir.deletingLastPathComponent()
        }
    }
    for config in ["release", "debug"] {
        let url = packageRoot.appendingPathComponent(".build/\(config)/plab")
        if fm.isExecutableFile(atPath: url.path) { return url }
    }
    fatalError("plab is not built; run `swift build -c release --product plab` first, or set PLAB_EXECUTABLE")
}()

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
    ignoreBrokenPipes
    let writer = Thread {
        // plab may stop reading early (quit, a fatal error): the rest of the input is dropped.
        try? stdin.fileHandleForWriting.write(contentsOf: Data(input.utf8))
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

/// Writing to a process that stopped reading must fail with EPIPE, not kill the tests.
let ignoreBrokenPipes: Void = { signal(SIGPIPE, SIG_IGN) }()

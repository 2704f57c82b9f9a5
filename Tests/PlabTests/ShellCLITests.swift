import Foundation
import Testing

/// The shell without a terminal, `plab run` and `plab replay`, through the executable.
@Suite struct ShellPipeTests {
    @Test func pipedCommandsRunWithoutPromptAndExitZero() throws {
        let r = try runPlab([], input: "seed 3\n\n# comment\nseed\ncast bf16 1.00390625\n")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.lines == ["seed = 3", "seed = 3", "1.00390625 -> 1.0"])
        #expect(r.stderr.isEmpty)
    }

    @Test func aFailingLineIsReportedWithItsNumberAndTheExitIsOne() throws {
        let r = try runPlab([], input: "seed 3\nfromats\nseed\n")
        #expect(r.status == 1)
        #expect(r.lines == ["seed = 3", "seed = 3"], "every line runs")
        #expect(r.stderr == "plab: error: <stdin>:2: unknown command 'fromats'; did you mean 'formats'? (try 'help')\n")
    }

    @Test func aTenMegabyteLineEndsTheInputCleanly() throws {
        // Refused as soon as it passes the limit (an endless line would never end); what
        // follows it is not read: such a stream is not text commands.
        let r = try runPlab([], input: "seed 1\ncast bf16 " + String(repeating: "9", count: 10 << 20) + "\nseed\n")
        #expect(r.status == 1)
        #expect(r.lines == ["seed = 1"])
        #expect(r.stderr.contains("<stdin>:2: line is longer than 1 MiB, the limit; reading stopped here"))
    }

    @Test func quitStopsReading() throws {
        let r = try runPlab([], input: "seed 2\nquit\nseed 3\n")
        #expect(r.status == 0)
        #expect(r.lines == ["seed = 2"])
    }
}

@Suite struct RunTests {
    func write(_ text: String, to name: String) throws -> (dir: URL, path: String) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("plab-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return (dir, path)
    }

    @Test func runPrintsATranscript() throws {
        let (dir, path) = try write("# a session\nseed 4\n\ncast bf16 1.00390625\n", to: "s.plab")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try runPlab(["run", path, "--backend", "portable"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.lines[0] == "# plab 0.1.0 transcript")
        #expect(r.lines.contains("# seed: 0"))
        #expect(r.lines.contains("# backend: portable"))
        #expect(Array(r.lines.drop { $0.hasPrefix("#") }) == ["plab> seed 4", "seed = 4", "plab> cast bf16 1.00390625", "1.00390625 -> 1.0"])
    }

    @Test func runStopsAtTheFirstErrorNamingFileAndLineUnlessToldToGoOn() throws {
        let (dir, path) = try write("seed 4\ncast bf61 1\nseed 5\n", to: "bad.plab")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try runPlab(["run", path])
        #expect(r.status == 1)
        #expect(r.stderr == "plab: error: \(path):2: cast: unknown format 'bf61'; did you mean bf16? formats: fp32 bf16 fp16 e4m3 e5m2 eXmY (X in 2…8, Y in 0…23)\n")
        #expect(!r.stdout.contains("seed 5"))
        #expect(r.stdout.contains("error: cast: unknown format 'bf61'"), "the error is in the transcript too")
        let k = try runPlab(["run", path, "--keep-going"])
        #expect(k.status == 1)
        #expect(k.stdout.contains("plab> seed 5\nseed = 5\n"))
    }

    @Test func runJSONPrintsOneObjectPerReportingCommandAndNothingElse() throws {
        let (dir, path) = try write("set backend portable\nseed 4\ncast e4m3 500 --saturate\nformats bf16\nshow\n", to: "j.plab")
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try runPlab(["run", path, "--json"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.lines.count == 4)
        let objects = try r.lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(objects[0]["seed"] as? Int == 4)
        #expect(objects[1]["results"] as? [String] == ["448.0"])
        #expect(objects[3]["backend"] as? String == "portable")
    }

    @Test func runRefusesMissingBinaryAndBadOptions() throws {
        let missing = try runPlab(["run", "/nonexistent.plab"])
        #expect(missing.status == 1 && missing.stderr.contains("cannot read '/nonexistent.plab': no such file"))
        let (dir, path) = try write("", to: "bin.plab")
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data([0x73, 0x65, 0x65, 0x64, 0x0A, 0, 0, 0x0A]).write(to: URL(fileURLWithPath: path))
        let binary = try runPlab(["run", path])
        #expect(binary.status == 1 && binary.stderr.contains("\(path):2: binary file"))
        #expect(binary.stdout.isEmpty, "nothing ran")
        let backend = try runPlab(["run", path, "--backend", "cuda"])
        #expect(backend.status == 1 && backend.stderr.contains("binary file"))
    }
}

@Suite struct ReplayTests {
    let tour = packageRoot.appendingPathComponent("sessions/tour.transcript").path

    @Test func theTourReplaysIdentically() throws {
        let r = try runPlab(["replay", tour, "--check"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("replay of \(tour): "))
    }

    /// Each transcript in sessions/ is what `plab run` of its session file prints.
    @Test func everySessionFileReproducesItsTranscript() throws {
        let dir = packageRoot.appendingPathComponent("sessions")
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) where name.hasSuffix(".transcript") {
            let transcript = dir.appendingPathComponent(name).path
            let session = transcript.replacingOccurrences(of: ".transcript", with: ".plab")
            let run = try runPlab(["run", session, "--backend", "portable"])
            #expect(run.status == 0, "\(name): \(run.stderr)")
            let recorded = try String(contentsOfFile: transcript, encoding: .utf8)
            func body(_ text: String) -> [String] {
                text.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("# date:") && !$0.hasPrefix("# openblas:") && !$0.hasPrefix("# onednn:") && !$0.hasPrefix("~ ") }
            }
            let (got, expected) = (body(run.stdout), body(recorded))
            let common = min(got.count, expected.count)
            if let i = (0..<common).first(where: { got[$0] != expected[$0] }) ?? (got.count == expected.count ? nil : common) {
                Issue.record("""
                    \(name) differs from a new run of its session at body line \(i + 1):
                      recorded: \(i < expected.count ? expected[i] : "(end)")
                      new run:  \(i < got.count ? got[i] : "(end)")
                    record it again with `plab run \(session) --backend portable`
                    """)
            }
        }
    }

    @Test func anEditedTranscriptFailsWithTheLineInContext() throws {
        let text = try String(contentsOfFile: tour, encoding: .utf8)
        let edited = text.replacingOccurrences(of: "1.01171875 -> 1.015625", with: "1.01171875 -> 1.01")
        #expect(edited != text)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("plab-replay-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("edited.transcript").path
        try edited.write(toFile: path, atomically: true, encoding: .utf8)
        let r = try runPlab(["replay", path, "--check"])
        #expect(r.status == 1)
        let lineNumber = text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0 == "1.01171875 -> 1.015625" }! + 1
        #expect(r.stderr.hasPrefix("replay of \(path) differs at line \(lineNumber) (in the output of line"))
        #expect(r.stderr.contains("- \(lineNumber)  1.01171875 -> 1.01\n"))
        #expect(r.stderr.contains("+ \(lineNumber)  1.01171875 -> 1.015625\n"))
        #expect(r.stderr.contains("1.00390625 -> 1.0\n"), "a line before it, for context")

        try "# plab 0.1.0 transcript\n# seed: zero\n".write(toFile: path, atomically: true, encoding: .utf8)
        let mangled = try runPlab(["replay", path, "--check"])
        #expect(mangled.status == 2)
        #expect(mangled.stderr == "plab: error: \(path):2: seed must be a non-negative integer, not 'zero'\n")
    }

    @Test func replayWithoutCheckPrintsTheNewTranscript() throws {
        let r = try runPlab(["replay", tour])
        #expect(r.status == 0)
        #expect(r.lines.first == "# plab 0.1.0 transcript")
        #expect(r.lines.contains("plab> formats"))
    }
}

/// Ctrl-C (SIGINT) without a terminal: a long command stops at its next safe point and
/// plab ends with status 130, naming where.
@Suite struct SignalTests {
    /// Starts plab, sends SIGINT after `delay` seconds, waits for it to end.
    func interrupt(_ arguments: [String], input: String, after delay: Double) throws -> RunResult {
        let process = Process()
        process.executableURL = plabExecutable
        process.arguments = arguments
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        try stdin.fileHandleForWriting.write(contentsOf: Data(input.utf8))
        Thread.sleep(forTimeInterval: delay)
        process.interrupt()
        let start = Date()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(Date().timeIntervalSince(start) < 5, "plab took too long to stop")
        return RunResult(status: process.terminationStatus, stdout: String(decoding: out, as: UTF8.self),
                         stderr: String(decoding: err, as: UTF8.self))
    }

    @Test func ctrlCStopsALongCommandFromAPipe() throws {
        let r = try interrupt([], input: "seed 3\naccumulate 1000000000000\nseed 4\n", after: 1)
        #expect(r.status == 130)
        #expect(r.lines == ["seed = 3"], "nothing after the interrupted command ran")
        #expect(r.stderr.contains("<stdin>:2: interrupted"))
    }

    @Test func ctrlCStopsPlabRun() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("plab-sig-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("long.plab").path
        try "seed 3\naccumulate 1000000000000\nseed 4\n".write(toFile: path, atomically: true, encoding: .utf8)
        let r = try interrupt(["run", path], input: "", after: 1)
        #expect(r.status == 130)
        #expect(r.stderr.contains("plab: interrupted at \(path):2"))
        #expect(r.stdout.contains("plab> accumulate 1000000000000\nerror: interrupted\n"))
        #expect(!r.stdout.contains("seed 4"))
    }

    @Test func ctrlCWhileWaitingForInputEndsAPipedSession() throws {
        let process = Process()
        process.executableURL = plabExecutable
        let stdin = Pipe()
        process.standardInput = stdin
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        Thread.sleep(forTimeInterval: 0.5)
        process.interrupt()
        process.waitUntilExit()
        #expect(process.terminationStatus == 130)
        try? stdin.fileHandleForWriting.close()
    }
}

/// Help text is written in paragraphs and wrapped by the argument parser to the terminal's
/// width: no line ends in the middle of a sentence because of a break in the source.
@Suite struct HelpTextTests {
    @Test(arguments: [["bench", "--help"], ["run", "--help"], ["replay", "--help"], ["cast", "--help"], ["shell", "--help"]])
    func discussionsAreParagraphsWrappedToTheWidth(arguments: [String]) throws {
        let r = try runPlab(arguments, environment: ["COLUMNS": "80"])
        #expect(r.status == 0)
        let lines = r.lines
        let usage = try #require(lines.firstIndex { $0.hasPrefix("USAGE:") })
        // The discussion is between the overview and the usage: each of its lines but a
        // paragraph's last is filled to more than half the width.
        var paragraph: [String] = []
        for line in lines[1..<usage] + [""] {
            if line.isEmpty {
                for filled in paragraph.dropLast() where !filled.hasPrefix(" ") && !filled.hasPrefix("Example") {
                    #expect(filled.count > 40, "\(arguments[0]): a short line inside a paragraph: '\(filled)'")
                }
                paragraph = []
            } else {
                paragraph.append(line)
            }
        }
        #expect(lines.allSatisfy { $0.count <= 80 || $0.hasPrefix("USAGE:") || $0.hasPrefix("  ") }, "\(arguments[0])")
    }
}

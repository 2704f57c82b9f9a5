// Nothing lost, nothing overwritten: the writing policy as commands use it, recordings that
// meet a full disk, checkpoints saved only where a checkpoint may go, replays that write
// nowhere but a scratch directory, and input bounded in time.

import Foundation
import Testing
import Lab
import Model

#if canImport(Glibc)
import Glibc
#endif

private let isRoot = getuid() == 0

private func fileType(_ path: String) -> mode_t {
    var st = stat()
    return lstat(path, &st) == 0 ? st.st_mode & S_IFMT : 0
}

private func transcriptLines(_ text: String) -> [ScriptLine] {
    let body = text.hasSuffix("\n") ? String(text.dropLast()) : text
    return body.split(separator: "\n", omittingEmptySubsequences: false).enumerated().map {
        ScriptLine(number: $0.offset + 1, text: String($0.element))
    }
}

@Suite struct WritingCommandsTests {
    @Test(.enabled(if: isRoot, "making device nodes needs root"))
    func exportAndRecordWriteADeviceInPlace() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let null = dir.appendingPathComponent("null").path, full = dir.appendingPathComponent("full").path
        #expect(mknod(null, S_IFCHR | 0o666, deviceNumber(1, 3)) == 0)
        #expect(mknod(full, S_IFCHR | 0o666, deviceNumber(1, 7)) == 0)
        let session = shellSession()
        let outcomes = run("accumulate 10", "export csv \(null)", "record \(null)", "seed", "record stop", in: session)
        #expect(outcomes == [.done, .done, .done, .done, .done])
        #expect(fileType(null) == S_IFCHR, "the node is still a character device")
        #expect(failure("export csv \(full)", in: session) == "export: cannot write '\(full)': No space left on device")
        #expect(failure("record \(full)", in: session) == "record: cannot write '\(full)': No space left on device")
        #expect(!session.isRecording)
        #expect(fileType(full) == S_IFCHR)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["full", "null"])
    }

    @Test func exportRefusesDirectoriesAndTheWorkingDirectory() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let session = shellSession()
        run("accumulate 10", in: session)
        #expect(failure("export csv \(dir.path)", in: session) == "export: cannot write '\(dir.path)': it is a directory; give a file name")
        #expect(failure("export csv .", in: session) == "export: '.' is the working directory; give a file to write")
        #expect(failure("export csv /", in: session) == "export: '/' is the root directory; give a file to write")
        #expect(failure("export csv \"\"", in: session).contains("an empty path"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).isEmpty)
    }

    @Test(.enabled(if: isRoot, "mounting a small file system needs root"))
    func aRecordingThatMeetsAFullDiskStopsAtThatCommand() throws {
        let disk = try temporaryDirectory()
        defer { _ = umount(disk.path); try? FileManager.default.removeItem(at: disk) }
        guard mount("tmpfs", disk.path, "tmpfs", 0, "size=8k") == 0 else { return }
        let path = disk.appendingPathComponent("session.transcript").path
        let session = shellSession()
        #expect(run("record \(path)", in: session) == [.done])
        // Each accumulate prints a few hundred bytes; the 8 KiB disk fills within 100.
        var failedAt: Int?
        var message = ""
        for i in 1...100 {
            if case .failed(let m) = session.execute("accumulate 100", to: CollectedOutput()) {
                failedAt = i
                message = m
                break
            }
        }
        #expect(failedAt != nil, "the command that met the full disk failed")
        #expect(message == "record: cannot write '\(path)': No space left on device; recording stopped")
        #expect(!session.isRecording)
        #expect(failure("record stop", in: session) == "record stop: not recording")
    }
}

@Suite struct CheckpointPlaceTests {
    @Test func modelSaveRefusesTheRootTheWorkingDirectoryAndItsAncestors() throws {
        let session = Session()
        let cwd = FileManager.default.currentDirectoryPath
        let before = try FileManager.default.contentsOfDirectory(atPath: cwd).sorted()
        #expect(failure("model save \"\"", in: session) == "model save: an empty path; give a checkpoint directory to write")
        #expect(failure("model save /", in: session) == "model save: '/' is the root directory; give a checkpoint directory to write")
        #expect(failure("model save .", in: session) == "model save: '.' is the working directory; give a checkpoint directory to write")
        #expect(failure("model save \(cwd)", in: session) == "model save: '\(cwd)' is the working directory; give a checkpoint directory to write")
        #expect(failure("model save ..", in: session) == "model save: '..' is an ancestor of the working directory; give a checkpoint directory to write")
        #expect(FileManager.default.currentDirectoryPath == cwd)
        #expect(try FileManager.default.contentsOfDirectory(atPath: cwd).sorted() == before)
    }

    @Test func modelSaveReplacesOnlyACheckpointOrAnEmptyDirectory() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let session = Session()
        let notes = dir.appendingPathComponent("notes")
        try FileManager.default.createDirectory(at: notes, withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: notes.appendingPathComponent("todo.txt"))
        #expect(failure("model save \(notes.path)", in: session).contains("is a directory that is not a checkpoint"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: notes.path) == ["todo.txt"])

        let empty = dir.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        #expect(run("model save \(empty.path)", in: session) == [.done])
        #expect(FileManager.default.fileExists(atPath: empty.appendingPathComponent("config.json").path))

        // A checkpoint with a tree inside is not copied: refused, and left as it was.
        try FileManager.default.createDirectory(at: empty.appendingPathComponent("runs/a"), withIntermediateDirectories: true)
        #expect(failure("model save \(empty.path)", in: session).contains("holds the directory 'runs'"))
        #expect(FileManager.default.fileExists(atPath: empty.appendingPathComponent("runs/a").path))
        // A checkpoint's other files are kept.
        try FileManager.default.removeItem(at: empty.appendingPathComponent("runs"))
        try Data("readme".utf8).write(to: empty.appendingPathComponent("README.md"))
        #expect(run("model save \(empty.path)", in: session) == [.done])
        #expect(try String(contentsOf: empty.appendingPathComponent("README.md"), encoding: .utf8) == "readme")
    }

    @Test func theNextSaveRemovesWhatAnInterruptedSaveLeftBehind() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // A process id that is not running: a child that has exited and been waited for.
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        let dead = child.processIdentifier
        let fm = FileManager.default
        let leftover = dir.appendingPathComponent(".ckpt.plab-save-\(dead)-0000").path
        let live = dir.appendingPathComponent(".ckpt.plab-save-\(getpid())-1111").path
        let other = dir.appendingPathComponent(".other.plab-save-\(dead)-2222").path
        for path in [leftover, live, other] {
            try fm.createDirectory(atPath: path, withIntermediateDirectories: true)
            try Data(count: 1024).write(to: URL(fileURLWithPath: path + "/model.safetensors"))
        }
        #expect(run("model save \(dir.appendingPathComponent("ckpt").path)", in: Session()) == [.done])
        #expect(!fm.fileExists(atPath: leftover), "a dead save's staging directory is removed")
        #expect(fm.fileExists(atPath: live), "a running save's is not")
        #expect(!fm.fileExists(atPath: other), "a dead save's for another name in the same directory is removed too")
    }
}

@Suite struct ReplaySandboxTests {
    let header = "# plab 0.1.0 transcript\n# seed: 0\n# backend: portable\n"

    func replayError(_ text: String) -> String {
        do { _ = try Transcript(lines: transcriptLines(text), name: "t.transcript").replay(name: "t.transcript") } catch {
            return (error as? LabError)?.message ?? "\(error)"
        }
        return ""
    }

    @Test func stateLinesMayOnlyRestoreState() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let target = dir.appendingPathComponent("ckpt").path
        let step = replayError(header + "# state: step 100000\nplab> seed\nseed = 0")
        #expect(step.hasPrefix("t.transcript:4: the header's '# state: step 100000' is refused: a state line may only restore state ("))
        #expect(step.contains("model load") && step.contains("precision preset") && step.contains("set"))
        let save = replayError(header + "# state: model new\n# state: model save \(target)\nplab> seed\nseed = 0")
        #expect(save.hasPrefix("t.transcript:5: the header's '# state: model save \(target)' is refused"))
        #expect(!FileManager.default.fileExists(atPath: target), "nothing ran: the header is checked whole first")
        #expect(replayError(header + "# state: nosuch\nplab> seed").hasPrefix("t.transcript:4: the header's '# state: nosuch' cannot run: unknown command"))
    }

    @Test func recordingAfterARolloutWarnsThatTheReplayStartsElsewhere() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let session = Session()
        run("set backend portable", "set max_new 4", "rollout 2", in: session)
        let r = runOne("record \(dir.appendingPathComponent("t.transcript").path)", in: session)
        #expect(r.lines.last == "warning: no command rebuilds the count of rollouts already drawn of this session, so a replay of this transcript starts without it")
        run("record stop", in: session)
        let fresh = Session()
        #expect(runOne("record \(dir.appendingPathComponent("u.transcript").path)", in: fresh).lines.count == 1, "a fresh session records with no warning")
        run("record stop", in: fresh)
    }

    @Test func eachStateLineIsShownBeforeItRuns() throws {
        let text = header + "# state: precision preset fp16\nplab> seed\nseed = 0"
        var shown: [String] = []
        let result = try Transcript(lines: transcriptLines(text), name: "t").replay(name: "t") { shown.append($0) }
        #expect(result.difference == nil)
        #expect(shown == ["t:4: # state: precision preset fp16"])
    }

    @Test func aReplayWritesOnlyIntoItsScratchDirectory() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let csv = dir.appendingPathComponent("metrics.csv").path
        let ckpt = dir.appendingPathComponent("mine").path
        let transcript = dir.appendingPathComponent("inner.transcript").path
        try Data("precious\n".utf8).write(to: URL(fileURLWithPath: csv))
        // Record a session that exports, records and saves then loads a checkpoint…
        let session = Session()
        session.settings = try { var s = session.settings; try s.set("backend", to: "portable"); return s }()
        let outer = dir.appendingPathComponent("outer.transcript").path
        let outcomes = run("record \(outer)", "accumulate 5", "export csv \(csv)", "model new layers=1 hidden=16 heads=2 kv_heads=1 intermediate=32",
                           "model save \(ckpt)", "model load \(ckpt)", "record stop", in: session)
        #expect(outcomes.allSatisfy { $0 == .done })
        let text = try String(contentsOfFile: outer, encoding: .utf8)
        // The user's files now change under them: the replay must not touch them.
        try Data("precious\n".utf8).write(to: URL(fileURLWithPath: csv))
        try FileManager.default.removeItem(atPath: ckpt)
        let replayed = try Transcript(lines: transcriptLines(text), name: "outer").replay(name: "outer")
        #expect(replayed.difference == nil, "\(replayed.difference ?? "")")
        #expect(try String(contentsOfFile: csv, encoding: .utf8) == "precious\n")
        #expect(!FileManager.default.fileExists(atPath: ckpt), "model save went to the scratch directory, and model load read it there")
        // A transcript edited by hand to record over a file (record is never transcribed, so
        // the replay differs there, but the command has run by then): the file stays.
        try Data("old transcript\n".utf8).write(to: URL(fileURLWithPath: transcript))
        let edited = text + "plab> record \(transcript)\nplab> seed\nseed = 0\n"
        _ = try Transcript(lines: transcriptLines(edited), name: "edited").replay(name: "edited", compare: false)
        #expect(try String(contentsOfFile: transcript, encoding: .utf8) == "old transcript\n")
    }
}

@Suite struct BoundedInputTests {
    /// A reader on a pipe fed by a thread that writes `chunk` until the reader closes it.
    func readEndless(_ chunk: [UInt8]) -> (items: [LineReader.Item], line: Int) {
        var fds: [Int32] = [0, 0]
        pipe(&fds)
        let (readEnd, writeEnd) = (fds[0], fds[1])
        let writer = Thread {
            signal(SIGPIPE, SIG_IGN)
            while chunk.withUnsafeBytes({ write(writeEnd, $0.baseAddress, $0.count) }) > 0 {}
            close(writeEnd)
        }
        writer.start()
        let reader = LineReader(fileDescriptor: readEnd)
        var items: [LineReader.Item] = []
        while let item = reader.next() { items.append(item) }
        let line = reader.lineNumber
        close(readEnd)  // the writer's next write fails and it stops
        return (items, line)
    }

    @Test func anEndlessStreamOfNULsIsRefusedAtOnce() {
        let got = readEndless(Array("seed 1\n".utf8) + [UInt8](repeating: 0, count: 4096))
        #expect(got.items == [.line("seed 1"), .binary])
        #expect(got.line == 2)
    }

    @Test func anEndlessLineIsRefusedOnceItPassesTheLimit() {
        let got = readEndless([UInt8](repeating: 65, count: 4096))
        #expect(got.items == [.tooLong])
    }

    @Test func aByteOrderMarkIsSkipped() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("bom.plab").path
        try Data([0xEF, 0xBB, 0xBF] + Array("seed 5\n\u{FEFF}x\n".utf8)).write(to: URL(fileURLWithPath: path))
        let lines = try readLines(ofFile: path)
        #expect(lines.map(\.text) == ["seed 5", "\u{FEFF}x"], "only the mark at the very start is skipped")
        let session = shellSession()
        #expect(run("source \(path)", in: session) == [.failed("source: \(path):2: unknown command '\u{FEFF}x' (try 'help')")])
        #expect(session.seed == 5)
    }
}

/// A device number as glibc's makedev(3) builds it (a macro, so not visible to Swift).
private func deviceNumber(_ major: UInt64, _ minor: UInt64) -> dev_t {
    dev_t(((major & 0xfff) << 8) | ((major & ~0xfff) << 32) | (minor & 0xff) | ((minor & ~0xff) << 12))
}

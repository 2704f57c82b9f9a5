import Foundation
import Testing
import Lab

@Suite struct LineReaderTests {
    func items(_ bytes: [UInt8]) throws -> [LineReader.Item] {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("f").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let reader = try LineReader(path: path)
        var out: [LineReader.Item] = []
        while let item = reader.next() { out.append(item) }
        return out
    }

    @Test func linesCRLFAndALastLineWithoutNewline() throws {
        #expect(try items(Array("a\r\n\nb c\nlast".utf8)) == [.line("a"), .line(""), .line("b c"), .line("last")])
        #expect(try items([]) == [])
        #expect(try items(Array("x\n".utf8)) == [.line("x")])
    }

    @Test func overlongBinaryAndNonUTF8Lines() throws {
        // An overlong or binary line ends the input: such a stream is not text commands.
        let long = [UInt8](repeating: 65, count: 3 * maxLineBytes)
        #expect(try items(Array("ok\n".utf8) + long + Array("\nafter\n".utf8)) == [.line("ok"), .tooLong])
        #expect(try items(Array("ok\n".utf8) + [0x61, 0, 0x62, 10] + Array("after\n".utf8)) == [.line("ok"), .binary])
        #expect(try items([0xFF, 10] + Array("after\n".utf8)) == [.notUTF8, .line("after")])
        #expect(try items([UInt8](repeating: 66, count: maxLineBytes + 1) + [10]) == [.tooLong])
        #expect(try items([UInt8](repeating: 66, count: maxLineBytes) + [13, 10, 67]) == [.line(String(repeating: "B", count: maxLineBytes)), .line("C")])
    }

    @Test func exactlyTheLimitIsAccepted() throws {
        let limit = [UInt8](repeating: 66, count: maxLineBytes)
        #expect(try items(limit + [10]) == [.line(String(repeating: "B", count: maxLineBytes))])
    }
}

// Ctrl-C is process-wide state (a signal sets it), so it is tested through the executable
// (PlabTests: SignalTests and the pseudo-terminal test), never in this process where tests
// run in parallel.

@Suite struct ProgressTests {
    @Test func barRateAndTimeLeft() {
        #expect(ProgressMeter.line(label: "steps", done: 40, total: 100, elapsed: 2, width: 10)
            == "steps [####------]  40%  20/s  3s left")
        #expect(ProgressMeter.line(label: "x", done: 3_000_000, total: 6_000_000, elapsed: 1, width: 4)
            == "x [##--]  50%  3.0M/s  1s left")
        #expect(ProgressMeter.line(label: "x", done: 0, total: 10, elapsed: 0, width: 4) == "x [----]   0%")
    }

    /// A display that records what it was asked to show.
    final class Recorder: ProgressDisplay {
        var shown: [String] = []
        var cleared = 0
        func show(_ line: String) { shown.append(line) }
        func clear() { cleared += 1 }
    }

    /// A command long enough to draw (over 0.3 s): the bar goes to the display, is cleared
    /// at the end, and never reaches the output.
    @Test func progressGoesToTheDisplayNeverToTheOutput() {
        let session = shellSession()
        let display = Recorder()
        session.progressDisplay = display
        let output = CollectedOutput()
        #expect(session.execute("accumulate 200000000", to: output) == .done)
        #expect(!display.shown.isEmpty)
        #expect(display.shown.allSatisfy { $0.hasPrefix("accumulate [") && $0.contains("left") })
        #expect(display.cleared >= 1)
        #expect(!output.lines.contains { $0.contains("accumulate [") })
    }
}

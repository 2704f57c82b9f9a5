// Reading commands from files and pipes: line by line, with limits, and running them.

import Foundation

/// One line of a session file, transcript or pipe, numbered from 1.
public struct ScriptLine: Sendable, Equatable {
    public var number: Int
    public var text: String

    public init(number: Int, text: String) {
        self.number = number
        self.text = text
    }
}

/// Reads text lines from a file descriptor without ever holding more than `maxLineBytes`
/// of one line. Lines end at `\n` (a `\r` before it is dropped); a last line without `\n`
/// counts; a UTF-8 byte-order mark at the start of the input is skipped. Input bounded in
/// time as well as size: a line longer than the limit, or one holding a NUL byte, is
/// reported as soon as the limit or the NUL is reached (even on an endless stream such as
/// /dev/zero), and the input ends there: such a stream is not text commands.
public final class LineReader {
    /// What one read produced.
    public enum Item: Sendable, Equatable {
        case line(String)
        /// A line longer than the limit; the input ends after it.
        case tooLong
        /// A line holding a NUL byte: binary data, not text; the input ends after it.
        case binary
        /// A line that is not valid UTF-8.
        case notUTF8
    }

    private let fd: Int32
    private let ownsDescriptor: Bool
    private var buffer = [UInt8](repeating: 0, count: 1 << 16)
    private var start = 0
    private var end = 0
    private var atEOF = false
    /// Set after a line that ends the input (too long, binary).
    private var refused = false
    /// The number of the line `next()` returned last.
    public private(set) var lineNumber = 0

    /// Reads from an open descriptor (standard input is 0); does not close it.
    public init(fileDescriptor: Int32) {
        fd = fileDescriptor
        ownsDescriptor = false
    }

    /// Opens a file for reading, or explains why it cannot. `label` names it in messages.
    public init(path: String, shownAs label: String? = nil) throws(LabError) {
        let shown = label ?? path
        if let problem = pathProblem(path, .readFile) { throw LabError("cannot read '\(shown)': \(problem)") }
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw LabError("cannot read '\(shown)': \(String(cString: strerror(errno)))") }
        fd = descriptor
        ownsDescriptor = true
    }

    deinit { if ownsDescriptor { close(fd) } }

    /// The next line, or nil at the end of the input (or after a refused line).
    public func next() -> Item? {
        if refused { return nil }
        var bytes: [UInt8] = []
        var sawAny = false
        while true {
            if start == end {
                if atEOF || !refill() {
                    if !sawAny { return nil }
                    break
                }
            }
            sawAny = true
            let chunkEnd = buffer[start..<end].firstIndex(of: 10) ?? end
            if buffer[start..<chunkEnd].contains(0) {
                lineNumber += 1
                refused = true
                return .binary
            }
            bytes.append(contentsOf: buffer[start..<chunkEnd])
            start = chunkEnd
            // One byte of slack for the `\r` of a CRLF line of exactly the limit.
            if bytes.count > maxLineBytes + 1 || (bytes.count == maxLineBytes + 1 && bytes.last != 13) {
                lineNumber += 1
                refused = true
                return .tooLong
            }
            if chunkEnd < end {
                start += 1  // past the newline
                break
            }
        }
        lineNumber += 1
        if bytes.last == 13 { bytes.removeLast() }
        if bytes.count > maxLineBytes {
            refused = true
            return .tooLong
        }
        if lineNumber == 1 && bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        guard let text = String(validating: bytes, as: UTF8.self) else { return .notUTF8 }
        return .line(text)
    }

    /// Reads more bytes; false at the end of the input or on an error.
    private func refill() -> Bool {
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                start = 0
                end = n
                return true
            }
            if n < 0 && errno == EINTR { continue }
            atEOF = true
            return false
        }
    }

    /// The error for a line that is not a command line, or nil for a good one.
    public static func problem(with item: Item) -> String? {
        switch item {
        case .line: return nil
        case .tooLong:
            return "line is longer than \(describeBytes(maxLineBytes)), the limit; reading stopped here"
        case .binary: return "binary data (a NUL byte); expected text commands; reading stopped here"
        case .notUTF8: return "not UTF-8 text"
        }
    }
}

/// Reads a whole text file of lines (a session file or transcript), refusing binary data
/// and over-long lines with `NAME:LINE:` errors before anything runs.
public func readLines(ofFile file: String, shownAs label: String? = nil) throws(LabError) -> [ScriptLine] {
    let path = label ?? file
    let reader = try LineReader(path: file, shownAs: path)
    var lines: [ScriptLine] = []
    while let item = reader.next() {
        if let problem = LineReader.problem(with: item) {
            if item == .binary { throw LabError("\(path):\(reader.lineNumber): binary file (a NUL byte); expected text") }
            throw LabError("\(path):\(reader.lineNumber): \(problem)")
        }
        if case .line(let text) = item { lines.append(ScriptLine(number: reader.lineNumber, text: text)) }
    }
    return lines
}

/// What running a session file came to.
public struct ScriptResult: Sendable, Equatable {
    /// The failed lines with their messages, in order.
    public var failures: [(line: Int, message: String)] = []
    public var interrupted = false
    public var quit = false

    public static func == (a: ScriptResult, b: ScriptResult) -> Bool {
        a.failures.map(\.line) == b.failures.map(\.line) && a.failures.map(\.message) == b.failures.map(\.message)
            && a.interrupted == b.interrupted && a.quit == b.quit
    }
}

extension Session {
    /// Runs the lines of a session file in order (blank lines and `#` comments do nothing).
    /// Stops at the first failing line unless `keepGoing`; always stops on Ctrl-C or `quit`.
    public func run(_ lines: [ScriptLine], to output: SessionOutput, keepGoing: Bool = false,
                    nested: Bool = false) -> ScriptResult {
        var result = ScriptResult()
        for line in lines {
            switch execute(line.text, to: output, nested: nested) {
            case .done: continue
            case .quit: result.quit = true
            case .interrupted: result.interrupted = true
            case .failed(let message):
                result.failures.append((line.number, message))
                if keepGoing { continue }
            }
            break
        }
        return result
    }
}

// Where the paths that commands are given lead on the file system.
//
// In a session the user drives, a path is what it says. A replayed transcript is a file
// people download and share, so during a replay every file a command writes goes into a
// scratch directory instead, under a name derived from the path it was given; a later
// command that reads that path (`model load` after `model save`) reads the scratch copy.
// Messages keep the path as written, so a replay prints what the recording printed.

import Files
import Foundation

/// The mapping from the paths commands are given to the paths they touch.
public final class FileAccess {
    /// The scratch directory every write goes to, or nil when paths are taken as given.
    public let scratch: String?
    /// The paths written so far in the scratch directory, by the path as given (normalised).
    private var written: [String: String] = [:]

    /// Paths taken as given.
    public init() { scratch = nil }

    /// Every write redirected into `scratch` (an existing, empty directory).
    public init(scratch: String) { self.scratch = scratch }

    /// A fresh scratch directory under the system's temporary directory.
    public static func makeScratch() throws(LabError) -> FileAccess {
        let base = (ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp")
        var template = Array((base + "/plab-replay-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        guard made != nil else { throw LabError("cannot make a scratch directory in \(base) for the replay: \(systemReason())") }
        return FileAccess(scratch: String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    /// Removes the scratch directory and everything written into it.
    public func removeScratch() {
        if let scratch { try? FileManager.default.removeItem(atPath: scratch) }
    }

    /// The path to write for `path`: itself, or its place in the scratch directory.
    public func forWriting(_ path: String) -> String {
        guard let scratch else { return path }
        let key = Self.normalised(path)
        if let mapped = written[key] { return mapped }
        let name = FileWriting.lastComponent(of: key)
        let safe = String(name.map { $0.isLetter || $0.isNumber || "._-".contains($0) ? $0 : "_" }).prefix(100)
        let mapped = scratch + "/\(written.count + 1)-" + (safe.isEmpty || safe == "." || safe == ".." ? "file" : String(safe))
        written[key] = mapped
        return mapped
    }

    /// The path to read for `path`: what a command of this replay wrote there, else itself.
    public func forReading(_ path: String) -> String {
        guard scratch != nil else { return path }
        let key = Self.normalised(path)
        if let mapped = written[key] { return mapped }
        for (written, mapped) in written where key.hasPrefix(written + "/") {
            return mapped + key.dropFirst(written.count)
        }
        return path
    }

    private static func normalised(_ path: String) -> String {
        FileWriting.normalised(path, from: FileManager.default.currentDirectoryPath)
    }
}

extension CommandContext {
    /// Writes a file the user named, by the lab's one writing policy (a regular file is
    /// replaced atomically, a device or FIFO written in place, directories and the working
    /// directory refused); in a replay, into its scratch directory.
    public func writeFile(_ data: Data, to path: String) throws(LabError) {
        do { try FileWriting.write(data, to: session.files.forWriting(path), shownAs: path) } catch {
            throw LabError(error.message)
        }
    }

    /// An existing readable file named by the user, as the path to open.
    public func readableFile(_ path: String) throws(LabError) -> String {
        let real = session.files.forReading(path)
        if let problem = pathProblem(real, .readFile) { throw LabError("cannot use '\(path)': \(problem)") }
        return real
    }

    /// An existing directory named by the user, as the path to open.
    public func existingDirectory(_ path: String) throws(LabError) -> String {
        let real = session.files.forReading(path)
        if let problem = pathProblem(real, .directory) { throw LabError("cannot use '\(path)': \(problem)") }
        return real
    }
}

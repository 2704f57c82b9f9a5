// Files that grow while a long run goes on and must never look complete before they are:
// the JSON lines and transcript of a sweep point. The bytes go to FILE.partial as they come
// (so a crash or a failure loses nothing written, and a watcher can follow the progress),
// and FILE appears only when the writer commits: one rename, after a flush to disk.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file written as it goes under `FILE.partial` and moved to `FILE` by `commit()`.
///
/// Where it goes is decided as `FileWriting.target` decides: a regular file (or a new name
/// in an existing directory) is staged; a character device or FIFO (`/dev/stdout`) is
/// written in place, since there is nothing to rename; a directory, `/`, the working
/// directory or one of its ancestors is refused. An existing `FILE.partial` (left by a run
/// that was killed or failed) is emptied and reused: it belongs to the same file. While it
/// is written it is locked (`flock`): a second writer of the same file is refused.
public final class StagedFile {
    /// The path as the user gave it, for messages.
    public let label: String
    /// The file that appears on `commit()` (symbolic links resolved); nil for a stream.
    public let finalPath: String?
    /// Where the bytes go until the commit (the stream itself for a device or FIFO).
    public let stagingPath: String
    private let output: OutputFile
    private var finished = false

    /// The staging name of `path`: the same name with `.partial` after it.
    public static func stagingPath(of path: String) -> String { path + ".partial" }

    /// Opens `path` for a staged write; nothing is created at `path` itself until `commit()`.
    public init(_ path: String, shownAs label: String? = nil) throws(FileError) {
        let shown = label ?? path
        self.label = shown
        switch try FileWriting.target(path, shownAs: shown) {
        case .stream(let streamPath):
            finalPath = nil
            stagingPath = streamPath
            output = try OutputFile(streamPath: streamPath, shownAs: shown)
        case .regularFile(let file):
            finalPath = file
            stagingPath = StagedFile.stagingPath(of: file)
            var old = stat()
            let mode: mode_t = stat(file, &old) == 0 ? old.st_mode & 0o7777 : 0o644
            let fd = open(stagingPath, O_WRONLY | O_CREAT | O_CLOEXEC, mode)
            guard fd >= 0 else { throw FileError("cannot write '\(shown).partial': \(systemReason())") }
            // One writer at a time: a second run of the same point (two runners over one
            // sweep) would interleave its lines with the first's. The lock goes with the
            // descriptor, so a killed writer leaves none.
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                let reason = errno == EWOULDBLOCK ? "another process is writing it (its .partial is locked)" : systemReason()
                close(fd)
                throw FileError("cannot write '\(shown)': \(reason)")
            }
            guard ftruncate(fd, 0) == 0 else {
                let reason = systemReason()
                close(fd)
                throw FileError("cannot write '\(shown).partial': \(reason)")
            }
            output = OutputFile(descriptor: fd, label: shown + ".partial")
        }
    }

    deinit { if !finished { try? output.close() } }

    /// Appends `data`, straight to the system (no buffer).
    public func write(_ data: Data) throws(FileError) { try output.write(data) }

    /// Appends `text` as UTF-8.
    public func write(_ text: String) throws(FileError) { try output.write(Data(text.utf8)) }

    /// Flushes the staged bytes to disk and renames them to the final name: from here on
    /// the file is complete. A stream is just closed.
    public func commit() throws(FileError) {
        guard !finished else { return }
        finished = true
        guard let finalPath else { try output.close(); return }
        try output.sync()
        try output.close()
        guard rename(stagingPath, finalPath) == 0 else {
            throw FileError("cannot write '\(label)': moving the new file into place failed: \(systemReason())")
        }
        FileWriting.syncDirectory(FileWriting.parentDirectory(of: finalPath))
    }

    /// Closes and removes the staged bytes (an interrupted run: nothing of it should stay).
    public func discard() {
        guard !finished else { return }
        finished = true
        try? output.close()
        if finalPath != nil { unlink(stagingPath) }
    }

    /// Closes the staged bytes and leaves them under `FILE.partial` (a failed run: what it
    /// wrote stays for reading, but never under the final name).
    public func keepPartial() {
        guard !finished else { return }
        finished = true
        try? output.close()
    }
}

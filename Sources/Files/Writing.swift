// The one policy for every file the lab writes: exports, transcripts, checkpoints, benchmark
// outputs. sqlite3's shell, coreutils and git are the model: never report success for a
// failed write, never touch a file nobody asked to write.
//
// - A regular file (or a name not yet taken) is replaced atomically: the bytes go to a
//   temporary file beside it, are flushed to disk, and the temporary is renamed over it.
//   A symbolic link is followed: the file it names is replaced, the link stays.
// - A character device or a FIFO (`/dev/stdout`, `/dev/null`, a named pipe) is written in
//   place and never renamed over: the node stays what it was.
// - A directory, an empty path, `/`, the working directory or one of its ancestors, a block
//   device or a socket is refused with the reason.
// - Every write, flush and close is checked; a failure throws a `FileError` naming the file
//   and the system's reason, and a failed atomic write leaves the old file as it was.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why a file could not be written (or read): one line naming the file and the reason.
public struct FileError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The system's reason for the last failed call (`strerror(errno)`).
public func systemReason(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

/// What a path names, seen as somewhere to write.
public enum WriteTarget: Sendable, Equatable {
    /// A regular file, or nothing yet in an existing directory: replaced atomically. The
    /// path is the one written: symbolic links resolved.
    case regularFile(path: String)
    /// A character device or FIFO: written in place.
    case stream(path: String)
}

public enum FileWriting {
    /// Where writing `path` would go, or the reason it is refused. Touches nothing.
    /// `label` is the path as the user gave it, for messages (default: `path`).
    public static func target(_ path: String, shownAs label: String? = nil) throws(FileError) -> WriteTarget {
        let shown = label ?? path
        try refuseProtected(path, as: "a file", shownAs: shown)
        var st = stat()
        if stat(path, &st) == 0 {
            switch st.st_mode & S_IFMT {
            case S_IFREG:
                guard let resolved = realPath(path) else { throw FileError("cannot write '\(shown)': \(systemReason())") }
                if access(resolved, W_OK) != 0 { throw FileError("cannot write '\(shown)': \(systemReason())") }
                return .regularFile(path: resolved)
            case S_IFCHR, S_IFIFO:
                return .stream(path: path)
            case S_IFDIR:
                throw FileError("cannot write '\(shown)': it is a directory; give a file name")
            case S_IFBLK:
                throw FileError("cannot write '\(shown)': it is a block device; plab writes regular files, character devices and FIFOs")
            default:
                throw FileError("cannot write '\(shown)': it is a socket or other special file; plab writes regular files, character devices and FIFOs")
            }
        }
        let missing = errno
        var lst = stat()
        if lstat(path, &lst) == 0 && (lst.st_mode & S_IFMT) == S_IFLNK {
            throw FileError("cannot write '\(shown)': it is a symbolic link to a missing file")
        }
        guard missing == ENOENT else { throw FileError("cannot write '\(shown)': \(systemReason(missing))") }
        let parent = parentDirectory(of: path)
        var pst = stat()
        guard stat(parent, &pst) == 0 else { throw FileError("cannot write '\(shown)': no such directory '\(parent)'") }
        guard (pst.st_mode & S_IFMT) == S_IFDIR else { throw FileError("cannot write '\(shown)': '\(parent)' is not a directory") }
        guard access(parent, W_OK) == 0 else { throw FileError("cannot write '\(shown)': directory '\(parent)' is not writable") }
        guard let resolvedParent = realPath(parent) else { throw FileError("cannot write '\(shown)': \(systemReason())") }
        let name = lastComponent(of: path)
        return .regularFile(path: resolvedParent == "/" ? "/" + name : resolvedParent + "/" + name)
    }

    /// Writes `bytes` to `path` by the policy above; throws with nothing changed (for a
    /// regular file) if any step fails.
    public static func write(_ bytes: some DataProtocol, to path: String, shownAs label: String? = nil) throws(FileError) {
        let data = Data(bytes)
        switch try target(path, shownAs: label) {
        case .stream(let streamPath):
            let stream = try OutputFile(streamPath: streamPath, shownAs: label ?? path)
            try stream.write(data)
            try stream.close()
        case .regularFile(let file):
            try replaceAtomically(file, with: data, shownAs: label ?? path)
        }
    }

    /// Writes a new regular file beside `file`, flushes it, and renames it over `file`.
    static func replaceAtomically(_ file: String, with data: Data, shownAs label: String) throws(FileError) {
        let directory = parentDirectory(of: file)
        let temporary = directory + "/." + lastComponent(of: file) + ".plab-tmp-\(getpid())-" + UUID().uuidString
        var old = stat()
        let mode: mode_t = stat(file, &old) == 0 ? old.st_mode & 0o7777 : 0o644
        do throws(FileError) {
            let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
            guard fd >= 0 else { throw FileError("cannot write '\(label)': \(systemReason())") }
            let output = OutputFile(descriptor: fd, label: label)
            try output.write(data)
            try output.sync()
            try output.close()
            guard rename(temporary, file) == 0 else {
                throw FileError("cannot write '\(label)': moving the new file into place failed: \(systemReason())")
            }
        } catch {
            unlink(temporary)
            throw error
        }
        syncDirectory(directory)
    }

    /// Refuses paths that must never be written over or replaced: the empty path, `/`, the
    /// working directory and its ancestors. `what` names the kind of thing to be written.
    public static func refuseProtected(_ path: String, as what: String, shownAs label: String? = nil) throws(FileError) {
        let shown = label ?? path
        guard !path.isEmpty else { throw FileError("an empty path; give \(what) to write") }
        guard let resolved = realPath(path) ?? realPath(parentDirectory(of: path)).map({ parent in
            parent == "/" ? "/" + lastComponent(of: path) : parent + "/" + lastComponent(of: path)
        }) else { return }
        if resolved == "/" { throw FileError("'\(shown)' is the root directory; give \(what) to write") }
        if let cwd = realPath(".") {
            if cwd == resolved { throw FileError("'\(shown)' is the working directory; give \(what) to write") }
            if cwd.hasPrefix(resolved + "/") {
                throw FileError("'\(shown)' is an ancestor of the working directory; give \(what) to write")
            }
        }
    }

    /// The directory holding `path`: what comes before its last `/` (`/` itself for `/x`),
    /// or `.` for a bare name. Written on the characters rather than with Foundation's
    /// `deletingLastPathComponent`, which traps on a one-character name on Linux.
    public static func parentDirectory(of path: String) -> String {
        let trimmed = trailingSlashesRemoved(path)
        guard let slash = trimmed.lastIndex(of: "/") else { return "." }
        return slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
    }

    /// The last component of `path` (`c` for `a/b/c` and `a/b/c/`); `/` for `/`.
    public static func lastComponent(of path: String) -> String {
        let trimmed = trailingSlashesRemoved(path)
        guard let slash = trimmed.lastIndex(of: "/") else { return String(trimmed) }
        let name = trimmed[trimmed.index(after: slash)...]
        return name.isEmpty ? "/" : String(name)
    }

    /// An absolute path with `.`, `..` and repeated `/` resolved as text (no file-system
    /// access, symbolic links left alone); a relative path is taken from `directory`.
    public static func normalised(_ path: String, from directory: String) -> String {
        let absolute = path.hasPrefix("/") ? path : directory + "/" + path
        var parts: [Substring] = []
        for part in absolute.split(separator: "/") {
            if part == "." { continue }
            if part == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    private static func trailingSlashesRemoved(_ path: String) -> Substring {
        var trimmed = Substring(path)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        return trimmed
    }

    /// The canonical absolute path, symbolic links resolved; nil if it does not exist.
    public static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Flushes a directory's entries (new names, renames) to disk; best effort.
    public static func syncDirectory(_ path: String) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { _ = fsync(fd); close(fd) }
    }
}

/// A file open for writing whose every write is checked: a transcript being recorded, a
/// character device, the bytes of an atomic replacement. Writes go straight to the system
/// (no buffer), so what was written is on its way even if the process dies next.
public final class OutputFile {
    private var fd: Int32
    /// The path as the user gave it, for messages.
    public let label: String

    init(descriptor: Int32, label: String) {
        fd = descriptor
        self.label = label
    }

    /// Opens a character device or FIFO for writing in place (a FIFO with no reader is
    /// refused rather than waited on).
    convenience init(streamPath: String, shownAs label: String) throws(FileError) {
        var fd = posixOpen(streamPath, O_WRONLY | O_NONBLOCK | O_CLOEXEC, 0)
        if fd < 0 {
            if errno == ENXIO { throw FileError("cannot write '\(label)': it is a FIFO that no process is reading") }
            throw FileError("cannot write '\(label)': \(systemReason())")
        }
        let flags = fcntl(fd, F_GETFL)
        if flags >= 0 { _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) }
        if fd < 3 {  // never hold a standard descriptor number
            let moved = fcntl(fd, F_DUPFD_CLOEXEC, 3)
            _ = posixClose(fd)
            fd = moved
        }
        self.init(descriptor: fd, label: label)
    }

    /// Opens `path` to be written as it goes (a transcript): a regular file is created or
    /// emptied in place; a character device or FIFO is written in place. Refused as
    /// `FileWriting.target` refuses.
    public static func open(forStreaming path: String, shownAs label: String? = nil) throws(FileError) -> OutputFile {
        let shown = label ?? path
        switch try FileWriting.target(path, shownAs: shown) {
        case .stream(let streamPath):
            return try OutputFile(streamPath: streamPath, shownAs: shown)
        case .regularFile(let file):
            let fd = posixOpen(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw FileError("cannot write '\(shown)': \(systemReason())") }
            return OutputFile(descriptor: fd, label: shown)
        }
    }

    deinit { if fd >= 0 { _ = posixClose(fd) } }

    /// The open descriptor (-1 once closed): to hand the file to a child process as its
    /// standard output or error. It stays owned by this object.
    public var descriptor: Int32 { fd }

    /// Writes all of `data`, or throws naming the file and the reason.
    public func write(_ data: Data) throws(FileError) {
        guard fd >= 0 else { throw FileError("cannot write '\(label)': it is closed") }
        var failure: Int32 = 0
        data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            var done = 0
            while done < bytes.count {
                let n = posixWrite(fd, bytes.baseAddress! + done, bytes.count - done)
                if n < 0 && errno == EINTR { continue }
                if n < 0 { failure = errno; return }
                if n == 0 { failure = EIO; return }
                done += n
            }
        }
        if failure != 0 { throw FileError("cannot write '\(label)': \(systemReason(failure))") }
    }

    /// Flushes what was written to the disk (regular files; devices and FIFOs need not).
    public func sync() throws(FileError) {
        if fsync(fd) != 0 && errno != EINVAL && errno != EROFS {
            throw FileError("cannot write '\(label)': flushing to disk failed: \(systemReason())")
        }
    }

    /// Closes the file; a deferred write error (NFS, some file systems) is reported here.
    public func close() throws(FileError) {
        guard fd >= 0 else { return }
        let result = posixClose(fd)
        fd = -1
        if result != 0 && errno != EINTR { throw FileError("cannot write '\(label)': closing failed: \(systemReason())") }
    }
}

// The system calls by names that the methods above (`write`, `close`) do not shadow.
private func posixOpen(_ path: String, _ flags: Int32, _ mode: mode_t) -> Int32 { open(path, flags, mode) }
private func posixWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int { write(fd, bytes, count) }
private func posixClose(_ fd: Int32) -> Int32 { close(fd) }

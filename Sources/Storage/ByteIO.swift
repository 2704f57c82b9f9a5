// Reading and writing bytes for checkpoints and safetensors: byte sources (a file read with
// pread, a buffer), small-file reads with limits, JSON values in messages, and flushed file
// writes.

import Files
import JSON
import Foundation
import Numerics
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: Helpers shared with Checkpoint.swift

/// File and JSON plumbing for safetensors and checkpoints (internal).
enum CheckpointIO {

    /// The product of the dimensions, or nil when one is negative or the product overflows.
    static func elementCount(_ shape: [Int]) -> Int? {
        var n = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, o) = n.multipliedReportingOverflow(by: d)
            if o { return nil }
            n = p
        }
        return n
    }

    /// A JSON value as short text for an error message.
    static func describe(_ value: JSONValue?) -> String {
        guard let value else { return "nothing" }
        switch value {
        case .string(let s): return quoted(s)
        case .array(let list): return "[" + list.map { describe($0) }.joined(separator: ", ") + "]"
        case .object: return "an object"
        default: return value.serialized
        }
    }

    /// Text in double quotes, shortened when long.
    static func quoted(_ text: String) -> String {
        text.count > 80 ? "\"\(text.prefix(77))...\"" : "\"\(text)\""
    }

    /// A list of names for an error message, shortened when long.
    static func listed(_ names: [String], limit: Int = 8) -> String {
        if names.isEmpty { return "none" }
        let shown = names.prefix(limit).joined(separator: ", ")
        return names.count > limit ? "\(shown), … (\(names.count) in all)" : shown
    }

    /// A string as a JSON string literal (the lab's one escaper, `JSONWriter`).
    static func jsonString(_ s: String) -> String {
        var out = ""
        JSONWriter.writeString(s, to: &out)
        return out
    }

    // MARK: Byte sources

    /// Bytes that can be read at an offset: a file or a buffer in memory.
    protocol ByteSource {
        /// A name for messages (the file's name).
        var label: String { get }
        var byteCount: Int { get }
        /// Fills `buffer` with the bytes at `offset`; fails if they are not all there.
        func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(NumericsError)
    }

    /// Fills an array's bytes from a source at an offset.
    static func fill<T>(_ array: inout [T], from source: some ByteSource, at offset: Int) throws(NumericsError) {
        var failure: NumericsError?
        array.withUnsafeMutableBytes { b in
            do throws(NumericsError) { try source.read(at: offset, into: b) } catch { failure = error }
        }
        if let failure { throw failure }
    }

    struct DataSource: ByteSource {
        let data: Data
        let label: String
        var byteCount: Int { data.count }
        func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(NumericsError) {
            guard offset >= 0, offset + buffer.count <= data.count else {
                throw .invalidArgument("\(label): bytes \(offset)..<\(offset + buffer.count) are past the end (\(data.count) bytes)")
            }
            let start = data.startIndex + offset
            data.copyBytes(to: buffer.bindMemory(to: UInt8.self), from: start..<(start + buffer.count))
        }
    }

    /// A file opened for reading (closed when the value goes away), optionally relative to an
    /// open directory so that all the files of one checkpoint come from the same directory.
    final class OpenFile {
        let fd: Int32
        let label: String
        let size: Int

        /// Opens a file; `missingOK` makes a missing file return nil instead of failing.
        convenience init?(path: String, relativeTo directory: Int32? = nil, label: String,
                          missingOK: Bool) throws(NumericsError) {
            let fd = directory.map { openat($0, path, O_RDONLY | O_CLOEXEC) } ?? open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                if missingOK && errno == ENOENT { return nil }
                throw .invalidArgument("cannot open \(path): \(String(cString: strerror(errno)))")
            }
            try self.init(fd: fd, path: path, label: label)
        }

        /// Opens a file that must exist.
        convenience init(path: String, label: String) throws(NumericsError) {
            try self.init(path: path, label: label, missingOK: false)!
        }

        /// Takes ownership of an open descriptor; it must be a regular file.
        init(fd: Int32, path: String, label: String) throws(NumericsError) {
            var st = stat()
            guard fstat(fd, &st) == 0 else {
                let message = String(cString: strerror(errno))
                close(fd)
                throw .invalidArgument("cannot read \(path): \(message)")
            }
            guard (st.st_mode & S_IFMT) == S_IFREG else {
                close(fd)
                throw .invalidArgument("\(path) is not a regular file")
            }
            self.fd = fd
            self.label = label
            self.size = Int(st.st_size)
        }

        deinit { close(fd) }

        func source() -> DescriptorSource { DescriptorSource(file: self) }

        /// The whole file (callers check the size first where it matters).
        func readAll() throws(NumericsError) -> Data {
            var bytes = [UInt8](repeating: 0, count: size)
            try CheckpointIO.fill(&bytes, from: source(), at: 0)
            return Data(bytes)
        }
    }

    struct DescriptorSource: ByteSource {
        let file: OpenFile
        var label: String { file.label }
        var byteCount: Int { file.size }
        func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(NumericsError) {
            var done = 0
            while done < buffer.count {
                let n = pread(file.fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
                if n < 0 && errno == EINTR { continue }
                if n < 0 { throw .invalidArgument("\(label): read failed: \(String(cString: strerror(errno)))") }
                if n == 0 {
                    throw .invalidArgument("\(label): the file ended at byte \(offset + done) while \(offset + buffer.count) were expected (it was truncated while being read)")
                }
                done += n
            }
        }
    }

    // MARK: Writing files

    /// Writes bytes to a new file and flushes them to disk; fails if the file exists.
    static func writeNewFile(_ data: Data, to path: String) throws(NumericsError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .invalidArgument("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var failure: String?
        data.withUnsafeBytes { (b: UnsafeRawBufferPointer) in
            var done = 0
            while done < b.count {
                let n = posixWrite(fd, b.baseAddress! + done, b.count - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { failure = String(cString: strerror(errno)); return }
                done += n
            }
        }
        if let failure { throw .invalidArgument("cannot write \(path): \(failure)") }
        guard fsync(fd) == 0 else { throw .invalidArgument("cannot flush \(path) to disk: \(String(cString: strerror(errno)))") }
    }

    @inline(__always)
    private static func posixWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
        #if canImport(Glibc)
        return Glibc.write(fd, p, n)
        #else
        return Darwin.write(fd, p, n)
        #endif
    }

    /// Flushes a directory's entries (new names, renames) to disk; best effort.
    static func syncDirectory(_ path: String) { FileWriting.syncDirectory(path) }
}

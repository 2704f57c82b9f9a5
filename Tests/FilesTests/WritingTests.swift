import Files
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A fresh temporary directory, removed by the caller.
func scratchDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "plab-files-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

func fileType(_ path: String) -> mode_t {
    var st = stat()
    return lstat(path, &st) == 0 ? st.st_mode & S_IFMT : 0
}

/// Mounts a tmpfs of `bytes` at a new directory (root only); the caller unmounts it.
func smallFileSystem(bytes: Int) throws -> String? {
    guard getuid() == 0 else { return nil }
    let mountPoint = try scratchDirectory()
    guard mount("tmpfs", mountPoint, "tmpfs", 0, "size=\(bytes)") == 0 else {
        try? FileManager.default.removeItem(atPath: mountPoint)
        return nil
    }
    return mountPoint
}

func unmount(_ mountPoint: String) {
    _ = umount(mountPoint)
    try? FileManager.default.removeItem(atPath: mountPoint)
}

let isRoot = getuid() == 0

@Suite struct WritingPolicyTests {
    @Test func aRegularFileIsReplacedWholeAndKeepsItsMode() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/metrics.csv"
        try FileWriting.write(Data("old\n".utf8), to: path)
        chmod(path, 0o600)
        try FileWriting.write(Data("new\n".utf8), to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "new\n")
        var st = stat()
        stat(path, &st)
        #expect(st.st_mode & 0o777 == 0o600)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["metrics.csv"])  // no temporary left
    }

    @Test func aSymbolicLinkIsFollowedAndStaysALink() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data("old".utf8).write(to: URL(fileURLWithPath: dir + "/target"))
        symlink(dir + "/target", dir + "/link")
        try FileWriting.write(Data("new".utf8), to: dir + "/link")
        #expect(fileType(dir + "/link") == S_IFLNK)
        #expect(try String(contentsOfFile: dir + "/target", encoding: .utf8) == "new")
        symlink(dir + "/missing", dir + "/dangling")
        #expect(throws: FileError.self) { try FileWriting.write(Data("x".utf8), to: dir + "/dangling") }
        #expect(fileType(dir + "/missing") == 0)
    }

    @Test(.enabled(if: isRoot, "making device nodes needs root"))
    func aCharacterDeviceIsWrittenInPlaceNeverRenamedOver() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let null = dir + "/null", full = dir + "/full"
        #expect(mknod(null, S_IFCHR | 0o666, deviceNumber(1, 3)) == 0)
        #expect(mknod(full, S_IFCHR | 0o666, deviceNumber(1, 7)) == 0)
        try FileWriting.write(Data("10 rows\n".utf8), to: null)
        #expect(fileType(null) == S_IFCHR)
        let error = #expect(throws: FileError.self) { try FileWriting.write(Data("10 rows\n".utf8), to: full) }
        #expect(error?.message == "cannot write '\(full)': No space left on device")
        #expect(fileType(full) == S_IFCHR)
        let stream = try OutputFile.open(forStreaming: null)
        try stream.write(Data("a transcript line\n".utf8))
        try stream.close()
        #expect(fileType(null) == S_IFCHR)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["full", "null"])
    }

    @Test func aFIFOIsWrittenInPlaceAndOneWithoutAReaderIsRefused() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fifo = dir + "/pipe"
        #expect(mkfifo(fifo, 0o600) == 0)
        let error = #expect(throws: FileError.self) { try FileWriting.write(Data("x".utf8), to: fifo) }
        #expect(error?.message.contains("FIFO that no process is reading") == true)
        let reader = open(fifo, O_RDONLY | O_NONBLOCK)
        #expect(reader >= 0)
        defer { close(reader) }
        try FileWriting.write(Data("through the pipe".utf8), to: fifo)
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = read(reader, &buffer, buffer.count)
        #expect(String(decoding: buffer.prefix(max(n, 0)), as: UTF8.self) == "through the pipe")
        #expect(fileType(fifo) == S_IFIFO)
    }

    @Test func directoriesTheRootAndTheWorkingDirectoryAreRefused() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cwd = FileManager.default.currentDirectoryPath
        let parent = (cwd as NSString).deletingLastPathComponent
        let cases: [(String, String)] = [
            ("", "an empty path"),
            ("/", "is the root directory"),
            (".", "is the working directory"),
            (cwd, "is the working directory"),
            ("..", "is an ancestor of the working directory"),
            (parent, "is an ancestor of the working directory"),
            (dir, "it is a directory"),
            (dir + "/no/such/file", "no such directory"),
        ]
        for (path, reason) in cases {
            let error = #expect(throws: FileError.self, "\(path)") { try FileWriting.write(Data("x".utf8), to: path) }
            #expect(error?.message.contains(reason) == true, "\(path): \(error?.message ?? "")")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }

    @Test(.enabled(if: isRoot, "mounting a small file system needs root"))
    func aFullDiskFailsTheWriteAndKeepsTheOldFile() throws {
        guard let disk = try smallFileSystem(bytes: 64 << 10) else { return }
        defer { unmount(disk) }
        let path = disk + "/metrics.csv"
        try FileWriting.write(Data("old\n".utf8), to: path)
        let big = Data(repeating: 65, count: 256 << 10)
        let error = #expect(throws: FileError.self) { try FileWriting.write(big, to: path) }
        #expect(error?.message == "cannot write '\(path)': No space left on device")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "old\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: disk) == ["metrics.csv"])

        let stream = try OutputFile.open(forStreaming: disk + "/session.transcript")
        var failure: FileError?
        for _ in 0..<100 where failure == nil {
            do { try stream.write(Data(repeating: 66, count: 4096)) } catch { failure = error }
        }
        #expect(failure?.message == "cannot write '\(disk)/session.transcript': No space left on device")
    }

    @Test func pathPartsAreTakenFromTheTextOneLetterNamesIncluded() {
        // Foundation's deletingLastPathComponent traps on a one-character name on Linux.
        let cases: [(String, String, String)] = [
            ("x", ".", "x"), ("/x", "/", "x"), ("a/b", "a", "b"), ("a/b/", "a", "b"), ("/", "/", "/"),
            ("//x", "/", "x"), ("dir/sub/file.csv", "dir/sub", "file.csv"), ("./y", ".", "y"),
        ]
        for (path, parent, last) in cases {
            #expect(FileWriting.parentDirectory(of: path) == parent, "\(path)")
            #expect(FileWriting.lastComponent(of: path) == last, "\(path)")
        }
        #expect(FileWriting.normalised("a/./b/../c//d", from: "/w") == "/w/a/c/d")
        #expect(FileWriting.normalised("/../x", from: "/w") == "/x")
        #expect(FileWriting.normalised(".", from: "/w/v") == "/w/v")
    }

    @Test func aOneLetterNameInTheWorkingDirectoryIsATarget() throws {
        let x = try FileWriting.target("x")
        #expect(x == .regularFile(path: try #require(FileWriting.realPath(".")) + "/x"))
    }

    @Test func aLabelNamesThePathAsTheUserGaveIt() throws {
        let error = #expect(throws: FileError.self) {
            try FileWriting.write(Data("x".utf8), to: "/no-such-dir-\(UUID().uuidString)/x", shownAs: "metrics.csv")
        }
        #expect(error?.message.hasPrefix("cannot write 'metrics.csv'") == true)
    }
}

/// A device number as glibc's makedev(3) builds it (a macro, so not visible to Swift).
private func deviceNumber(_ major: UInt64, _ minor: UInt64) -> dev_t {
    dev_t(((major & 0xfff) << 8) | ((major & ~0xfff) << 32) | (minor & 0xff) | ((minor & ~0xff) << 12))
}

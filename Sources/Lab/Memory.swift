// Memory checked before it is spent: how much the lab may still allocate, and the check that
// refuses a command whose estimate (Engines/MemoryEstimate.swift) is larger, with both figures
// and the setting to lower, before anything is allocated or changed.

import Engines
import Foundation

/// How much memory the lab may still allocate, and where the figure comes from.
public struct AvailableMemory: Sendable, Equatable {
    public var bytes: Int
    /// Where the figure comes from, for messages: "MemAvailable", "cgroup limit", ….
    public var source: String

    /// The text the source gave, when a person wrote it (`PLAB_MEMORY_LIMIT`'s "20M").
    public var given: String?

    public init(bytes: Int, source: String, given: String? = nil) {
        self.bytes = bytes
        self.source = source
        self.given = given
    }

    /// The source for messages: `PLAB_MEMORY_LIMIT=20M, in powers of 1024` when a person gave
    /// the figure (messages print sizes in powers of 1000, so 20M reads as 21.0 MB).
    public var described: String { given.map { "\(source)=\($0), in powers of 1024" } ?? source }

    /// The system's figure.
    ///
    /// Linux: `MemAvailable` from /proc/meminfo (free memory plus what the kernel can reclaim
    /// without swapping), capped by the headroom of the process's memory cgroup and of each
    /// ancestor that has a limit: limit − (usage − inactive file pages). cgroup v2 reads
    /// memory.max, memory.current and `inactive_file` of memory.stat; v1 memory.limit_in_bytes,
    /// memory.usage_in_bytes and `total_inactive_file`. The inactive page cache a cgroup's
    /// usage includes is reclaimable, as MemAvailable counts it.
    ///
    /// Elsewhere (macOS): the physical memory. An upper bound — the system compresses and
    /// swaps before an allocation fails — that still refuses what could never fit.
    ///
    /// nil when nothing can be read (then nothing is refused).
    public static func system() -> AvailableMemory? {
        #if os(Linux)
        var best: AvailableMemory? = nil
        func consider(_ bytes: Int?, _ source: String) {
            guard let bytes else { return }
            if best == nil || bytes < best!.bytes { best = AvailableMemory(bytes: max(bytes, 0), source: source) }
        }
        if let meminfo = readText("/proc/meminfo") {
            consider(keyedValue(meminfo, "MemAvailable:").map { $0 * 1024 }, "MemAvailable")
        }
        for headroom in cgroupHeadrooms() { consider(headroom, "cgroup limit") }
        return best
        #else
        let physical = ProcessInfo.processInfo.physicalMemory
        return physical > 0 ? AvailableMemory(bytes: Int(clamping: physical), source: "physical memory") : nil
        #endif
    }

    /// A size as `PLAB_MEMORY_LIMIT` gives it: bytes, or a number with K, M, G or T (powers of
    /// 1024; `KB`, `KiB`, … too). nil if it is not one.
    public static func parseSize(_ text: String) -> Int? {
        var t = text.trimmingCharacters(in: .whitespaces).uppercased()
        for suffix in ["IB", "B"] where t.hasSuffix(suffix) && t.count > suffix.count {
            t.removeLast(suffix.count)
            break
        }
        var scale = 1.0
        if let last = t.last, let power = ["K": 1, "M": 2, "G": 3, "T": 4][String(last)] {
            scale = pow(1024, Double(power))
            t.removeLast()
        }
        guard !t.isEmpty, t.allSatisfy({ $0.isNumber || $0 == "." }), let x = Double(t), x.isFinite, x >= 0 else { return nil }
        let bytes = (x * scale).rounded()
        return bytes < 0x1p62 ? Int(bytes) : nil
    }
}

#if os(Linux)
private func readText(_ path: String) -> String? { try? String(contentsOfFile: path, encoding: .utf8) }

/// The number after `key` on its line ("MemAvailable:   23558940 kB" gives 23558940).
private func keyedValue(_ text: String, _ key: String) -> Int? {
    for line in text.split(separator: "\n") where line.hasPrefix(key) {
        return line.dropFirst(key.count).split(separator: " ").first.flatMap { Int($0) }
    }
    return nil
}

/// The headroom of every memory cgroup from the process's own up to the root that has a
/// limit: limit − (usage − inactive file pages).
private func cgroupHeadrooms() -> [Int] {
    guard let membership = readText("/proc/self/cgroup") else { return [] }
    var out: [Int] = []
    for line in membership.split(separator: "\n") {
        // "0::/PATH" (v2) or "4:memory:/PATH" (v1, the memory controller possibly among others).
        let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
        guard fields.count == 3 else { continue }
        let v2 = fields[0] == "0" && fields[1].isEmpty
        let v1 = fields[1].split(separator: ",").contains("memory")
        guard v2 || v1 else { continue }
        let root = v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory"
        var path = String(fields[2])
        while true {
            let dir = root + (path == "/" ? "" : path)
            if let h = headroom(dir, v2: v2) { out.append(h) }
            if path == "/" || path.isEmpty { break }
            path = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
            if path.isEmpty { path = "/" }
        }
    }
    return out
}

/// One cgroup directory's headroom; nil without a limit (or without the files).
private func headroom(_ dir: String, v2: Bool) -> Int? {
    let (limitFile, usageFile, inactiveKey) = v2 ? ("memory.max", "memory.current", "inactive_file ")
                                                 : ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file ")
    guard let limitText = readText(dir + "/" + limitFile)?.trimmingCharacters(in: .whitespacesAndNewlines),
          let limit = Int(limitText), limit < 1 << 60,  // "max" (v2) or a page-rounded 2^63 (v1): no limit
          let usage = readText(dir + "/" + usageFile).flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
    else { return nil }
    let inactive = readText(dir + "/memory.stat").flatMap { keyedValue($0, inactiveKey) } ?? 0
    return limit - max(usage - inactive, 0)
}
#endif

/// `7.3 GB`, `512.0 MB`: a byte count in decimal units, as `free -h --si` and error messages
/// of allocators print them.
func memoryFigure(_ bytes: Int) -> String {
    let x = Double(bytes)
    for (unit, size) in [("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)] where x >= size {
        return String(format: "%.1f", x / size) + " " + unit
    }
    return "\(bytes) bytes"
}

extension Session {
    /// The memory a command may allocate: `availableMemoryOverride` when set (tests);
    /// else `PLAB_MEMORY_LIMIT` from the environment (bytes, or K/M/G/T); else the system's
    /// figure (`AvailableMemory.system()`). nil: unknown, nothing is refused.
    public func availableMemory() throws(LabError) -> AvailableMemory? {
        if let bytes = availableMemoryOverride { return AvailableMemory(bytes: bytes, source: "the session's limit") }
        if let text = ProcessInfo.processInfo.environment["PLAB_MEMORY_LIMIT"], !text.isEmpty {
            guard let bytes = AvailableMemory.parseSize(text) else {
                throw LabError("PLAB_MEMORY_LIMIT='\(text)' is not a size; accepted: bytes, or a number with K, M, G or T (powers of 1024), e.g. 8G")
            }
            return AvailableMemory(bytes: bytes, source: "PLAB_MEMORY_LIMIT", given: text)
        }
        return AvailableMemory.system()
    }

    /// Refuses a command that would need more memory than is available, before it allocates
    /// anything: "needs about 7.3 GB (KV cache 4.1 GB, …) but 5.2 GB is available
    /// (MemAvailable); lower N or max_new". `advice` says what to lower.
    public func checkMemory(_ estimate: MemoryEstimate, advice: String) throws(LabError) {
        guard let available = try availableMemory() else { return }
        let need = estimate.total
        guard need > available.bytes else { return }
        let terms = estimate.largestFirst
        var parts = terms.prefix(3).map { "\($0.name) \(memoryFigure($0.bytes))" }
        if terms.count > 3 { parts.append("…") }
        throw LabError("needs about \(memoryFigure(need)) (\(parts.joined(separator: ", "))) but \(memoryFigure(available.bytes)) is available (\(available.described)); \(advice)")
    }
}

// The safetensors format: reading (F32, BF16, F16 → float32, exactly) and writing (F32).
//
// A file is an 8-byte little-endian header length N, N bytes of JSON header
// `{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {string: string}}`,
// then the data; offsets are relative to the first byte after the header. The reader
// checks everything before it allocates anything sized by the file, and reports each
// problem as a `NumericsError` naming the file, the tensor and what would be accepted.

import Files
import JSON
import Foundation
import Numerics
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An element type a safetensors file can declare for a tensor.
///
/// All are recognised (so shapes and offsets can be checked); F32, BF16 and F16 can be
/// converted to float32, which is exact for all three.
public enum SafeTensorsDType: String, Sendable, Hashable, CaseIterable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case f8e4m3 = "F8_E4M3", f8e5m2 = "F8_E5M2"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8"
    case u64 = "U64", u32 = "U32", u16 = "U16", u8 = "U8"
    case bool = "BOOL"

    /// Bytes per element.
    public var byteCount: Int {
        switch self {
        case .f64, .i64, .u64: return 8
        case .f32, .i32, .u32: return 4
        case .f16, .bf16, .i16, .u16: return 2
        case .f8e4m3, .f8e5m2, .i8, .u8, .bool: return 1
        }
    }

    /// Whether the reader converts this type to float32.
    public var isReadable: Bool { self == .f32 || self == .bf16 || self == .f16 }

    /// The dtypes the reader converts, for error messages.
    public static let readableNames = "F32, BF16, F16"
}

/// One tensor as float32 values in row-major order, with its shape.
public struct SafeTensor: Sendable {
    /// The shape; `[]` is a scalar (one value).
    public let shape: [Int]
    /// The values, `shape.reduce(1, *)` of them, row-major.
    public let values: [Float]
    /// The element type the tensor had in the file it was read from (F32 for a tensor
    /// made in memory; tensors are always written as F32).
    public let storedType: SafeTensorsDType

    /// A tensor from values and a shape; the shape's element count must equal `values.count`.
    public init(shape: [Int], values: [Float]) throws(NumericsError) {
        guard let count = CheckpointIO.elementCount(shape) else {
            throw .invalidArgument("tensor shape \(shape) is not valid: dimensions must be non-negative and their product must fit in memory")
        }
        guard count == values.count else {
            throw .invalidArgument("tensor shape \(shape) holds \(count) values but \(values.count) were given")
        }
        self.shape = shape
        self.values = values
        self.storedType = .f32
    }

    init(uncheckedShape shape: [Int], values: [Float], storedType: SafeTensorsDType) {
        self.shape = shape
        self.values = values
        self.storedType = storedType
    }
}

/// Limits the reader enforces before allocating: a file that would exceed them is refused
/// with an error instead of exhausting memory.
public struct SafeTensorsLimits: Sendable, Hashable {
    /// Largest accepted JSON header, in bytes (default 100 MB).
    public var maxHeaderBytes: Int
    /// Largest accepted tensor, in elements (default 2^30: 4 GiB as float32).
    public var maxTensorElements: Int
    /// Largest accepted total over the tensors read, in elements (default 2^31: 8 GiB as float32).
    public var maxTotalElements: Int

    /// Limits; the defaults suit models up to a few billion parameters.
    public init(maxHeaderBytes: Int = 100_000_000, maxTensorElements: Int = 1 << 30,
                maxTotalElements: Int = 1 << 31) {
        self.maxHeaderBytes = maxHeaderBytes
        self.maxTensorElements = maxTensorElements
        self.maxTotalElements = maxTotalElements
    }

    /// The default limits.
    public static let `default` = SafeTensorsLimits()
}

/// The contents of a safetensors file: named float32 tensors and string metadata.
///
/// Build one with `add` and write it with `write(to:)` (always F32), or read one with
/// `read(contentsOf:)` / `decode(_:)`. Names keep their order: insertion order for a
/// value built in memory, data order for a value read from a file.
public struct SafeTensorsFile: Sendable {
    /// The `__metadata__` map (string to string); empty when the file has none.
    public var metadata: [String: String]
    /// Tensor names, in order.
    public private(set) var names: [String] = []
    private var tensors: [String: SafeTensor] = [:]

    /// An empty file with the given metadata.
    public init(metadata: [String: String] = [:]) {
        self.metadata = metadata
    }

    /// The number of tensors.
    public var count: Int { names.count }

    /// The tensor of a name, or nil.
    public subscript(name: String) -> SafeTensor? { tensors[name] }

    /// The tensor of a name; the error names it and lists the names present.
    public func tensor(_ name: String) throws(NumericsError) -> SafeTensor {
        if let t = tensors[name] { return t }
        throw .invalidArgument("no tensor named '\(name)'; present: \(CheckpointIO.listed(names))")
    }

    /// The values of a named tensor, which must have exactly `shape`.
    public func values(_ name: String, shape: [Int]) throws(NumericsError) -> [Float] {
        let t = try tensor(name)
        guard t.shape == shape else {
            throw .invalidArgument("tensor '\(name)' has shape \(t.shape); expected \(shape)")
        }
        return t.values
    }

    /// Adds a tensor; names must be unique and not `__metadata__`.
    public mutating func add(_ name: String, _ tensor: SafeTensor) throws(NumericsError) {
        guard name != "__metadata__" else {
            throw .invalidArgument("'__metadata__' is reserved for the metadata map and cannot name a tensor")
        }
        guard tensors[name] == nil else {
            throw .invalidArgument("a tensor named '\(name)' is already present; tensor names must be unique")
        }
        names.append(name)
        tensors[name] = tensor
    }

    /// Adds a tensor from values and a shape (see `SafeTensor.init(shape:values:)`).
    public mutating func add(_ name: String, shape: [Int], values: [Float]) throws(NumericsError) {
        do {
            try add(name, try SafeTensor(shape: shape, values: values))
        } catch {
            throw .invalidArgument("tensor '\(name)': \(error.description)")
        }
    }

    /// Removes a tensor if present.
    public mutating func remove(_ name: String) {
        if tensors.removeValue(forKey: name) != nil { names.removeAll { $0 == name } }
    }

    // MARK: Reading

    /// Reads a safetensors file. `include` selects the tensors to convert (the others are
    /// still checked for valid shapes and offsets, but may have any dtype and are skipped).
    public static func read(contentsOf url: URL, limits: SafeTensorsLimits = .default,
                            include: ((String) -> Bool)? = nil) throws(NumericsError) -> SafeTensorsFile {
        let file = try CheckpointIO.OpenFile(path: url.path, label: url.lastPathComponent)
        return try parse(file.source(), limits: limits, include: include)
    }

    /// Decodes a safetensors file held in memory.
    public static func decode(_ bytes: Data, limits: SafeTensorsLimits = .default,
                              include: ((String) -> Bool)? = nil) throws(NumericsError) -> SafeTensorsFile {
        try parse(CheckpointIO.DataSource(data: bytes, label: "safetensors data"), limits: limits, include: include)
    }

    static func parse(_ source: some CheckpointIO.ByteSource, limits: SafeTensorsLimits,
                      include: ((String) -> Bool)?) throws(NumericsError) -> SafeTensorsFile {
        let label = source.label
        func fail(_ message: String) -> NumericsError { .invalidArgument("\(label): \(message)") }

        let size = source.byteCount
        guard size >= 8 else {
            throw fail("the file is \(size) bytes long, shorter than the 8-byte header length that starts a safetensors file")
        }
        var lengthBytes = [UInt8](repeating: 0, count: 8)
        try CheckpointIO.fill(&lengthBytes, from: source, at: 0)
        let headerLength = lengthBytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(limits.maxHeaderBytes) else {
            throw fail("header length \(headerLength) bytes exceeds the limit of \(limits.maxHeaderBytes) bytes (not a safetensors file, or a corrupt one)")
        }
        guard headerLength <= UInt64(size - 8) else {
            throw fail("header length \(headerLength) bytes runs past the end of the file (\(size) bytes): the file is truncated or not safetensors")
        }
        let n = Int(headerLength)
        var header = [UInt8](repeating: 0, count: n)
        try CheckpointIO.fill(&header, from: source, at: 8)
        let entries: [HeaderEntry]
        let metadata: [String: String]
        (entries, metadata) = try parseHeader(header, dataLength: size - 8 - n, limits: limits, fail: fail)

        var result = SafeTensorsFile(metadata: metadata)
        var total = 0
        let dataStart = 8 + n
        for e in entries where include?(e.name) ?? true {
            guard e.dtype.isReadable else {
                throw fail("tensor '\(e.name)' has dtype \(e.dtype.rawValue); this reader converts \(SafeTensorsDType.readableNames)")
            }
            total += e.count
            guard total <= limits.maxTotalElements else {
                throw fail("the tensors read add up to more than \(limits.maxTotalElements) elements (the limit) at '\(e.name)'")
            }
            let values = try readValues(source, at: dataStart + e.begin, count: e.count, dtype: e.dtype)
            result.names.append(e.name)
            result.tensors[e.name] = SafeTensor(uncheckedShape: e.shape, values: values, storedType: e.dtype)
        }
        return result
    }

    struct HeaderEntry {
        let name: String
        let dtype: SafeTensorsDType
        let shape: [Int]
        let begin: Int, end: Int
        let count: Int
    }

    static func parseHeader(_ header: [UInt8], dataLength: Int, limits: SafeTensorsLimits,
                            fail: (String) -> NumericsError) throws(NumericsError) -> ([HeaderEntry], [String: String]) {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(header))
        } catch {
            let preview = String(decoding: header.prefix(60), as: UTF8.self)
            throw fail("the header is not valid JSON (\(error.localizedDescription)); it starts with \(CheckpointIO.quoted(preview))")
        }
        guard let root = object as? [String: Any] else {
            throw fail("the header must be a JSON object mapping tensor names to {dtype, shape, data_offsets}")
        }
        if let dup = CheckpointIO.firstDuplicateKey(in: header) {
            throw fail("the header names \(CheckpointIO.quoted(dup)) more than once; names must be unique")
        }
        var metadata: [String: String] = [:]
        var entries: [HeaderEntry] = []
        for (name, value) in root {
            if name == "__metadata__" {
                guard let map = value as? [String: Any] else {
                    throw fail("__metadata__ must be an object of string values")
                }
                for (k, v) in map {
                    guard let s = v as? String else {
                        throw fail("__metadata__ entry \(CheckpointIO.quoted(k)) is not a string; metadata values must be strings")
                    }
                    metadata[k] = s
                }
                continue
            }
            guard let info = value as? [String: Any] else {
                throw fail("tensor \(CheckpointIO.quoted(name)): expected an object {dtype, shape, data_offsets}")
            }
            guard let dtypeText = info["dtype"] as? String else {
                throw fail("tensor \(CheckpointIO.quoted(name)) has no string \"dtype\"")
            }
            guard let dtype = SafeTensorsDType(rawValue: dtypeText) else {
                throw fail("tensor \(CheckpointIO.quoted(name)) has unknown dtype \(CheckpointIO.quoted(dtypeText)); known: \(SafeTensorsDType.allCases.map(\.rawValue).joined(separator: " "))")
            }
            guard let shapeList = info["shape"] as? [Any] else {
                throw fail("tensor \(CheckpointIO.quoted(name)) has no \"shape\" list")
            }
            var shape: [Int] = []
            for d in shapeList {
                guard let v = CheckpointIO.jsonInteger(d), v >= 0 else {
                    throw fail("tensor \(CheckpointIO.quoted(name)) has shape \(CheckpointIO.describe(shapeList)); dimensions must be non-negative integers")
                }
                shape.append(v)
            }
            guard let offsetList = info["data_offsets"] as? [Any], offsetList.count == 2,
                  let begin = CheckpointIO.jsonInteger(offsetList[0]), let end = CheckpointIO.jsonInteger(offsetList[1]),
                  begin >= 0, end >= begin else {
                throw fail("tensor \(CheckpointIO.quoted(name)) has data_offsets \(CheckpointIO.describe(info["data_offsets"])); expected [begin, end] with 0 ≤ begin ≤ end")
            }
            guard let count = CheckpointIO.elementCount(shape) else {
                throw fail("tensor \(CheckpointIO.quoted(name)) has shape \(shape), whose element count overflows")
            }
            guard count <= limits.maxTensorElements else {
                throw fail("tensor \(CheckpointIO.quoted(name)) has shape \(shape) = \(count) elements, more than the limit of \(limits.maxTensorElements)")
            }
            let bytes = count.multipliedReportingOverflow(by: dtype.byteCount)
            guard !bytes.overflow, bytes.partialValue == end - begin else {
                throw fail("tensor \(CheckpointIO.quoted(name)): shape \(shape) of \(dtype.rawValue) needs \(bytes.overflow ? "too many" : String(bytes.partialValue)) bytes but data_offsets [\(begin), \(end)] span \(end - begin)")
            }
            guard end <= dataLength else {
                throw fail("tensor \(CheckpointIO.quoted(name)): data_offsets [\(begin), \(end)] run past the end of the data (\(dataLength) bytes after the header): the file is truncated")
            }
            entries.append(HeaderEntry(name: name, dtype: dtype, shape: shape, begin: begin, end: end, count: count))
        }
        entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var previous: HeaderEntry?
        for e in entries where e.end > e.begin {
            if let p = previous, e.begin < p.end {
                throw fail("tensors \(CheckpointIO.quoted(p.name)) [\(p.begin), \(p.end)] and \(CheckpointIO.quoted(e.name)) [\(e.begin), \(e.end)] overlap; each tensor needs bytes of its own")
            }
            previous = e
        }
        return (entries, metadata)
    }

    static func readValues(_ source: some CheckpointIO.ByteSource, at offset: Int, count: Int,
                           dtype: SafeTensorsDType) throws(NumericsError) -> [Float] {
        if count == 0 { return [] }
        switch dtype {
        case .f32:
            var values = [Float](repeating: 0, count: count)
            try CheckpointIO.fill(&values, from: source, at: offset)
            #if _endian(big)
            for i in values.indices { values[i] = Float(bitPattern: UInt32(littleEndian: values[i].bitPattern)) }
            #endif
            return values
        case .bf16, .f16:
            var raw = [UInt16](repeating: 0, count: count)
            try CheckpointIO.fill(&raw, from: source, at: offset)
            var values = [Float](repeating: 0, count: count)
            if dtype == .bf16 {
                for i in 0..<count { values[i] = Float(bitPattern: UInt32(UInt16(littleEndian: raw[i])) << 16) }
            } else {
                for i in 0..<count { values[i] = CheckpointIO.floatFromHalf(UInt16(littleEndian: raw[i])) }
            }
            return values
        default:
            throw .invalidArgument("dtype \(dtype.rawValue) cannot be converted; this reader converts \(SafeTensorsDType.readableNames)")
        }
    }

    // MARK: Writing

    /// The file's bytes: every tensor as F32, in `names` order, the header padded with
    /// spaces to a multiple of 8 bytes so the data is aligned. Deterministic: the same
    /// contents always give the same bytes.
    public func encoded() -> Data {
        var header = "{"
        var parts: [String] = []
        if !metadata.isEmpty {
            let entries = metadata.keys.sorted().map { "\(CheckpointIO.jsonString($0)):\(CheckpointIO.jsonString(metadata[$0]!))" }
            parts.append("\"__metadata__\":{\(entries.joined(separator: ","))}")
        }
        var offset = 0
        for name in names {
            let t = tensors[name]!
            let bytes = t.values.count * 4
            parts.append("\(CheckpointIO.jsonString(name)):{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}")
            offset += bytes
        }
        header += parts.joined(separator: ",") + "}"
        var headerBytes = Array(header.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }
        var out = Data(capacity: 8 + headerBytes.count + offset)
        var length = UInt64(headerBytes.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(contentsOf: headerBytes)
        for name in names {
            let values = tensors[name]!.values
            #if _endian(big)
            let le = values.map { $0.bitPattern.littleEndian }
            le.withUnsafeBytes { out.append(contentsOf: $0) }
            #else
            values.withUnsafeBytes { out.append(contentsOf: $0) }
            #endif
        }
        return out
    }

    /// Writes the file by the lab's writing policy (`FileWriting`): a regular file is
    /// replaced atomically, so a crash leaves either the old file or the new one.
    public func write(to url: URL) throws(NumericsError) {
        do { try FileWriting.write(encoded(), to: url.path) } catch { throw .invalidArgument(error.message) }
    }
}

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

    /// An IEEE binary16 value as float32 (exact; NaN payloads are kept).
    @inline(__always)
    static func floatFromHalf(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32(h >> 10) & 0x1F
        let mantissa = UInt32(h & 0x3FF)
        if exponent == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | mantissa << 13) }
        if exponent == 0 { return Float(bitPattern: sign | (Float(mantissa) * 0x1p-24).bitPattern) }
        return Float(bitPattern: sign | (exponent + 112) << 23 | mantissa << 13)
    }

    /// A JSON integer (not a boolean, not a number written with a fraction or exponent that
    /// JSONSerialization turned into a double), or nil.
    static func jsonInteger(_ value: Any?) -> Int? {
        guard let n = value as? NSNumber else { return nil }
        switch String(cString: n.objCType) {
        case "q", "l", "i", "s": return n.intValue
        case "Q", "L", "I", "S": return n.uint64Value <= UInt64(Int.max) ? Int(n.uint64Value) : nil
        default: return nil   // "c": boolean; "d"/"f": floating point
        }
    }

    /// A JSON number (integer or not, but not a boolean) as a double, or nil.
    static func jsonNumber(_ value: Any?) -> Double? {
        guard let n = value as? NSNumber, String(cString: n.objCType) != "c" else { return nil }
        return n.doubleValue
    }

    /// Whether a JSON value is a boolean, and which.
    static func jsonBool(_ value: Any?) -> Bool? {
        guard let n = value as? NSNumber, String(cString: n.objCType) == "c" else { return nil }
        return n.boolValue
    }

    /// A JSON value as short text for an error message.
    static func describe(_ value: Any?) -> String {
        guard let value else { return "nothing" }
        if value is NSNull { return "null" }
        if let b = jsonBool(value) { return b ? "true" : "false" }
        if let s = value as? String { return quoted(s) }
        if let list = value as? [Any] { return "[" + list.map { describe($0) }.joined(separator: ", ") + "]" }
        if value is [String: Any] { return "an object" }
        return "\(value)"
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

    /// The first object key that appears twice in the same object of a valid JSON text
    /// (JSONSerialization and JSONDecoder both keep one of two equal keys silently).
    static func firstDuplicateKey(in text: [UInt8]) -> String? {
        struct Level { var isObject: Bool; var keys: Set<String> = []; var expectKey = false }
        var stack: [Level] = []
        var i = 0
        while i < text.count {
            let c = text[i]
            switch c {
            case UInt8(ascii: "\""):
                let start = i
                i += 1
                var escaped = false
                while i < text.count {
                    if text[i] == UInt8(ascii: "\\") { escaped = true; i += 2; continue }
                    if text[i] == UInt8(ascii: "\"") { break }
                    i += 1
                }
                if let top = stack.last, top.isObject, top.expectKey {
                    let raw = Array(text[start...min(i, text.count - 1)])
                    let key: String
                    if escaped {
                        key = (try? JSONSerialization.jsonObject(with: Data(raw), options: .fragmentsAllowed) as? String) ?? String(decoding: raw, as: UTF8.self)
                    } else {
                        key = String(decoding: raw.dropFirst().dropLast(), as: UTF8.self)
                    }
                    if stack[stack.count - 1].keys.contains(key) { return key }
                    stack[stack.count - 1].keys.insert(key)
                    stack[stack.count - 1].expectKey = false
                }
            case UInt8(ascii: "{"): stack.append(Level(isObject: true, expectKey: true))
            case UInt8(ascii: "["): stack.append(Level(isObject: false))
            case UInt8(ascii: "}"), UInt8(ascii: "]"): if !stack.isEmpty { stack.removeLast() }
            case UInt8(ascii: ","): if let top = stack.last, top.isObject { stack[stack.count - 1].expectKey = true }
            default: break
            }
            i += 1
        }
        return nil
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

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

    /// The header of a safetensors file: its tensors' entries, its metadata, and where the
    /// data starts; every length checked against the file before anything is allocated.
    static func readHeader(_ source: some CheckpointIO.ByteSource, limits: SafeTensorsLimits)
        throws(NumericsError) -> (entries: [HeaderEntry], metadata: [String: String], dataStart: Int) {
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
        let (entries, metadata) = try parseHeader(header, dataLength: size - 8 - n, limits: limits, fail: fail)
        return (entries, metadata, 8 + n)
    }

    static func parse(_ source: some CheckpointIO.ByteSource, limits: SafeTensorsLimits,
                      include: ((String) -> Bool)?) throws(NumericsError) -> SafeTensorsFile {
        func fail(_ message: String) -> NumericsError { .invalidArgument("\(source.label): \(message)") }
        let (entries, metadata, dataStart) = try readHeader(source, limits: limits)
        var result = SafeTensorsFile(metadata: metadata)
        var total = 0
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
        let parsed: JSONValue
        do throws(JSONReadError) {
            parsed = try JSONValue(parsing: header)
        } catch {
            if let name = error.duplicateKey {
                throw fail("the header names \(CheckpointIO.quoted(name)) more than once (the second time at \(error.place) of the header); names must be unique")
            }
            let preview = String(decoding: header.prefix(60), as: UTF8.self)
            throw fail("the header is not valid JSON (\(error.place) of the header: \(error.message)); it starts with \(CheckpointIO.quoted(preview))")
        }
        guard let root = parsed.objectValue else {
            throw fail("the header must be a JSON object mapping tensor names to {dtype, shape, data_offsets}")
        }
        var metadata: [String: String] = [:]
        var entries: [HeaderEntry] = []
        for member in root.members {
            let name = member.key
            if name == "__metadata__" {
                guard let map = member.value.objectValue else {
                    throw fail("__metadata__ must be an object of string values")
                }
                for m in map.members {
                    guard let s = m.value.stringValue else {
                        throw fail("__metadata__ entry \(CheckpointIO.quoted(m.key)) is not a string; metadata values must be strings")
                    }
                    metadata[m.key] = s
                }
                continue
            }
            guard let info = member.value.objectValue else {
                throw fail("tensor \(CheckpointIO.quoted(name)): expected an object {dtype, shape, data_offsets}")
            }
            guard let dtypeText = info["dtype"]?.stringValue else {
                throw fail("tensor \(CheckpointIO.quoted(name)) has no string \"dtype\"")
            }
            guard let dtype = SafeTensorsDType(rawValue: dtypeText) else {
                throw fail("tensor \(CheckpointIO.quoted(name)) has unknown dtype \(CheckpointIO.quoted(dtypeText)); known: \(SafeTensorsDType.allCases.map(\.rawValue).joined(separator: " "))")
            }
            guard let shapeList = info["shape"]?.arrayValue else {
                throw fail("tensor \(CheckpointIO.quoted(name)) has no \"shape\" list")
            }
            var shape: [Int] = []
            for d in shapeList {
                guard let v = d.intValue, v >= 0 else {
                    throw fail("tensor \(CheckpointIO.quoted(name)) has shape \(CheckpointIO.describe(.array(shapeList))); dimensions must be non-negative integers")
                }
                shape.append(v)
            }
            guard let offsetList = info["data_offsets"]?.arrayValue, offsetList.count == 2,
                  let begin = offsetList[0].intValue, let end = offsetList[1].intValue,
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
                let table = NumberFormat.binary16Values
                for i in 0..<count { values[i] = table[Int(UInt16(littleEndian: raw[i]))] }
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

// The tensors of a checkpoint's weights, found by their headers and read only when asked:
// one model.safetensors, or the shards that model.safetensors.index.json names. Each tensor
// is converted straight into its place in the model's buffer (F32 read in place, BF16 and
// F16 widened from a small staging block), so a checkpoint is never held twice in memory.

import Foundation
import JSON
import Model
import Numerics

/// Where each tensor of a checkpoint's weights is: its file, its header entry.
struct TensorIndex {
    struct Place {
        let source: CheckpointIO.DescriptorSource
        let dataStart: Int
        let entry: SafeTensorsFile.HeaderEntry
    }

    static let indexFile = "model.safetensors.index.json"

    /// Tensor names in file order (shard by shard).
    private(set) var names: [String] = []
    private var places: [String: Place] = [:]
    /// The files read: one, or the shards.
    private(set) var files: [String] = []

    var count: Int { names.count }
    func shape(_ name: String) -> [Int]? { places[name]?.entry.shape }
    func contains(_ name: String) -> Bool { places[name] != nil }

    /// The headers of one safetensors file; tensors named by `include` (nil: all) are kept.
    mutating func add(_ file: CheckpointIO.OpenFile, limits: SafeTensorsLimits,
                      include: (String) -> Bool) throws(NumericsError) {
        let source = file.source()
        func fail(_ message: String) -> NumericsError { .invalidArgument("\(source.label): \(message)") }
        let (entries, _, dataStart) = try SafeTensorsFile.readHeader(source, limits: limits)
        files.append(source.label)
        for e in entries where include(e.name) {
            if let other = places[e.name] {
                throw fail("tensor '\(e.name)' is also in \(other.source.label); each tensor belongs to one file")
            }
            guard e.dtype.isReadable else {
                throw fail("tensor '\(e.name)' has dtype \(e.dtype.rawValue); this reader converts \(SafeTensorsDType.readableNames)")
            }
            names.append(e.name)
            places[e.name] = Place(source: source, dataStart: dataStart, entry: e)
        }
    }

    /// The shards that an index (model.safetensors.index.json's bytes) names, each opened
    /// through `open`; every tensor of its `weight_map` must be in the shard it names.
    static func sharded(index bytes: [UInt8], open: (String) throws(NumericsError) -> CheckpointIO.OpenFile?,
                        limits: SafeTensorsLimits, include: (String) -> Bool) throws(NumericsError) -> TensorIndex {
        func fail(_ message: String) -> NumericsError { .invalidArgument("\(indexFile): \(message)") }
        let json: JSONValue
        do throws(JSONReadError) { json = try JSONReader.read(bytes) } catch {
            throw fail("not JSON: \(error.description)")
        }
        guard let map = json.objectValue?["weight_map"]?.objectValue else {
            throw fail("no \"weight_map\" object (tensor name → shard file)")
        }
        var shards: [String] = []
        var expected: [String: String] = [:]
        for member in map.members {
            guard let shard = member.value.stringValue else {
                throw fail("weight_map maps '\(member.key)' to \(CheckpointIO.describe(member.value)), not a file name")
            }
            guard !shard.isEmpty, !shard.contains("/"), shard != ".", shard != ".." else {
                throw fail("weight_map names the shard \(CheckpointIO.quoted(shard)); shards are files in the checkpoint's directory")
            }
            if !shards.contains(shard) { shards.append(shard) }
            expected[member.key] = shard
        }
        guard !shards.isEmpty else { throw fail("weight_map is empty") }
        var index = TensorIndex()
        var missing: [String] = []
        var opened: [CheckpointIO.OpenFile] = []
        for shard in shards {
            guard let file = try open(shard) else { missing.append(shard); continue }
            opened.append(file)
        }
        guard missing.isEmpty else {
            throw fail("\(missing.count) of \(shards.count) shards are missing: \(CheckpointIO.listed(missing)); the checkpoint is incomplete")
        }
        for file in opened {
            try index.add(file, limits: limits) { include($0) && expected[$0] != nil }
        }
        for (name, shard) in expected where include(name) {
            guard let place = index.places[name] else {
                throw fail("weight_map puts '\(name)' in \(shard), which has no such tensor")
            }
            guard place.source.label == shard else {
                throw fail("weight_map puts '\(name)' in \(shard), but it is in \(place.source.label)")
            }
        }
        return index
    }

    /// Reads tensor `name` (its element count must be `count`) into `destination` as float32.
    func read(_ name: String, into destination: UnsafeMutablePointer<Float>, count: Int) throws(NumericsError) {
        guard let place = places[name] else { throw .invalidArgument("no tensor '\(name)'") }
        let e = place.entry
        precondition(e.count == count, "the caller checks the shape")
        let offset = place.dataStart + e.begin
        switch e.dtype {
        case .f32:
            try place.source.read(at: offset, into: UnsafeMutableRawBufferPointer(start: destination, count: count * 4))
            #if _endian(big)
            for i in 0..<count { destination[i] = Float(bitPattern: UInt32(littleEndian: destination[i].bitPattern)) }
            #endif
        case .bf16, .f16:
            // Widened block by block: a staging buffer of 1 Mi values, not a second copy.
            let block = 1 << 20
            var raw = [UInt16](repeating: 0, count: min(block, count))
            let table = e.dtype == .f16 ? NumberFormat.binary16Values : []
            var done = 0
            while done < count {
                let n = min(block, count - done)
                var failure: NumericsError?
                raw.withUnsafeMutableBytes { b in
                    do throws(NumericsError) {
                        try place.source.read(at: offset + 2 * done, into: UnsafeMutableRawBufferPointer(rebasing: b[0..<(2 * n)]))
                    } catch { failure = error }
                }
                if let failure { throw failure }
                if e.dtype == .bf16 {
                    for i in 0..<n { destination[done + i] = Float(bitPattern: UInt32(UInt16(littleEndian: raw[i])) << 16) }
                } else {
                    for i in 0..<n { destination[done + i] = table[Int(UInt16(littleEndian: raw[i]))] }
                }
                done += n
            }
        default:
            throw .invalidArgument("dtype \(e.dtype.rawValue) cannot be converted; this reader converts \(SafeTensorsDType.readableNames)")
        }
    }

    /// Tensor `name` as a new array.
    func values(_ name: String) throws(NumericsError) -> [Float] {
        guard let place = places[name] else { throw .invalidArgument("no tensor '\(name)'") }
        var out = [Float](repeating: 0, count: place.entry.count)
        var failure: NumericsError?
        out.withUnsafeMutableBufferPointer { b in
            guard let base = b.baseAddress else { return }
            do throws(NumericsError) { try read(name, into: base, count: b.count) } catch { failure = error }
        }
        if let failure { throw failure }
        return out
    }
}

import Foundation

/// Builds the bytes torch.save would write, by hand, so the tests can make strided tensors, foreign globals,
/// broken archives and the like without PyTorch.
struct PickleBytes {
    var bytes: [UInt8] = [0x80, 0x02]

    mutating func op(_ b: UInt8...) { bytes.append(contentsOf: b) }
    mutating func mark() { op(0x28) }
    mutating func string(_ s: String) {
        let u = Array(s.utf8)
        op(0x58); le(UInt32(u.count)); bytes.append(contentsOf: u)
    }
    mutating func int(_ i: Int) {
        if i >= 0 && i < 256 { op(0x4B, UInt8(i)) } else if i >= 0 && i < 65536 { op(0x4D); le(UInt16(i)) }
        else if i >= Int(Int32.min) && i <= Int(Int32.max) { op(0x4A); le(UInt32(bitPattern: Int32(i))) }
        else { op(0x8A, 8); le(UInt64(bitPattern: Int64(i))) }
    }
    mutating func float(_ d: Double) {
        op(0x47)
        let v = d.bitPattern
        for k in (0..<8).reversed() { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(k)))) }
    }
    mutating func global(_ module: String, _ name: String) {
        op(0x63); bytes.append(contentsOf: Array("\(module)\n\(name)\n".utf8))
    }
    /// `(` … `)`: MARK, the items, TUPLE.
    mutating func endTuple() { op(0x74) }
    mutating func put(_ i: UInt8) { op(0x71, i) }
    mutating func get(_ i: UInt8) { op(0x68, i) }
    /// `_rebuild_tensor_v2(('storage', torch.<type>, key, 'cpu', numel), offset, size, stride, False, OrderedDict())`
    mutating func tensor(storageType: String = "FloatStorage", key: String, numel: Int, offset: Int, size: [Int], stride: [Int]) {
        global("torch._utils", "_rebuild_tensor_v2")
        mark()
        mark(); string("storage"); global("torch", storageType); string(key); string("cpu"); int(numel); endTuple()
        op(0x51)                                       // BINPERSID
        int(offset)
        mark(); for s in size { int(s) }; endTuple()
        mark(); for s in stride { int(s) }; endTuple()
        op(0x89)                                       // False
        global("collections", "OrderedDict"); op(0x29, 0x52)   // OrderedDict()
        endTuple()
        op(0x52)                                       // REDUCE
    }
    mutating func stop() { op(0x2E) }

    mutating func le<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }
    var data: Data { Data(bytes) }
}

/// A zip archive of stored entries (CRCs left zero: the reader does not check them), optionally deflate-marked.
func makeZip(_ entries: [(String, Data)], deflated: Set<String> = []) -> Data {
    var out = Data()
    var central = Data()
    func le16(_ v: Int, _ d: inout Data) { withUnsafeBytes(of: UInt16(v).littleEndian) { d.append(contentsOf: $0) } }
    func le32(_ v: Int, _ d: inout Data) { withUnsafeBytes(of: UInt32(v).littleEndian) { d.append(contentsOf: $0) } }
    for (name, body) in entries {
        let offset = out.count
        let n = Array(name.utf8)
        let method = deflated.contains(name) ? 8 : 0
        le32(0x0403_4B50, &out); le16(20, &out); le16(0, &out); le16(method, &out); le32(0, &out); le32(0, &out)
        le32(body.count, &out); le32(body.count, &out); le16(n.count, &out); le16(0, &out)
        out.append(contentsOf: n); out.append(body)
        le32(0x0201_4B50, &central); le16(20, &central); le16(20, &central); le16(0, &central); le16(method, &central)
        le32(0, &central); le32(0, &central); le32(body.count, &central); le32(body.count, &central)
        le16(n.count, &central); le16(0, &central); le16(0, &central); le16(0, &central); le16(0, &central)
        le32(0, &central); le32(offset, &central); central.append(contentsOf: n)
    }
    let cdOffset = out.count
    out.append(central)
    le32(0x0605_4B50, &out); le16(0, &out); le16(0, &out); le16(entries.count, &out); le16(entries.count, &out)
    le32(central.count, &out); le32(cdOffset, &out); le16(0, &out)
    return out
}

func floatBytes(_ v: [Float]) -> Data { v.withUnsafeBufferPointer { Data(buffer: $0) } }

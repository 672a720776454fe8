import Foundation

/// The safetensors format: 8-byte little-endian header length, a JSON header
/// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {…}}`, then the raw data.
public enum Safetensors {
    /// Largest header we accept (the format's own limit is 100 MB).
    static let maxHeader = 100 << 20

    public static func read(_ url: URL) throws(CheckpointError) -> TensorFile {
        try decode(try readFile(url), file: url.path)
    }

    public static func decode(_ data: Data, file: String = "safetensors") throws(CheckpointError) -> TensorFile {
        guard data.count >= 8 else { throw .malformed(file: file, reason: "\(data.count) bytes, shorter than the 8-byte header length") }
        let n = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 0, as: UInt64.self)) }
        guard n <= UInt64(maxHeader), Int(n) + 8 <= data.count else {
            throw .malformed(file: file, reason: "header length \(n) does not fit a file of \(data.count) bytes")
        }
        let headerEnd = 8 + Int(n)
        let headerData = data.subdata(in: data.startIndex + 8 ..< data.startIndex + headerEnd)
        guard let header = (try? JSONSerialization.jsonObject(with: headerData)) as? [String: Any] else {
            throw .malformed(file: file, reason: "the header is not a JSON object")
        }
        // Keep file order: sort by data offset (JSON objects carry no order).
        var entries: [(String, StoredDType, [Int], Int, Int)] = []
        var metadata: [String: String] = [:]
        for (key, value) in header {
            if key == "__metadata__" {
                for (k, v) in (value as? [String: Any]) ?? [:] { metadata[k] = v as? String ?? "\(v)" }
                continue
            }
            guard let info = value as? [String: Any],
                  let dtypeName = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int],
                  let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
                throw .malformed(file: file, reason: "entry '\(key)' lacks dtype, shape or data_offsets")
            }
            guard let dtype = StoredDType(rawValue: dtypeName) else {
                throw .unsupported(file: file, reason: "tensor '\(key)' has element type \(dtypeName)")
            }
            guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[1] >= offsets[0],
                  offsets[1] <= data.count - headerEnd,
                  let bytes = TorchCheckpoint.checkedProduct(shape + [dtype.byteSize]),
                  offsets[1] - offsets[0] == bytes else {
                throw .malformed(file: file, reason: "tensor '\(key)' has shape \(shape) and offsets \(offsets) that do not fit")
            }
            entries.append((key, dtype, shape, offsets[0], offsets[1]))
        }
        entries.sort { ($0.3, $0.0) < ($1.3, $1.0) }
        var out = TensorFile(metadata: metadata)
        for (name, dtype, shape, begin, end) in entries {
            let bytes = data.subdata(in: data.startIndex + headerEnd + begin ..< data.startIndex + headerEnd + end)
            out.set(name, StoredTensor(dtype: dtype, shape: shape, bytes: bytes))
        }
        return out
    }

    public static func encode(_ file: TensorFile) -> Data {
        var header: [String: Any] = [:]
        var offset = 0
        for name in file.names {
            guard let t = file.tensors[name] else { continue }
            header[name] = ["dtype": t.dtype.rawValue, "shape": t.shape, "data_offsets": [offset, offset + t.bytes.count]]
            offset += t.bytes.count
        }
        if !file.metadata.isEmpty { header["__metadata__"] = file.metadata }
        var json = (try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) ?? Data("{}".utf8)
        // Pad the header with spaces to 8 bytes so the data is aligned, as the reference writer does.
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        var len = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &len) { out.append(contentsOf: $0) }
        out.append(json)
        for name in file.names { if let t = file.tensors[name] { out.append(t.bytes) } }
        return out
    }

    /// Writes atomically (temporary file, then rename).
    public static func write(_ file: TensorFile, to url: URL) throws(CheckpointError) {
        do { try encode(file).write(to: url, options: .atomic) } catch {
            throw .unreadable(file: url.path, reason: "cannot write: \(error.localizedDescription)")
        }
    }
}

import Foundation

/// Just enough ZIP to read what `torch.save` writes: the central directory (zip64 too, for checkpoints over 4 GB)
/// and stored (uncompressed) entries. PyTorch never compresses; a deflated entry is refused with its name.
struct ZipArchive {
    struct Entry {
        var name: String
        /// 0 stored, 8 deflated, …
        var method: UInt16
        var compressedSize: Int
        var size: Int
        var localHeaderOffset: Int
    }

    let data: Data
    let file: String
    /// Entries in central-directory order.
    private(set) var entries: [Entry] = []
    private var byName: [String: Int] = [:]

    static let localMagic: [UInt8] = [0x50, 0x4B, 0x03, 0x04]

    static func looksLikeZip(_ data: Data) -> Bool {
        data.count >= 4 && Array(data.prefix(4)) == localMagic
    }

    init(_ data: Data, file: String) throws(CheckpointError) {
        self.data = data
        self.file = file
        try readCentralDirectory()
    }

    func entry(_ name: String) -> Entry? { byName[name].map { entries[$0] } }

    /// The bytes of a stored entry (a copy; checkpoints are read once at load).
    func contents(of entry: Entry) throws(CheckpointError) -> Data {
        guard entry.method == 0 else {
            let how = entry.method == 8 ? "deflate-compressed" : "compressed with method \(entry.method)"
            throw .unsupported(file: file, reason: "zip entry '\(entry.name)' is \(how); torch.save writes stored entries, re-save the checkpoint with torch.save")
        }
        let h = entry.localHeaderOffset
        guard h >= 0, h <= data.count - 30, u32(h) == 0x0403_4B50 else {
            throw .malformed(file: file, reason: "zip entry '\(entry.name)' has no local header at offset \(h) (truncated file?)")
        }
        let start = h + 30 + Int(u16(h + 26)) + Int(u16(h + 28))
        guard entry.size >= 0, entry.size <= data.count - start else {
            throw .malformed(file: file, reason: "zip entry '\(entry.name)' needs \(entry.size) bytes at offset \(start) but the file has \(data.count) (truncated file?)")
        }
        return data.subdata(in: data.startIndex + start ..< data.startIndex + start + entry.size)
    }

    // MARK: - Central directory

    private mutating func readCentralDirectory() throws(CheckpointError) {
        // The end-of-central-directory record is 22 bytes plus a comment of at most 65535 bytes, at the very end.
        let n = data.count
        let lowest = max(0, n - 22 - 65535)
        let eocd: Int = n < 22 ? -1 : data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Int in
            var p = n - 22
            while p >= lowest {
                if raw[p] == 0x50, raw[p + 1] == 0x4B, raw[p + 2] == 0x05, raw[p + 3] == 0x06 { return p }
                p -= 1
            }
            return -1
        }
        guard eocd >= 0 else {
            throw .malformed(file: file, reason: "no zip end-of-central-directory record; the file is truncated or not a zip archive")
        }
        var count = Int(u16(eocd + 10))
        var cdSize = Int(u32(eocd + 12))
        var cdOffset = Int(u32(eocd + 16))
        // zip64: a locator sits right before the classic record and points at the zip64 record.
        if eocd >= 20, u32(eocd - 20) == 0x0706_4B50 {
            let z = Int(clamping: u64(eocd - 12))
            guard z >= 0, z <= n - 56, u32(z) == 0x0606_4B50 else {
                throw .malformed(file: file, reason: "zip64 end-of-central-directory record missing at offset \(z)")
            }
            count = Int(clamping: u64(z + 32))
            cdSize = Int(clamping: u64(z + 40))
            cdOffset = Int(clamping: u64(z + 48))
        }
        guard cdOffset >= 0, cdSize >= 0, cdOffset <= n, cdSize <= n - cdOffset else {
            throw .malformed(file: file, reason: "zip central directory (offset \(cdOffset), \(cdSize) bytes) lies outside the file of \(n) bytes; truncated?")
        }
        var q = cdOffset
        entries.reserveCapacity(min(count, cdSize / 46))
        for i in 0..<count {
            guard q + 46 <= cdOffset + cdSize, u32(q) == 0x0201_4B50 else {
                throw .malformed(file: file, reason: "zip central directory entry \(i) of \(count) is damaged")
            }
            let method = u16(q + 10)
            var compressed = Int(u32(q + 20))
            var size = Int(u32(q + 24))
            let nameLen = Int(u16(q + 28)), extraLen = Int(u16(q + 30)), commentLen = Int(u16(q + 32))
            var offset = Int(u32(q + 42))
            guard q + 46 + nameLen + extraLen + commentLen <= n else {
                throw .malformed(file: file, reason: "zip central directory entry \(i) runs past the end of the file")
            }
            let nameBytes = data.subdata(in: data.startIndex + q + 46 ..< data.startIndex + q + 46 + nameLen)
            let name = String(decoding: nameBytes, as: UTF8.self)
            // zip64 extra field (id 1): 8-byte values for those fields that read 0xFFFFFFFF, in this order.
            var e = q + 46 + nameLen
            let extraEnd = e + extraLen
            while e + 4 <= extraEnd {
                let id = u16(e), len = Int(u16(e + 2))
                if id == 1 {
                    var f = e + 4
                    if size == 0xFFFF_FFFF, f + 8 <= e + 4 + len { size = Int(clamping: u64(f)); f += 8 }
                    if compressed == 0xFFFF_FFFF, f + 8 <= e + 4 + len { compressed = Int(clamping: u64(f)); f += 8 }
                    if offset == 0xFFFF_FFFF, f + 8 <= e + 4 + len { offset = Int(clamping: u64(f)) }
                }
                e += 4 + len
            }
            byName[name] = entries.count
            entries.append(Entry(name: name, method: method, compressedSize: compressed, size: size, localHeaderOffset: offset))
            q += 46 + nameLen + extraLen + commentLen
        }
    }

    // Little-endian reads at absolute offsets; callers check the bounds.
    private func u16(_ o: Int) -> UInt16 {
        guard o >= 0, o <= data.count - 2 else { return 0 }
        return data.withUnsafeBytes { UInt16(littleEndian: $0.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
    }
    private func u32(_ o: Int) -> UInt32 {
        guard o >= 0, o <= data.count - 4 else { return 0 }
        return data.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
    }
    private func u64(_ o: Int) -> UInt64 {
        guard o >= 0, o <= data.count - 8 else { return 0 }
        return data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
    }
}

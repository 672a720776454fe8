import Foundation

/// A PyTorch checkpoint as `torch.save` (PyTorch ≥ 1.6) writes it: a zip archive `<archive>/data.pkl` (the pickled
/// object), `<archive>/data/<key>` (one file per storage, raw little-endian elements), `<archive>/byteorder`, `version`.
/// mmsegmentation saves `{'state_dict': …, 'meta': {…}, ['optimizer': …]}`; a bare state dict is read too.
public enum TorchCheckpoint {
    /// The state-dict tensors (names as saved, less a DataParallel `module.` prefix; dtypes as saved) and the `meta`
    /// dict as text (`CLASSES` → `('bg', 'EX', …)`). The tensors' `metadata` holds the same meta.
    public static func read(_ url: URL) throws(CheckpointError) -> TensorFile {
        try decode(try readFile(url), file: url.path)
    }

    public static func decode(_ data: Data, file: String = "checkpoint") throws(CheckpointError) -> TensorFile {
        if let legacy = legacyFormat(data) {
            throw .unsupported(file: file, reason: "\(legacy); load it in PyTorch ≥ 1.6 and save it again with torch.save(obj, path)")
        }
        guard ZipArchive.looksLikeZip(data) else {
            throw .malformed(file: file, reason: "not a zip archive (a .pth from torch.save starts with 'PK')")
        }
        let zip = try ZipArchive(data, file: file)
        guard let pkl = zip.entries.first(where: { $0.name == "data.pkl" || $0.name.hasSuffix("/data.pkl") }) else {
            if zip.entries.contains(where: { $0.name.hasSuffix("constants.pkl") || $0.name.contains("/code/") }) {
                throw .unsupported(file: file, reason: "a TorchScript archive (torch.jit.save); save the model's state_dict with torch.save instead")
            }
            throw .malformed(file: file, reason: "the zip archive has no data.pkl, so it is not a torch.save checkpoint (entries: \(zip.entries.prefix(5).map(\.name).joined(separator: ", ")))")
        }
        let prefix = String(pkl.name.dropLast("data.pkl".count))
        var bigEndian = false
        if let order = zip.entry(prefix + "byteorder") {
            let text = String(decoding: try zip.contents(of: order), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard text == "little" || text == "big" else { throw .malformed(file: file, reason: "byteorder says '\(text)'") }
            bigEndian = text == "big"
        }
        let root = try PickleReader.load(try zip.contents(of: pkl), file: file)

        // mmseg/mmcv: {'state_dict': …, 'meta': …}; plain torch.save(model.state_dict()): the dict itself.
        guard let top = root.dict else {
            throw .notThisNetwork(file: file, reason: "the checkpoint holds \(root.repr.prefix(60)), not a dict of tensors")
        }
        let stateDict: PickleDict
        if let sd = top["state_dict"]?.dict {
            stateDict = sd
        } else if let sd = top["model"]?.dict ?? top["model_state_dict"]?.dict {
            stateDict = sd
        } else {
            stateDict = top
        }
        var meta: [String: String] = [:]
        if let m = top["meta"]?.dict {
            for (k, v) in m.pairs { meta[k.text] = v.text }
        }

        var out = TensorFile(metadata: meta)
        var storages: [String: Data] = [:]
        for (k, v) in stateDict.pairs {
            guard case let .tensor(ref) = v else { continue }   // e.g. `_metadata`, stray ints
            guard var name = k.string else { continue }
            if name.hasPrefix("module.") { name.removeFirst("module.".count) }
            let raw: Data
            if let cached = storages[ref.storage.key] { raw = cached } else {
                guard let entry = zip.entry(prefix + "data/" + ref.storage.key) else {
                    throw .malformed(file: file, reason: "tensor '\(name)' refers to storage \(ref.storage.key), but \(prefix)data/\(ref.storage.key) is not in the archive")
                }
                raw = try zip.contents(of: entry)
                storages[ref.storage.key] = raw
            }
            out.set(name, try materialise(ref, raw, name: name, bigEndian: bigEndian, file: file))
        }
        guard !out.names.isEmpty else {
            let keys = top.pairs.prefix(6).map(\.0.text).joined(separator: ", ")
            throw .notThisNetwork(file: file, reason: "no tensors found in 'state_dict' or at the top level (keys: \(keys))")
        }
        return out
    }

    /// A dense row-major copy of a strided view into a storage.
    static func materialise(_ ref: TorchTensorRef, _ raw: Data, name: String, bigEndian: Bool,
                            file: String) throws(CheckpointError) -> StoredTensor {
        let dtype = ref.storage.dtype
        let e = dtype.byteSize
        // Every size here comes from the file: check the arithmetic before trusting it.
        guard let need = checkedProduct([ref.storage.count, e]), raw.count >= need else {
            throw .malformed(file: file, reason: "storage \(ref.storage.key) of '\(name)' holds \(raw.count) bytes, not the \(ref.storage.count) × \(e) it declares (truncated?)")
        }
        guard ref.size.allSatisfy({ $0 >= 0 }), ref.stride.allSatisfy({ $0 >= 0 }), ref.offset >= 0,
              let count = checkedProduct(ref.size), count <= max(ref.storage.count, 1) * 64 else {
            throw .malformed(file: file, reason: "tensor '\(name)' has size \(ref.size), stride \(ref.stride), offset \(ref.offset), which do not fit its storage of \(ref.storage.count) elements")
        }
        if count > 0 {
            var last: Int? = ref.offset
            for (s, st) in zip(ref.size, ref.stride) {
                guard let l = last, let step = checkedProduct([s - 1, st]) else { last = nil; break }
                let (sum, overflow) = l.addingReportingOverflow(step)
                last = overflow ? nil : sum
            }
            guard let last, last < ref.storage.count else {
                throw .malformed(file: file, reason: "tensor '\(name)' (size \(ref.size), stride \(ref.stride), offset \(ref.offset)) reaches past its storage of \(ref.storage.count) elements")
            }
        }
        var bytes: Data
        // Contiguous row-major strides: one slice copy.
        var contiguous = true
        var expect = 1
        for (s, st) in zip(ref.size, ref.stride).reversed() where s != 1 {
            if st != expect { contiguous = false; break }
            expect *= s
        }
        if contiguous && ref.offset == 0 && count * e == raw.count {
            bytes = raw                                 // the whole storage: share it, no copy
        } else if contiguous {
            let start = raw.startIndex + ref.offset * e
            bytes = raw.subdata(in: start ..< start + count * e)
        } else {
            bytes = Data(count: count * e)
            let rank = ref.size.count
            raw.withUnsafeBytes { (src: UnsafeRawBufferPointer) in
                bytes.withUnsafeMutableBytes { (dst: UnsafeMutableRawBufferPointer) in
                    var index = [Int](repeating: 0, count: rank)
                    for i in 0..<count {
                        var at = ref.offset
                        for d in 0..<rank { at += index[d] * ref.stride[d] }
                        dst.baseAddress!.advanced(by: i * e).copyMemory(from: src.baseAddress!.advanced(by: at * e), byteCount: e)
                        var d = rank - 1
                        while d >= 0 {
                            index[d] += 1
                            if index[d] < ref.size[d] { break }
                            index[d] = 0
                            d -= 1
                        }
                    }
                }
            }
        }
        if bigEndian && e > 1 {
            bytes.withUnsafeMutableBytes { (p: UnsafeMutableRawBufferPointer) in
                for i in 0..<count {
                    let base = i * e
                    for j in 0..<(e / 2) { p.swapAt(base + j, base + e - 1 - j) }
                }
            }
        }
        return StoredTensor(dtype: dtype, shape: ref.size, bytes: bytes)
    }

    static func checkedProduct(_ xs: [Int]) -> Int? {
        var p = 1
        for x in xs {
            let (r, overflow) = p.multipliedReportingOverflow(by: x)
            if overflow { return nil }
            p = r
        }
        return p
    }

    /// Formats torch.save wrote before the zip archive became the default (PyTorch 1.6).
    static func legacyFormat(_ data: Data) -> String? {
        let head = [UInt8](data.prefix(300))
        // Legacy: a pickled magic number 0x1950a86a20f9469cfc6c (protocol 2, LONG1 of 10 bytes).
        if head.count >= 4, head[0] == 0x80, head[1] == 0x02, head[2] == 0x8A, head[3] == 0x0A {
            return "a legacy (pre-zip) torch.save file"
        }
        if head.count >= 262, Array(head[257..<262]) == Array("ustar".utf8) {
            return "a tar-format torch.save file (PyTorch < 0.4)"
        }
        return nil
    }
}

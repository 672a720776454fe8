// fundus-fuzz: mutates seed photographs and feeds each mutant through what the screening does first with a file:
// decode (by content, as the pipeline does) and the field of view (detection, gradability, crop, resize).
// pipelines/fuzz.sh drives it; see there for the seeds and the AddressSanitizer run.
//
//   fundus-fuzz seeds OUT_DIR [PHOTOGRAPH…]          small JPEG/PNG/TIFF seeds in every variant we decode
//   fundus-fuzz run --seeds DIR… --count N [--first K] [--timeout S] [--work DIR] [--max-pixels N]
//   fundus-fuzz save --seeds DIR… --index K FILE     write mutant K (to reproduce a crash or a hang)
//
// Every mutant is a pure function of (the sorted seed files, its index), so a crash or a hang is reproduced by its
// index. Before each input its index is written to WORK/current; a watchdog thread ends the process with exit code
// 3 and WORK/hang when one input takes longer than the timeout. Exit 0: no crash, no hang, every rejection a clear
// error (an ImagingError whose message names the input and says more than that). Exit 1: an unclear rejection.
// Seed formats are whatever ImageCodec recognises by content: a DICOM seed folder plugs in once Codecs decodes it.
import Foundation
import Imaging

struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("fundus-fuzz: \(message)\n".utf8))
    exit(2)
}

/// Sorted seed files of the folders (every regular file: the decoder decides by content, not by name).
func seedFiles(_ folders: [String]) -> [URL] {
    var files: [URL] = []
    for folder in folders {
        let url = URL(fileURLWithPath: folder)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: url.path) else { fail("cannot list \(folder)") }
        for name in names.sorted() where !name.hasPrefix(".") {
            let file = url.appendingPathComponent(name)
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: file.path, isDirectory: &isDirectory), !isDirectory.boolValue {
                files.append(file)
            }
        }
    }
    guard !files.isEmpty else { fail("no seed files in \(folders.joined(separator: ", "))") }
    return files
}

/// Mutant `index` of the seeds: one to eight edits, half of the inputs aimed at the first 512 bytes (markers,
/// chunk headers, IFDs, where the sizes and offsets live), some with a 16- or 32-bit field set to an extreme.
func mutant(_ index: Int, seeds: [(URL, [UInt8])]) -> (name: String, bytes: [UInt8]) {
    var rng = SplitMix(state: 0x5EED_0000 &+ UInt64(index) &* 0x1000_0001)
    let (url, original) = seeds[index % seeds.count]
    var bytes = original
    let edits = Int.random(in: 1...4, using: &rng)
    for _ in 0..<edits where !bytes.isEmpty {
        let span = Bool.random(using: &rng) ? min(512, bytes.count) : bytes.count
        let i = Int.random(in: 0..<span, using: &rng)
        // In-place edits most of the time; inserting, deleting, duplicating and cutting shift everything after them.
        let r = Int.random(in: 0..<20, using: &rng)
        switch r < 14 ? r % 5 : 5 + (r - 14) % 4 {
        case 0: bytes[i] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
        case 1: bytes[i] = UInt8.random(in: 0...255, using: &rng)
        case 2: bytes[i] = [0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE][Int.random(in: 0..<6, using: &rng)]
        case 3:  // a 16-bit field (either byte order) set to an extreme: sizes, lengths, counts
            let v: UInt16 = [0, 1, 0x7FFF, 0x8000, 0xFDE8 /* 65000 */, 0xFFFF][Int.random(in: 0..<6, using: &rng)]
            if i + 1 < bytes.count {
                let big = Bool.random(using: &rng)
                bytes[i] = UInt8(big ? v >> 8 : v & 0xFF)
                bytes[i + 1] = UInt8(big ? v & 0xFF : v >> 8)
            }
        case 4:  // a 32-bit field set to an extreme: PNG IHDR sizes, TIFF offsets and counts
            let v: UInt32 = [0, 1, 65_000, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, UInt32(bytes.count)][Int.random(in: 0..<7, using: &rng)]
            if i + 3 < bytes.count {
                let big = Bool.random(using: &rng)
                for k in 0..<4 { bytes[i + k] = UInt8(truncatingIfNeeded: big ? v >> (24 - 8 * k) : v >> (8 * k)) }
            }
        case 5:  // delete a run
            let n = min(bytes.count - i, Int.random(in: 1...64, using: &rng))
            bytes.removeSubrange(i..<(i + n))
        case 6:  // insert random bytes
            bytes.insert(contentsOf: (0..<Int.random(in: 1...32, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }, at: i)
        case 7:  // duplicate a run somewhere else
            let n = min(bytes.count - i, Int.random(in: 1...256, using: &rng))
            let run = Array(bytes[i..<(i + n)])
            bytes.insert(contentsOf: run, at: Int.random(in: 0...bytes.count, using: &rng))
        default:  // truncate
            bytes.removeLast(Int.random(in: 1...max(1, bytes.count - i), using: &rng))
        }
    }
    // libpng checks every chunk's CRC: without fixing them most PNG mutants would only test that check. Three in
    // four PNG mutants get correct CRCs, so the edits reach IHDR, the palette, inflate and the row filters.
    if index % 4 != 0 { fixPNGChecksums(&bytes) }
    return ("\(index)-\(url.lastPathComponent)", bytes)
}

/// Recomputes the CRC of every PNG chunk whose length fits in the file.
func fixPNGChecksums(_ bytes: inout [UInt8]) {
    guard bytes.count > 8, bytes[0] == 0x89, bytes[1] == 0x50, bytes[2] == 0x4E, bytes[3] == 0x47 else { return }
    var at = 8
    while at + 12 <= bytes.count {
        let length = Int(bytes[at]) << 24 | Int(bytes[at + 1]) << 16 | Int(bytes[at + 2]) << 8 | Int(bytes[at + 3])
        let end = at + 8 + length
        guard length >= 0, end + 4 <= bytes.count else { return }
        let crc = crc32(bytes[(at + 4)..<end])
        for k in 0..<4 { bytes[end + k] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * k)) }
        at = end + 4
    }
}

func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in bytes {
        c ^= UInt32(b)
        for _ in 0..<8 { c = (c >> 1) ^ (c & 1 == 1 ? 0xEDB8_8320 : 0) }
    }
    return ~c
}

/// Decode as the pipeline does, then field of view, gradability, crop and resize at a small model scale.
/// Returns nil when the input came through, else the rejection.
func screen(_ bytes: [UInt8], name: String, options: PreparationOptions) -> ImagingError? {
    do {
        let decoded = try ImageCodec.decode(Data(bytes), mode: .rgb, options: options.decode, name: name)
        let analysis = FieldOfViewDetector.analyse(decoded, thresholds: options.thresholds, analysisSize: options.analysisSize)
        if let fov = analysis.fieldOfView {
            let t = CropTransform(fieldOfView: fov, scale: decoded.scale)
            if analysis.isGradable {
                let size = options.modelScale.resizedSize(width: t.side, height: t.side)
                _ = t.networkInput(decoded.image, width: size.width, height: size.height)
            }
        }
        // Masks go through the label decode too (annotations).
        _ = try? ImageCodec.decode(Data(bytes), mode: .label, options: options.decode, name: name)
        return nil
    } catch let error as ImagingError {
        return error
    } catch {
        return ImagingError(.invalidArgument, "(not an ImagingError: \(error))")
    }
}

/// A clear rejection names the input and says what is wrong beyond the name; "out of memory" is only clear when
/// the code says so too (the C shims fall back to it when they have no message).
func isClear(_ error: ImagingError, name: String) -> Bool {
    guard error.message.contains(name) else { return false }
    let rest = error.message.replacingOccurrences(of: name, with: "").trimmingCharacters(in: .whitespaces.union(.punctuationCharacters))
    if rest.count < 12 { return false }
    if error.message.hasSuffix("out of memory") && error.code != .outOfMemory { return false }
    return true
}

// MARK: seeds

func makeSeeds(out: URL, photographs: [String]) throws {
    try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
    var sources: [(String, Image)] = []
    for path in photographs {
        let d = try ImageCodec.decode(contentsOf: URL(fileURLWithPath: path), options: DecodeOptions(jpegScale: 8))
        // About 160 px wide: each input then costs milliseconds, and the mutations still reach every structure.
        let w = min(160, d.image.width), h = max(8, d.image.height * w / max(1, d.image.width))
        sources.append((URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent, Resize.bilinear(d.image, to: w, h)))
    }
    if sources.isEmpty {
        // A synthetic fundus: a bright disc on black, with a few dark spots.
        var px = [UInt8](repeating: 0, count: 120 * 90 * 3)
        for y in 0..<90 { for x in 0..<120 {
            let dx = Double(x) - 60, dy = Double(y) - 45
            if dx * dx + dy * dy < 40 * 40 {
                let dark = (x / 13 + y / 11) % 7 == 0
                px[(y * 120 + x) * 3] = dark ? 90 : 200; px[(y * 120 + x) * 3 + 1] = dark ? 20 : 90; px[(y * 120 + x) * 3 + 2] = 40
            }
        } }
        sources.append(("synthetic", Image(width: 120, height: 90, channels: 3, pixels: px)))
    }
    let palette = [RGBColour(red: 0, green: 0, blue: 0), RGBColour(red: 255, green: 0, blue: 0)]
    for (stem, image) in sources {
        let grey = image.grey()
        let mask = Image(width: grey.width, height: grey.height, channels: 1, pixels: grey.bytes.map { $0 > 100 ? 1 : 0 })
        let files: [(String, Data)] = [
            ("\(stem).jpg", try ImageCodec.encodeJPEG(image, quality: 90)),
            ("\(stem)_grey.jpg", try ImageCodec.encodeJPEG(grey, quality: 75)),
            ("\(stem).png", try ImageCodec.encodePNG(image)),
            ("\(stem)_grey.png", try ImageCodec.encodePNG(grey, flat: true)),
            ("\(stem)_lzw.tif", try ImageCodec.encodeTIFF(image, compression: .lzw)),
            ("\(stem)_tiles.tif", try ImageCodec.encodeTIFF(image, compression: .deflate, tileSize: 32)),
            ("\(stem)_strips.tif", try ImageCodec.encodeTIFF(grey, compression: .packBits, rowsPerStrip: 7)),
            ("\(stem)_palette.tif", try ImageCodec.encodeTIFF(mask, bitsPerSample: 1, palette: palette, compression: .deflate)),
        ]
        for (name, data) in files { try data.write(to: out.appendingPathComponent(name)) }
    }
    print("fundus-fuzz: \(sources.count * 8) seeds in \(out.path)")
}

// MARK: main

func option(_ name: String, in args: [String]) -> String? {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}

func options(_ name: String, in args: [String]) -> [String] {
    var out: [String] = []
    var i = 0
    while i < args.count {
        if args[i] == name, i + 1 < args.count { out.append(args[i + 1]); i += 2 } else { i += 1 }
    }
    return out
}

/// The index being worked on and since when, for the watchdog thread.
final class Watch: @unchecked Sendable {
    private let lock = NSLock()
    private var index = -1
    private var since = Date()
    func set(_ i: Int) { lock.lock(); index = i; since = Date(); lock.unlock() }
    func get() -> (Int, Date) { lock.lock(); defer { lock.unlock() }; return (index, since) }
}

func runInputs(_ args: [String]) -> Never {
    let seeds = seedFiles(options("--seeds", in: args)).map { ($0, [UInt8]((try? Data(contentsOf: $0)) ?? Data())) }
    let count = option("--count", in: args).flatMap(Int.init) ?? 1000
    let first = option("--first", in: args).flatMap(Int.init) ?? 0
    let timeout = option("--timeout", in: args).flatMap(Double.init) ?? 10
    let work = URL(fileURLWithPath: option("--work", in: args) ?? FileManager.default.currentDirectoryPath)
    var prep = PreparationOptions()
    prep.modelScale = .init(longEdge: 480, shortEdge: 320)
    prep.analysisSize = 320
    if let limit = option("--max-pixels", in: args).flatMap(Int.init) { prep.decode.maxPixels = limit }
    try? FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    let current = work.appendingPathComponent("current")

    let watch = Watch()
    let watchdog = Thread {
        while true {
            Thread.sleep(forTimeInterval: 0.5)
            let (i, since) = watch.get()
            if i >= 0, Date().timeIntervalSince(since) > timeout {
                try? "\(i)\n".write(to: work.appendingPathComponent("hang"), atomically: true, encoding: .utf8)
                FileHandle.standardError.write(Data("fundus-fuzz: HANG: input \(i) ran longer than \(timeout) s\n".utf8))
                exit(3)
            }
        }
    }
    watchdog.start()

    var came = 0
    var unclear: [(Int, String)] = []
    var refused: [ImagingError.Code: Int] = [:]
    var slowest = (index: -1, seconds: 0.0)
    let start = Date()
    for index in first..<(first + count) {
        let m = mutant(index, seeds: seeds)
        // Written before the input runs: after a crash, WORK/current names the input that caused it.
        try? "\(index) \(m.name)\n".write(to: current, atomically: false, encoding: .utf8)
        watch.set(index)
        let t0 = Date()
        if let error = screen(m.bytes, name: m.name, options: prep) {
            refused[error.code, default: 0] += 1
            if !isClear(error, name: m.name) { unclear.append((index, "\(error.code): \(error.message)")) }
        } else {
            came += 1
        }
        let dt = Date().timeIntervalSince(t0)
        if dt > slowest.seconds { slowest = (index, dt) }
    }
    watch.set(-1)
    try? FileManager.default.removeItem(at: current)
    let seconds = Date().timeIntervalSince(start)
    let codes = refused.sorted { $0.value > $1.value }.map { "\($0.key.rawValue) \($0.value)" }.joined(separator: ", ")
    print("fundus-fuzz: inputs \(first)…\(first + count - 1) from \(seeds.count) seeds: \(came) came through, "
          + "\(count - came) refused (\(codes)), \(unclear.count) unclear rejections; slowest input \(slowest.index) at "
          + String(format: "%.3f s; %.1f s in all", slowest.seconds, seconds))
    for (i, message) in unclear.prefix(20) { print("  unclear rejection of input \(i): \(message)") }
    exit(unclear.isEmpty ? 0 : 1)
}

func main() {
    let all = Array(CommandLine.arguments.dropFirst())
    guard let command = all.first else { fail("usage: fundus-fuzz seeds|run|save …") }
    let args = Array(all.dropFirst())
    switch command {
    case "seeds":
        guard let out = args.first else { fail("usage: fundus-fuzz seeds OUT_DIR [PHOTOGRAPH…]") }
        do { try makeSeeds(out: URL(fileURLWithPath: out), photographs: Array(args.dropFirst())) } catch { fail("\(error)") }
    case "save":
        guard let index = option("--index", in: args).flatMap(Int.init), let file = args.last else {
            fail("usage: fundus-fuzz save --seeds DIR --index K FILE")
        }
        let seeds = seedFiles(options("--seeds", in: args)).map { ($0, [UInt8]((try? Data(contentsOf: $0)) ?? Data())) }
        let m = mutant(index, seeds: seeds)
        do { try Data(m.bytes).write(to: URL(fileURLWithPath: file)) } catch { fail("\(error)") }
        print("fundus-fuzz: mutant \(index) (\(m.name), \(m.bytes.count) bytes) written to \(file)")
    case "run":
        runInputs(args)
    default:
        fail("unknown command \(command); use seeds, run or save")
    }
}

main()

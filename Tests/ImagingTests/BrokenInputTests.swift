import Foundation
import Imaging
import Testing
import TestSupport

private let shared = Comment(rawValue: SharedFixtures.skipReason)

/// Decodes and returns the error code, or nil when the bytes decoded. Any error that is not an `ImagingError`
/// fails the test; a crash or hang would stop it.
private func outcome(_ data: Data, name: String, mode: DecodeMode = .rgb, options: DecodeOptions = DecodeOptions()) -> ImagingError.Code? {
    do {
        let decoded = try ImageCodec.decode(data, mode: mode, options: options, name: name)
        #expect(decoded.image.width > 0 && decoded.image.height > 0)
        return nil
    } catch let error as ImagingError {
        #expect(error.message.contains(name), "the message names the file: \(error.message)")
        return error.code
    } catch {
        Issue.record("not an ImagingError: \(error)")
        return .invalidArgument
    }
}

@Suite("Broken inputs")
struct BrokenInputTests {
    @Test("Zero bytes, a text file, random bytes: errors with codes, whatever the extension")
    func notImages() throws {
        #expect(outcome(Data(), name: "empty.jpg") == .empty)
        #expect(outcome(Data("patient,eye\n17,R\n".utf8), name: "list.jpg") == .unknownFormat)
        #expect(outcome(Data("<html>not a photo</html>".utf8), name: "x.png") == .unknownFormat)
        #expect(outcome(Data([0xFF, 0xD8, 0xFF]), name: "stub.jpg") == .corrupt)
        #expect(outcome(Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]), name: "stub.png") == .corrupt)
        #expect(outcome(Data([0x49, 0x49, 0x2A, 0x00, 8, 0, 0, 0]), name: "stub.tif") == .corrupt)
        let missing = URL(fileURLWithPath: "/nonexistent/IDRiD_99.jpg")
        #expect(throws: ImagingError.self) { try ImageCodec.decode(contentsOf: missing) }
    }

    @Test("Huge declared sizes are refused before allocating: PNG, JPEG, TIFF headers and the configurable limit")
    func decompressionBombs() throws {
        // PNG declaring 100000 × 100000 grey pixels, with a tiny IDAT.
        let png = HandmadePNG.file(width: 100_000, height: 100_000, depth: 8, colourType: 0, rows: [[0]])
        #expect(outcome(png, name: "bomb.png") == .tooLarge)
        // JPEG whose frame header is patched to 65000 × 65000.
        var jpeg = [UInt8](try ImageCodec.encodeJPEG(Image(width: 16, height: 16, channels: 3)))
        let sof = try #require((0..<(jpeg.count - 1)).first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 })
        jpeg[sof + 5] = 0xFD; jpeg[sof + 6] = 0xE8; jpeg[sof + 7] = 0xFD; jpeg[sof + 8] = 0xE8
        #expect(outcome(Data(jpeg), name: "bomb.jpg") == .tooLarge)
        // TIFF declaring 100000 × 100000 with a 10-byte strip.
        func entry(_ tag: UInt16, _ type: UInt16, _ value: UInt32) -> [UInt8] {
            [UInt8(tag & 0xFF), UInt8(tag >> 8), UInt8(type & 0xFF), UInt8(type >> 8), 1, 0, 0, 0,
             UInt8(value & 0xFF), UInt8((value >> 8) & 0xFF), UInt8((value >> 16) & 0xFF), UInt8(value >> 24)]
        }
        var tiff: [UInt8] = [0x49, 0x49, 0x2A, 0x00, 8, 0, 0, 0, 8, 0]
        tiff += entry(256, 4, 100_000) + entry(257, 4, 100_000) + entry(258, 3, 8) + entry(262, 3, 1)
        tiff += entry(273, 4, 200) + entry(277, 3, 1) + entry(278, 4, 100_000) + entry(279, 4, 10) + [0, 0, 0, 0]
        tiff += [UInt8](repeating: 0, count: 210 - tiff.count)
        #expect(outcome(Data(tiff), name: "bomb.tif") == .tooLarge)
        // An ordinary image above a configured limit.
        let small = try ImageCodec.encodePNG(Image(width: 100, height: 100, channels: 1))
        #expect(outcome(small, name: "a.png", options: DecodeOptions(maxPixels: 9_999)) == .tooLarge)
        #expect(outcome(small, name: "a.png", options: DecodeOptions(maxPixels: 10_000)) == nil)
    }

    @Test("Truncated JPEG, PNG and TIFF files are errors, never partial images", .enabled(if: SharedFixtures.available, shared))
    func truncated() throws {
        let jpeg = try Data(contentsOf: SharedFixtures.otherRetina)
        let png = try Data(contentsOf: SharedFixtures.idridMasks.appendingPathComponent("OD/IDRiD_01_OD.png"))
        let tiff = try Data(contentsOf: SharedFixtures.idridMasks.appendingPathComponent("HE_tif/IDRiD_01_HE.tif"))
        let mask = try ImageCodec.decode(png, mode: .label).image
        let lzwTiles = try ImageCodec.encodeTIFF(mask, bitsPerSample: 1, compression: .lzw, tileSize: 256)
        for (name, data) in [("retina.jpg", jpeg), ("IDRiD_01_OD.png", png), ("IDRiD_01_HE.tif", tiff), ("lzw_tiles.tif", lzwTiles)] {
            for fraction in [0.001, 0.01, 0.3, 0.5, 0.9, 0.999] {
                let cut = data.prefix(max(9, Int(Double(data.count) * fraction)))
                let code = outcome(Data(cut), name: name, mode: name.hasSuffix(".jpg") ? .rgb : .label)
                #expect(code == .corrupt, "\(name) cut to \(cut.count) of \(data.count) bytes gave \(String(describing: code))")
            }
        }
    }

    @Test("A JPEG whose only fault is a missing end marker decodes, with a warning counted")
    func missingEndMarker() throws {
        let image = Image(width: 64, height: 48, channels: 3) { p in for i in 0..<p.count { p[i] = UInt8(truncatingIfNeeded: i / 7) } }
        let jpeg = try ImageCodec.encodeJPEG(image)
        #expect(jpeg.suffix(2) == Data([0xFF, 0xD9]))
        let decoded = try ImageCodec.decode(jpeg.dropLast(2), name: "no-eoi.jpg")
        #expect(decoded.warnings >= 1)
        #expect(decoded.image.bytes == (try ImageCodec.decode(jpeg).image.bytes))
        #expect(outcome(jpeg.dropLast(40), name: "cut.jpg") == .corrupt, "missing entropy data is still an error")
    }

    @Test("Hundreds of random byte mutations of real files give images or errors, never a crash or a hang",
          .enabled(if: SharedFixtures.available, shared))
    func mutations() throws {
        let jpeg = try Data(contentsOf: SharedFixtures.otherRetina)
        let png = try Data(contentsOf: SharedFixtures.idridMasks.appendingPathComponent("MA/IDRiD_01_MA.png"))
        let tiff = try Data(contentsOf: SharedFixtures.idridMasks.appendingPathComponent("HE_tif/IDRiD_01_HE.tif"))
        let mask = try ImageCodec.decode(png, mode: .label).image
        let deflateTiff = try ImageCodec.encodeTIFF(mask, bitsPerSample: 1, palette: [RGBColour(red: 0, green: 0, blue: 0), RGBColour(red: 255, green: 0, blue: 0)],
                                                    compression: .deflate, rowsPerStrip: 64)
        var rng = SplitMix(seed: 20_260_101)
        // FUNDUS_MUTATION_ROUNDS raises the rounds per file for a longer soak (e.g. under --sanitize=address).
        let rounds = ProcessInfo.processInfo.environment["FUNDUS_MUTATION_ROUNDS"].flatMap { Int($0) } ?? 80
        var decoded = 0, refused: [ImagingError.Code: Int] = [:]
        for (name, original) in [("retina.jpg", jpeg), ("IDRiD_01_MA.png", png), ("IDRiD_01_HE.tif", tiff), ("deflate.tif", deflateTiff)] {
            for round in 0..<rounds {
                var bytes = [UInt8](original)
                // Half the rounds hit the first 4 KB (headers, tables, directories), the rest anywhere.
                let span = round % 2 == 0 ? min(4096, bytes.count) : bytes.count
                for _ in 0..<Int.random(in: 1...12, using: &rng) {
                    let i = Int.random(in: 0..<span, using: &rng)
                    switch Int.random(in: 0..<3, using: &rng) {
                    case 0: bytes[i] = UInt8.random(in: 0...255, using: &rng)
                    case 1: bytes[i] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
                    default: bytes[i] = [0x00, 0xFF, 0x7F, 0x80][Int.random(in: 0..<4, using: &rng)]
                    }
                }
                if round % 10 == 9 { bytes.removeLast(Int.random(in: 1..<(bytes.count / 2), using: &rng)) }
                if let code = outcome(Data(bytes), name: name, mode: round % 3 == 0 ? .rgb : .label) {
                    refused[code, default: 0] += 1
                } else {
                    decoded += 1
                }
            }
        }
        #expect(decoded + refused.values.reduce(0, +) == 4 * rounds)
        #expect(decoded > 0 && !refused.isEmpty, "decoded \(decoded), refused \(refused)")
        print("mutation corpus: \(4 * rounds) files, \(decoded) decoded, refused \(refused)")
    }
}

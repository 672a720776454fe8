import Foundation
import Imaging
import Testing
import TestSupport

private let shared = Comment(rawValue: SharedFixtures.skipReason)

@Suite("Codecs")
struct CodecTests {
    @Test("Every image of shared/data decodes at its full size", .enabled(if: SharedFixtures.available, shared))
    func decodesSharedImages() throws {
        let files = SharedFixtures.idridImageFiles()
        #expect(files.count == 14)
        for file in files {
            let decoded = try ImageCodec.decode(contentsOf: file)
            #expect(decoded.format == .jpeg)
            #expect(decoded.image.width == 4288 && decoded.image.height == 2848 && decoded.image.channels == 3)
            #expect(decoded.note == nil)
        }
        let retina = try ImageCodec.decode(contentsOf: SharedFixtures.otherRetina)
        #expect(retina.image.width == 1411 && retina.image.height == 1411)
        var masks = 0
        for code in ["EX", "HE", "SE", "MA", "OD"] {
            let dir = SharedFixtures.idridMasks.appendingPathComponent(code)
            for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) where name.hasSuffix(".png") {
                let mask = try ImageCodec.decode(contentsOf: dir.appendingPathComponent(name), mode: .label)
                #expect(mask.image.width == 4288 && mask.image.height == 2848 && mask.image.channels == 1)
                masks += 1
            }
        }
        #expect(masks == 14 * 4 + 4)
    }

    @Test("IDRiD's palette TIFF HE masks equal the PNG HE masks pixel for pixel", .enabled(if: SharedFixtures.available, shared))
    func tiffMasksEqualPNGMasks() throws {
        for stem in ["IDRiD_01", "IDRiD_02"] {
            let tiff = try ImageCodec.decode(
                contentsOf: SharedFixtures.idridMasks.appendingPathComponent("HE_tif/\(stem)_HE.tif"), mode: .label)
            let png = try ImageCodec.decode(
                contentsOf: SharedFixtures.idridMasks.appendingPathComponent("HE/\(stem)_HE.png"), mode: .label)
            #expect(tiff.format == .tiff && tiff.sourceHasPalette && tiff.sourceBitDepth == 1)
            #expect(tiff.image.width == png.image.width && tiff.image.height == png.image.height)
            // In RGB mode the palette is expanded to its colours; foreground is not black.
            let rgb = try ImageCodec.decode(
                contentsOf: SharedFixtures.idridMasks.appendingPathComponent("HE_tif/\(stem)_HE.tif"), mode: .rgb).image.grey()
            var differing = 0, foreground = 0, otherValues = 0, rgbDiffering = 0
            tiff.image.withPixels { t in png.image.withPixels { p in rgb.withPixels { c in
                for i in 0..<t.count {
                    if t[i] > 1 || (p[i] != 0 && p[i] != 255) { otherValues += 1 }
                    if (t[i] > 0) != (p[i] > 0) { differing += 1 }
                    if (c[i] > 0) != (t[i] > 0) { rgbDiffering += 1 }
                    if t[i] == 1 { foreground += 1 }
                }
            } } }
            #expect(otherValues == 0, "TIFF palette indices are 0/1, PNG values 0/255")
            #expect(differing == 0 && rgbDiffering == 0)
            #expect(foreground > 0, "the mask is not empty")
        }
    }

    @Test("JPEG DCT scaling decodes at 1/2, 1/4, 1/8 with the size rounded up", .enabled(if: SharedFixtures.available, shared))
    func jpegScaling() throws {
        let file = SharedFixtures.otherRetina
        for scale in [2, 4, 8] {
            let decoded = try ImageCodec.decode(contentsOf: file, options: DecodeOptions(jpegScale: scale))
            #expect(decoded.scale == scale)
            #expect(decoded.image.width == (1411 + scale - 1) / scale)
            #expect(decoded.originalWidth == 1411)
        }
    }

    @Test("Automatic DCT scale: the smallest decode whose short side reaches the model's short edge", .enabled(if: SharedFixtures.available, shared))
    func automaticScale() throws {
        let file = SharedFixtures.idridImages.appendingPathComponent("IDRiD_01.jpg")
        let half = try ImageCodec.decode(contentsOf: file, options: DecodeOptions(jpegMinimumShortSide: 960))
        #expect(half.scale == 2 && half.image.width == 2144 && half.image.height == 1424 && half.originalWidth == 4288)
        #expect(try ImageCodec.decode(contentsOf: file, options: DecodeOptions(jpegMinimumShortSide: 356)).scale == 8)
        #expect(try ImageCodec.decode(contentsOf: file, options: DecodeOptions(jpegMinimumShortSide: 2000)).scale == 1)
        #expect(try ImageCodec.decode(contentsOf: SharedFixtures.otherRetina, options: DecodeOptions(jpegMinimumShortSide: 960)).scale == 1)
    }

    @Test("PNG and JPEG round trips: grey and RGB")
    func roundTrips() throws {
        let rgb = Image(width: 37, height: 23, channels: 3) { p in
            for i in 0..<p.count { p[i] = UInt8(truncatingIfNeeded: i * 7 + i / 3) }
        }
        let grey = Image(width: 19, height: 41, channels: 1) { p in
            for i in 0..<p.count { p[i] = i % 5 == 0 ? 255 : 0 }
        }
        for image in [rgb, grey] {
            let png = try ImageCodec.encodePNG(image)
            let back = try ImageCodec.decode(png, mode: image.channels == 3 ? .rgb : .label, name: "x.png")
            #expect(back.format == .png && back.image.bytes == image.bytes)
            let jpeg = try ImageCodec.encodeJPEG(image, quality: 95)
            let j = try ImageCodec.decode(jpeg, mode: image.channels == 3 ? .rgb : .label, name: "x.jpg")
            #expect(j.format == .jpeg && j.image.width == image.width && j.image.height == image.height)
        }
    }

    @Test("A file whose extension lies is decoded by its content and the note says so")
    func extensionMismatch() throws {
        let image = Image(width: 8, height: 8, channels: 3)
        let jpeg = try ImageCodec.encodeJPEG(image)
        let decoded = try ImageCodec.decode(jpeg, name: "/archive/IDRiD_03.png")
        #expect(decoded.format == .jpeg)
        #expect(decoded.note?.contains("IDRiD_03.png is a JPEG") == true)
    }
}

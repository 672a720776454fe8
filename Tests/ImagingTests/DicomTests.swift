import Foundation
import Imaging
import Testing
import TestSupport

/// DICOM photographs (issue 18), made here with DCMTK's own tools from JPEGs: they must decode to the pixels of
/// the JPEG they came from, carry their tags, and fail file by file with a message that says what is wrong.
@Suite("DICOM photographs through DCMTK", .enabled(if: DicomTools.available, Comment(rawValue: DicomTools.skipReason)))
struct DicomTests {
    static func folder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("fundus-dicom-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A textured colour picture (odd size, so 4:2:0 chroma has a ragged edge) as a JPEG file.
    static func colourJPEG(in folder: URL, width: Int = 203, height: Int = 151, grey: Bool = false) throws -> URL {
        let channels = grey ? 1 : 3
        var pixels = [UInt8](repeating: 0, count: width * height * channels)
        var state: UInt32 = 12345
        for y in 0..<height {
            for x in 0..<width {
                state = state &* 1_103_515_245 &+ 12345
                let noise = Int(state >> 27)
                for c in 0..<channels {
                    pixels[(y * width + x) * channels + c] = UInt8(clamping: (x * (c + 1) + y * (3 - c)) % 256 / 2 + noise + 40 * c)
                }
            }
        }
        let url = folder.appendingPathComponent(grey ? "grey.jpg" : "colour.jpg")
        try ImageCodec.encodeJPEG(Image(width: width, height: height, channels: channels, pixels: pixels), quality: 88).write(to: url)
        return url
    }

    static func decode(_ url: URL) throws -> DecodedImage { try ImageCodec.decode(contentsOf: url) }

    /// Largest absolute difference of two images' bytes, and how many differ.
    static func difference(_ a: Image, _ b: Image) -> (max: Int, count: Int) {
        guard a.width == b.width, a.height == b.height, a.channels == b.channels else { return (Int.max, Int.max) }
        var worst = 0, count = 0
        for (x, y) in zip(a.bytes, b.bytes) where x != y {
            worst = max(worst, abs(Int(x) - Int(y)))
            count += 1
        }
        return (worst, count)
    }

    @Test("img2dcm's JPEG baseline DICOM decodes to the JPEG's own pixels and carries its tags")
    func baselineLikeItsJPEG() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let jpeg = try Self.colourJPEG(in: dir)
        let dicom = dir.appendingPathComponent("colour")  // no extension: recognised by content
        try DicomTools.wrap(jpeg: jpeg, to: dicom, tags: ["(0010,0020)=P123", "(0020,0062)=L", "(0008,0020)=20240506",
                                                          "(0028,0030)=0.0065\\0.0065"])
        let fromJPEG = try Self.decode(jpeg)
        let fromDICOM = try Self.decode(dicom)
        #expect(fromDICOM.format == .dicom)
        #expect(fromDICOM.image.width == 203 && fromDICOM.image.height == 151 && fromDICOM.image.channels == 3)
        let diff = Self.difference(fromJPEG.image, fromDICOM.image)
        #expect(diff.count == 0, "DCMTK's decode differs from libjpeg-turbo's: \(diff.count) bytes, up to \(diff.max)")

        let tags = try DicomFile.inspect(contentsOf: dicom)
        #expect(tags.patientID == "P123")
        #expect(tags.laterality == "L")
        #expect(tags.studyDate == "2024-05-06")
        #expect(tags.instanceUID?.isEmpty == false && tags.studyUID?.isEmpty == false)
        #expect(tags.transferSyntaxUID == "1.2.840.10008.1.2.4.50")
        #expect(tags.frames == 1 && tags.rows == 151 && tags.columns == 203)
        #expect(tags.pixelSpacingMM == 0.0065)
        // Masks read as labels work too: the grey plane of the colour image.
        #expect(try ImageCodec.decode(contentsOf: dicom, mode: .label).image.bytes == fromDICOM.image.grey().bytes)
    }

    @Test("An IDRiD photograph wrapped by img2dcm decodes to the same pixels as the JPEG",
          .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
    func idridLikeItsJPEG() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let jpeg = try #require(SharedFixtures.idridImageFiles().first)
        let dicom = dir.appendingPathComponent("IDRiD.dcm")
        try DicomTools.wrap(jpeg: jpeg, to: dicom, tags: ["(0010,0020)=IDRiD-P1", "(0020,0060)=R"])
        let a = try Self.decode(jpeg), b = try Self.decode(dicom)
        #expect(b.image.width == 4288 && b.image.height == 2848)
        let diff = Self.difference(a.image, b.image)
        #expect(diff.count == 0, "\(diff.count) bytes differ, up to \(diff.max)")
        let tags = try DicomFile.inspect(contentsOf: dicom)
        #expect(tags.patientID == "IDRiD-P1" && tags.laterality == "R")  // Laterality when there is no Image Laterality
    }

    @Test("Uncompressed RGB and YBR_FULL, JPEG lossless, MONOCHROME2 and MONOCHROME1 decode to the expected pixels")
    func uncompressedAndLossless() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let jpeg = try Self.colourJPEG(in: dir)
        let wrapped = dir.appendingPathComponent("baseline.dcm")
        try DicomTools.wrap(jpeg: jpeg, to: wrapped)
        let reference = try Self.decode(jpeg).image

        let rgb = dir.appendingPathComponent("rgb.dcm")
        try DicomTools.run("dcmdjpeg", [wrapped.path, rgb.path])                       // to RGB, uncompressed
        #expect(try DicomFile.inspect(contentsOf: rgb).photometricInterpretation == "RGB")
        #expect(Self.difference(reference, try Self.decode(rgb).image).count == 0)

        let ybr = dir.appendingPathComponent("ybr.dcm")
        try DicomTools.run("dcmdjpeg", ["+cn", wrapped.path, ybr.path])                 // YCbCr kept: YBR_FULL
        #expect(try DicomFile.inspect(contentsOf: ybr).photometricInterpretation == "YBR_FULL")
        let ybrDiff = Self.difference(reference, try Self.decode(ybr).image)
        #expect(ybrDiff.max <= 2, "YBR_FULL → RGB differs from the JPEG by up to \(ybrDiff.max)")  // rounding of the conversion

        let lossless = dir.appendingPathComponent("lossless.dcm")
        try DicomTools.run("dcmcjpeg", ["+e1", rgb.path, lossless.path])               // JPEG lossless, first-order prediction
        #expect(try DicomFile.inspect(contentsOf: lossless).transferSyntaxUID == "1.2.840.10008.1.2.4.70")
        #expect(Self.difference(reference, try Self.decode(lossless).image).count == 0)

        let greyJPEG = try Self.colourJPEG(in: dir, grey: true)
        let greyReference = try Self.decode(greyJPEG).image                             // grey replicated to RGB
        let mono2 = dir.appendingPathComponent("mono2.dcm")
        try DicomTools.wrap(jpeg: greyJPEG, to: dir.appendingPathComponent("grey-baseline.dcm"))
        try DicomTools.run("dcmdjpeg", [dir.appendingPathComponent("grey-baseline.dcm").path, mono2.path])
        #expect(try DicomFile.inspect(contentsOf: mono2).photometricInterpretation == "MONOCHROME2")
        #expect(Self.difference(greyReference, try Self.decode(mono2).image).count == 0)
        let mono1 = dir.appendingPathComponent("mono1.dcm")
        try FileManager.default.copyItem(at: mono2, to: mono1)
        try DicomTools.run("dcmodify", ["-nb", "-m", "(0028,0004)=MONOCHROME1", mono1.path])
        let inverted = try Self.decode(mono1).image
        let expected = Image(width: greyReference.width, height: greyReference.height, channels: 3,
                             pixels: greyReference.bytes.map { 255 - $0 })
        let monoDiff = Self.difference(expected, inverted)
        #expect(monoDiff.count == 0, "MONOCHROME1 is shown inverted: \(monoDiff.count) bytes differ, up to \(monoDiff.max)")
    }

    @Test("Broken DICOM files fail one by one, each with a message naming the file and the problem")
    func brokenFiles() throws {
        let dir = try Self.folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let jpeg = try Self.colourJPEG(in: dir)
        let good = dir.appendingPathComponent("good.dcm")
        try DicomTools.wrap(jpeg: jpeg, to: good)
        let bytes = try Data(contentsOf: good)
        let uncompressed = dir.appendingPathComponent("rgb.dcm")
        try DicomTools.run("dcmdjpeg", [good.path, uncompressed.path])

        var cases: [(name: String, expect: String, code: ImagingError.Code)] = []
        try bytes.prefix(bytes.count / 2).write(to: dir.appendingPathComponent("truncated.dcm"))
        cases.append(("truncated.dcm", "truncated", .corrupt))
        let rgbBytes = try Data(contentsOf: uncompressed)
        try rgbBytes.prefix(rgbBytes.count - 5000).write(to: dir.appendingPathComponent("truncated-rgb.dcm"))
        cases.append(("truncated-rgb.dcm", "truncated", .corrupt))

        let noPixels = dir.appendingPathComponent("no-pixels.dcm")
        try FileManager.default.copyItem(at: good, to: noPixels)
        try DicomTools.run("dcmodify", ["-nb", "-ea", "(7fe0,0010)", noPixels.path])
        cases.append(("no-pixels.dcm", "no pixel data", .unsupported))

        // The meta header says JPEG 2000 (…4.90, as long as …4.50): refused, saying so.
        var j2k = bytes
        let baseline = Data("1.2.840.10008.1.2.4.50".utf8)
        let at = try #require(j2k.range(of: baseline))
        j2k.replaceSubrange(at, with: Data("1.2.840.10008.1.2.4.90".utf8))
        try j2k.write(to: dir.appendingPathComponent("j2k.dcm"))
        cases.append(("j2k.dcm", "JPEG 2000", .unsupported))

        let multi = dir.appendingPathComponent("multi.dcm")
        try FileManager.default.copyItem(at: uncompressed, to: multi)
        try DicomTools.run("dcmodify", ["-nb", "-i", "(0028,0008)=2", multi.path])
        cases.append(("multi.dcm", "multi-frame", .unsupported))

        var junk = Data(count: 128)
        junk.append(Data("DICM".utf8))
        junk.append(Data((0..<500).map { UInt8($0 % 251) }))
        try junk.write(to: dir.appendingPathComponent("junk.dcm"))
        cases.append(("junk.dcm", "DICOM", .corrupt))

        for c in cases {
            let url = dir.appendingPathComponent(c.name)
            do {
                _ = try ImageCodec.decode(contentsOf: url)
                Issue.record("\(c.name) decoded")
            } catch let error as ImagingError {
                #expect(error.message.contains(url.path) && error.message.contains(c.expect), "\(c.name): \(error.message)")
                #expect(error.code == c.code, "\(c.name): \(error.code) \(error.message)")
            }
            #expect(throws: ImagingError.self, "inspect refuses \(c.name) too") { try DicomFile.inspect(contentsOf: url) }
        }
        // The good one, read after all of those, is unaffected.
        #expect(try Self.decode(good).image.width == 203)
    }
}

import Foundation
import Imaging
import Logging
import Testing
import TestSupport
@testable import Reports

@Suite("Pictures beside the pages: copies, previews, overlays drawn from masks")
struct PictureTests {
    let logger = Logger(label: "reports-tests")

    static func png(width: Int, height: Int, channels: Int, value: (Int, Int) -> UInt8) throws -> Data {
        let image = Image(width: width, height: height, channels: channels) { out in
            for y in 0..<height { for x in 0..<width { for c in 0..<channels { out[(y * width + x) * channels + c] = value(x, y) } } }
        }
        return try ImageCodec.encodePNG(image)
    }

    @Test("An overlay is drawn from the class masks when the source has none; a mask of the wrong size is a placeholder")
    func overlayFromMasks() throws {
        let dir = try Fixture.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let photo = dir.appendingPathComponent("photo.png")
        try Self.png(width: 16, height: 12, channels: 3) { _, _ in 100 }.write(to: photo)
        let he = dir.appendingPathComponent("he.png")
        try Self.png(width: 16, height: 12, channels: 1) { x, y in x < 8 && y < 8 ? 255 : 0 }.write(to: he)
        let wrong = dir.appendingPathComponent("ma.png")
        try Self.png(width: 4, height: 4, channels: 1) { _, _ in 255 }.write(to: wrong)

        var eye = Fixture.eye(.right, image: "I1", photograph: photo.path, he: 1)
        eye.findings[1].maskPath = he.path
        let out = dir.appendingPathComponent("report")
        var summary = try ReportWriter(directory: out, logger: logger).write([PatientReport(patientID: "P", eyes: [eye])])
        #expect(summary.missingImages.isEmpty && summary.imagesCopied == 2)
        let drawn = try ImageCodec.decode(contentsOf: out.appendingPathComponent("patients/P/R_I1_overlay.jpg")).image
        #expect(drawn.width == 16 && drawn.height == 12)
        // HE is green: the lesion block turned green, the rest kept the photograph's grey (JPEG: roughly).
        #expect(Int(drawn[3, 3, 1]) > Int(drawn[3, 3, 0]) + 40)
        #expect(abs(Int(drawn[13, 10, 1]) - Int(drawn[13, 10, 0])) < 20)

        eye.findings[3].maskPath = wrong.path
        summary = try ReportWriter(directory: out, logger: logger).write([PatientReport(patientID: "P", eyes: [eye])])
        #expect(summary.missingImages.count == 1)
        #expect(summary.missingImages.first?.contains("4×4") == true)
        let html = try String(contentsOf: out.appendingPathComponent("patients/P.html"), encoding: .utf8)
        #expect(html.contains("No overlay was written for this image."))
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("patients/P/R_I1_overlay.jpg").path))
    }

    @Test(
        "IDRiD: the overlay of the ground-truth masks shows haemorrhages in green; a TIFF becomes a JPEG preview",
        .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
    func idridOverlay() throws {
        let dir = try Fixture.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let photo = SharedFixtures.idridImages.appendingPathComponent("IDRiD_01.jpg")
        var eye = Fixture.eye(.right, image: "IDRiD_01", photograph: photo.path, he: 15, ma: 18)
        for (i, code) in ["EX", "HE", "SE", "MA"].enumerated() {
            let mask = SharedFixtures.idridMasks.appendingPathComponent("\(code)/IDRiD_01_\(code).png")
            eye.findings[i].maskPath = FileManager.default.fileExists(atPath: mask.path) ? mask.path : nil
        }
        let tiff = SharedFixtures.idridMasks.appendingPathComponent("HE_tif/IDRiD_01_HE.tif")
        let tiffEye = Fixture.eye(.left, image: "IDRiD_01_HE_tif", photograph: tiff.path, ma: 0)
        let summary = try ReportWriter(directory: dir, logger: logger).write(
            [PatientReport(patientID: "IDRiD_01", eyes: [eye, tiffEye])])
        #expect(summary.missingImages.isEmpty && summary.imagesCopied == 3)

        let overlay = try ImageCodec.decode(contentsOf: dir.appendingPathComponent("patients/IDRiD_01/R_IDRiD_01_overlay.jpg")).image
        #expect(max(overlay.width, overlay.height) <= ReportPictures.previewLongSide)
        let he = try ImageCodec.decode(contentsOf: SharedFixtures.idridMasks.appendingPathComponent("HE/IDRiD_01_HE.png"), mode: .label).image
        let factor = (he.width + overlay.width - 1) / overlay.width
        // The centre of the largest run of HE pixels on some row: its overlay pixel is green-dominated.
        var best = (x: 0, y: 0, run: 0)
        for y in stride(from: 0, to: he.height, by: 7) {
            var run = 0
            for x in 0..<he.width {
                run = he[x, y] > 0 ? run + 1 : 0
                if run > best.run { best = (x - run / 2, y, run) }
            }
        }
        #expect(best.run > 3 * factor)
        let (ox, oy) = (best.x / factor, best.y / factor)
        #expect(Int(overlay[ox, oy, 1]) > Int(overlay[ox, oy, 0]))

        let preview = dir.appendingPathComponent("patients/IDRiD_01/L_IDRiD_01_HE_tif_photograph.jpg")
        let decoded = try ImageCodec.decode(contentsOf: preview)
        #expect(decoded.format == .jpeg && max(decoded.image.width, decoded.image.height) <= ReportPictures.previewLongSide)
    }
}

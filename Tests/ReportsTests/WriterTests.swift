import Foundation
import Logging
import Testing
import TestSupport
@testable import Reports

@Suite("Report folder: pages, pictures, index and exports")
struct WriterTests {
    let logger = Logger(label: "reports-tests")

    @Test("Pictures are copied beside the page and linked relatively; a missing one gets a placeholder")
    func picturesCopied() throws {
        let dir = try Fixture.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let photo = try Fixture.file("photo.JPG", in: dir, bytes: [1, 2, 3])
        let overlay = try Fixture.file("overlay.png", in: dir, bytes: [4, 5])
        let out = dir.appendingPathComponent("report")
        let patient = PatientReport(patientID: "P1", eyes: [
            Fixture.eye(.right, image: "R1", photograph: photo, overlay: overlay, he: 1),
            Fixture.eye(.left, image: "L1", photograph: dir.appendingPathComponent("gone.jpg").path),
        ])
        let summary = try ReportWriter(directory: out, logger: logger).write([patient], now: Fixture.date)
        #expect(summary.pagesWritten == 1 && summary.imagesCopied == 2 && summary.patientsIndexed == 1)
        #expect(summary.missingImages.count == 1)
        #expect(summary.missingImages.first?.contains(dir.appendingPathComponent("gone.jpg").path) == true)
        let copied = out.appendingPathComponent("patients/P1/R_R1_photograph.jpg")
        #expect(try Data(contentsOf: copied) == Data([1, 2, 3]))
        #expect(try Data(contentsOf: out.appendingPathComponent("patients/P1/R_R1_overlay.png")) == Data([4, 5]))
        let html = try String(contentsOf: out.appendingPathComponent("patients/P1.html"), encoding: .utf8)
        #expect(html.contains("src=\"P1/R_R1_photograph.jpg\""))
        #expect(html.contains("src=\"P1/R_R1_overlay.png\""))
        #expect(html.contains("Photograph not available"))
        #expect(!html.contains("file://"))
        #expect(html.contains("href=\"../index.html\""))
    }

    @Test("A hostile patient id gets a safe page inside the folder and no markup")
    func hostilePatient() throws {
        let dir = try Fixture.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("report")
        let id = "../../<script>alert(1)</script>"
        try ReportWriter(directory: out, logger: logger).write(
            [PatientReport(patientID: id, eyes: [Fixture.eye(.right, image: "../x\"y", he: 1)])], now: Fixture.date)
        // Nothing was written beside or above the report folder.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["report"])
        let pages = try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("patients").path)
            .filter { $0.hasSuffix(".html") }
        #expect(pages.count == 1)
        let page = try #require(pages.first)
        #expect(!page.contains("..") && !page.contains("<"))
        let html = try String(contentsOf: out.appendingPathComponent("patients/\(page)"), encoding: .utf8)
        #expect(!html.lowercased().contains("<script"))
        let index = try String(contentsOf: out.appendingPathComponent("index.html"), encoding: .utf8)
        #expect(!index.lowercased().contains("<script"))
        #expect(index.contains("href=\"patients/\(page)\""))
    }

    @Test("The index lists flagged patients first, then incomplete, then the rest; later writes add to it")
    func indexOrder() throws {
        let dir = try Fixture.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let writer = ReportWriter(directory: dir, logger: logger)
        try writer.write([
            PatientReport(patientID: "a-clear", eyes: [Fixture.eye(.right, image: "1", ma: 3)]),
            PatientReport(patientID: "b-ungradable", eyes: [Fixture.eye(.right, image: "2", gradable: false)]),
        ], now: Fixture.date)
        let summary = try writer.write(
            [PatientReport(patientID: "z-flagged", eyes: [Fixture.eye(.left, image: "3", he: 4)])], now: Fixture.date)
        #expect(summary.patientsIndexed == 3)
        #expect(summary.exportRows == 4 + 1 + 4)
        let index = try String(contentsOf: dir.appendingPathComponent("index.html"), encoding: .utf8)
        let positions = ["z-flagged", "b-ungradable", "a-clear"].map { index.range(of: "<code>\($0)</code>")?.lowerBound }
        #expect(positions.allSatisfy { $0 != nil })
        #expect(positions[0]! < positions[1]! && positions[1]! < positions[2]!)
        #expect(index.contains("<b>1</b>flagged for grader review"))
        let csv = try String(contentsOf: dir.appendingPathComponent("findings.csv"), encoding: .utf8)
        #expect(csv.components(separatedBy: "\r\n")[1].hasPrefix("z-flagged,L,3,"))
    }

    @Test("The worse eye decides the patient's outcome")
    func outcome() {
        #expect(PatientReport(patientID: "p", eyes: [Fixture.eye(.right, image: "a", ma: 1), Fixture.eye(.left, image: "b", he: 1)]).outcome == .flagged)
        #expect(PatientReport(patientID: "p", eyes: [Fixture.eye(.right, image: "a", he: 1), Fixture.eye(.left, image: "b", gradable: false)]).outcome == .flagged)
        #expect(PatientReport(patientID: "p", eyes: [Fixture.eye(.right, image: "a"), Fixture.eye(.left, image: "b", gradable: false)]).outcome == .incomplete)
        #expect(PatientReport(patientID: "p", eyes: []).outcome == .incomplete)
        #expect(PatientReport(patientID: "p", eyes: [Fixture.eye(.left, image: "a", ma: 5)]).outcome == .notFlagged)
    }

    @Test(
        "A report of an IDRiD patient carries the photograph, overlay, legend and table",
        .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
    func idridReport() throws {
        let dir = try Fixture.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let photo = SharedFixtures.idridImages.appendingPathComponent("IDRiD_01.jpg")
        // The overlay writer belongs to Imaging; a ground-truth mask stands in for it here.
        let overlay = SharedFixtures.idridMasks.appendingPathComponent("HE/IDRiD_01_HE.png")
        let patient = PatientReport(patientID: "IDRiD_01", eyes: [
            Fixture.eye(.right, image: "IDRiD_01", photograph: photo.path, overlay: overlay.path, he: 15, ma: 18),
        ])
        let summary = try ReportWriter(directory: dir, logger: logger).write([patient], now: Fixture.date)
        #expect(summary.missingImages.isEmpty && summary.imagesCopied == 2)
        let copied = dir.appendingPathComponent("patients/IDRiD_01/R_IDRiD_01_photograph.jpg")
        #expect(try Data(contentsOf: copied) == Data(contentsOf: photo))
        let html = try String(contentsOf: dir.appendingPathComponent("patients/IDRiD_01.html"), encoding: .utf8)
        #expect(html.contains("<img src=\"IDRiD_01/R_IDRiD_01_photograph.jpg\""))
        #expect(html.contains("<img src=\"IDRiD_01/R_IDRiD_01_overlay.png\""))
        for code in ["EX", "HE", "SE", "MA"] { #expect(html.contains("swatch c-\(code)")) }
        #expect(html.contains("<table class=\"findings\">"))
        #expect(html.contains("Flagged for grader review"))
        #expect(html.contains("m2mrf-test") && html.contains("2026-11-18 11:06 UTC"))
    }
}

import Foundation
import Imaging
import Logging
import Store
import Testing
import TestSupport
@testable import Pipeline

/// Archives as hospitals have them (issue 18): DICOM files, with or without `.dcm`, DICOMDIR folders, broken files
/// beside good ones; made here with DCMTK's tools, imported into a real PostgreSQL.
@Suite("DICOM intake", .serialized, .enabled(if: DicomTools.available, Comment(rawValue: DicomTools.skipReason)))
struct DicomIntakeTests {
    let logger = ScreeningFixture.logger

    /// A synthetic photograph as a JPEG and, beside it in `folder`, `name` made from it by img2dcm with `tags`.
    static func dicom(_ name: String, in folder: URL, seed: Int, tags: [String]) throws -> URL {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let jpeg = folder.appendingPathComponent(".source-\(seed).jpg")
        try FreshDatabaseTests.syntheticPhotograph(seed: seed).write(to: jpeg)
        let url = folder.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try DicomTools.wrap(jpeg: jpeg, to: url, tags: tags)
        try FileManager.default.removeItem(at: jpeg)
        return url
    }

    static func row(_ c: Connection, path: URL) throws -> Row? {
        try c.query("""
            SELECT id, patient_id, laterality, acquired_on::text AS acquired_on, instance_uid, study_uid, pixel_spacing_mm
            FROM images WHERE path = $1
            """, [path.standardizedFileURL.path]).rows.first
    }

    @Test("A folder of DICOM files: patient, eye and date from the tags, one image per SOP Instance UID, broken files skipped one by one")
    func folderOfDicom() async throws {
        let folder = try ScreeningFixture.makeFolder("fundus-dicom-import-")
        defer { try? FileManager.default.removeItem(at: folder) }
        let archive = folder.appendingPathComponent("archive")
        try FileManager.default.createDirectory(at: archive, withIntermediateDirectories: true)
        try FreshDatabaseTests.syntheticPhotograph(seed: 1).write(to: archive.appendingPathComponent("P9_R.jpg"))
        let good = try Self.dicom("IM0001", in: archive, seed: 2,  // no extension: recognised by the preamble
                                  tags: ["(0010,0020)=P123", "(0020,0062)=L", "(0008,0020)=20240506", "(0008,0060)=OP"])
        let other = try Self.dicom("study/eye.dcm", in: archive, seed: 3, tags: ["(0010,0020)=P124", "(0020,0060)=R"])
        try FileManager.default.copyItem(at: good, to: archive.appendingPathComponent("copy-of-IM0001.dcm"))
        // The broken ones.
        let bytes = try Data(contentsOf: other)
        try bytes.prefix(bytes.count / 2).write(to: archive.appendingPathComponent("truncated.dcm"))
        let noPixels = try Self.dicom("NOPIXELS", in: archive, seed: 4, tags: ["(0010,0020)=P125"])
        try DicomTools.run("dcmodify", ["-nb", "-ea", "(7fe0,0010)", noPixels.path])
        let multi = try Self.dicom("multi.dcm", in: archive, seed: 5, tags: ["(0010,0020)=P126"])
        try DicomTools.run("dcmodify", ["-nb", "-i", "(0028,0008)=3", multi.path])
        var j2k = try Data(contentsOf: try Self.dicom("j2k.dcm", in: archive, seed: 6, tags: ["(0010,0020)=P127"]))
        j2k.replaceSubrange(try #require(j2k.range(of: Data("1.2.840.10008.1.2.4.50".utf8))),
                            with: Data("1.2.840.10008.1.2.4.90".utf8))
        try j2k.write(to: archive.appendingPathComponent("j2k.dcm"))
        try Data("not DICOM at all".utf8).write(to: archive.appendingPathComponent("notes.dcm"))

        try await withTestDatabase { db in
            let c = try db.connect()
            let importer = ArchiveImporter(connection: c, pattern: try FileNamePattern(), dicom: DicomIntake.tagReader,
                                           logger: logger)
            let report = try importer.importDirectory(archive)
            #expect(report.added == 3, "\(report.skipped)")                // P9_R.jpg, IM0001, study/eye.dcm
            #expect(report.alreadyPresent == 1)                              // the copy: same SOP Instance UID
            #expect(report.imageIDs.count == 3)
            let skipped = report.skipped.joined(separator: "\n")
            #expect(report.skipped.count == 5, "\(skipped)")
            for (name, reason) in [("truncated.dcm", "truncated"), ("NOPIXELS", "no pixel data"), ("multi.dcm", "multi-frame"),
                                   ("j2k.dcm", "JPEG 2000"), ("notes.dcm", "no DICOM preamble")] {
                #expect(report.skipped.contains { $0.contains("/" + name) && $0.contains(reason) }, "\(name): \(skipped)")
            }

            let tagged = try #require(try Self.row(c, path: good))
            #expect(tagged["patient_id"] == "P123" && tagged["laterality"] == "L" && tagged["acquired_on"] == "2024-05-06")
            #expect(tagged["instance_uid"]?.isEmpty == false && tagged["study_uid"]?.isEmpty == false)
            let second = try #require(try Self.row(c, path: other))
            #expect(second["patient_id"] == "P124" && second["laterality"] == "R")    // Laterality (0020,0060)
            let jpeg = try #require(try Self.row(c, path: archive.appendingPathComponent("P9_R.jpg")))
            #expect(jpeg["patient_id"] == "P9" && jpeg["laterality"] == "R")          // from the file name, as before

            // Again: nothing new; the copy is still the one image.
            let again = try importer.importDirectory(archive)
            #expect(again.added == 0 && again.alreadyPresent == 4 && again.imageIDs == report.imageIDs)

            // A manifest overrides the tags; a DICOM file with another name but the same instance is that image.
            let moved = folder.appendingPathComponent("elsewhere/renamed.dcm")
            try FileManager.default.createDirectory(at: moved.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: good, to: moved)
            let fresh = try Self.dicom("elsewhere/new", in: folder, seed: 7, tags: ["(0010,0020)=P200", "(0020,0062)=L"])
            let manifest = folder.appendingPathComponent("elsewhere/manifest.csv")
            try "path,patient,eye\nrenamed.dcm,,\nnew,M-200,R\n".write(to: manifest, atomically: true, encoding: .utf8)
            let listed = try importer.importManifest(manifest)
            #expect(listed.added == 1 && listed.alreadyPresent == 1, "\(listed.skipped)")
            let overridden = try #require(try Self.row(c, path: fresh))
            #expect(overridden["patient_id"] == "M-200" && overridden["laterality"] == "R")
            #expect(try Self.row(c, path: moved) == nil)
        }
    }

    @Test("A DICOMDIR folder (or its DICOMDIR file) imports every DICOM file under it; the DICOMDIR itself is no image")
    func dicomdirFolder() async throws {
        let folder = try ScreeningFixture.makeFolder("fundus-dicomdir-")
        defer { try? FileManager.default.removeItem(at: folder) }
        let media = folder.appendingPathComponent("CD")
        _ = try Self.dicom("IMG00001", in: media, seed: 1, tags: ["(0010,0020)=P7", "(0020,0062)=R", "(0008,0060)=OP"])
        _ = try Self.dicom("SUB/IMG00002", in: media, seed: 2, tags: ["(0010,0020)=P7", "(0020,0062)=L", "(0008,0060)=OP"])
        try DicomTools.run("dcmmkdir", ["-q", "-Pfl", "+r", "+I", "+id", media.path, "+D", media.appendingPathComponent("DICOMDIR").path,
                                        "IMG00001", "SUB/IMG00002"])
        #expect(FileManager.default.fileExists(atPath: media.appendingPathComponent("DICOMDIR").path))
        try await withTestDatabase { db in
            let c = try db.connect()
            let importer = ArchiveImporter(connection: c, pattern: try FileNamePattern(), dicom: DicomIntake.tagReader,
                                           logger: logger)
            let report = try importer.importDirectory(media.appendingPathComponent("DICOMDIR"))
            #expect(report.added == 2 && report.skipped.isEmpty, "\(report.skipped)")
            let eyes = try c.query("SELECT patient_id, laterality FROM images ORDER BY laterality").rows
            #expect(eyes.map { [$0["patient_id"], $0["laterality"]] } == [["P7", "L"], ["P7", "R"]])
            #expect(try importer.importDirectory(media).added == 0)
        }
    }

    @Test("A DICOM made from an IDRiD photograph screens to the same findings as its JPEG",
          .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
    func screensLikeItsJPEG() async throws {
        let folder = try ScreeningFixture.makeFolder("fundus-dicom-screen-")
        defer { try? FileManager.default.removeItem(at: folder) }
        let archive = folder.appendingPathComponent("archive")
        try FileManager.default.createDirectory(at: archive, withIntermediateDirectories: true)
        let source = try #require(SharedFixtures.idridImageFiles().first)
        let jpeg = archive.appendingPathComponent(source.lastPathComponent)
        try FileManager.default.copyItem(at: source, to: jpeg)
        let dicom = archive.appendingPathComponent("IDRIDDCM")
        try DicomTools.wrap(jpeg: source, to: dicom, tags: ["(0010,0020)=IDRiD-PATIENT", "(0020,0062)=R"])
        let masks = folder.appendingPathComponent("masks")
        try await withTestDatabase { db in
            let c = try db.connect()
            let model = try ModelResolver.resolve(.named(try ScreeningFixture.tinyModelFolder(in: folder).path), connection: c,
                                                  logger: logger)
            let importer = ArchiveImporter(connection: c, pattern: try FileNamePattern(), enqueue: false,
                                           dicom: DicomIntake.tagReader, logger: logger)
            let report = try importer.importDirectory(archive)
            #expect(report.added == 2, "\(report.skipped)")
            try JobQueue(connection: c, logger: logger).enqueueScreening(imageIDs: report.imageIDs, modelVersionID: model.version.id)
            let summary = try await ScreeningFixture.run(db, model: model, masks: masks)
            #expect(summary.screened == 2 && summary.failed == 0, "\(summary.text)")

            let jpegRow = try #require(try Self.row(c, path: jpeg))
            let dicomRow = try #require(try Self.row(c, path: dicom))
            #expect(dicomRow["patient_id"] == "IDRiD-PATIENT" && dicomRow["laterality"] == "R")
            let results = ScreeningResults(connection: c)
            let a = try #require(try results.fetch(imageID: try jpegRow.decode("id"), modelVersionID: model.version.id))
            let b = try #require(try results.fetch(imageID: try dicomRow.decode("id"), modelVersionID: model.version.id))
            #expect(a.gradability == b.gradability && a.flag == b.flag)
            #expect(a.findings.map(\.lesionClass) == b.findings.map(\.lesionClass))
            for (x, y) in zip(a.findings, b.findings) {
                #expect(x.lesionCount == y.lesionCount && x.areaPixels == y.areaPixels
                        && x.largestLesionPixels == y.largestLesionPixels && x.fieldOfViewShare == y.fieldOfViewShare,
                        "\(x.lesionClass): JPEG \(x.lesionCount) lesions \(x.areaPixels) px, DICOM \(y.lesionCount) lesions \(y.areaPixels) px")
            }
            // The masks are the same pictures.
            for code in ["EX", "HE", "SE", "MA"] {
                // Masks lie in a folder per patient: the JPEG's from its file name, the DICOM's from its tag.
                let stem = jpeg.deletingPathExtension().lastPathComponent
                let m1 = try ImageCodec.decode(contentsOf: masks.appendingPathComponent(
                    "\(ScreeningStages.safeName(stem))/\(stem)_\(code).png"), mode: .label)
                let m2 = try ImageCodec.decode(contentsOf: masks.appendingPathComponent(
                    "\(ScreeningStages.safeName("IDRiD-PATIENT"))/IDRIDDCM_\(code).png"), mode: .label)
                let same = m1.image.bytes == m2.image.bytes
                #expect(same, "\(code) masks differ")
            }
        }
    }
}

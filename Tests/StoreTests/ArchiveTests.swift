import Foundation
import Testing
@testable import Store
import TestSupport

@Suite("Archive import")
struct ArchiveTests {
    let logger = TestPostgres.defaultLogger

    /// A new folder of small files standing in for photographs (Store reads bytes, never pixels); names may hold
    /// subfolders.
    func makeFolder(_ names: [String]) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fundus-archive-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for name in names {
            let url = folder.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data("image bytes of \(name)".utf8).write(to: url)
        }
        return folder
    }

    @Test("CSV manifests: quotes, commas and newlines in fields, CRLF, a byte-order mark")
    func csv() throws {
        let text = "\u{FEFF}path,patient,note\r\na.jpg,P1,plain\r\n\"b, c.jpg\",\"P \"\"2\"\"\",\"two\nlines\"\r\n\r\nd.jpg,P4,\n"
        let table = try CSVTable(data: Data(text.utf8), name: "m.csv")
        #expect(table.header == ["path", "patient", "note"])
        #expect(table.records.map(\.fields) == [["a.jpg", "P1", "plain"], ["b, c.jpg", "P \"2\"", "two\nlines"], ["d.jpg", "P4", ""]])
        #expect(table.records.map(\.line) == [2, 3, 6])
        #expect(throws: DatabaseError.self) { try CSVTable(data: Data("path\n\"open".utf8), name: "bad.csv") }
    }

    @Test("Patient and eye from file names; dates in either form")
    func fileNamePatterns() throws {
        let pattern = try FileNamePattern()
        #expect(pattern.match("12_left")! == ("12", .left))
        #expect(pattern.match("P0042-OD-2019")! == ("P0042", .right))
        #expect(pattern.match("IDRiD_01") == nil)
        let custom = try FileNamePattern(#"^(?<patient>\d+)(?<eye>[RL])$"#)
        #expect(custom.match("0007L")! == ("0007", .left))
        #expect(throws: DatabaseError.self) { try FileNamePattern("(?<eye>R|L)") }
        #expect(CalendarDate.normalise("20190304") == "2019-03-04")
        #expect(CalendarDate.normalise("2019-02-29") == nil)
        #expect(CalendarDate.normalise("2020-02-29") == "2020-02-29")
    }

    @Test("Importing a folder twice adds nothing the second time and enqueues each image once for the active model")
    func importFolderTwice() async throws {
        let folder = try makeFolder(["P1_R.jpg", "P1_L.jpg", "sub/P2-OS.PNG", "IDRiD_01.jpg", "notes.txt"])
        defer { try? FileManager.default.removeItem(at: folder) }
        try await withTestDatabase { db in
            let c = try db.connect()
            let model = try ModelRegistry(connection: c).register(name: "v1", architecture: "a", weightsPath: "/w",
                                                                  checksum: String(repeating: "a", count: 64))
            try ModelRegistry(connection: c).promote(id: model.id)
            let importer = ArchiveImporter(connection: c, pattern: try FileNamePattern(), logger: logger)
            let first = try importer.importDirectory(folder)
            #expect(first.considered == 4)
            #expect(first.added == 4)
            #expect(first.enqueued == 4)
            #expect(first.modelVersion == "v1")
            let second = try importer.importDirectory(folder)
            #expect(second.added == 0 && second.alreadyPresent == 4 && second.enqueued == 0)
            #expect(try Archive(connection: c).count() == 4)
            #expect(try JobQueue(connection: c, logger: logger).counts().map(\.jobs) == [4])

            let rows = try c.query("SELECT path, patient_id, laterality, checksum_sha256, size_bytes FROM images ORDER BY path").rows
            let byName = Dictionary(uniqueKeysWithValues: rows.map { (URL(fileURLWithPath: $0["path"]!).lastPathComponent, $0) })
            #expect(byName["P1_R.jpg"]?["patient_id"] == "P1" && byName["P1_R.jpg"]?["laterality"] == "R")
            #expect(byName["P2-OS.PNG"]?["patient_id"] == "P2" && byName["P2-OS.PNG"]?["laterality"] == "L")
            #expect(byName["IDRiD_01.jpg"]?["patient_id"] == "IDRiD_01" && byName["IDRiD_01.jpg"]?["laterality"] == nil)
            let expected = SHA256.hex(Array("image bytes of P1_R.jpg".utf8))
            #expect(byName["P1_R.jpg"]?["checksum_sha256"] == expected)
        }
    }

    @Test("A manifest gives patient, eye, date and spacing; bad rows are skipped with their line and reason")
    func importManifest() async throws {
        let folder = try makeFolder(["a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"])
        defer { try? FileManager.default.removeItem(at: folder) }
        let manifest = folder.appendingPathComponent("manifest.csv")
        try """
            path,patient,eye,acquired_on,pixel_spacing_mm
            a.jpg,P1,OD,2019-03-04,0.0123
            b.jpg,P1,left,20190304,
            c.jpg,P2,X,,
            missing.jpg,P3,R,,
            d.jpg,P4,R,2019-13-01,
            e.jpg,P5,L,,-1
            a.jpg,P1,R,,

            """.write(to: manifest, atomically: true, encoding: .utf8)
        try await withTestDatabase { db in
            let c = try db.connect()
            let report = try ArchiveImporter(connection: c, pattern: try FileNamePattern(), logger: logger).importManifest(manifest)
            #expect(report.added == 2)
            #expect(report.considered == 7)
            #expect(report.skipped.count == 5)
            #expect(report.enqueued == 0 && report.modelVersion == nil, "no active model: nothing enqueued")
            let reasons = report.skipped.joined(separator: "\n")
            #expect(reasons.contains("manifest.csv line 4 (c.jpg): eye \"X\""))
            #expect(reasons.contains("manifest.csv line 5 (missing.jpg): cannot read the file"))
            #expect(reasons.contains("line 6 (d.jpg): acquisition date"))
            #expect(reasons.contains("line 7 (e.jpg): pixel spacing"))
            #expect(reasons.contains("line 8 (a.jpg): listed twice"))
            let a = try c.query("SELECT patient_id, laterality, acquired_on::text AS d, pixel_spacing_mm FROM images WHERE path LIKE '%/a.jpg'").rows[0]
            #expect(a["patient_id"] == "P1" && a["laterality"] == "R" && a["d"] == "2019-03-04" && a["pixel_spacing_mm"] == "0.0123")
            let b = try c.query("SELECT laterality, acquired_on::text AS d FROM images WHERE path LIKE '%/b.jpg'").rows[0]
            #expect(b["laterality"] == "L" && b["d"] == "2019-03-04")
        }
    }
}

@Suite("Operator inputs")
struct OperatorInputTests {
    @Test("Ages read as 90s, 30m, 12h, 7d, 2w; anything else is refused")
    func ages() throws {
        #expect(try Age.seconds("90s") == 90)
        #expect(try Age.seconds("30m") == 1800)
        #expect(try Age.seconds("12h") == 43_200)
        #expect(try Age.seconds("7d") == 604_800)
        #expect(try Age.seconds("2w") == 1_209_600)
        #expect(try Age.seconds("15") == 15)
        #expect(throws: DatabaseError.self) { try Age.seconds("soon") }
        #expect(throws: DatabaseError.self) { try Age.seconds("-1d") }
    }

    @Test("Paths from manifests are normalised without touching the disk")
    func paths() {
        #expect(ArchiveImporter.normalisedPath("/a/./b/../c.jpg") == "/a/c.jpg")
        #expect(ArchiveImporter.normalisedPath("/a//b.jpg") == "/a/b.jpg")
        #expect(ArchiveImporter.normalisedPath("/plain/x.jpg") == "/plain/x.jpg")
        #expect(ArchiveImporter.fileStem("/x/P1_R.tiff") == "P1_R")
        #expect(ArchiveImporter.fileStem("/x/.hidden") == ".hidden")
        #expect(Laterality(parsing: " os ") == .left)
        #expect(Laterality(parsing: "B") == nil)
    }
}

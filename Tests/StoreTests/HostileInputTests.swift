import Foundation
import Testing
@testable import Store
import TestSupport

/// Inputs an archive really contains sooner or later: names with quotes, newlines and SQL, bytes that are not
/// UTF-8, links that lead elsewhere, manifests written by hand. Each gets a clear message or is stored verbatim;
/// nothing is ever interpolated into SQL.
@Suite("Hostile input at the archive's boundary")
struct HostileInputTests {
    let logger = TestPostgres.defaultLogger

    /// The archive tests' folder of small files.
    func makeFolder(_ names: [String]) throws -> URL { try ArchiveTests().makeFolder(names) }

    func activeModel(_ c: Connection) throws {
        let model = try ModelRegistry(connection: c).register(name: "v1", architecture: "a", weightsPath: "/w",
                                                              checksum: String(repeating: "a", count: 64))
        try ModelRegistry(connection: c).promote(id: model.id)
    }

    @Test("File names with quotes, newlines, SQL and non-Latin letters are stored verbatim and the schema survives")
    func strangeFileNames() async throws {
        let names = ["P'1_R.jpg", "P\"2\"_L.jpg", "P3_R\nsecond line.jpg", "x'); DROP TABLE images; --_R.jpg",
                     "患者4_L.png", "P5 $1 %s \\N_R.tif"]
        let folder = try makeFolder(names)
        defer { try? FileManager.default.removeItem(at: folder) }
        try await withTestDatabase { db in
            let c = try db.connect()
            try activeModel(c)
            let report = try ArchiveImporter(connection: c, pattern: try FileNamePattern(), logger: logger).importDirectory(folder)
            #expect(report.added == names.count, "skipped: \(report.skipped)")
            #expect(report.enqueued == names.count)
            let stored = Set(try c.query("SELECT path FROM images").rows.compactMap { $0["path"] ?? nil })
            let expected = Set(names.map { folder.standardizedFileURL.appendingPathComponent($0).path })
            #expect(stored == expected)
            let patients = Set(try c.query("SELECT patient_id FROM images").rows.compactMap { $0["patient_id"] ?? nil })
            #expect(patients.contains("P'1") && patients.contains("P\"2\"") && patients.contains("x'); DROP TABLE images; --"))
            #expect(try Archive(connection: c).count() == names.count, "the images table is still there")
        }
    }

    @Test("Symbolic links out of the archive folder are skipped with a message; links inside it are followed")
    func symbolicLinks() async throws {
        let folder = try makeFolder(["P1_R.jpg"])
        let outside = try makeFolder(["secret_R.jpg", "dir/P9_L.jpg"])
        defer {
            try? FileManager.default.removeItem(at: folder)
            try? FileManager.default.removeItem(at: outside)
        }
        let fm = FileManager.default
        try fm.createSymbolicLink(atPath: folder.appendingPathComponent("leak_R.jpg").path,
                                  withDestinationPath: outside.appendingPathComponent("secret_R.jpg").path)
        try fm.createSymbolicLink(atPath: folder.appendingPathComponent("elsewhere").path,
                                  withDestinationPath: outside.appendingPathComponent("dir").path)
        try fm.createSymbolicLink(atPath: folder.appendingPathComponent("up_L.jpg").path, withDestinationPath: "../../../../../../etc/passwd.jpg")
        try fm.createSymbolicLink(atPath: folder.appendingPathComponent("alias_L.jpg").path, withDestinationPath: "P1_R.jpg")
        try await withTestDatabase { db in
            let c = try db.connect()
            let report = try ArchiveImporter(connection: c, pattern: try FileNamePattern(), logger: logger).importDirectory(folder)
            let paths = Set(try c.query("SELECT path FROM images").rows.compactMap { $0["path"] ?? nil })
            #expect(paths.allSatisfy { $0.hasPrefix(folder.standardizedFileURL.path + "/") })
            #expect(!paths.contains { $0.contains("secret") || $0.contains("P9_L") || $0.contains("up_L") })
            #expect(paths.contains(folder.standardizedFileURL.appendingPathComponent("P1_R.jpg").path))
            #expect(paths.contains(folder.standardizedFileURL.appendingPathComponent("alias_L.jpg").path))
            let reasons = report.skipped.joined(separator: "\n")
            #expect(reasons.contains("leak_R.jpg\": a symbolic link to"), "\(reasons)")
            #expect(reasons.contains("outside the archive folder"))
            #expect(reasons.contains("up_L.jpg\": cannot resolve the path"), "a dangling link is named too: \(reasons)")
        }
    }

    @Test("A file name that is not UTF-8 is never stored mangled: imported exactly or skipped with a message")
    func nonUTF8Names() async throws {
        let folder = try makeFolder(["P1_R.jpg"])
        defer { try? FileManager.default.removeItem(at: folder) }
        // "P2_\xff\xfe_L.jpg": bytes a String cannot hold.
        var raw = Array(folder.path.utf8) + Array("/P2_".utf8) + [0xFF, 0xFE] + Array("_L.jpg".utf8) + [0]
        let fd = raw.withUnsafeMutableBufferPointer { p in
            p.baseAddress!.withMemoryRebound(to: CChar.self, capacity: p.count) { open($0, O_CREAT | O_WRONLY, 0o644) }
        }
        #expect(fd >= 0)
        _ = "x".withCString { write(fd, $0, 1) }
        close(fd)
        try await withTestDatabase { db in
            let c = try db.connect()
            let report = try ArchiveImporter(connection: c, pattern: try FileNamePattern(), logger: logger).importDirectory(folder)
            let paths = try c.query("SELECT path FROM images").rows.compactMap { $0["path"] ?? nil }
            #expect(paths.contains(folder.standardizedFileURL.appendingPathComponent("P1_R.jpg").path))
            // Whatever Foundation made of the name, a stored path must name a file that is there.
            for path in paths { #expect(FileManager.default.fileExists(atPath: path), "stored \(path.debugDescription)") }
            #expect(report.added + report.skipped.count == report.considered)
        }
    }

    @Test("Manifests: malformed rows, duplicates, SQL and NUL in fields, paths climbing out: messages, never SQL")
    func hostileManifest() async throws {
        let folder = try makeFolder(["archive/a.jpg", "archive/b.jpg", "archive/c.jpg", "outside_R.jpg"])
        defer { try? FileManager.default.removeItem(at: folder) }
        let manifest = folder.appendingPathComponent("archive/manifest.csv")
        let text = "path,patient,eye,study_uid\n"
            + "a.jpg,\"'); DROP TABLE jobs; --\",R,\"1.2.3'; DELETE FROM images; --\"\n"
            + "b.jpg,\"P\"\"quoted\"\"\nwith newline\",L,\n"
            + "a.jpg,P1,R,\n"
            + "../outside_R.jpg,P2,R,\n"
            + "./sub/../../outside_R.jpg,P2,R,\n"
            + "c.jpg,P3\u{0},L,\n"
            + "c.jpg,P3,sideways,\n"
            + ",P4,R,\n"
            + "only-one-field\n"
        try Data(text.utf8).write(to: manifest)
        try await withTestDatabase { db in
            let c = try db.connect()
            try activeModel(c)
            let report = try ArchiveImporter(connection: c, pattern: try FileNamePattern(), logger: logger).importManifest(manifest)
            let reasons = report.skipped.joined(separator: "\n")
            #expect(report.added == 2, "\(reasons)")
            #expect(reasons.contains("line 5 (a.jpg): listed twice"))
            #expect(reasons.contains("line 6: path \"../outside_R.jpg\" climbs out of the manifest's folder"))
            #expect(reasons.contains("line 7: path \"./sub/../../outside_R.jpg\" climbs out"))
            #expect(reasons.contains("line 8: the patient field holds a NUL byte"))
            #expect(reasons.contains("line 9 (c.jpg): eye \"sideways\""))
            #expect(reasons.contains("line 10: no path"))
            #expect(reasons.contains("line 11 (only-one-field): cannot read the file"))
            let rows = try c.query("SELECT patient_id, study_uid FROM images ORDER BY path").rows
            #expect(rows.map { $0["patient_id"] } == ["'); DROP TABLE jobs; --", "P\"quoted\"\nwith newline"])
            #expect(rows[0]["study_uid"] == "1.2.3'; DELETE FROM images; --")
            #expect(try JobQueue(connection: c, logger: logger).counts().map(\.jobs) == [2], "the jobs table is intact")
        }
    }
}

@Suite("Secrets")
struct SecretsTests {
    @Test("Passwords never appear in redacted connection strings, whatever form they are written in")
    func redaction() {
        let cases: [(String, String)] = [
            ("postgresql://me:hunter2@db/x", "postgresql://me:***@db/x"),
            ("postgres://:hunter2@db:5432/x", "postgres://:***@db:5432/x"),
            ("postgresql://me:hun%40ter2@127.0.0.1:5432/fundus?sslmode=disable", "postgresql://me:***@127.0.0.1:5432/fundus?sslmode=disable"),
            ("postgresql://me@db/x?password=hunter2&sslmode=require", "postgresql://me@db/x?password=***"),
            ("host=db user=me password=hunter2 dbname=x", "host=db user=me password=*** dbname=x"),
            ("host=db password = 'hunter 2' dbname=x", "host=db password = *** dbname=x"),
            ("host=db password='it\\'s hunter2' dbname=x", "host=db password=*** dbname=x"),
            ("host=db PASSWORD=hunter2 sslpassword=hunter2", "host=db PASSWORD=*** sslpassword=***"),
        ]
        for (input, expected) in cases {
            let out = Connection.redacted(input)
            #expect(out == expected)
            #expect(!out.contains("hunter"), "\(out)")
        }
        #expect(Connection.redacted("") == "libpq environment")
        let location = DatabaseLocation.resolve(database: "postgresql://me:hunter2@db/x", stateDirectory: nil, environment: [:])
        #expect("\(location)" == "postgresql://me:***@db/x")
        let fromEnvironment = DatabaseLocation.resolve(database: nil, stateDirectory: nil,
                                                       environment: ["DATABASE_URL": "postgres://u:hunter2@h/d"])
        #expect(!"\(fromEnvironment)".contains("hunter2"))
    }

    @Test("A failed connection's error names the server and never the password")
    func connectionErrors() throws {
        let error = try #require(throws: DatabaseError.self) {
            try Connection(conninfo: "postgresql://me:hunter2@127.0.0.1:1/x?connect_timeout=2", logger: TestPostgres.defaultLogger)
        }
        #expect(error.description.contains("127.0.0.1"))
        #expect(!error.description.contains("hunter2"), "\(error.description)")
    }

    @Test("The embedded server listens on loopback only, with no Unix socket for other users")
    func embeddedServerListensOnLoopback() throws {
        let source = try String(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Sources/Store/PostgresServer.swift").standardizedFileURL, encoding: .utf8)
        #expect(source.contains("listen_addresses = '127.0.0.1'"))
        #expect(source.contains("unix_socket_permissions = 0700"))
    }
}

@Suite("Transient faults")
struct TransientFaultTests {
    let logger = TestPostgres.defaultLogger

    @Test("A screening job rides out a long transient fault (20 failed attempts) and is then completed; a permanent failure discards at once")
    func transientFaultsAreRetried() async throws {
        try await withTestDatabase { db in
            let c = try db.connect()
            let model = try ModelRegistry(connection: c).register(name: "v1", architecture: "a", weightsPath: "/w",
                                                                  checksum: String(repeating: "a", count: 64))
            let ids = try Archive(connection: c).add([
                NewImage(path: "/archive/P1_R.jpg", patientID: "P1", laterality: .right, checksum: String(repeating: "b", count: 64), sizeBytes: 1),
                NewImage(path: "/archive/P2_R.jpg", patientID: "P2", laterality: .right, checksum: String(repeating: "c", count: 64), sizeBytes: 1),
            ])
            var q = JobQueue(connection: c, worker: "w", logger: logger)
            q.backoff = Backoff(base: 0, cap: 0, jitter: 0)
            #expect(try q.enqueueScreening(imageIDs: [ids["/archive/P1_R.jpg"]!], modelVersionID: model.id) == 1)
            // The disk is full for as long as 20 attempts take: each one is a transient failure. (With 5 attempts,
            // the old default, the job was discarded after about 75 seconds of a fault.)
            for attempt in 1...20 {
                let job = try #require(try q.claim(limit: 1).first)
                #expect(job.attempt == attempt)
                let outcome = try q.fail(job.lease, message: "masks: No space left on device", kind: .transient)
                guard case .willRetry = outcome else { Issue.record("attempt \(attempt) discarded the job"); return }
            }
            let job = try #require(try q.claim(limit: 1).first)
            #expect(try q.complete(job.lease) == .completed)

            #expect(try q.enqueueScreening(imageIDs: [ids["/archive/P2_R.jpg"]!], modelVersionID: model.id) == 1)
            let bad = try #require(try q.claim(limit: 1).first)
            #expect(try q.fail(bad.lease, message: "decode: not a JPEG, PNG or TIFF file", kind: .permanent) == .discarded)
        }
    }
}

import Foundation
import Testing
@testable import Store
import TestSupport

@Suite("Migrations")
struct MigrationTests {
    let logger = TestPostgres.defaultLogger

    @Test("The migrations carried in the binary are exactly sql/ (run scripts/generate-migrations.sh after editing sql/)")
    func bundledMatchesSQLFolder() throws {
        let folder = SharedFixtures.packageRoot.appendingPathComponent("sql")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.hasSuffix(".sql") }.sorted()
        #expect(files.count == Migration.all.count)
        for (file, migration) in zip(files, Migration.all) {
            #expect(file == migration.label + ".sql")
            let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
            #expect(text.trimmingCharacters(in: .newlines) == migration.sql.trimmingCharacters(in: .newlines),
                    "\(file) differs from Migrations+Bundled.swift")
        }
        #expect(Migration.all.map(\.version) == Array(1...Migration.all.count), "versions are 1, 2, 3, … without gaps")
    }

    @Test("db migrate twice: the second run applies nothing, and status lists every migration")
    func migrateIsIdempotent() async throws {
        try await withTestDatabase(migrated: false) { db in
            let migrator = Migrator(connection: try db.connect(), logger: logger)
            let before = try migrator.status()
            #expect(before.applied.isEmpty)
            #expect(before.pending.count == Migration.all.count)
            #expect(throws: DatabaseError.self) { try migrator.requireCurrent() }

            #expect(try migrator.migrate().map(\.version) == Migration.all.map(\.version))
            #expect(try migrator.migrate().isEmpty)
            let after = try migrator.status()
            #expect(after.applied.map(\.version) == Migration.all.map(\.version))
            #expect(after.pending.isEmpty)
            #expect(after.changed.isEmpty)
            try migrator.requireCurrent()
        }
    }

    @Test("A failing migration leaves nothing half-applied and names its file")
    func failingMigrationRollsBack() async throws {
        try await withTestDatabase(migrated: false) { db in
            let connection = try db.connect()
            let broken = [
                Migration(version: 1, name: "good", sql: "CREATE TABLE a (x int);"),
                Migration(version: 2, name: "bad", sql: "CREATE TABLE b (x int); SELECT * FROM missing_table;"),
            ]
            let migrator = Migrator(connection: connection, migrations: broken, logger: logger)
            let error = try #require(throws: DatabaseError.self) { try migrator.migrate() }
            #expect(error.code == .migration)
            #expect(error.description.contains("sql/0002_bad.sql"))
            #expect(error.sqlState == "42P01")
            #expect(try migrator.status().applied.map(\.version) == [1])
            let b = try connection.query("SELECT to_regclass('b') IS NULL AS absent").rows[0]
            #expect(try b.decode("absent", as: Bool.self))
        }
    }

    @Test("Two processes migrating at once apply each migration once")
    func concurrentMigrate() async throws {
        try await withTestDatabase(migrated: false) { db in
            let applied = try await onThreads(3) { _ in
                try Migrator(connection: try db.connect(), logger: logger).migrate().count
            }
            #expect(applied.reduce(0, +) == Migration.all.count)
        }
    }

    @Test("The schema rejects impossible states")
    func constraintsHold() async throws {
        try await withTestDatabase { db in
            let c = try db.connect()
            func rejects(_ sql: String, _ parameters: [any SQLEncodable] = [], _ state: String) {
                let error = #expect(throws: DatabaseError.self) { try c.query(sql, parameters) }
                #expect(error?.sqlState == state, "\(sql): \(error.map { "\($0)" } ?? "accepted")")
            }
            let sum = String(repeating: "ab", count: 32)
            try c.query("INSERT INTO images (path, patient_id, laterality, checksum_sha256, size_bytes) VALUES ('/a.jpg', 'P1', 'R', $1, 10)", [sum])
            rejects("INSERT INTO images (path, patient_id, laterality, checksum_sha256, size_bytes) VALUES ('/b.jpg', 'P1', 'X', $1, 10)", [sum], "23514")
            rejects("INSERT INTO images (path, patient_id, checksum_sha256, size_bytes) VALUES ('relative.jpg', 'P1', $1, 10)", [sum], "23514")
            rejects("INSERT INTO images (path, patient_id, checksum_sha256, size_bytes) VALUES ('/a.jpg', 'P2', $1, 10)", [sum], "23505")
            // A finished job has finalized_at; a running one an owner.
            rejects("INSERT INTO jobs (kind, state) VALUES ('noop', 'completed')", [], "23514")
            rejects("INSERT INTO jobs (kind, state, attempt) VALUES ('noop', 'running', 1)", [], "23514")
            rejects("INSERT INTO jobs (kind) VALUES ('screen')", [], "23514")
            // One active model.
            try c.query("INSERT INTO model_versions (name, architecture, weights_path, checksum_sha256, status, promoted_at) VALUES ('m1', 'a', '/w1', $1, 'active', now())", [sum])
            rejects("INSERT INTO model_versions (name, architecture, weights_path, checksum_sha256, status, promoted_at) VALUES ('m2', 'a', '/w2', $1, 'active', now())", [sum], "23505")
            // Ungradable exactly when there are reasons; no flag on an ungradable image.
            rejects("INSERT INTO screening_results (image_id, model_version_id, gradable, ungradable_reasons) SELECT i.id, m.id, false, '{}' FROM images i, model_versions m", [], "23514")
            rejects("INSERT INTO screening_results (image_id, model_version_id, gradable, ungradable_reasons, flagged, flag_rule, flag_rule_version) SELECT i.id, m.id, false, '{too dark}', true, 'r', '1' FROM images i, model_versions m", [], "23514")
        }
    }
}

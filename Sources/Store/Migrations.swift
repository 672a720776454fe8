import Foundation
import Logging

/// One numbered schema change from `sql/NNNN_name.sql`, carried inside the binary (see Migrations+Bundled.swift).
public struct Migration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let sql: String

    public var checksum: String { SHA256.hex(Array(sql.utf8)) }

    /// `0003_findings`, as the file in sql/ is named.
    public var label: String {
        let digits = String(version)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits + "_" + name
    }

    /// The migrations this program knows, in order.
    public static var all: [Migration] { bundled.sorted { $0.version < $1.version } }
}

/// A migration recorded in the database.
public struct AppliedMigration: Sendable, Equatable {
    public let version: Int
    public let name: String
    public let checksum: String
    public let appliedAt: Date
}

/// Applies the missing migrations in order, each in its own transaction together with its row in
/// `schema_migrations`; an advisory lock keeps two processes from migrating at once.
public struct Migrator {
    public struct Report: Sendable {
        public let applied: [AppliedMigration]
        public let pending: [Migration]
        /// Applied migrations whose text differs from the one this program carries.
        public let changed: [Int]
    }

    let connection: Connection
    let migrations: [Migration]
    let logger: Logger
    /// Arbitrary constant naming our advisory lock ("fundusmg").
    static let lockKey: Int64 = 0x66756E_6475736D

    public init(connection: Connection, migrations: [Migration] = Migration.all, logger: Logger) {
        self.connection = connection
        self.migrations = migrations
        self.logger = logger
    }

    private func ensureTable() throws {
        // Under the lock too: concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalog.
        try connection.transaction { connection in
            try connection.query(MigrationSQL.migrationLock, [Self.lockKey])
            try connection.query(MigrationSQL.schemaMigrationsCreate)
        }
    }

    /// What is applied and what is pending. Creates nothing when the table is absent.
    public func status() throws -> Report {
        let exists = try connection.query(MigrationSQL.schemaMigrationsExists)
        var applied: [AppliedMigration] = []
        if try exists.rows.first?.decode("present", as: Bool.self) == true {
            applied = try connection.query(MigrationSQL.schemaMigrationsList).rows.map {
                AppliedMigration(version: try $0.decode("version"), name: try $0.decode("name"),
                                 checksum: try $0.decode("checksum"), appliedAt: try $0.decode("applied_at"))
            }
        }
        let done = Dictionary(applied.map { ($0.version, $0.checksum) }, uniquingKeysWith: { a, _ in a })
        let pending = migrations.filter { done[$0.version] == nil }
        let changed = migrations.filter { m in done[m.version].map { $0 != m.checksum } ?? false }.map(\.version)
        return Report(applied: applied, pending: pending, changed: changed)
    }

    /// Applies what is missing; returns the migrations applied by this call (empty when up to date).
    @discardableResult
    public func migrate() throws -> [Migration] {
        try ensureTable()
        var appliedNow: [Migration] = []
        for migration in migrations {
            let done: Bool = try connection.transaction { conn in
                try conn.query(MigrationSQL.migrationLock, [Self.lockKey])
                let present = try conn.query(MigrationSQL.migrationApplied, [migration.version])
                if !present.rows.isEmpty { return false }
                let file = "sql/\(migration.label).sql"
                logger.info("applying migration", metadata: ["migration": "\(file)"])
                do {
                    try conn.runScript(migration.sql, name: file)
                } catch var error as DatabaseError {
                    error.code = .migration
                    error.message = "migration \(file) failed: \(error.message)"
                    throw error
                }
                try conn.query(MigrationSQL.migrationRecord, [migration.version, migration.name, migration.checksum])
                return true
            }
            if done { appliedNow.append(migration) }
        }
        return appliedNow
    }

    /// Throws a readable error when migrations are pending (for commands that must not change the schema).
    public func requireCurrent() throws {
        let report = try status()
        if !report.pending.isEmpty {
            let names = report.pending.map(\.label).joined(separator: ", ")
            throw DatabaseError(.migration, "the database lacks migrations \(names)",
                                hint: "run `fundus-screen db migrate` against this database")
        }
    }
}

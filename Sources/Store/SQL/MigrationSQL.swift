/// Statements over `schema_migrations`, the record of which files of sql/ are applied (the files themselves run as
/// scripts, see `Migrator.migrate`).
enum MigrationSQL {
    /// Holds the migration lock $1 until the transaction ends: one migrator at a time.
    static var migrationLock: Statement { Statement("""
        SELECT pg_advisory_xact_lock($1)
        """) }

    static var schemaMigrationsCreate: Statement { Statement("""
        CREATE TABLE IF NOT EXISTS schema_migrations (
            version    integer PRIMARY KEY,
            name       text NOT NULL,
            checksum   text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """) }

    static var schemaMigrationsExists: Statement { Statement("""
        SELECT to_regclass('schema_migrations') IS NOT NULL AS present
        """) }

    static var schemaMigrationsList: Statement { Statement("""
        SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version
        """) }

    static var migrationApplied: Statement { Statement("""
        SELECT 1 FROM schema_migrations WHERE version = $1
        """) }

    /// Records migration $1 (name $2, checksum $3) as applied.
    static var migrationRecord: Statement { Statement("""
        INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)
        """) }
}

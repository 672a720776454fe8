/// Statements the embedded server runs on its cluster's `postgres` database, before ours exists.
enum ServerSQL {
    static var databaseExists: Statement { Statement("""
        SELECT 1 FROM pg_database WHERE datname = $1
        """) }

    /// CREATE DATABASE takes an identifier, not a parameter; ours is the fixed name `PostgresServer.database`.
    static var databaseCreate: Statement { Statement("""
        CREATE DATABASE \(PostgresServer.database)
        """) }
}

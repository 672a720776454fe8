import Foundation

/// Where the database is: an explicit connection string, libpq's own environment, or the embedded local server.
/// Order (first wins): `--database`, `DATABASE_URL`, any libpq `PG*` variable (PGHOST, PGDATABASE, PGSERVICE, …),
/// otherwise the embedded server under the state folder.
public enum DatabaseLocation: Sendable, Equatable {
    /// A libpq connection string or URI, as given.
    case connectionString(String)
    /// libpq reads PG* variables (and the service file) itself: connect with an empty conninfo.
    case libpqEnvironment
    /// Start (or reuse) the project's own PostgreSQL under this state folder.
    case embedded(stateDirectory: URL)

    /// The libpq variables that mean "the user configured a database".
    public static let libpqVariables = [
        "PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE", "PGSERVICEFILE", "PGPASSWORD",
    ]

    public static func resolve(
        database: String?, stateDirectory: URL?, environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> DatabaseLocation {
        if let database, !database.isEmpty { return .connectionString(database) }
        if let url = environment["DATABASE_URL"], !url.isEmpty { return .connectionString(url) }
        if libpqVariables.contains(where: { environment[$0].map { !$0.isEmpty } ?? false }) { return .libpqEnvironment }
        return .embedded(stateDirectory: stateDirectory ?? defaultStateDirectory(environment: environment))
    }

    /// `$FUNDUS_STATE_DIR`, else `./.fundus-screen`.
    public static func defaultStateDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let dir = environment["FUNDUS_STATE_DIR"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(".fundus-screen")
    }
}

extension DatabaseLocation: CustomStringConvertible {
    /// For messages and logs: a connection string never shows its password.
    public var description: String {
        switch self {
        case .connectionString(let s): return Connection.redacted(s)
        case .libpqEnvironment: return "libpq environment (PG* variables)"
        case .embedded(let state): return "embedded server under \(state.path)"
        }
    }
}

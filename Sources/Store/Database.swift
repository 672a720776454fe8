import Foundation
import Logging

/// Opening the database a command was pointed at (see `DatabaseLocation`).
public enum Database {
    /// The embedded server's home under a state folder.
    public static func embeddedServer(stateDirectory: URL, logger: Logger) throws -> PostgresServer {
        try PostgresServer(root: stateDirectory.appendingPathComponent("postgres"), settings: .embedded, logger: logger)
    }

    /// Where to connect; starts (or reuses) the embedded server when no database was given. The embedded server is
    /// left running for the next command (`db stop` stops it).
    public static func conninfo(for location: DatabaseLocation, logger: Logger) throws -> String {
        switch location {
        case .connectionString(let s): return s
        case .libpqEnvironment: return ""
        case .embedded(let state):
            return try embeddedServer(stateDirectory: state, logger: logger).start().conninfo
        }
    }

    /// A connection with the schema current. On the embedded database missing migrations are applied; on a
    /// database the user gave, they must have run `db migrate` (we do not change their schema unasked).
    public static func connect(_ location: DatabaseLocation, logger: Logger) throws -> Connection {
        let connection = try Connection(conninfo: try conninfo(for: location, logger: logger), logger: logger)
        let migrator = Migrator(connection: connection, logger: logger)
        if case .embedded = location {
            try migrator.migrate()
        } else {
            try migrator.requireCurrent()
        }
        return connection
    }
}

import Foundation
import Logging

/// Opening the database a command was pointed at (see `DatabaseLocation`).
public enum Database {
    /// The embedded server's home under a state folder.
    /// Normally `<state>/postgres`. When this process is root and the server's system user cannot reach the state
    /// folder (a checkout under /root, say), the cluster lives in `/var/lib/fundus-screen/<hash of the state
    /// path>/postgres` instead, and `<state>/postgres-location.txt` says so.
    public static func embeddedServer(stateDirectory: URL, logger: Logger,
                                      environment: [String: String] = ProcessInfo.processInfo.environment) throws -> PostgresServer {
        let state = stateDirectory.standardizedFileURL
        var root = state.appendingPathComponent("postgres")
        let initialised = FileManager.default.fileExists(atPath: root.appendingPathComponent("data/PG_VERSION").path)
        if geteuid() == 0, !initialised {
            let user = environment["FUNDUS_PG_USER"].flatMap { $0.isEmpty ? nil : $0 } ?? "postgres"
            if let pw = getpwnam(user), !PostgresServer.isReachable(state.path, uid: pw.pointee.pw_uid, gid: pw.pointee.pw_gid) {
                let key = SHA256.hex(Array(state.path.utf8)).prefix(16)
                root = URL(fileURLWithPath: "/var/lib/fundus-screen/\(key)/postgres")
                logger.notice("the server's system user cannot reach the state folder; the cluster lives elsewhere",
                              metadata: ["state": "\(state.path)", "cluster": "\(root.path)", "user": "\(user)"])
                try? FileManager.default.createDirectory(at: state, withIntermediateDirectories: true)
                try? "\(root.path)\n".write(to: state.appendingPathComponent("postgres-location.txt"), atomically: true, encoding: .utf8)
            }
        }
        return try PostgresServer(root: root, settings: .embedded, logger: logger, environment: environment)
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

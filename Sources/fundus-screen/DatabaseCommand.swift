import ArgumentParser
import Foundation
import Logging
import Store

/// `fundus-screen db …`: the embedded PostgreSQL and the schema.
struct DatabaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db",
        abstract: "Manage the database: the embedded PostgreSQL server and schema migrations.",
        subcommands: [Start.self, Stop.self, Status.self, Migrate.self, URLCommand.self]
    )

    struct Start: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start the embedded server (or find it running).")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let server = try global.embeddedServer(for: "db start")
            let address = try server.start()
            print("embedded PostgreSQL running: \(address.url)  (data: \(server.dataDirectory.path))")
        }
    }

    struct Stop: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop the embedded server.")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let server = try global.embeddedServer(for: "db stop")
            print(try server.stop() ? "embedded PostgreSQL stopped" : "embedded PostgreSQL was not running")
        }
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the server and which migrations are applied.")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let logger = global.makeLogger("fundus.db")
            let location = global.databaseLocation
            if case .embedded(let state) = location {
                let server = try Database.embeddedServer(stateDirectory: state, logger: logger)
                switch server.status() {
                case .running(let pid, let address): print("embedded server: running (pid \(pid)) at \(address.url)")
                case .notInitialised: print("embedded server: not created yet (starting it)")
                case .stopped: print("embedded server: stopped (starting it)")
                case .starting(let pid): print("embedded server: starting (pid \(pid))")
                case .stale(let pid): print("embedded server: killed (stale pid \(pid)); recovering")
                }
            }
            let connection = try Connection(conninfo: try Database.conninfo(for: location, logger: logger), logger: logger)
            let report = try Migrator(connection: connection, logger: logger).status()
            let applied = Dictionary(uniqueKeysWithValues: report.applied.map { ($0.version, $0) })
            print("migrations:")
            for migration in Migration.all {
                if let a = applied[migration.version] {
                    let changed = report.changed.contains(migration.version) ? "  (CHANGED since applied)" : ""
                    print("  applied  \(migration.label)  \(a.appliedAt)\(changed)")
                } else {
                    print("  pending  \(migration.label)")
                }
            }
            for a in report.applied where !Migration.all.contains(where: { $0.version == a.version }) {
                print("  applied  \(a.version)_\(a.name)  (unknown to this fundus-screen: newer?)")
            }
        }
    }

    struct Migrate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Apply the missing migrations from sql/, in order.")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let logger = global.makeLogger("fundus.db")
            let connection = try Connection(conninfo: try Database.conninfo(for: global.databaseLocation, logger: logger),
                                            logger: logger)
            let applied = try Migrator(connection: connection, logger: logger).migrate()
            if applied.isEmpty {
                print("database is up to date (\(Migration.all.count) migrations applied)")
            } else {
                for m in applied { print("applied \(m.label)") }
            }
        }
    }

    struct URLCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "url", abstract: "Print the connection URL (starts the embedded server), e.g. for psql.")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            switch global.databaseLocation {
            // What the user gave, less its password: this output ends up in terminals, logs and tickets.
            case .connectionString(let s): print(Connection.redacted(s))
            case .libpqEnvironment: print("(libpq PG* environment variables)")
            case .embedded:
                print(try global.embeddedServer(for: "db url").start().url)
            }
        }
    }
}

extension GlobalOptions {
    var databaseLocation: DatabaseLocation {
        DatabaseLocation.resolve(database: database, stateDirectory: stateDir.map { URL(fileURLWithPath: $0) })
    }

    /// The embedded server, or a clear error when the user pointed us at another database.
    func embeddedServer(for command: String) throws -> PostgresServer {
        guard case .embedded(let state) = databaseLocation else {
            throw ValidationError("\(command) manages the embedded server, but --database, DATABASE_URL or a PG* variable points at another database")
        }
        return try Database.embeddedServer(stateDirectory: state, logger: makeLogger("fundus.db"))
    }

    /// A connection with the schema current (the embedded database is migrated on first use).
    func connect(_ label: String) throws -> (Connection, Logger) {
        let logger = makeLogger(label)
        return (try Database.connect(databaseLocation, logger: logger), logger)
    }
}

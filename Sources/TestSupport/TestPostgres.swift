import Foundation
import Logging
import Store

/// A private PostgreSQL server for one test: its own temporary folder and free port, migrated (unless asked
/// otherwise), stopped and deleted when the test's closure ends, thrown error or not. A watchdog process removes
/// it too if the test process dies first, so a crashed run leaves no server behind.
///
///     try await withTestDatabase { db in
///         let connection = try db.connect()
///         …
///     }
public struct TestDatabase: Sendable {
    public let server: PostgresServer
    public let address: ServerAddress
    public let logger: Logger

    public var conninfo: String { address.conninfo }

    /// A new connection to this test's database.
    public func connect(reconnect: Connection.ReconnectPolicy = .init()) throws -> Connection {
        try Connection(conninfo: conninfo, logger: logger, reconnect: reconnect)
    }
}

public func withTestDatabase<T>(
    migrated: Bool = true, logger: Logger = TestPostgres.defaultLogger, _ body: (TestDatabase) async throws -> T
) async throws -> T {
    let database = try TestPostgres.start(migrated: migrated, logger: logger)
    do {
        let value = try await body(database)
        TestPostgres.tearDown(database)
        return value
    } catch {
        TestPostgres.tearDown(database)
        throw error
    }
}

public enum TestPostgres {
    public static let defaultLogger: Logger = {
        var logger = Logger(label: "fundus.test-postgres")
        logger.logLevel = .warning
        return logger
    }()

    private static let lock = NSLock()
    nonisolated(unsafe) private static var template: PostgresServer?

    /// A fresh server in a new temporary folder, its cluster copied from a per-process template made once by initdb.
    public static func start(migrated: Bool = true, logger: Logger = defaultLogger) throws -> TestDatabase {
        let template = try templateServer(logger: logger)
        let folder = try makeTemporaryFolder(prefix: "fundus-pg-")
        startWatchdog(folder)
        let server = try PostgresServer(root: folder, settings: .test, logger: logger)
        do {
            try server.cloneCluster(from: template)
            let address = try server.start()
            let database = TestDatabase(server: server, address: address, logger: logger)
            if migrated {
                let connection = try database.connect()
                defer { connection.close() }
                try Migrator(connection: connection, logger: logger).migrate()
            }
            return database
        } catch {
            _ = try? server.stop(immediate: true)
            try? FileManager.default.removeItem(at: folder)
            throw error
        }
    }

    /// Stops the server at once (its data is thrown away) and deletes its folder.
    public static func tearDown(_ database: TestDatabase) {
        do {
            try database.server.stop(immediate: true)
        } catch {
            database.logger.error("could not stop test server", metadata: ["error": "\(error)"])
        }
        try? FileManager.default.removeItem(at: database.server.root)
    }

    private static func templateServer(logger: Logger) throws -> PostgresServer {
        lock.lock(); defer { lock.unlock() }
        if let template { return template }
        let folder = try makeTemporaryFolder(prefix: "fundus-pg-template-")
        startWatchdog(folder)
        let server = try PostgresServer(root: folder, settings: .test, logger: logger)
        try server.start()  // initdb, start, create the database
        try server.stop()
        template = server
        return server
    }

    static func makeTemporaryFolder(prefix: String) throws -> URL {
        var pattern = Array("/tmp/\(prefix)XXXXXX".utf8CString)
        guard let made = mkdtemp(&pattern) else {
            throw DatabaseError(.embeddedServer, "cannot make a temporary folder: \(String(cString: strerror(errno)))")
        }
        chmod(made, 0o755)
        return URL(fileURLWithPath: String(cString: made))
    }

    /// A shell that waits while this process lives and the folder exists; if the process dies first it shuts the
    /// server down (SIGQUIT: immediate) and deletes the folder. After a normal tear-down it just exits. It runs in
    /// a session of its own so that a Ctrl-C or a killed process group of the test run does not take it along.
    private static func startWatchdog(_ folder: URL) {
        let script = """
            parent=$1; dir=$2
            alive() { st=$(sed 's/.*) //' /proc/$parent/stat 2>/dev/null | cut -c1); [ -n "$st" ] && [ "$st" != Z ]; }
            while [ -d "$dir" ] && alive; do sleep 1; done
            # The test process is gone. A copy or a pg_ctl start it began may still be running: keep stopping the
            # server and deleting the folder until both stay gone.
            for attempt in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
                [ -d "$dir" ] || exit 0
                pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null)
                [ -n "$pid" ] && kill -QUIT "$pid" 2>/dev/null && sleep 2
                rm -rf "$dir" 2>/dev/null
                sleep 1
            done
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setsid")
        process.arguments = ["/bin/sh", "-c", script, "fundus-pg-watchdog", String(getpid()), folder.path]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try? process.run()
    }
}

/// Runs `body(0) … body(count−1)` on `count` dedicated threads (not the two-thread cooperative pool, which blocking
/// libpq calls would starve) and returns their results in order.
public func onThreads<T: Sendable>(_ count: Int, _ body: @escaping @Sendable (Int) throws -> T) async throws -> [T] {
    let box = ThreadResults<T>()
    let group = DispatchGroup()
    for i in 0..<count {
        group.enter()
        let thread = Thread {
            let r = Result { try body(i) }
            box.lock.lock(); box.results[i] = r; box.lock.unlock()
            group.leave()
        }
        thread.stackSize = 4 << 20
        thread.start()
    }
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        group.notify(queue: .global()) { continuation.resume() }
    }
    return try (0..<count).map { try box.results[$0]!.get() }
}

/// Runs blocking, timing-sensitive test code on a thread of its own: the cooperative pool has two threads here,
/// and tests that block them can delay an awaiting test's resumption by many seconds.
public func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await onThreads(1) { _ in try body() }[0]
}

/// Results written by worker threads under a lock, read after all have finished.
private final class ThreadResults<T>: @unchecked Sendable {
    let lock = NSLock()
    var results: [Int: Result<T, any Error>] = [:]
}

import Foundation
import Testing
import Store
import TestSupport

@Suite("The embedded PostgreSQL server")
struct EmbeddedServerTests {
    let logger = TestPostgres.defaultLogger

    @Test("Starts once, is reused, survives SIGKILL (stale postmaster.pid), and stops cleanly")
    func lifeCycle() throws {
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("fundus-state-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: state) }
        let location = DatabaseLocation.embedded(stateDirectory: state)
        let server = try Database.embeddedServer(stateDirectory: state, logger: logger)
        defer { _ = try? server.stop(immediate: true) }
        #expect(server.status() == .notInitialised)

        // First command: creates the cluster, starts it, migrates.
        let first = try Database.connect(location, logger: logger)
        try Migrator(connection: first, logger: logger).requireCurrent()
        guard case .running(let pid, let address) = server.status() else { Issue.record("not running"); return }
        #expect(address.url == "postgresql://fundus@127.0.0.1:\(address.port)/fundus")
        first.close()

        // Second command: reuses the same server.
        let again = try Database.connect(location, logger: logger)
        guard case .running(let pid2, _) = server.status() else { Issue.record("not running"); return }
        #expect(pid2 == pid)
        try again.query("CREATE TABLE kept (v text)")
        try again.query("INSERT INTO kept VALUES ($1)", ["survives a crash"])
        again.close()

        // Killed hard: the next command finds a stale postmaster.pid and recovers.
        #expect(kill(pid, SIGKILL) == 0)
        var dead = false
        for _ in 0..<50 where !dead {
            dead = { if case .stale = server.status() { return true } else { return false } }()
            if !dead { Thread.sleep(forTimeInterval: 0.1) }
        }
        #expect(dead, "status reports the stale postmaster.pid")
        let recovered = try Database.connect(location, logger: logger)
        #expect(try recovered.query("SELECT v FROM kept").rows.first?["v"] == "survives a crash")
        guard case .running(let pid3, _) = server.status() else { Issue.record("not running after recovery"); return }
        #expect(pid3 != pid)
        recovered.close()

        #expect(try server.stop())
        #expect(server.status() == .stopped)
        #expect(try server.stop() == false)
    }
}

@Suite("Where the embedded cluster lives")
struct EmbeddedLocationTests {
    @Test("As root with a state folder the server's user cannot reach, the cluster moves to /var/lib/fundus-screen",
          .enabled(if: geteuid() == 0, "only root hands the server to another user"))
    func unreachableStateFolder() throws {
        let logger = TestPostgres.defaultLogger
        let locked = FileManager.default.temporaryDirectory.appendingPathComponent("fundus-locked-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: locked, withIntermediateDirectories: true)
        chmod(locked.path, 0o700)
        defer { try? FileManager.default.removeItem(at: locked) }
        let state = locked.appendingPathComponent("checkout/.fundus-screen")
        let server = try Database.embeddedServer(stateDirectory: state, logger: logger)
        defer {
            _ = try? server.stop(immediate: true)
            try? FileManager.default.removeItem(at: server.root.deletingLastPathComponent())
            rmdir("/var/lib/fundus-screen")  // only when no real cluster lives there
        }
        #expect(server.root.path.hasPrefix("/var/lib/fundus-screen/"))
        let note = try String(contentsOf: state.appendingPathComponent("postgres-location.txt"), encoding: .utf8)
        #expect(note.contains(server.root.path))
        let address = try server.start()
        let connection = try Connection(conninfo: address.conninfo, logger: logger)
        #expect(try connection.query("SELECT 1 AS one").rows[0]["one"] == "1")

        let reachable = FileManager.default.temporaryDirectory.appendingPathComponent("fundus-open")
        #expect(try Database.embeddedServer(stateDirectory: reachable, logger: logger).root.path == reachable.path + "/postgres")
    }
}

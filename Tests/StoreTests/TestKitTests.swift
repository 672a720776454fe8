import Foundation
import Testing
import Store
import TestSupport

@Suite("Private PostgreSQL servers for tests")
struct TestKitTests {
    @Test("Two tests' servers run at the same time without seeing each other's data")
    func parallelServersAreIsolated() async throws {
        // Both servers are up at once: each writes a marker, waits for the other, then reads only its own.
        let barrier = Barrier(parties: 2)
        let seen = try await onThreads(2) { i -> [String] in
            let database = try TestPostgres.start(migrated: false)
            defer { TestPostgres.tearDown(database) }
            let connection = try database.connect()
            try connection.query("CREATE TABLE marker (name text)")
            try connection.query("INSERT INTO marker VALUES ($1)", ["server \(i) at port \(database.address.port)"])
            barrier.arriveAndWait()
            let rows = try connection.query("SELECT name FROM marker").rows.map { try $0.decode("name", as: String.self) }
            barrier.arriveAndWait()
            return rows
        }
        #expect(seen[0].count == 1 && seen[1].count == 1)
        #expect(seen[0][0].hasPrefix("server 0"))
        #expect(seen[1][0].hasPrefix("server 1"))
        #expect(seen[0][0] != seen[1][0])
    }

    @Test("A test server is gone, folder and process, after its test")
    func tearDownRemovesEverything() async throws {
        var root: URL?
        var pid: Int32 = 0
        try await withTestDatabase(migrated: false) { db in
            root = db.server.root
            if case .running(let p, _) = db.server.status() { pid = p }
            #expect(pid > 0)
        }
        let folder = try #require(root)
        #expect(!FileManager.default.fileExists(atPath: folder.path))
        // The postmaster exits (a zombie of nobody of ours, reaped by init).
        var gone = false
        for _ in 0..<50 where !gone {
            gone = kill(pid, 0) != 0 || (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.hasPrefix("postgres") != true
            if !gone { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        #expect(gone)
    }
}

/// A reusable rendezvous for a fixed number of threads.
final class Barrier: @unchecked Sendable {
    private let condition = NSCondition()
    private let parties: Int
    private var waiting = 0
    private var generation = 0

    init(parties: Int) { self.parties = parties }

    func arriveAndWait() {
        condition.lock(); defer { condition.unlock() }
        let current = generation
        waiting += 1
        if waiting == parties {
            waiting = 0
            generation += 1
            condition.broadcast()
        } else {
            while generation == current { condition.wait() }
        }
    }
}

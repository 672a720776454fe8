import Foundation
import Testing
import Store
import TestSupport

@Suite("Job queue against a real PostgreSQL")
struct QueueTests {
    let logger = TestPostgres.defaultLogger

    func noopJobs(_ count: Int, queue: String = "bulk") -> [NewJob] {
        (0..<count).map { NewJob(kind: "noop", queue: queue, uniqueKey: "job-\($0)") }
    }

    @Test("8 concurrent workers drain 10,000 jobs and each job is completed exactly once")
    func eightWorkersDrainTenThousand() async throws {
        try await withTestDatabase { db in
            let setup = try db.connect()
            let enqueued = try JobQueue(connection: setup, logger: logger).enqueue(noopJobs(10_000))
            #expect(enqueued.count == 10_000)
            let started = Date()
            let perWorker = try await onThreads(8) { w -> [Int64] in
                let queue = JobQueue(connection: try db.connect(), worker: "worker-\(w)", logger: logger)
                var completed: [Int64] = []
                while true {
                    let jobs = try queue.claim(queue: "bulk", limit: 32)
                    if jobs.isEmpty { return completed }
                    for job in jobs where try queue.complete(job.lease) == .completed { completed.append(job.id) }
                }
            }
            let seconds = Date().timeIntervalSince(started)
            let all = perWorker.flatMap { $0 }
            #expect(all.count == 10_000)
            #expect(Set(all).count == 10_000)
            #expect(Set(all) == Set(enqueued))
            #expect(perWorker.allSatisfy { !$0.isEmpty }, "every worker got work: \(perWorker.map(\.count))")
            let check = try setup.query("""
                SELECT count(*) FILTER (WHERE state = 'completed') AS completed, max(attempt) AS max_attempt,
                       count(DISTINCT attempted_by) AS workers
                FROM jobs
                """).rows[0]
            #expect(try check.decode("completed", as: Int.self) == 10_000)
            #expect(try check.decode("max_attempt", as: Int.self) == 1)
            #expect(try check.decode("workers", as: Int.self) == 8)
            print("drained 10,000 jobs with 8 workers in \(String(format: "%.1f", seconds)) s; per worker \(perWorker.map(\.count))")
        }
    }

    @Test("A worker that stops heartbeating loses its jobs after the lease, and its late completion is rejected")
    func expiredLeaseIsRescued() async throws {
        try await withTestDatabase { db in try await onThread {
            let a = JobQueue(connection: try db.connect(), worker: "silent", logger: logger)
            let b = JobQueue(connection: try db.connect(), worker: "alive", logger: logger)
            try a.enqueue(noopJobs(3))
            let held = try a.claim(queue: "bulk", limit: 2)
            #expect(held.count == 2)
            let beating = try b.claim(queue: "bulk", limit: 1)
            #expect(beating.count == 1)

            // Only b heartbeats. After the lease, a's jobs go back; b's stays.
            for _ in 0..<10 {
                Thread.sleep(forTimeInterval: 0.3)
                #expect(try b.heartbeat(beating.map(\.lease)) == Set(beating.map(\.lease)))
            }
            #expect(try b.rescueExpired(lease: 2.0) == 2)
            #expect(try a.heartbeat(held.map(\.lease)).isEmpty, "a no longer holds its jobs")

            let retaken = try b.claim(queue: "bulk", limit: 10)
            #expect(Set(retaken.map(\.id)) == Set(held.map(\.id)))
            #expect(retaken.allSatisfy { $0.attempt == 2 })

            // a wakes up and tries to finish: rejected, for completion and failure alike.
            #expect(try a.complete(held[0].lease) == .leaseLost)
            #expect(try a.fail(held[1].lease, message: "late", kind: .transient) == .leaseLost)
            for job in retaken + beating { #expect(try b.complete(job.lease) == .completed) }

            let rows = try db.connect().query("""
                SELECT id, state::text AS state, attempted_by, metadata ->> 'rescues' AS rescues, cardinality(errors) AS errors
                FROM jobs ORDER BY id
                """).rows
            for row in rows {
                #expect(row["state"] == "completed")
                #expect(row["attempted_by"] == "alive")
            }
            #expect(rows.filter { $0["rescues"] == "1" }.count == 2)
        } }
    }

    @Test("A job rescued too often is discarded, not retried for ever")
    func rescueRespectsMaxAttempts() async throws {
        try await withTestDatabase { db in
            let q = JobQueue(connection: try db.connect(), worker: "w", logger: logger)
            try q.enqueue([NewJob(kind: "noop", queue: "bulk", maxAttempts: 1)])
            #expect(try q.claim(queue: "bulk", limit: 1).count == 1)
            try await Task.sleep(nanoseconds: 1_100_000_000)
            #expect(try q.rescueExpired(lease: 1.0) == 1)
            let job = try #require(try q.list(state: .discarded).first)
            #expect(job.lastError?.contains("lease expired") == true)
            #expect(try q.claim(queue: "bulk", limit: 1).isEmpty)
        }
    }

    @Test("A transient failure is retried later; a permanent one is discarded with its message")
    func transientAndPermanentFailures() async throws {
        try await withTestDatabase { db in try await onThread {
            var q = JobQueue(connection: try db.connect(), worker: "w", logger: logger)
            q.backoff = Backoff(base: 0.5, cap: 10, jitter: 0.2)
            try q.enqueue(noopJobs(2))
            let jobs = try q.claim(queue: "bulk", limit: 2)
            #expect(jobs.count == 2)

            let before = Date()
            guard case .willRetry(let at) = try q.fail(jobs[0].lease, message: "disk full", kind: .transient) else {
                Issue.record("a transient failure should be retried"); return
            }
            // base 0.5 s ± 20 %; the server's clock and ours agree to well under that.
            #expect(at.timeIntervalSince(before) > 0.3 && at.timeIntervalSince(before) < 1.0)
            #expect(try q.fail(jobs[1].lease, message: "not an image: /archive/x.jpg", kind: .permanent) == .discarded)
            // The same failure reported again (a statement re-sent after a dropped connection) changes nothing.
            #expect(try q.fail(jobs[1].lease, message: "not an image: /archive/x.jpg", kind: .permanent) == .discarded)
            guard case .willRetry(let same) = try q.fail(jobs[0].lease, message: "disk full", kind: .transient), same == at else {
                Issue.record("a repeated transient failure should report the same retry time"); return
            }

            #expect(try q.claim(queue: "bulk", limit: 5).isEmpty, "nothing is due yet")
            Thread.sleep(forTimeInterval: 0.8)
            let again = try q.claim(queue: "bulk", limit: 5)
            #expect(again.map(\.id) == [jobs[0].id])
            #expect(again.first?.attempt == 2)
            #expect(try q.complete(again[0].lease) == .completed)

            let discarded = try q.list(state: .discarded)
            #expect(discarded.map(\.id) == [jobs[1].id])
            #expect(discarded.first?.lastError == "not an image: /archive/x.jpg")
            let completed = try q.list(state: .completed)
            #expect(completed.first?.errorCount == 1, "the transient error is kept on the job")
        } }
    }

    @Test("Transient failures back off exponentially up to the cap, then the job is discarded")
    func backoffAndAttemptsRunOut() async throws {
        let backoff = Backoff(base: 2, cap: 10, jitter: 0)
        #expect(backoff.delay(afterAttempt: 1) == 2)
        #expect(backoff.delay(afterAttempt: 2) == 4)
        #expect(backoff.delay(afterAttempt: 3) == 8)
        #expect(backoff.delay(afterAttempt: 4) == 10)
        #expect(backoff.delay(afterAttempt: 40) == 10)
        let jittered = Backoff(base: 10, cap: 100, jitter: 0.1)
        for _ in 0..<100 { #expect((9...11).contains(jittered.delay(afterAttempt: 1))) }

        try await withTestDatabase { db in
            var q = JobQueue(connection: try db.connect(), worker: "w", logger: logger)
            q.backoff = Backoff(base: 0, cap: 0, jitter: 0)
            try q.enqueue([NewJob(kind: "noop", queue: "bulk", maxAttempts: 2)])
            var outcomes: [FailureOutcome] = []
            for _ in 0..<2 {
                let job = try #require(try q.claim(queue: "bulk", limit: 1).first)
                outcomes.append(try q.fail(job.lease, message: "flaky", kind: .transient))
            }
            guard case .willRetry = outcomes[0] else { Issue.record("first failure should retry"); return }
            #expect(outcomes[1] == .discarded)
        }
    }

    @Test("Enqueueing the same work twice adds nothing")
    func enqueueIsIdempotent() async throws {
        try await withTestDatabase { db in
            let q = JobQueue(connection: try db.connect(), logger: logger)
            #expect(try q.enqueue(noopJobs(1500), batchSize: 1000).count == 1500)
            #expect(try q.enqueue(noopJobs(1500), batchSize: 1000).isEmpty)
            #expect(try q.enqueue(noopJobs(1600)).count == 100)
            #expect(try q.counts().first { $0.queue == "bulk" && $0.state == .available }?.jobs == 1600)
        }
    }

    @Test("The connection killed mid-run (pg_terminate_backend) is survived and no job is lost or doubled")
    func survivesTerminatedConnections() async throws {
        try await withTestDatabase { db in
            let admin = try db.connect()
            try JobQueue(connection: admin, logger: logger).enqueue(noopJobs(2000))
            // Each completion writes a result row in its transaction, as screening does; the key catches doubles.
            try admin.query("CREATE TABLE results (job_id bigint PRIMARY KEY)")
            let workers = 4
            let results = try await onThreads(workers + 1) { w -> (completed: [Int64], reconnects: Int) in
                let connection = try db.connect()
                if w == workers {
                    // The saboteur: terminate every other client backend a few times while the workers run.
                    var kills = 0
                    for _ in 0..<6 {
                        Thread.sleep(forTimeInterval: 0.3)
                        kills += try connection.query("""
                            SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity
                            WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
                            """).rows[0].decode("n", as: Int.self)
                    }
                    return ([], kills)
                }
                let queue = JobQueue(connection: connection, worker: "worker-\(w)", logger: logger)
                var completed: [Int64] = []
                var idle = 0
                while idle < 10 {
                    // A claim whose answer was lost with the connection leaves jobs running unseen: the lease
                    // brings them back.
                    try queue.rescueExpired(lease: 1.5)
                    let jobs = try queue.claim(queue: "bulk", limit: 8)
                    if jobs.isEmpty {
                        let left = try connection.query("SELECT count(*) AS n FROM jobs WHERE state <> 'completed'")
                            .rows[0].decode("n", as: Int.self)
                        if left == 0 { break }
                        idle = 0
                        Thread.sleep(forTimeInterval: 0.2)
                        continue
                    }
                    for job in jobs {
                        let outcome = try queue.complete(job.lease) { conn in
                            try conn.query("INSERT INTO results VALUES ($1)", [job.id])
                        }
                        if outcome == .completed { completed.append(job.id) }
                    }
                }
                return (completed, connection.reconnects)
            }
            let completed = results.prefix(workers).flatMap(\.completed)
            #expect(completed.count == 2000)
            #expect(Set(completed).count == 2000)
            #expect(try admin.query("SELECT count(*) AS n FROM results").rows[0]["n"] == "2000")
            let kills = results[workers].reconnects
            let reconnects = results.prefix(workers).map(\.reconnects).reduce(0, +)
            #expect(kills >= workers, "the saboteur terminated backends")
            #expect(reconnects >= 1, "workers reconnected")
            print("terminated \(kills) backends; workers reconnected \(reconnects) times; all 2000 jobs completed once")
        }
    }

    @Test("Workers asleep on LISTEN wake when jobs are enqueued, and poll when nothing comes")
    func listenNotifyWakesWorkers() async throws {
        try await withTestDatabase { db in
            let worker = JobQueue(connection: try db.connect(), logger: logger)
            try worker.listen()
            let start = Date()
            #expect(try worker.waitForJobs(queue: "bulk", timeout: 0.3) == false)
            #expect(Date().timeIntervalSince(start) >= 0.25)

            let producer = try db.connect()
            let woke = try await onThreads(2) { i -> Bool in
                if i == 1 {
                    Thread.sleep(forTimeInterval: 0.3)
                    try JobQueue(connection: producer, logger: logger).enqueue(noopJobs(5))
                    return true
                }
                return try worker.waitForJobs(queue: "bulk", timeout: 10)
            }
            #expect(woke[0])
            #expect(try worker.claim(queue: "bulk", limit: 10).count == 5)
        }
    }

    @Test("Operators count, list, retry, discard and purge jobs")
    func operatorCommands() async throws {
        try await withTestDatabase { db in
            let connection = try db.connect()
            var q = JobQueue(connection: connection, worker: "w", logger: logger)
            q.backoff = Backoff(base: 0, cap: 0, jitter: 0)
            let ids = try q.enqueue(noopJobs(4))
            let jobs = try q.claim(queue: "bulk", limit: 2)
            #expect(try q.fail(jobs[0].lease, message: "bad file", kind: .permanent) == .discarded)
            #expect(try q.complete(jobs[1].lease) == .completed)

            let counts = Dictionary(uniqueKeysWithValues: try q.counts().map { ($0.state, $0.jobs) })
            #expect(counts == [.available: 2, .discarded: 1, .completed: 1])

            #expect(try q.retry(ids: [jobs[0].id]) == [jobs[0].id])
            #expect(try q.list(state: .available).count == 3)
            #expect(try q.discard(ids: [ids[2], ids[3]], by: "operator") .count == 2)
            #expect(try q.list(state: .discarded).allSatisfy { $0.lastError == "discarded by operator" })
            #expect(try q.purge(olderThan: 3600) == 0)
            try connection.query("UPDATE jobs SET finalized_at = now() - interval '2 days' WHERE finalized_at IS NOT NULL")
            #expect(try q.purge(olderThan: 86_400, batchSize: 1) == 3)
            #expect(try q.counts().map(\.jobs) == [1])
            #expect(throws: DatabaseError.self) { try JobState(parsing: "finished") }
        }
    }
}

@Suite("Keeping leases and waiting for work")
struct LeaseKeeperTests {
    let logger = TestPostgres.defaultLogger

    @Test("A lease keeper's heartbeats outlast the lease; a rescued job is reported lost")
    func keeperHoldsAndReportsLoss() async throws {
        try await withTestDatabase { db in
            let worker = JobQueue(connection: try db.connect(), worker: "busy", logger: logger)
            try worker.enqueue((0..<2).map { NewJob(kind: "noop", queue: "bulk", uniqueKey: "k\($0)") })
            let jobs = try worker.claim(queue: "bulk", limit: 2)
            let lost = LostLeases()
            let keeper = try LeaseKeeper(conninfo: db.conninfo, worker: "busy", interval: 0.2, logger: logger) { lost.add($0) }
            defer { keeper.stop() }
            keeper.hold(jobs.map(\.lease))

            let other = JobQueue(connection: try db.connect(), worker: "other", logger: logger)
            try await Task.sleep(nanoseconds: 1_500_000_000)
            #expect(try other.rescueExpired(lease: 1.0) == 0, "beats keep both jobs")

            // The operator discards one job: the keeper notices and reports it.
            #expect(try other.discard(ids: [jobs[0].id], by: "operator") == [jobs[0].id])
            try await Task.sleep(nanoseconds: 800_000_000)
            #expect(lost.all == [jobs[0].lease])
            #expect(keeper.heldLeases == [jobs[1].lease])
            #expect(try worker.complete(jobs[1].lease) == .completed)
        }
    }

    @Test("claimWaiting sleeps until work arrives and rescues expired jobs on the way")
    func claimWaitingWakes() async throws {
        try await withTestDatabase { db in
            let worker = JobQueue(connection: try db.connect(), worker: "w", logger: logger)
            try worker.listen()
            let producer = try db.connect()
            let started = Date()
            let waitedBox = WaitedBox()
            let got = try await onThreads(2) { i -> [Int64] in
                if i == 1 {
                    Thread.sleep(forTimeInterval: 0.5)
                    try JobQueue(connection: producer, logger: logger).enqueue([NewJob(kind: "noop", queue: "bulk")])
                    return []
                }
                let jobs = try worker.claimWaiting(queue: "bulk", limit: 4, lease: 60, pollInterval: 30)
                waitedBox.set(Date().timeIntervalSince(started))
                for job in jobs { _ = try worker.complete(job.lease) }
                return jobs.map(\.id)
            }
            let waited = waitedBox.value
            let jobs = try producer.query("""
                SELECT id, attempt, attempted_by, created_at::text AS created, attempted_at::text AS attempted, now()::text AS now
                FROM jobs ORDER BY id
                """).rows.map { $0.values.map { $0 ?? "NULL" }.joined(separator: " ") }
            #expect(got[0].count == 1)
            #expect(jobs.count == 1, "jobs: \(jobs); producer reconnects \(producer.reconnects)")
            #expect(waited < 15, "woken by NOTIFY, not by the 30 s poll; jobs: \(jobs); reconnects \(producer.reconnects)/\(worker.connection.reconnects)")
            var polls = 0
            #expect(try worker.claimWaiting(queue: "bulk", limit: 1, lease: 60, pollInterval: 0.1, shouldStop: {
                polls += 1
                return polls > 3
            }).isEmpty)
        }
    }
}

final class LostLeases: @unchecked Sendable {
    private let lock = NSLock()
    private var leases: [JobLease] = []
    func add(_ lease: JobLease) { lock.lock(); leases.append(lease); lock.unlock() }
    var all: [JobLease] { lock.lock(); defer { lock.unlock() }; return leases }
}

final class WaitedBox: @unchecked Sendable {
    private let lock = NSLock()
    private var seconds = Double.infinity
    func set(_ v: Double) { lock.lock(); seconds = v; lock.unlock() }
    var value: Double { lock.lock(); defer { lock.unlock() }; return seconds }
}

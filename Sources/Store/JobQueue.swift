import Foundation
import Logging

/// The job queue's operations for one worker over one connection (see QueueSQL for each statement).
/// Like its connection, a `JobQueue` is used by one thread at a time; each worker thread has its own.
public struct JobQueue: Sendable {
    /// The channel enqueueing notifies (with the queue name as payload).
    public static let channel = "fundus_jobs"
    /// The queue screening jobs go to.
    public static let screeningQueue = "screening"
    public static let screeningKind = "screen"

    public let connection: Connection
    /// Who holds the jobs this queue claims: recorded in `attempted_by` and checked on completion.
    public let worker: String
    public var backoff: Backoff
    let logger: Logger

    public init(connection: Connection, worker: String = JobQueue.defaultWorkerName(), backoff: Backoff = Backoff(),
                logger: Logger) {
        self.connection = connection
        self.worker = worker
        self.backoff = backoff
        self.logger = logger
    }

    /// `host:pid:random`, unique per process and call.
    public static func defaultWorkerName() -> String {
        "\(hostName()):\(getpid()):\(UInt32.random(in: 0..<UInt32.max) & 0xffff)"
    }

    /// The kernel's host name. (Foundation's `ProcessInfo.hostName` resolves it through DNS, which can stall
    /// for seconds on a machine without a resolver.)
    public static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    // MARK: enqueueing

    /// Inserts jobs in batches of `batchSize` rows per statement; returns the ids of the jobs added (jobs whose
    /// unique key exists already are not). Give jobs a unique key: a batch re-sent after a dropped connection then
    /// cannot add them twice.
    @discardableResult
    public func enqueue(_ jobs: [NewJob], batchSize: Int = 5000) throws -> [Int64] {
        var ids: [Int64] = []
        for start in stride(from: 0, to: jobs.count, by: batchSize) {
            let batch = jobs[start..<min(jobs.count, start + batchSize)]
            for job in batch where !(1...4).contains(job.priority) {
                throw DatabaseError(.invalidInput, "job priority \(job.priority) is outside 1…4")
            }
            let result = try connection.query(QueueSQL.jobInsertMany, [
                batch.map(\.kind), batch.map(\.queue), batch.map(\.priority), batch.map(\.maxAttempts),
                batch.map(\.argsJSON), batch.map(\.imageID), batch.map(\.modelVersionID), batch.map(\.uniqueKey),
                batch.map(\.scheduledAt),
            ])
            ids += try result.rows.map { try $0.decode("id", as: Int64.self) }
        }
        return ids
    }

    /// Attempts a screening job gets before it is discarded. Transient faults (disk full, a folder refusing writes,
    /// the database restarting, a worker killed mid-image) each cost an attempt, and a worker fails a claimed image
    /// within seconds while the fault lasts; with 5 attempts the backoff (5, 10, 20, 40 s) let a disk that stayed
    /// full for about a minute and a quarter discard every image claimed meanwhile (pipelines/chaos.sh found it).
    /// With 25, as River's default, the capped backoff rides out about three hours of a fault; an image that is
    /// bad by itself fails permanently at once and never uses this budget.
    public static let screeningMaxAttempts = 25

    /// Enqueues screening of these images with a model version: one job per (image, model version), never two,
    /// and none for an image that already has a result for that version. Returns how many were added.
    @discardableResult
    public func enqueueScreening(imageIDs: [Int64], modelVersionID: Int64, queue: String = JobQueue.screeningQueue,
                                 priority: Int = 3, maxAttempts: Int = JobQueue.screeningMaxAttempts,
                                 batchSize: Int = 10_000) throws -> Int {
        var added = 0
        for start in stride(from: 0, to: imageIDs.count, by: batchSize) {
            let batch = Array(imageIDs[start..<min(imageIDs.count, start + batchSize)])
            let result = try connection.query(QueueSQL.jobInsertScreening, [
                batch, modelVersionID, queue, priority, maxAttempts,
            ])
            added += result.rows.count
        }
        return added
    }

    // MARK: working

    /// Claims up to `limit` jobs of `queue` (the worker's free slots, so it never hoards). If the connection drops
    /// after the server claimed but before the answer arrived, those jobs come back through `rescueExpired`.
    /// With `modelVersionID`, only jobs queued for that model version: a worker never screens an image for a model
    /// it has not loaded.
    public func claim(queue: String = JobQueue.screeningQueue, limit: Int, modelVersionID: Int64? = nil) throws -> [Job] {
        guard limit > 0 else { return [] }
        let result = try connection.query(QueueSQL.jobClaim, [queue, worker, limit, modelVersionID])
        return try result.rows.map { row in
            Job(id: try row.decode("id"), kind: try row.decode("kind"), queue: try row.decode("queue"),
                priority: try row.decode("priority"), attempt: try row.decode("attempt"),
                maxAttempts: try row.decode("max_attempts"), argsJSON: try row.decode("args"),
                imageID: try row.decodeIfPresent("image_id"), modelVersionID: try row.decodeIfPresent("model_version_id"),
                worker: try row.decode("attempted_by"), scheduledAt: try row.decode("scheduled_at"),
                attemptedAt: try row.decode("attempted_at"))
        }.sorted { ($0.priority, $0.id) < ($1.priority, $1.id) }
    }

    /// Refreshes the heartbeat of the jobs this worker holds; returns the leases it still holds. A lease missing
    /// from the answer was rescued: stop working on that job.
    @discardableResult
    public func heartbeat(_ leases: [JobLease]) throws -> Set<JobLease> {
        guard !leases.isEmpty else { return [] }
        let result = try connection.query(QueueSQL.jobHeartbeat, [worker, leases.map(\.jobID), leases.map(\.attempt)])
        let held = Set(try result.rows.map { try $0.decode("id", as: Int64.self) })
        return Set(leases.filter { held.contains($0.jobID) })
    }

    /// Completes the job if this worker still holds this attempt, running `write` (the job's results) in the same
    /// transaction: either both happen or neither. Survives a dropped connection: the transaction is retried once,
    /// and a completion that did commit before the drop is recognised.
    public func complete(_ lease: JobLease, writing write: ((Connection) throws -> Void)? = nil) throws -> CompletionOutcome {
        var tries = 0
        while true {
            tries += 1
            do {
                guard let write else {
                    // Nothing to write with it: one statement, one round trip.
                    let done = try connection.query(QueueSQL.jobSetCompletedIfRunning, [lease.jobID, lease.attempt, worker])
                    if !done.rows.isEmpty { return .completed }
                    // Lost, or completed by this very statement before a dropped connection made it run again.
                    return try completedByThisAttempt(lease) ? .completed : .leaseLost
                }
                return try connection.transaction { conn in
                    let done = try conn.query(QueueSQL.jobSetCompletedIfRunning, [lease.jobID, lease.attempt, worker])
                    guard !done.rows.isEmpty else { return .leaseLost }
                    try write(conn)
                    return .completed
                }
            } catch let error as DatabaseError where error.code == .connectionLost && tries < 3 {
                logger.warning("connection lost while completing a job; checking what happened",
                               metadata: ["job": "\(lease.jobID)", "error": "\(error.message)"])
                let state = try connection.query(QueueSQL.jobGetState, [lease.jobID])
                guard let row = state.rows.first else { return .leaseLost }
                let s: String = try row.decode("state")
                let attempt: Int = try row.decode("attempt")
                let holder: String? = try row.decodeIfPresent("attempted_by")
                if attempt == lease.attempt, holder == worker {
                    if s == JobState.completed.rawValue { return .completed }
                    if s == JobState.running.rawValue { continue }
                }
                return .leaseLost
            }
        }
    }

    private func completedByThisAttempt(_ lease: JobLease) throws -> Bool {
        guard let row = try connection.query(QueueSQL.jobGetState, [lease.jobID]).rows.first else {
            return false
        }
        return try row.decode("state", as: String.self) == JobState.completed.rawValue
            && row.decode("attempt", as: Int.self) == lease.attempt && row["attempted_by"] == worker
    }

    /// Completes a screening job and stores its result in one transaction; re-screening replaces the result.
    public func completeScreening(_ lease: JobLease, result: ScreeningResult) throws -> CompletionOutcome {
        try result.validate()
        return try complete(lease) { conn in
            try ScreeningResults(connection: conn).write(result, jobID: lease.jobID)
        }
    }

    /// Records a failed attempt. Permanent failures and the last attempt discard the job (keeping the message);
    /// transient ones come back after the backoff.
    public func fail(_ lease: JobLease, message: String, kind: FailureKind) throws -> FailureOutcome {
        let delay = backoff.delay(afterAttempt: lease.attempt)
        let result = try connection.query(QueueSQL.jobSetFailedIfRunning, [
            lease.jobID, lease.attempt, worker, message, kind == .permanent, delay,
        ])
        if let row = result.rows.first {
            let state: String = try row.decode("state")
            if state == JobState.discarded.rawValue { return .discarded }
            return .willRetry(at: try row.decode("scheduled_at"))
        }
        // No row: the lease was lost, or this very update committed just before a dropped connection and the
        // statement ran again. Tell the two apart by the attempt it left behind.
        let now = try connection.query(QueueSQL.jobFailedState, [lease.jobID, lease.attempt, worker])
        guard let row = now.rows.first else { return .leaseLost }
        let state: String = try row.decode("state")
        if state == JobState.discarded.rawValue { return .discarded }
        return .willRetry(at: try row.decode("scheduled_at"))
    }

    /// Returns running jobs whose heartbeat is older than `lease` seconds to the queue (or discards them when
    /// their attempts are spent). Any worker may call this; returns how many were rescued.
    @discardableResult
    public func rescueExpired(lease: TimeInterval) throws -> Int {
        let result = try connection.query(QueueSQL.jobRescueExpired, [lease])
        if !result.rows.isEmpty {
            logger.notice("rescued jobs whose worker stopped heartbeating", metadata: ["jobs": "\(result.rows.count)"])
        }
        return result.rows.count
    }

    // MARK: waking up

    /// Starts listening for enqueue notifications on this worker's connection.
    public func listen() throws { try connection.listen(Self.channel) }

    /// Sleeps until jobs are enqueued in `queue` (notification) or `timeout` seconds pass (the polling fallback).
    /// Returns true when woken by a notification.
    @discardableResult
    public func waitForJobs(queue: String = JobQueue.screeningQueue, timeout: TimeInterval) throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return false }
            let notes = try connection.waitForNotifications(timeout: left)
            if notes.contains(where: { $0.channel == Self.channel && $0.payload == queue }) { return true }
        }
    }

    // MARK: operating

    public func counts() throws -> [QueueCount] {
        try connection.query(QueueSQL.jobCountByState).rows.map { row in
            QueueCount(queue: try row.decode("queue"), state: try JobState(parsing: try row.decode("state")),
                       jobs: try row.decode("jobs"), meanWaitSeconds: try row.decodeIfPresent("mean_wait_s"),
                       meanRunSeconds: try row.decodeIfPresent("mean_run_s"))
        }
    }

    public func list(state: JobState?, limit: Int = 100) throws -> [JobSummary] {
        try connection.query(QueueSQL.jobList, [state?.rawValue, limit]).rows.map { row in
            JobSummary(id: try row.decode("id"), kind: try row.decode("kind"), queue: try row.decode("queue"),
                       state: try JobState(parsing: try row.decode("state")), priority: try row.decode("priority"),
                       attempt: try row.decode("attempt"), maxAttempts: try row.decode("max_attempts"),
                       imageID: try row.decodeIfPresent("image_id"), modelVersionID: try row.decodeIfPresent("model_version_id"),
                       attemptedBy: try row.decodeIfPresent("attempted_by"), scheduledAt: try row.decode("scheduled_at"),
                       finalizedAt: try row.decodeIfPresent("finalized_at"), errorCount: try row.decode("error_count"),
                       lastError: try row.decodeIfPresent("last_error"))
        }
    }

    /// Puts jobs back to available now (not running ones); returns the ids changed.
    public func retry(ids: [Int64]) throws -> [Int64] {
        try connection.query(QueueSQL.jobRetry, [ids]).rows.map { try $0.decode("id") }
    }

    /// Discards unfinished jobs on an operator's word; returns the ids changed.
    public func discard(ids: [Int64], by operatorName: String) throws -> [Int64] {
        try connection.query(QueueSQL.jobDiscard, [ids, operatorName]).rows.map { try $0.decode("id") }
    }

    /// Deletes finished jobs older than `age` seconds in batches; returns how many.
    public func purge(olderThan age: TimeInterval, batchSize: Int = 10_000) throws -> Int {
        var total = 0
        while true {
            let deleted = try connection.query(QueueSQL.jobPurgeFinished, [age, batchSize]).affectedRows
            total += deleted
            if deleted < batchSize { return total }
        }
    }
}

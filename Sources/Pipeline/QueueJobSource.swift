import Foundation
import Logging
import Store

// The queue adapter: how the staged worker claims, renews, releases and fails screening jobs in Store's queue.

/// The queue as the worker sees it: one connection per role, each used by one thread at a time.
public final class QueueJobSource: JobSource, @unchecked Sendable {
    public typealias Job = ScreeningJob

    private let claimQueue: JobQueue
    private let beatQueue: JobQueue
    private let failQueue: JobQueue
    private let failLock = NSLock()
    private let queueName: String
    /// Only jobs queued for this model version are claimed.
    private let modelVersionID: Int64?
    private let leaseSeconds: Double
    private let logger: Logger

    /// `leaseSeconds`: how long a job may go without a heartbeat before its worker is presumed dead and it is
    /// handed to another (`WorkerSettings.leaseSeconds`).
    public init(makeConnection: () throws -> Connection, queue: String = JobQueue.screeningQueue, worker: String,
                modelVersionID: Int64? = nil, leaseSeconds: Double = 60, logger: Logger) throws {
        self.modelVersionID = modelVersionID
        claimQueue = JobQueue(connection: try makeConnection(), worker: worker, logger: logger)
        beatQueue = JobQueue(connection: try makeConnection(), worker: worker, logger: logger)
        failQueue = JobQueue(connection: try makeConnection(), worker: worker, logger: logger)
        queueName = queue
        self.leaseSeconds = leaseSeconds
        self.logger = logger
        try claimQueue.listen()
    }

    public func claim(max: Int) throws -> [ScreeningJob] {
        // Leases of workers that died are handed back first, so their images are not left waiting for an operator.
        try claimQueue.rescueExpired(lease: leaseSeconds)
        let jobs = try claimQueue.claim(queue: queueName, limit: max, modelVersionID: modelVersionID)
        let archive = Archive(connection: claimQueue.connection)
        var out: [ScreeningJob] = []
        for job in jobs {
            guard let imageID = job.imageID, let image = try archive.image(id: imageID) else {
                _ = try claimQueue.fail(job.lease, message: "job \(job.id) names no image of the archive", kind: .permanent)
                continue
            }
            out.append(ScreeningJob(job: job, image: image))
        }
        return out
    }

    public func renewLeases(_ jobs: [ScreeningJob]) throws -> [Int] {
        let held = try beatQueue.heartbeat(jobs.map(\.job.lease))
        return jobs.indices.filter { !held.contains(jobs[$0].job.lease) }
    }

    public func release(_ job: ScreeningJob) throws {
        failLock.lock()
        defer { failLock.unlock() }
        _ = try failQueue.release(job.job.lease)
    }

    public func fail(_ job: ScreeningJob, error: StageError) throws {
        failLock.lock()
        defer { failLock.unlock() }
        let message = "\(job.image.path): \(error.stage): \(error.message)"
        let outcome = try failQueue.fail(job.job.lease, message: message, kind: error.permanent ? .permanent : .transient)
        logger.info("recorded failure", metadata: ["job": "\(job.job.id)", "outcome": "\(outcome)"])
    }

    public func waitForWork(timeout: Double) {
        do { _ = try claimQueue.waitForJobs(queue: queueName, timeout: timeout) } catch {
            // The database is away (restarting?): the connection reconnects on the next call; do not spin.
            logger.warning("waiting for jobs failed (will retry): \(error)")
            Thread.sleep(forTimeInterval: timeout)
        }
    }

    public func unfinishedElsewhere() throws -> Int {
        // Called only when this worker holds nothing, so every unfinished job of the queue is someone else's
        // (or a job of ours whose failure could not be recorded: its lease expires and it comes back).
        try claimQueue.counts().filter { $0.queue == queueName && !$0.state.isFinal }
            .map(\.jobs).reduce(0, +)
    }
}

import Foundation
import Logging

/// Keeps a worker's leases alive while its pipeline is busy: a thread of its own, with a connection of its own,
/// refreshes the heartbeat of every held job each `interval` seconds. A job found rescued by someone else is
/// reported once through `onLost` so the pipeline can drop its work; completion will be refused anyway.
public final class LeaseKeeper: @unchecked Sendable {
    private let queue: JobQueue
    private let interval: TimeInterval
    private let logger: Logger
    private let onLost: @Sendable (JobLease) -> Void
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var held: Set<JobLease> = []
    private var stopping = false
    private var finished = false

    /// `worker` must be the name the claiming `JobQueue` uses. The keeper opens its own connection.
    public init(conninfo: String, worker: String, interval: TimeInterval = 5, logger: Logger,
                onLost: @escaping @Sendable (JobLease) -> Void = { _ in }) throws {
        queue = JobQueue(connection: try Connection(conninfo: conninfo, logger: logger), worker: worker, logger: logger)
        self.interval = interval
        self.logger = logger
        self.onLost = onLost
        let thread = Thread { [self] in run() }
        thread.name = "lease-keeper"
        thread.start()
    }

    public func hold(_ leases: [JobLease]) {
        condition.lock(); held.formUnion(leases); condition.unlock()
    }

    public func release(_ lease: JobLease) {
        condition.lock(); held.remove(lease); condition.unlock()
    }

    public var heldLeases: Set<JobLease> {
        condition.lock(); defer { condition.unlock() }
        return held
    }

    /// Stops beating and waits for the thread to end.
    public func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        while !finished { condition.wait() }
        condition.unlock()
        queue.connection.close()
    }

    private func run() {
        condition.lock()
        while !stopping {
            _ = condition.wait(until: Date().addingTimeInterval(interval))
            if stopping { break }
            let leases = Array(held)
            condition.unlock()
            var lost: [JobLease] = []
            do {
                let kept = try queue.heartbeat(leases)
                lost = leases.filter { !kept.contains($0) }
            } catch {
                // A failed beat is retried next interval; the lease is several beats long.
                logger.warning("heartbeat failed", metadata: ["error": "\(error)"])
            }
            condition.lock()
            for lease in lost where held.remove(lease) != nil {
                logger.warning("lease lost: job was rescued by another worker", metadata: ["job": "\(lease.jobID)"])
                onLost(lease)
            }
        }
        finished = true
        condition.broadcast()
        condition.unlock()
    }
}

extension JobQueue {
    /// Claims up to `limit` jobs, sleeping on the enqueue notification (and polling every `pollInterval` seconds,
    /// so a missed notification costs only latency) until there are some or `shouldStop` says so. Each round also
    /// rescues jobs whose lease (`lease` seconds without heartbeat) expired. Needs `listen()` first for wake-ups.
    public func claimWaiting(queue name: String = JobQueue.screeningQueue, limit: Int, lease: TimeInterval,
                             pollInterval: TimeInterval = 5, shouldStop: () -> Bool = { false }) throws -> [Job] {
        while !shouldStop() {
            try rescueExpired(lease: lease)
            let jobs = try claim(queue: name, limit: limit)
            if !jobs.isEmpty { return jobs }
            try waitForJobs(queue: name, timeout: pollInterval)
        }
        return []
    }
}

import Dispatch
import Foundation
import Logging

/// Where a worker gets its jobs and reports on them: the PostgreSQL queue in production.
/// Each method is called from one thread at a time per method (claims from the feeder, beats from the heartbeat
/// thread, finishing from the finishing stage), so an implementation can hold one connection per method.
public protocol JobSource: Sendable {
    associatedtype Job: Sendable
    /// Up to `max` jobs, now. An empty array means nothing is available.
    func claim(max: Int) throws -> [Job]
    /// Extends the leases of the jobs still held and returns the positions in `jobs` of those whose lease was lost
    /// (rescued by another worker).
    func renewLeases(_ jobs: [Job]) throws -> [Int]
    /// Hands a job back untouched (shutdown before work on it started).
    func release(_ job: Job) throws
    /// Records a failure: permanent ones end the job, transient ones are retried later.
    func fail(_ job: Job, error: StageError) throws
    /// Blocks until work may be available (LISTEN/NOTIFY) or `timeout` seconds passed.
    func waitForWork(timeout: Double)
    /// Jobs of the queue that are not finished and not held by this worker: running elsewhere (perhaps on a worker
    /// that died: its lease will expire and the job come back) or waiting for a retry. A run that exits when the
    /// queue is empty waits for these, so a dead worker's images are screened tonight, not tomorrow.
    func unfinishedElsewhere() throws -> Int
}

extension JobSource {
    public func unfinishedElsewhere() throws -> Int { 0 }
}

/// The stages of the pipeline, one name each for errors, the stage clock and the run summary: the worker's three
/// (`prepare` on the Dispatch queue, `infer`, `finish`), `claim` (taking jobs), and the steps errors and the clock
/// name inside them (`decode` in prepare; `masks` — masks and lesion statistics — and `store` in finish).
public enum Stage: String, Sendable, CaseIterable, CustomStringConvertible {
    case claim, prepare, decode, infer, finish, masks, store

    public var description: String { rawValue }
}

/// A failure of one image in one stage, with what a user needs to act on it.
public struct StageError: Error, CustomStringConvertible, Sendable {
    public var stage: Stage
    public var message: String
    /// Permanent: the input itself is bad (retrying cannot help). Transient: the database, the disk, memory.
    public var permanent: Bool

    public init(stage: Stage, message: String, permanent: Bool) {
        self.stage = stage
        self.message = message
        self.permanent = permanent
    }

    public var description: String { "\(stage): \(message)" }
}

/// The stages of one image, as closures. `prepare` runs on a concurrent Dispatch queue (decode, FOV, resize),
/// `infer` on one long-lived thread (oneDNN's OpenMP team belongs to one OS thread), `finish` on a serial
/// Dispatch queue (statistics, masks, findings and job completion in one transaction).
public struct Stages<Job: Sendable, Prepared: Sendable, Inferred: Sendable>: Sendable {
    public var prepare: @Sendable (Job) throws(StageError) -> Prepared
    public var infer: @Sendable (Prepared) throws(StageError) -> Inferred
    public var finish: @Sendable (Job, Inferred) throws(StageError) -> RunProgress.Outcome

    public init(prepare: @escaping @Sendable (Job) throws(StageError) -> Prepared,
                infer: @escaping @Sendable (Prepared) throws(StageError) -> Inferred,
                finish: @escaping @Sendable (Job, Inferred) throws(StageError) -> RunProgress.Outcome) {
        self.prepare = prepare
        self.infer = infer
        self.finish = finish
    }
}

/// Settings of one worker process.
public struct WorkerSettings: Sendable {
    /// Images held at once (claimed and not yet finished): the memory budget is this × one image's working set.
    public var slots: Int = 3
    /// Threads decoding in parallel.
    public var prepareConcurrency: Int = 1
    /// Stop after this many images (nil: until the queue is empty and `drain` is set, or forever).
    public var limit: Int? = nil
    /// Exit when the queue has nothing left (a nightly run) instead of waiting for more (a daemon).
    public var exitWhenEmpty: Bool = true
    /// A job whose heartbeat is older than this is presumed abandoned (its worker died) and handed to another.
    public var leaseSeconds: Double = 60 {
        didSet { heartbeatInterval = min(heartbeatInterval, leaseSeconds / 3) }
    }
    /// At most a third of the lease, so one late beat never loses a live job.
    public var heartbeatInterval: Double = 5
    public var pollInterval: Double = 2
    /// After a transient failure in the finish stage (masks not written, results not stored: the disk or the
    /// database, not the image) the worker claims nothing new for 1 s, doubling with each such failure in a row up
    /// to this; the first image finished resets it. Without the pause a worker facing a full disk claimed, screened
    /// and failed the backlog one image after another, spending an attempt of each (pipelines/chaos.sh).
    public var maximumFaultPause: Double = 60

    public init() {}
}

/// Drives jobs through prepare → infer → finish with bounded buffers between the stages, so decoding the next image
/// overlaps inference on this one and no more than `slots` images are held. Heartbeats every held job; on shutdown
/// stops claiming, releases jobs not yet started and finishes the rest.
public final class StagedWorker<Source: JobSource, Prepared: Sendable, Inferred: Sendable>: @unchecked Sendable {
    public typealias Job = Source.Job

    let source: Source
    let stages: Stages<Job, Prepared, Inferred>
    let settings: WorkerSettings
    let logger: Logger
    public let progress: RunProgress
    public let clock: StageClock
    public let shutdown: ShutdownSignal

    // Jobs held by this worker, keyed by an arrival number (Job need not be Hashable).
    private let heldLock = NSLock()
    private var held: [Int: Job] = [:]
    private var nextTicket = 0
    private var claimedTotal = 0
    private let slots: SlotCounter
    // The environment's run of transient finish failures and the claim pause it sets (guarded by heldLock).
    private var faultsInARow = 0
    private var pausedUntil: Date?

    public init(source: Source, stages: Stages<Job, Prepared, Inferred>, settings: WorkerSettings, logger: Logger,
                progress: RunProgress, clock: StageClock = StageClock(), shutdown: ShutdownSignal = ShutdownSignal()) {
        self.source = source
        self.stages = stages
        self.settings = settings
        self.logger = logger
        self.progress = progress
        self.clock = clock
        self.shutdown = shutdown
        self.slots = SlotCounter(max(1, settings.slots))
    }

    private struct Ticket<T: Sendable>: Sendable {
        var id: Int
        var job: Job
        var value: T
    }

    /// Runs until the queue is empty (with `exitWhenEmpty`), the limit is reached, or shutdown is requested.
    public func run() {
        let toPrepare = BoundedBuffer<Ticket<Void>>(capacity: max(1, settings.slots))
        let toInfer = BoundedBuffer<Ticket<Prepared>>(capacity: 1)
        let toFinish = BoundedBuffer<Ticket<Inferred>>(capacity: 1)
        let group = DispatchGroup()
        shutdown.onRequest { [logger] sig in
            logger.notice("stopping: no new jobs; finishing the images in flight", metadata: sig == 0 ? [:] : ["signal": "\(sig)"])
            toPrepare.close()
        }

        // Heartbeats for everything held, on their own thread so a long inference never lets a lease lapse.
        let beating = DispatchSemaphore(value: 0)
        let heartbeat = Thread { [self] in
            while beating.wait(timeout: .now() + settings.heartbeatInterval) == .timedOut {
                let tickets = heldTickets()
                guard !tickets.isEmpty else { continue }
                do {
                    let lost = try source.renewLeases(tickets.map(\.job))
                    // A job finished between the snapshot and the beat is not running any more: not lost.
                    for i in lost where i < tickets.count && isHeld(tickets[i].id) {
                        logger.warning("lease lost (another worker rescued the job); its result will be refused",
                                       metadata: ["job": "\(tickets[i].job)"])
                    }
                } catch {
                    logger.warning("heartbeat failed (will retry): \(error)")
                }
            }
        }
        heartbeat.start()

        // Prepare: a concurrent queue of `prepareConcurrency` takers.
        let prepareQueue = DispatchQueue(label: "fundus-screen.prepare", attributes: .concurrent)
        let preparers = DispatchGroup()
        for _ in 0..<max(1, settings.prepareConcurrency) {
            prepareQueue.async(group: preparers) { [self] in
                while let t = toPrepare.take() {
                    if shutdown.isRequested {
                        releaseJob(t.id, t.job)
                        continue
                    }
                    do {
                        let prepared = try clock.measure(.prepare) { () throws(StageError) -> Prepared in try stages.prepare(t.job) }
                        toInfer.put(Ticket(id: t.id, job: t.job, value: prepared))
                    } catch {
                        failJob(t.id, t.job, error, stage: .prepare)
                    }
                }
            }
        }
        preparers.notify(queue: .global()) { toInfer.close() }

        // Infer: one long-lived thread.
        group.enter()
        let inferThread = Thread { [self] in
            while let t = toInfer.take() {
                do {
                    let out = try clock.measure(.infer) { () throws(StageError) -> Inferred in try stages.infer(t.value) }
                    toFinish.put(Ticket(id: t.id, job: t.job, value: out))
                } catch {
                    failJob(t.id, t.job, error, stage: .infer)
                }
            }
            toFinish.close()
            group.leave()
        }
        inferThread.stackSize = 16 << 20
        inferThread.start()

        // Finish: serial.
        let finishQueue = DispatchQueue(label: "fundus-screen.finish")
        finishQueue.async(group: group) { [self] in
            while let t = toFinish.take() {
                do {
                    let outcome = try clock.measure(.finish) { () throws(StageError) -> RunProgress.Outcome in try stages.finish(t.job, t.value) }
                    environmentRecovered()
                    drop(t.id)
                    progress.advance(outcome)
                } catch {
                    failJob(t.id, t.job, error, stage: .finish)
                }
            }
        }

        feed(into: toPrepare)
        toPrepare.close()
        group.wait()
        beating.signal()
        progress.finish()
    }

    /// Claims as many jobs as there are free slots, until told to stop.
    private func feed(into buffer: BoundedBuffer<Ticket<Void>>) {
        var waitingNoted = false
        while !shutdown.isRequested {
            if let limit = settings.limit, claimedCount() >= limit { break }
            if let wait = pauseLeft(), wait > 0 {
                Thread.sleep(forTimeInterval: min(wait, 0.25))
                continue
            }
            var free = slots.takeAll()  // blocks until at least one slot is free
            if let limit = settings.limit, free > limit - claimedCount() {
                slots.give(free - (limit - claimedCount()))
                free = limit - claimedCount()
            }
            let jobs: [Job]
            do {
                jobs = try clock.measure(.claim) { try source.claim(max: free) }
            } catch {
                logger.warning("claiming jobs failed (will retry): \(error)")
                slots.give(free)
                source.waitForWork(timeout: settings.pollInterval)
                continue
            }
            slots.give(free - jobs.count)
            if jobs.isEmpty {
                if settings.exitWhenEmpty && heldJobs().isEmpty {
                    let elsewhere: Int
                    do { elsewhere = try source.unfinishedElsewhere() } catch {
                        logger.warning("counting unfinished jobs failed (will retry): \(error)")
                        source.waitForWork(timeout: settings.pollInterval)
                        continue
                    }
                    if elsewhere == 0 { break }
                    if !waitingNoted {
                        logger.notice("queue empty; waiting for jobs still running elsewhere or due for a retry",
                                      metadata: ["jobs": "\(elsewhere)"])
                        waitingNoted = true
                    }
                }
                source.waitForWork(timeout: settings.pollInterval)
                continue
            }
            waitingNoted = false
            for job in jobs {
                let id = hold(job)
                if !buffer.put(Ticket(id: id, job: job, value: ())) { releaseJob(id, job) }
            }
        }
    }

    private func hold(_ job: Job) -> Int {
        heldLock.lock()
        defer { heldLock.unlock() }
        nextTicket += 1
        claimedTotal += 1
        held[nextTicket] = job
        return nextTicket
    }

    private func claimedCount() -> Int {
        heldLock.lock()
        defer { heldLock.unlock() }
        return claimedTotal
    }

    private func heldTickets() -> [(id: Int, job: Job)] {
        heldLock.lock()
        defer { heldLock.unlock() }
        return held.keys.sorted().map { ($0, held[$0]!) }
    }

    private func isHeld(_ id: Int) -> Bool {
        heldLock.lock()
        defer { heldLock.unlock() }
        return held[id] != nil
    }

    private func heldJobs() -> [Job] {
        heldLock.lock()
        defer { heldLock.unlock() }
        return held.keys.sorted().map { held[$0]! }
    }

    /// The job is no longer held: give its slot back.
    private func drop(_ id: Int) {
        heldLock.lock()
        let was = held.removeValue(forKey: id) != nil
        heldLock.unlock()
        if was { slots.give(1) }
    }

    private func releaseJob(_ id: Int, _ job: Job) {
        do { try source.release(job) } catch { logger.warning("could not release a job (its lease will expire): \(error)") }
        drop(id)
        progress.advance(.released)
    }

    /// Seconds until claiming may resume; nil when not paused.
    private func pauseLeft() -> Double? {
        heldLock.lock()
        defer { heldLock.unlock() }
        return pausedUntil.map { $0.timeIntervalSinceNow }
    }

    private func environmentFailed(_ error: StageError) {
        heldLock.lock()
        faultsInARow += 1
        let pause = min(settings.maximumFaultPause, pow(2, Double(min(faultsInARow - 1, 30))))
        pausedUntil = Date().addingTimeInterval(pause)
        let n = faultsInARow
        heldLock.unlock()
        logger.notice("the disk or the database fails, not the image: claiming no new images for a while",
                      metadata: ["seconds": "\(pause)", "failures in a row": "\(n)", "stage": "\(error.stage)"])
    }

    private func environmentRecovered() {
        heldLock.lock()
        faultsInARow = 0
        pausedUntil = nil
        heldLock.unlock()
    }

    private func failJob(_ id: Int, _ job: Job, _ thrown: any Error, stage: Stage) {
        // Stages throw StageError; anything else is unexpected and treated as transient (retried, then discarded).
        let error = thrown as? StageError ?? StageError(stage: stage, message: "\(thrown)", permanent: false)
        if stage == .finish && !error.permanent { environmentFailed(error) }
        logger.error("job failed", metadata: ["job": "\(job)", "stage": "\(error.stage)", "error": "\(error.message)",
                                               "permanent": "\(error.permanent)"])
        do { try source.fail(job, error: error) } catch {
            logger.warning("could not record the failure (the lease will expire and the job be retried): \(error)")
        }
        drop(id)
        progress.advance(.failed)
    }
}

/// Free places in the worker's pipeline. (A DispatchSemaphore would do, but libdispatch traps when one is released
/// with fewer permits than it started with, which is the normal state when a run stops with jobs in flight.)
final class SlotCounter: @unchecked Sendable {
    private var free: Int
    private let condition = NSCondition()

    init(_ n: Int) { free = n }

    /// Waits for at least one free slot and takes all that are free.
    func takeAll() -> Int {
        condition.lock()
        defer { condition.unlock() }
        while free == 0 { condition.wait() }
        let n = free
        free = 0
        return n
    }

    func give(_ n: Int) {
        guard n > 0 else { return }
        condition.lock()
        free += n
        condition.broadcast()
        condition.unlock()
    }
}

import Foundation
import Logging
import Testing
@testable import Pipeline

/// An in-memory queue for exercising the worker's orchestration; the PostgreSQL queue is tested against a real server.
final class ListSource: JobSource, @unchecked Sendable {
    private let lock = NSLock()
    private var pending: [Int]
    private(set) var released: [Int] = []
    private(set) var failed: [(Int, StageError)] = []
    private(set) var beats = 0

    init(_ jobs: [Int]) { pending = jobs }

    func claim(max: Int) throws -> [Int] {
        lock.lock(); defer { lock.unlock() }
        let n = min(max, pending.count)
        let out = Array(pending.prefix(n))
        pending.removeFirst(n)
        return out
    }
    func renewLeases(_ jobs: [Int]) throws -> [Int] { lock.lock(); beats += 1; lock.unlock(); return [] }
    func release(_ job: Int) throws { lock.lock(); released.append(job); lock.unlock() }
    func fail(_ job: Int, error: StageError) throws { lock.lock(); failed.append((job, error)); lock.unlock() }
    func waitForWork(timeout: Double) { Thread.sleep(forTimeInterval: min(timeout, 0.01)) }
}

final class Recorder: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var finished: [Int] = []
    private(set) var inFlight = 0
    private(set) var maxInFlight = 0
    func enter() { lock.lock(); inFlight += 1; maxInFlight = max(maxInFlight, inFlight); lock.unlock() }
    func leave(_ job: Int) { lock.lock(); inFlight -= 1; finished.append(job); lock.unlock() }
    func leaveFailed() { lock.lock(); inFlight -= 1; lock.unlock() }
}

@Test("Every job passes the stages once; a bad input fails alone; no more than `slots` images are held")
func drainsQueue() {
    let source = ListSource(Array(1...30))
    let rec = Recorder()
    let stages = Stages<Int, Int, Int>(
        prepare: { job throws(StageError) in
            rec.enter()
            if job == 7 {
                rec.leaveFailed()
                throw StageError(stage: .decode, message: "job 7 is not an image", permanent: true)
            }
            return job * 10
        },
        infer: { x in Thread.sleep(forTimeInterval: 0.002); return x + 1 },
        finish: { job, y in
            #expect(y == job * 10 + 1)
            rec.leave(job)
            return .screened
        })
    let worker = runWorker(source, stages, total: 30) { $0.slots = 3; $0.prepareConcurrency = 2 }
    #expect(rec.finished.sorted() == Array(1...30).filter { $0 != 7 })
    #expect(source.failed.map(\.0) == [7])
    #expect(source.failed.first?.1.permanent == true)
    #expect(rec.maxInFlight <= 3)
    #expect(worker.progress.count(.screened) == 29)
    #expect(worker.progress.count(.failed) == 1)
}

@Test("--limit stops claiming after that many images")
func limit() {
    let source = ListSource(Array(1...50))
    let rec = Recorder()
    let stages = Stages<Int, Int, Int>(prepare: { $0 }, infer: { $0 }, finish: { job, _ in rec.leave(job); return .screened })
    runWorker(source, stages, total: 5) { $0.limit = 5 }
    #expect(rec.finished.count == 5)
}

@Test("A shutdown request finishes what is in flight and releases what was not started")
func shutdownReleases() {
    let source = ListSource(Array(1...100))
    let rec = Recorder()
    let shutdown = ShutdownSignal()
    let stages = Stages<Int, Int, Int>(
        prepare: { $0 },
        infer: { x in
            if x == 3 { shutdown.request() }
            Thread.sleep(forTimeInterval: 0.01)
            return x
        },
        finish: { job, _ in rec.leave(job); return .screened })
    runWorker(source, stages, total: nil, shutdown: shutdown) { $0.slots = 4 }
    let handled = Set(rec.finished).union(source.released)
    #expect(rec.finished.count < 100)
    #expect(rec.finished.count + source.released.count == handled.count)  // nothing twice
    #expect(handled == Set(1...handled.count))                              // nothing claimed was lost
}

@Test("While the disk or the database fails (transient finish failures) the worker pauses claiming instead of failing the backlog")
func pausesClaimingDuringEnvironmentFaults() {
    let source = ListSource(Array(1...200))
    let rec = Recorder()
    let faultEnds = Date().addingTimeInterval(1.5)
    let stages = Stages<Int, Int, Int>(
        prepare: { $0 },
        infer: { x in Thread.sleep(forTimeInterval: 0.002); return x },
        finish: { job, _ throws(StageError) in
            if Date() < faultEnds { throw StageError(stage: .masks, message: "No space left on device", permanent: false) }
            rec.leave(job)
            return .screened
        })
    runWorker(source, stages, total: nil) { $0.slots = 2; $0.maximumFaultPause = 2 }
    // Without the pause the 1.5 s fault failed about 200 images (2 ms each); with it, the images in flight when
    // each pause began.
    #expect(source.failed.count <= 8, "\(source.failed.count) images failed during the fault")
    #expect(source.failed.allSatisfy { !$0.1.permanent })
    #expect(rec.finished.count + source.failed.count == 200)
}

/// Runs a worker over `source` until it stops, and returns it: `settings` adjusts the default settings, `total` is
/// the progress's (nil: unknown), logging as "test" with no terminal.
@discardableResult
func runWorker<Source: JobSource, Prepared: Sendable, Inferred: Sendable>(
    _ source: Source, _ stages: Stages<Source.Job, Prepared, Inferred>, total: Int?, shutdown: ShutdownSignal = ShutdownSignal(),
    settings adjust: (inout WorkerSettings) -> Void
) -> StagedWorker<Source, Prepared, Inferred> {
    var settings = WorkerSettings()
    adjust(&settings)
    let worker = StagedWorker(source: source, stages: stages, settings: settings, logger: Logger(label: "test"),
                              progress: RunProgress(total: total, logger: Logger(label: "test"), interactive: false),
                              shutdown: shutdown)
    worker.run()
    return worker
}

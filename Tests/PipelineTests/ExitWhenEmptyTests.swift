import Foundation
import Logging
import Testing
@testable import Pipeline

/// A queue whose last job is held by another (dead) worker until its lease expires, then comes back.
final class LeaseExpirySource: JobSource, @unchecked Sendable {
    private let lock = NSLock()
    private var pending: [Int]
    private var heldElsewhere: Int?
    private var polls = 0
    /// Empty claims before the job held elsewhere is rescued.
    let rescueAfterPolls: Int

    init(pending: [Int], heldElsewhere: Int, rescueAfterPolls: Int) {
        self.pending = pending
        self.heldElsewhere = heldElsewhere
        self.rescueAfterPolls = rescueAfterPolls
    }

    func claim(max: Int) throws -> [Int] {
        lock.lock(); defer { lock.unlock() }
        if pending.isEmpty, let job = heldElsewhere {
            polls += 1
            if polls > rescueAfterPolls { pending.append(job); heldElsewhere = nil }
        }
        let n = min(max, pending.count)
        defer { pending.removeFirst(n) }
        return Array(pending.prefix(n))
    }
    func renewLeases(_ jobs: [Int]) throws -> [Int] { [] }
    func release(_ job: Int) throws {}
    func fail(_ job: Int, error: StageError) throws {}
    func waitForWork(timeout: Double) { Thread.sleep(forTimeInterval: 0.005) }
    func unfinishedElsewhere() throws -> Int {
        lock.lock(); defer { lock.unlock() }
        return heldElsewhere == nil ? 0 : 1
    }
}

@Test("A run that exits when the queue is empty first waits for a job another worker holds, and screens it once rescued")
func waitsForJobsHeldElsewhere() {
    let source = LeaseExpirySource(pending: [1, 2], heldElsewhere: 3, rescueAfterPolls: 5)
    let done = LockedBox<[Int]>([])
    let stages = Stages<Int, Int, Int>(
        prepare: { $0 }, infer: { $0 },
        finish: { job, _ in done.update { $0.append(job) }; return .screened })
    runWorker(source, stages, total: 3) { $0.pollInterval = 0.01 }
    #expect(done.value.sorted() == [1, 2, 3])
}

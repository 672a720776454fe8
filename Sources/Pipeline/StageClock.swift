import Foundation

/// Wall time and thread CPU time spent in each pipeline stage, summed over images, for the run summary
/// ("time per stage") and the benchmark's CPU share per stage. Thread-safe.
public final class StageClock: @unchecked Sendable {
    public struct Totals: Sendable, Equatable {
        public var wallSeconds: Double = 0
        public var cpuSeconds: Double = 0
        public var count: Int = 0
    }

    private var totals: [Stage: Totals] = [:]
    private var order: [Stage] = []
    private let lock = NSLock()

    public init() {}

    /// Runs `body`, charging its wall and this thread's CPU time to `stage`.
    public func measure<T>(_ stage: Stage, _ body: () throws -> T) rethrows -> T {
        let wall0 = DispatchTime.now().uptimeNanoseconds
        let cpu0 = StageClock.threadCPUSeconds()
        defer {
            let wall = Double(DispatchTime.now().uptimeNanoseconds - wall0) / 1e9
            let cpu = StageClock.threadCPUSeconds() - cpu0
            add(stage, wall: wall, cpu: cpu)
        }
        return try body()
    }

    public func add(_ stage: Stage, wall: Double, cpu: Double) {
        lock.lock()
        defer { lock.unlock() }
        if totals[stage] == nil { order.append(stage) }
        totals[stage, default: Totals()].wallSeconds += wall
        totals[stage, default: Totals()].cpuSeconds += cpu
        totals[stage, default: Totals()].count += 1
    }

    /// Stages in the order they were first seen.
    public func snapshot() -> [(stage: Stage, totals: Totals)] {
        lock.lock()
        defer { lock.unlock() }
        return order.map { ($0, totals[$0]!) }
    }

    /// CPU time of the calling thread (user + system).
    public static func threadCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// CPU time of the whole process (all threads, including oneDNN's OpenMP team).
    public static func processCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}

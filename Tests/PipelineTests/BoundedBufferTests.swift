import Foundation
import Testing
@testable import Pipeline
import Imaging

@Test("A bounded buffer never holds more than its capacity and delivers every item once, in order")
func boundedDelivery() async {
    let buffer = BoundedBuffer<Int>(capacity: 3)
    let maxSeen = LockedBox(0)
    let producer = Thread {
        for i in 0..<500 {
            buffer.put(i)
            maxSeen.update { $0 = max($0, buffer.count) }
        }
        buffer.close()
    }
    producer.start()
    var got: [Int] = []
    while let x = buffer.take() { got.append(x) }
    #expect(got == Array(0..<500))
    #expect(maxSeen.value <= 3)
    #expect(buffer.put(1) == false)
}

@Test("Closing wakes a blocked consumer with nil")
func closeWakes() {
    let buffer = BoundedBuffer<String>(capacity: 1)
    let done = DispatchSemaphore(value: 0)
    let result = LockedBox<String?>("unset")
    Thread {
        result.update { $0 = buffer.take() }
        done.signal()
    }.start()
    Thread.sleep(forTimeInterval: 0.05)
    buffer.close()
    #expect(done.wait(timeout: .now() + 5) == .success)
    #expect(result.value == nil)
}

@Test("Stage clock sums wall and CPU time per stage in first-seen order")
func stageClock() {
    let clock = StageClock()
    clock.measure(.decode) { var x = 0.0; for i in 0..<200_000 { x += Double(i).squareRoot() }; _ = x }
    clock.measure(.infer) { Thread.sleep(forTimeInterval: 0.02) }
    clock.measure(.decode) {}
    let snap = clock.snapshot()
    #expect(snap.map(\.stage) == [.decode, .infer])
    #expect(snap[0].totals.count == 2)
    #expect(snap[1].totals.wallSeconds >= 0.02)
    #expect(snap[1].totals.cpuSeconds < 0.02)
}

final class LockedBox<T: Sendable>: @unchecked Sendable {
    private var v: T
    private let lock = NSLock()
    init(_ v: T) { self.v = v }
    var value: T { lock.lock(); defer { lock.unlock() }; return v }
    func update(_ f: (inout T) -> Void) { lock.lock(); f(&v); lock.unlock() }
}

@Test("Progress counts outcomes and formats durations")
func progressCounts() {
    let p = RunProgress(total: 4, logger: .init(label: "test"), interactive: false, logInterval: 1e9)
    p.advance(.screened)
    p.advance(.ungradable)
    p.advance(.released)
    #expect(p.done == 2)
    #expect(p.count(.released) == 1)
    #expect(RunProgress.duration(67) == "1m07s")
    #expect(RunProgress.duration(3725) == "1h02m")
}

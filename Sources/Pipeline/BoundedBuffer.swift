import Foundation

/// A blocking first-in-first-out buffer of at most `capacity` items that joins two pipeline stages.
/// A full buffer blocks the producer (so memory stays within the stage budget); an empty one blocks the consumer.
/// `close()` lets consumers drain what is left and then receive `nil`; producers of a closed buffer are refused.
///
/// Invariant that makes `@unchecked Sendable` sound: `items` and `closed` are only touched while `condition` is held.
public final class BoundedBuffer<Element: Sendable>: @unchecked Sendable {
    public let capacity: Int
    private var items: [Element] = []
    private var head = 0
    private var closed = false
    private let condition = NSCondition()

    public init(capacity: Int) {
        precondition(capacity > 0, "a buffer needs room for at least one item")
        self.capacity = capacity
    }

    /// Blocks while full. Returns false (and drops nothing it was not given) when the buffer is closed.
    @discardableResult
    public func put(_ item: Element) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !closed && items.count - head >= capacity { condition.wait() }
        if closed { return false }
        items.append(item)
        condition.broadcast()
        return true
    }

    /// Blocks while empty and open. `nil` means closed and drained.
    public func take() -> Element? {
        condition.lock()
        defer { condition.unlock() }
        while items.count - head == 0 && !closed { condition.wait() }
        guard items.count - head > 0 else { return nil }
        let item = items[head]
        head += 1
        if head > 64 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        condition.broadcast()
        return item
    }

    /// No more puts; takers drain the rest, then get `nil`.
    public func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    public var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return items.count - head
    }

    public var isClosed: Bool {
        condition.lock()
        defer { condition.unlock() }
        return closed
    }
}

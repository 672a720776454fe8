import Dispatch
import Foundation

/// SIGINT/SIGTERM handling for a worker: the first signal asks the run to stop claiming work and finish (or release)
/// what it holds; a second one exits at once (the queue's leases hand unfinished jobs to another worker).
public final class ShutdownSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var requested = false
    private var sources: [DispatchSourceSignal] = []
    private var handlers: [@Sendable (Int32) -> Void] = []

    public init() {}

    public var isRequested: Bool {
        lock.lock()
        defer { lock.unlock() }
        return requested
    }

    /// Called once, on the first signal, with its number.
    public func onRequest(_ handler: @escaping @Sendable (Int32) -> Void) {
        lock.lock()
        handlers.append(handler)
        lock.unlock()
    }

    /// Ask for a stop from code (tests, `--limit` reached).
    public func request(_ signal: Int32 = 0) {
        lock.lock()
        if requested {
            lock.unlock()
            if signal != 0 { exit(128 + signal) }
            return
        }
        requested = true
        let hs = handlers
        lock.unlock()
        for h in hs { h(signal) }
    }

    /// Routes SIGINT and SIGTERM here instead of the default (kill the process).
    public func install(queue: DispatchQueue = DispatchQueue(label: "fundus-screen.signals")) {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler { [weak self] in self?.request(sig) }
            source.resume()
            lock.lock()
            sources.append(source)
            lock.unlock()
        }
    }
}

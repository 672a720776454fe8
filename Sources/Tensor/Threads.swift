import Foundation
import CBLAS

/// Thread settings for processes that run the engine.
public enum EngineThreads {
    /// OpenBLAS's worker threads spin after each call and slow oneDNN when both run (ENGINE.md): any process that
    /// runs oneDNN uses OpenBLAS single-threaded. Call once at start-up, before the first matrix product.
    public static func configureBLASForEngine() {
        openblas_set_num_threads(1)
    }

    public static var blasThreads: Int { Int(openblas_get_num_threads()) }

    /// Everything a command-line process that runs the network sets up first: passive OpenMP waiting (may re-exec),
    /// single-threaded OpenBLAS, and malloc keeping activation buffers mapped between passes.
    public static func configureProcessForEngine() {
        ensurePassiveWaitPolicy()
        configureBLASForEngine()
        configureMemoryForEngine()
    }

    /// libgomp's default wait policy spins its threads between parallel regions, which on a loaded or small machine
    /// burns the cores the other pipeline stages need. The policy is read once, when libgomp loads, so a process that
    /// was started without `OMP_WAIT_POLICY` sets it and replaces itself (same arguments) before any engine work.
    /// Set `OMP_WAIT_POLICY` yourself (e.g. `active`) to keep your choice.
    public static func ensurePassiveWaitPolicy() {
        guard ProcessInfo.processInfo.environment["OMP_WAIT_POLICY"] == nil else { return }
        setenv("OMP_WAIT_POLICY", "passive", 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // execv returned: it failed; carry on with the default policy.
    }

    /// Keeps large activation buffers in malloc's heap instead of fresh mmaps: every mmap'd buffer costs page faults
    /// and kernel zeroing on each pass, and an inference pass allocates gigabytes in total. Freed memory stays
    /// mapped up to `retainBytes` for the next pass.
    public static func configureMemoryForEngine(retainBytes: Int32 = 512 << 20) {
        _ = glibcMallopt(-3, retainBytes)  // M_MMAP_THRESHOLD (malloc.h, not in Swift's Glibc module)
        _ = glibcMallopt(-1, retainBytes)  // M_TRIM_THRESHOLD
    }
}

/// One long-lived OS thread that runs the engine's work: oneDNN's OpenMP runtime (libgomp) keeps one thread team
/// per calling OS thread, so all network work of a model goes through the same thread. `run` is synchronous and
/// serialises callers; called from the engine thread itself it runs inline.
public final class EngineThread: @unchecked Sendable {
    /// Shared with the thread; the lock guards `job`, `done` and `stop`.
    private final class Mailbox: @unchecked Sendable {
        let condition = NSCondition()
        var job: (() -> Void)?
        var done = false
        var stop = false
    }

    private let mailbox = Mailbox()
    private let callers = NSLock()
    private let thread: Thread

    public init(name: String) {
        let box = mailbox
        thread = Thread {
            while true {
                box.condition.lock()
                while box.job == nil && !box.stop { box.condition.wait() }
                if box.stop { box.condition.unlock(); return }
                var job = box.job
                box.job = nil
                box.condition.unlock()
                job?()
                job = nil  // release the caller's closure before it returns (withoutActuallyEscaping checks)
                box.condition.lock()
                box.done = true
                box.condition.broadcast()
                box.condition.unlock()
            }
        }
        thread.name = name
        thread.stackSize = 16 << 20
        thread.start()
    }

    deinit {
        mailbox.condition.lock()
        mailbox.stop = true
        mailbox.condition.broadcast()
        mailbox.condition.unlock()
    }

    public func run<T>(_ body: () -> T) -> T {
        if Thread.current === thread { return body() }
        callers.lock()
        defer { callers.unlock() }
        var result: T?
        withoutActuallyEscaping(body) { escapable in
            mailbox.condition.lock()
            mailbox.done = false
            mailbox.job = { result = escapable() }
            mailbox.condition.broadcast()
            while !mailbox.done { mailbox.condition.wait() }
            mailbox.condition.unlock()
        }
        return result!
    }
}

@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32

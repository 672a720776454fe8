import Foundation
import Logging

/// Shows how a run is going: a one-line bar redrawn in place on a terminal (images/s, ETA), or a log line every
/// `logInterval` seconds otherwise (cron, CI, files). Thread-safe; stages call `advance` as images finish.
public final class RunProgress: @unchecked Sendable {
    public enum Outcome: String, Sendable, CaseIterable {
        case screened, ungradable, failed, released
    }

    private let lock = NSLock()
    private let logger: Logger
    private let total: Int?
    private let interactive: Bool
    private let logInterval: Double
    private let start = DispatchTime.now().uptimeNanoseconds
    private var counts: [Outcome: Int] = [:]
    private var lastLog: UInt64 = 0
    private var lastDraw: UInt64 = 0

    /// `total` is the number of images expected when known (queue depth at start, `--limit`).
    public init(total: Int?, logger: Logger, interactive: Bool = isatty(STDERR_FILENO) == 1, logInterval: Double = 30) {
        self.total = total
        self.logger = logger
        self.interactive = interactive
        self.logInterval = logInterval
    }

    public var elapsed: Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }

    public func count(_ outcome: Outcome) -> Int {
        lock.lock()
        defer { lock.unlock() }
        return counts[outcome, default: 0]
    }

    public var done: Int {
        lock.lock()
        defer { lock.unlock() }
        return counts.filter { $0.key != .released }.values.reduce(0, +)
    }

    public func advance(_ outcome: Outcome) {
        lock.lock()
        counts[outcome, default: 0] += 1
        let now = DispatchTime.now().uptimeNanoseconds
        let line = statusLine()
        var drawNow = false
        var logNow = false
        if interactive {
            drawNow = now - lastDraw > 100_000_000
            if drawNow { lastDraw = now }
        } else if Double(now - lastLog) / 1e9 >= logInterval {
            logNow = true
            lastLog = now
        }
        lock.unlock()
        if drawNow { FileHandle.standardError.write(Data("\r\u{1B}[2K\(line)".utf8)) }
        if logNow { logger.info("\(line)") }
    }

    /// Ends the bar's line on a terminal.
    public func finish() {
        guard interactive else { return }
        lock.lock()
        let line = statusLine()
        lock.unlock()
        FileHandle.standardError.write(Data("\r\u{1B}[2K\(line)\n".utf8))
    }

    /// "[#####-----] 12/40 screened 10 ungradable 1 failed 1 · 0.42 img/s · ETA 1m07s". Caller holds the lock.
    private func statusLine() -> String {
        let finished = counts.filter { $0.key != .released }.values.reduce(0, +)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let rate = seconds > 0 ? Double(finished) / seconds : 0
        var parts: [String] = []
        if let total, total > 0 {
            let width = 24
            let filled = min(width, finished * width / total)
            parts.append("[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "] \(finished)/\(total)")
        } else {
            parts.append("\(finished) done")
        }
        for o in Outcome.allCases where counts[o, default: 0] > 0 { parts.append("\(o.rawValue) \(counts[o]!)") }
        parts.append(String(format: "%.2f img/s", rate))
        if let total, rate > 0, finished < total {
            parts.append("ETA " + RunProgress.duration(Double(total - finished) / rate))
        }
        return parts.joined(separator: " · ")
    }

    public static func duration(_ s: Double) -> String {
        let t = Int(s.rounded())
        if t >= 3600 { return "\(t / 3600)h\(String(format: "%02d", (t % 3600) / 60))m" }
        if t >= 60 { return "\(t / 60)m\(String(format: "%02d", t % 60))s" }
        return "\(t)s"
    }
}

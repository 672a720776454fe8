import Foundation
import Logging

/// Temporary files of atomic writes (`AtomicFile`: `.<file name>.<pid>.<random>.tmp` beside the file it becomes)
/// that a worker killed mid-write left behind. They are never mistaken for masks (hidden, `.tmp`), but they would
/// pile up; a worker removes them when it starts and when it ends.
public enum StaleTemporaryFiles {
    /// A file is stale when its writer is not a live process on this machine and it has not changed for `grace`
    /// seconds (a writer on another machine sharing the folder finishes a write well within that), or in any case
    /// after `maximumAge` seconds. `ownWritesFinished`: this process writes nothing any more, so its own are stale
    /// too. Returns how many were removed.
    @discardableResult
    public static func remove(under directory: URL, grace: Double = 5, maximumAge: Double = 3600,
                              ownWritesFinished: Bool = false, now: Date = Date(), logger: Logger) -> Int {
        let keys: [URLResourceKey] = [.isRegularFileKey, .contentModificationDateKey]
        guard let walker = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: keys,
                                                          errorHandler: { _, _ in true }) else { return 0 }
        var removed: [String] = []
        for case let url as URL in walker {
            guard let pid = writerProcess(url.lastPathComponent),
                  let values = try? url.resourceValues(forKeys: Set(keys)), values.isRegularFile == true else { continue }
            let age = now.timeIntervalSince(values.contentModificationDate ?? now)
            let writerGone = (pid == getpid()) ? ownWritesFinished : !isRunning(pid)
            guard age >= maximumAge || (writerGone && age >= grace) else { continue }
            if (try? FileManager.default.removeItem(at: url)) != nil { removed.append(url.path) }
        }
        if !removed.isEmpty {
            logger.notice("removed temporary files of interrupted mask writes",
                          metadata: ["files": "\(removed.count)", "first": "\(removed[0])"])
        }
        return removed.count
    }

    /// The writer's process id when `name` is an atomic write's temporary file: `.<name>.<pid>.<random>.tmp`.
    static func writerProcess(_ name: String) -> Int32? {
        guard name.hasPrefix("."), name.hasSuffix(".tmp") else { return nil }
        let parts = name.dropLast(4).split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 4, UInt32(parts[parts.count - 1]) != nil, let pid = Int32(parts[parts.count - 2]), pid > 0
        else { return nil }
        return pid
    }

    static func isRunning(_ pid: Int32) -> Bool {
        kill(pid, 0) == 0 || errno == EPERM
    }
}

import ArgumentParser
import Foundation
import Store

/// `fundus-screen queue …`: what the workers have to do, and the operator's levers.
struct QueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue", abstract: "Inspect and operate the job queue.",
        subcommands: [Status.self, List.self, Retry.self, Discard.self, Purge.self])

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Jobs by queue and state, with mean wait and run times.")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let (connection, logger) = try global.connect("fundus.queue")
            let counts = try JobQueue(connection: connection, logger: logger).counts()
            if counts.isEmpty { print("no jobs"); return }
            func seconds(_ v: Double?) -> String { v.map { String(format: "%.1fs", $0) } ?? "-" }
            print(pad("queue", 12) + pad("state", 11) + pad("jobs", 9, right: true) + pad("mean wait", 11, right: true)
                  + pad("mean run", 10, right: true))
            for c in counts {
                print(pad(c.queue, 12) + pad(c.state.rawValue, 11) + pad(String(c.jobs), 9, right: true)
                      + pad(seconds(c.meanWaitSeconds), 11, right: true) + pad(seconds(c.meanRunSeconds), 10, right: true))
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List jobs, optionally in one state.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "available, running, retryable, completed, discarded or cancelled.")
        var state: String?
        @Option(help: "At most this many jobs.")
        var limit = 100

        func run() throws {
            let wanted = try state.map { try JobState(parsing: $0) }
            let (connection, logger) = try global.connect("fundus.queue")
            let jobs = try JobQueue(connection: connection, logger: logger).list(state: wanted, limit: limit)
            if jobs.isEmpty { print("no jobs"); return }
            for j in jobs {
                var line = "\(j.id)\t\(j.kind)\t\(j.queue)\t\(j.state.rawValue)\tattempt \(j.attempt)/\(j.maxAttempts)"
                if let image = j.imageID { line += "\timage \(image)" }
                if let model = j.modelVersionID { line += "\tmodel \(model)" }
                if let worker = j.attemptedBy { line += "\tby \(worker)" }
                if let error = j.lastError { line += "\tlast error: \(error)" }
                print(line)
            }
        }
    }

    struct Retry: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put jobs back to available now (not running ones).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Job ids.") var ids: [Int64]

        func run() throws {
            let (connection, logger) = try global.connect("fundus.queue")
            let changed = try JobQueue(connection: connection, logger: logger).retry(ids: ids)
            report(changed, of: ids, verb: "retried")
        }
    }

    struct Discard: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Discard jobs that are not finished.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "Job ids.") var ids: [Int64]

        func run() throws {
            let (connection, logger) = try global.connect("fundus.queue")
            let who = "operator \(ProcessInfo.processInfo.environment["USER"] ?? "unknown")"
            let changed = try JobQueue(connection: connection, logger: logger).discard(ids: ids, by: who)
            report(changed, of: ids, verb: "discarded")
        }
    }

    struct Purge: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete finished jobs (results stay).")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Finished longer ago than this: 90s, 30m, 12h, 7d, 2w.") var olderThan: String

        func run() throws {
            let age = try Age.seconds(olderThan)
            let (connection, logger) = try global.connect("fundus.queue")
            print("purged \(try JobQueue(connection: connection, logger: logger).purge(olderThan: age)) finished jobs")
        }
    }
}

private func report(_ changed: [Int64], of asked: [Int64], verb: String) {
    print("\(verb) \(changed.count) of \(asked.count) jobs")
    let untouched = Set(asked).subtracting(changed).sorted()
    if !untouched.isEmpty {
        print("unchanged (unknown, or in a state that does not allow it): " + untouched.map(String.init).joined(separator: " "))
    }
}

private func pad(_ s: String, _ width: Int, right: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(1, width - s.count))
    return right ? fill + s : s + fill
}

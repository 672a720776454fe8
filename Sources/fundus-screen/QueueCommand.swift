import ArgumentParser
import Foundation
import Store

/// `fundus-screen queue …`: what the workers have to do, and the operator's levers.
struct QueueCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue", abstract: "Inspect and operate the job queue.",
        subcommands: [Status.self, List.self, Retry.self, Discard.self, Purge.self, Rescreen.self])

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
    struct Rescreen: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue the archive for a model version: every image without a result for it.",
            discussion: """
                Promoting a model queues only new images (and those still waiting for the model it replaced); \
                this queues the rest of the archive, or what was imported since --since. Running it again adds \
                nothing: an image is queued once per model version. A model that is not active is screened only \
                by `fundus-screen screen --model NAME`.
                """)
        @OptionGroup var global: GlobalOptions
        @Option(help: "Model version id or name (see `fundus-screen model list`).") var model: String
        @Option(help: "Only images imported at or after this time (ISO 8601, e.g. 2026-11-23T02:00:00Z, or a date 2026-11-23).")
        var since: String?
        @Option(help: "Priority of the jobs: 1 (on demand) … 4; the nightly backlog is 3.") var priority: Int = 3

        func validate() throws {
            if !(1...4).contains(priority) { throw ValidationError("--priority must be 1…4") }
            if let since, Self.parseSince(since) == nil {
                throw ValidationError("--since \(since): expected an ISO 8601 time such as 2026-11-23T02:00:00Z or a date 2026-11-23")
            }
        }

        static func parseSince(_ text: String) -> Date? {
            if let time = ReportCommand.parseTime(text) { return time }
            let day = ISO8601DateFormatter()
            day.formatOptions = [.withFullDate]
            return day.date(from: text)
        }

        func run() throws {
            let (connection, logger) = try global.connect("fundus.queue")
            let registry = ModelRegistry(connection: connection)
            let versions = try registry.list()
            guard let version = versions.first(where: { String($0.id) == model }) ?? versions.first(where: { $0.name == model }) else {
                throw DatabaseError(.notFound, "no model version with id or name '\(model)'", hint: "see `fundus-screen model list`")
            }
            let added = try JobQueue(connection: connection, logger: logger)
                .enqueueRescreen(modelVersionID: version.id, since: since.flatMap(Self.parseSince), priority: priority)
            print("queued \(added) images for model \(version.name) (id \(version.id))"
                  + (since.map { " imported since \($0)" } ?? ""))
            if version.status != .active {
                print("\(version.name) is not the active model: screen them with `fundus-screen screen --model \(version.name)`")
            }
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

import Foundation

/// The life of a job: `available → running → completed`; `running → retryable → available`;
/// `running → discarded`; `cancelled` by an operator.
public enum JobState: String, Sendable, CaseIterable, Codable {
    case available, running, retryable, completed, discarded, cancelled

    public init(parsing text: String) throws {
        guard let state = JobState(rawValue: text.lowercased()) else {
            throw DatabaseError(.invalidInput, "unknown job state \(text.debugDescription)",
                                hint: "one of " + JobState.allCases.map(\.rawValue).joined(separator: ", "))
        }
        self = state
    }

    public var isFinal: Bool { self == .completed || self == .discarded || self == .cancelled }
}

/// A job to add to the queue.
public struct NewJob: Sendable, Equatable {
    public var kind: String
    public var queue: String
    /// 1 runs first (on-demand requests) … 4 last; the nightly backlog is 3.
    public var priority: Int
    public var maxAttempts: Int
    /// Arguments as a JSON object.
    public var argsJSON: String
    public var imageID: Int64?
    public var modelVersionID: Int64?
    /// Jobs of one kind with the same key are enqueued once.
    public var uniqueKey: String?
    /// Not before this time; nil means now.
    public var scheduledAt: Date?

    public init(kind: String, queue: String = "default", priority: Int = 3, maxAttempts: Int = 5, argsJSON: String = "{}",
                imageID: Int64? = nil, modelVersionID: Int64? = nil, uniqueKey: String? = nil, scheduledAt: Date? = nil) {
        self.kind = kind
        self.queue = queue
        self.priority = priority
        self.maxAttempts = maxAttempts
        self.argsJSON = argsJSON
        self.imageID = imageID
        self.modelVersionID = modelVersionID
        self.uniqueKey = uniqueKey
        self.scheduledAt = scheduledAt
    }
}

/// A worker's hold on one attempt of a job. Completion, failure and heartbeats quote it, so a job rescued from
/// a presumed-dead worker cannot be finished by that worker's late call.
public struct JobLease: Sendable, Hashable {
    public let jobID: Int64
    public let attempt: Int
    public init(jobID: Int64, attempt: Int) {
        self.jobID = jobID
        self.attempt = attempt
    }
}

/// A job this worker has claimed.
public struct Job: Sendable, Equatable {
    public let id: Int64
    public let kind: String
    public let queue: String
    public let priority: Int
    public let attempt: Int
    public let maxAttempts: Int
    public let argsJSON: String
    public let imageID: Int64?
    public let modelVersionID: Int64?
    public let worker: String
    public let scheduledAt: Date
    public let attemptedAt: Date

    public var lease: JobLease { JobLease(jobID: id, attempt: attempt) }
}

/// One line of `queue list`.
public struct JobSummary: Sendable, Equatable {
    public let id: Int64
    public let kind: String
    public let queue: String
    public let state: JobState
    public let priority: Int
    public let attempt: Int
    public let maxAttempts: Int
    public let imageID: Int64?
    public let modelVersionID: Int64?
    public let attemptedBy: String?
    public let scheduledAt: Date
    public let finalizedAt: Date?
    public let errorCount: Int
    public let lastError: String?
}

/// Jobs in one queue and state, with mean waiting time and run time in seconds where known.
public struct QueueCount: Sendable, Equatable {
    public let queue: String
    public let state: JobState
    public let jobs: Int
    public let meanWaitSeconds: Double?
    public let meanRunSeconds: Double?
}

/// Whether a failure is worth retrying.
public enum FailureKind: String, Sendable {
    /// The input is wrong (not an image, outside the archive): retrying cannot help.
    case permanent
    /// The world was (database dropped, disk full, out of memory): retry later.
    case transient
}

public enum CompletionOutcome: Sendable, Equatable {
    case completed
    /// The job was rescued (or discarded) after this worker's lease expired; its result was not written.
    case leaseLost
}

public enum FailureOutcome: Sendable, Equatable {
    case willRetry(at: Date)
    case discarded
    case leaseLost
}

/// Capped exponential backoff with jitter: `min(cap, base · 2^(attempt−1)) · (1 ± jitter)` seconds.
public struct Backoff: Sendable, Equatable {
    public var base: TimeInterval
    public var cap: TimeInterval
    /// Fraction of the delay added or removed at random, so failed jobs do not return in lockstep.
    public var jitter: Double

    public init(base: TimeInterval = 5, cap: TimeInterval = 600, jitter: Double = 0.2) {
        self.base = base
        self.cap = cap
        self.jitter = jitter
    }

    public func delay(afterAttempt attempt: Int) -> TimeInterval {
        let exponent = Double(max(0, min(attempt - 1, 60)))
        let raw = min(cap, base * pow(2, exponent))
        let spread = raw * jitter
        return max(0, raw + (spread > 0 ? Double.random(in: -spread...spread) : 0))
    }
}

/// Ages as operators write them: `90s`, `30m`, `12h`, `7d`, `2w` (a bare number is seconds).
public enum Age {
    public static func seconds(_ text: String) throws -> TimeInterval {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800]
        var number = Substring(t)
        var scale = 1.0
        if let last = t.last, let unit = units[last] {
            number = t.dropLast()
            scale = unit
        }
        guard let value = Double(number), value >= 0, value.isFinite else {
            throw DatabaseError(.invalidInput, "age \(text.debugDescription) is not like 90s, 30m, 12h, 7d or 2w")
        }
        return value * scale
    }
}

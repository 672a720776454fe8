import Foundation

/// What making a model version active did to the queue.
public struct ModelActivation: Sendable {
    /// The version as it now stands (active).
    public let version: ModelVersion
    /// The version it replaced, if one was active.
    public let replaced: ModelVersion?
    /// Screening jobs queued for it (see `QueueSQL.jobInsertScreeningOnActivation` for which images).
    public let queued: Int
    /// Jobs still waiting for the replaced version, cancelled (their images are among those queued).
    public let superseded: Int
}

extension JobQueue {
    /// Queues screening of the archive with a model version: every image (imported at or after `since`, when
    /// given) without a result for it. Idempotent: an image already queued for that version is not queued again.
    /// Returns how many jobs were added.
    @discardableResult
    public func enqueueRescreen(modelVersionID: Int64, since: Date? = nil, queue: String = JobQueue.screeningQueue,
                                priority: Int = 3, maxAttempts: Int = JobQueue.screeningMaxAttempts) throws -> Int {
        guard (1...4).contains(priority) else { throw DatabaseError(.invalidInput, "job priority \(priority) is outside 1…4") }
        let exists = try connection.query(ModelSQL.modelVersionExists, [modelVersionID])
        guard !exists.rows.isEmpty else {
            throw DatabaseError(.notFound, "no model version with id \(modelVersionID)", hint: "see `fundus-screen model list`")
        }
        let result = try connection.query(QueueSQL.jobInsertRescreen, [modelVersionID, queue, priority, maxAttempts, since])
        logger.info("queued re-screening", metadata: ["model version": "\(modelVersionID)", "jobs": "\(result.rows.count)"])
        return result.rows.count
    }

    /// Moves the waiting screening jobs of these images with this model version to `queue`; returns how many.
    @discardableResult
    public func moveWaitingScreening(imageIDs: [Int64], modelVersionID: Int64, to queue: String) throws -> Int {
        guard !imageIDs.isEmpty else { return 0 }
        return try connection.query(QueueSQL.jobMoveWaitingScreening, [imageIDs, modelVersionID, queue]).rows.count
    }
}

import Foundation

public enum ModelStatus: String, Sendable, CaseIterable {
    case candidate, active, retired
}

/// A trained set of weights the screening can run with.
public struct ModelVersion: Sendable, Equatable {
    public let id: Int64
    public let name: String
    public let architecture: String
    public let weightsPath: String
    public let checksum: String
    /// Evaluation metrics as a JSON object.
    public let metricsJSON: String
    public let status: ModelStatus
    public let trainingRunID: Int64?
    public let createdAt: Date
    public let promotedAt: Date?
    public let retiredAt: Date?
}

/// The model registry: candidates are registered, one is promoted to active (retiring the previous one).
public struct ModelRegistry {
    let connection: Connection

    public init(connection: Connection) { self.connection = connection }

    public func register(name: String, architecture: String, weightsPath: String, checksum: String,
                         metricsJSON: String = "{}", trainingRunID: Int64? = nil) throws -> ModelVersion {
        let result = try connection.query(ModelSQL.modelVersionInsert,
                                          [name, architecture, weightsPath, checksum, metricsJSON, trainingRunID])
        return try Self.decode(result.rows[0])
    }

    /// Makes a model version the active one, retiring the one active before, in one transaction (see `activate`).
    @discardableResult
    public func promote(id: Int64) throws -> ModelVersion {
        try activate(id: id).version
    }

    /// Makes a model version the active one and queues the screening that follows from it, in one transaction:
    /// on the first activation every image of the archive; on a promotion the images waiting for the version it
    /// replaces (whose jobs are cancelled) and any never queued; on a rollback also what was imported while it was
    /// retired. New images from then on are queued by the import. Re-screening the rest of the archive is the
    /// operator's call (`JobQueue.enqueueRescreen`). Activating the active version changes nothing.
    @discardableResult
    public func activate(id: Int64, queue: String = JobQueue.screeningQueue, priority: Int = 3,
                         maxAttempts: Int = JobQueue.screeningMaxAttempts) throws -> ModelActivation {
        try connection.transaction { conn in
            // Row locks on the version and the active one: concurrent activations take turns.
            let locked = try conn.query(ModelSQL.modelVersionLockForActivation, [id]).rows.map(Self.decode)
            guard let target = locked.first(where: { $0.id == id }) else {
                throw DatabaseError(.notFound, "no model version with id \(id)")
            }
            let replaced = locked.first { $0.status == .active && $0.id != id }
            let queued = try conn.query(QueueSQL.jobInsertScreeningOnActivation, [id, queue, priority, maxAttempts]).rows.count
            let superseded = try conn.query(QueueSQL.jobCancelSupersededScreening, [id, target.name]).rows.count
            try conn.query(ModelSQL.modelVersionRetireActive, [id])
            let result = try conn.query(ModelSQL.modelVersionPromote, [id])
            guard let row = result.rows.first else { throw DatabaseError(.notFound, "no model version with id \(id)") }
            return ModelActivation(version: try Self.decode(row), replaced: replaced, queued: queued, superseded: superseded)
        }
    }

    public func retire(id: Int64) throws {
        try connection.query(ModelSQL.modelVersionRetire, [id])
    }

    public func active() throws -> ModelVersion? {
        try connection.query(ModelSQL.modelVersionActive).rows.first.map(Self.decode)
    }

    public func find(name: String) throws -> ModelVersion? {
        try connection.query(ModelSQL.modelVersionByName, [name]).rows.first.map(Self.decode)
    }

    public func list() throws -> [ModelVersion] {
        try connection.query(ModelSQL.modelVersionList).rows.map(Self.decode)
    }

    static func decode(_ row: Row) throws -> ModelVersion {
        guard let status = ModelStatus(rawValue: try row.decode("status")) else {
            throw DatabaseError(.decoding, "unknown model status \(row["status"] ?? "NULL")")
        }
        return ModelVersion(id: try row.decode("id"), name: try row.decode("name"), architecture: try row.decode("architecture"),
                            weightsPath: try row.decode("weights_path"), checksum: try row.decode("checksum_sha256"),
                            metricsJSON: try row.decode("metrics"), status: status,
                            trainingRunID: try row.decodeIfPresent("training_run_id"), createdAt: try row.decode("created_at"),
                            promotedAt: try row.decodeIfPresent("promoted_at"), retiredAt: try row.decodeIfPresent("retired_at"))
    }
}

/// Training runs: started, then finished as succeeded, failed (with the error) or cancelled.
public struct TrainingRuns {
    public enum Outcome: String, Sendable { case succeeded, failed, cancelled }
    let connection: Connection

    public init(connection: Connection) { self.connection = connection }

    public func start(architecture: String, configJSON: String = "{}", host: String? = nil) throws -> Int64 {
        try connection.query(ModelSQL.trainingRunStart, [architecture, configJSON, host ?? JobQueue.hostName()])
            .rows[0].decode("id")
    }

    public func finish(id: Int64, outcome: Outcome, metricsJSON: String = "{}", error: String? = nil) throws {
        let result = try connection.query(ModelSQL.trainingRunFinish, [id, outcome.rawValue, metricsJSON, error])
        if result.affectedRows == 0 { throw DatabaseError(.notFound, "no running training run with id \(id)") }
    }
}

/// Screening runs: one worker's pass over the queue with one model version.
public struct ScreeningRuns {
    let connection: Connection

    public init(connection: Connection) { self.connection = connection }

    public func start(modelVersionID: Int64, worker: String, settingsJSON: String = "{}") throws -> Int64 {
        try connection.query(ModelSQL.screeningRunStart, [modelVersionID, worker, settingsJSON]).rows[0].decode("id")
    }

    public func finish(id: Int64, imagesScreened: Int, error: String? = nil) throws {
        let result = try connection.query(ModelSQL.screeningRunFinish, [id, imagesScreened, error])
        if result.affectedRows == 0 { throw DatabaseError(.notFound, "no running screening run with id \(id)") }
    }
}

import Foundation
import Store

/// Promotion and rollback on the model registry, with the promotion rule of `Promotion.decide`.
/// The next screening run picks up whatever is active.
public struct ModelRollout {
    public let registry: ModelRegistry
    public var metric: String

    public init(registry: ModelRegistry, metric: String = Promotion.defaultMetric) {
        self.registry = registry
        self.metric = metric
    }

    /// A version by numeric id or name.
    public func find(_ reference: String) throws -> ModelVersion {
        let versions = try registry.list()
        if let id = Int64(reference), let v = versions.first(where: { $0.id == id }) { return v }
        if let v = versions.first(where: { $0.name == reference }) { return v }
        throw TrainingError(.registry, "no model version with id or name '\(reference)' (see `fundus-screen model list`)")
    }

    /// The weights a model reference names, for `train --from` and `crossval --from`: "active", a registered
    /// version's id or name, else a weight file or bundle folder on disk.
    public func weights(of reference: String) throws -> URL {
        if reference == "active" {
            guard let active = try registry.active() else { throw TrainingError(.registry, "'active': no model version is active") }
            return URL(fileURLWithPath: active.weightsPath)
        }
        if let version = try? find(reference) { return URL(fileURLWithPath: version.weightsPath) }
        guard FileManager.default.fileExists(atPath: reference) else {
            throw TrainingError(.registry, "'\(reference)' is neither a registered model version (id or name) nor a file or folder")
        }
        return URL(fileURLWithPath: reference)
    }

    /// Makes the candidate active when it is better than the active one (or when forced). Returns the decision,
    /// the version as it now stands, and how many images were queued for it (see `ModelRegistry.activate`).
    public func promote(_ reference: String, force: Bool) throws -> (decision: PromotionDecision, version: ModelVersion, queued: Int) {
        let candidate = try find(reference)
        let active = try registry.active()
        let decision = Promotion.decide(candidate: (candidate.name, ValidationMetrics.parse(candidate.metricsJSON)),
                                        active: active.map { ($0.name, ValidationMetrics.parse($0.metricsJSON)) },
                                        metric: metric, force: force)
        guard decision.promote else { return (decision, candidate, 0) }
        let activation = try registry.activate(id: candidate.id)
        return (decision, activation.version, activation.queued)
    }

    /// Re-activates the model that was active before the current one (the most recently retired version that was
    /// once promoted). No metric check: rolling back is the operator's call. `queued`: images queued for it (those
    /// imported while it was retired, and those waiting for the version it replaces).
    public func rollback() throws -> (from: ModelVersion?, to: ModelVersion, queued: Int) {
        let versions = try registry.list()
        let current = versions.first { $0.status == .active }
        let earlier = versions
            .filter { $0.status == .retired && $0.promotedAt != nil && $0.id != current?.id }
            .max { ($0.retiredAt ?? .distantPast, $0.id) < ($1.retiredAt ?? .distantPast, $1.id) }
        guard let earlier else {
            throw TrainingError(.registry, "no earlier active model to roll back to\(current.map { " (\($0.name) is the first one promoted)" } ?? "")")
        }
        let activation = try registry.activate(id: earlier.id)
        return (current, activation.version, activation.queued)
    }
}

import Foundation
import Store
import Testing
import TestSupport
@testable import Training

private let zeros = String(repeating: "0", count: 64)

private func register(_ registry: ModelRegistry, _ name: String, mAP: Double?) throws -> ModelVersion {
    let set = ValidationMetrics.ValidationSet(set: "/val", imageNames: ["a", "b"])
    let metrics = ValidationMetrics(validation: set, figures: mAP.map { ["mAP": $0] } ?? [:])
    return try registry.register(name: name, architecture: "HRNetV2-W8 M2MRF-C", weightsPath: "/models/\(name)", checksum: zeros,
                                 metricsJSON: metrics.json)
}

@Test("Registry: promote a better model, refuse a worse one unless forced, roll back to the previous active")
func rollout() async throws {
    try await withTestDatabase { db in
        let registry = ModelRegistry(connection: try db.connect())
        let rollout = ModelRollout(registry: registry)
        _ = try register(registry, "v1", mAP: 0.50)
        _ = try register(registry, "v2", mAP: 0.55)
        _ = try register(registry, "v3", mAP: 0.40)

        #expect(try rollout.promote("v1", force: false).decision.promote)           // nothing active yet
        let better = try rollout.promote("v2", force: false)
        #expect(better.decision.promote && better.version.status == .active)
        let worse = try rollout.promote("v3", force: false)
        #expect(!worse.decision.promote)
        #expect(worse.decision.reason.contains("not better"))
        #expect(try registry.active()?.name == "v2")

        let back = try rollout.rollback()
        #expect(back.from?.name == "v2" && back.to.name == "v1")
        #expect(try registry.active()?.name == "v1")

        let forced = try rollout.promote("3", force: true)                           // by id, forced
        #expect(forced.decision.promote && forced.decision.reason.hasPrefix("forced"))
        #expect(try registry.active()?.name == "v3")
        #expect(throws: TrainingError.self) { try rollout.promote("v9", force: false) }
    }
}

@Test("Rollback with no earlier active model is refused")
func rollbackNothing() async throws {
    try await withTestDatabase { db in
        let registry = ModelRegistry(connection: try db.connect())
        let rollout = ModelRollout(registry: registry)
        #expect(throws: TrainingError.self) { try rollout.rollback() }
        _ = try register(registry, "only", mAP: 0.5)
        _ = try rollout.promote("only", force: false)
        #expect(throws: TrainingError.self) { try rollout.rollback() }
    }
}

@Test("Model references: 'active', a version's id or name, a path; anything else is a clear error")
func modelReferences() async throws {
    try await withTestDatabase { db in
        let registry = ModelRegistry(connection: try db.connect())
        let rollout = ModelRollout(registry: registry)
        #expect(throws: TrainingError.self) { try rollout.weights(of: "active") }   // nothing active yet
        let v1 = try register(registry, "v1", mAP: 0.5)
        #expect(try rollout.weights(of: "v1").path == "/models/v1")
        #expect(try rollout.weights(of: "\(v1.id)").path == "/models/v1")
        _ = try rollout.promote("v1", force: true)
        #expect(try rollout.weights(of: "active").path == "/models/v1")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("ref-\(UUID().uuidString).safetensors")
        try Data([0]).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        #expect(try rollout.weights(of: file.path) == file)
        do {
            _ = try rollout.weights(of: "/nowhere/v9")
            Issue.record("an unknown reference resolved")
        } catch let error as TrainingError {
            #expect(error.message.contains("/nowhere/v9") && error.message.contains("neither"))
        }
    }
}

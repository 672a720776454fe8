import Foundation
import Testing
@testable import Store
import TestSupport

/// What becomes of the archive's screening when a model version becomes active (issue 18), on a real PostgreSQL.
@Suite("Model activation queues the archive")
struct ActivationTests {
    let logger = TestPostgres.defaultLogger

    func addImages(_ names: [String], connection: Connection) throws -> [Int64] {
        let images = names.map {
            NewImage(path: "/archive/\($0).jpg", patientID: $0, laterality: nil,
                     checksum: SHA256.hex(Array($0.utf8)), sizeBytes: 10)
        }
        let added = try Archive(connection: connection).add(images)
        return images.map { added[$0.path]! }
    }

    /// A private database's connection, job queue and model registry, as most activation tests start.
    func withRegistry(_ body: (Connection, JobQueue, ModelRegistry) async throws -> Void) async throws {
        try await withTestDatabase { db in
            let c = try db.connect()
            try await body(c, JobQueue(connection: c, logger: logger), ModelRegistry(connection: c))
        }
    }

    func register(_ name: String, _ registry: ModelRegistry) throws -> ModelVersion {
        try registry.register(name: name, architecture: "a", weightsPath: "/w/\(name)", checksum: SHA256.hex(Array(name.utf8)))
    }

    /// (image, model version) of the screening jobs in these states.
    func jobs(_ c: Connection, states: [String] = ["available", "retryable"]) throws -> Set<[Int64]> {
        Set(try c.query("""
            SELECT image_id, model_version_id FROM jobs WHERE kind = 'screen' AND state::text = ANY($1::text[])
            """, [states]).rows.map { [try $0.decode("image_id"), try $0.decode("model_version_id")] })
    }

    /// Stands in for a worker: one stored result per waiting job of the version, the jobs completed.
    func screenAll(_ c: Connection, version: Int64) throws {
        try c.query("""
            WITH done AS (
                UPDATE jobs SET state = 'completed', finalized_at = now(), attempt = 1
                WHERE model_version_id = $1 AND state IN ('available', 'retryable') RETURNING id, image_id
            )
            INSERT INTO screening_results (image_id, model_version_id, job_id, gradable, ungradable_reasons)
            SELECT image_id, $1, id, false, ARRAY['test'] FROM done
            """, [version])
    }

    @Test("Fresh database: import queues nothing, the first activation queues every image once, a second activation of it nothing")
    func firstActivation() async throws {
        try await withTestDatabase { db in
            let c = try db.connect()
            let ids = try addImages(["a", "b", "c"], connection: c)
            let registry = ModelRegistry(connection: c)
            let v1 = try register("v1", registry)
            let activation = try registry.activate(id: v1.id)
            #expect(activation.queued == 3 && activation.superseded == 0 && activation.replaced == nil)
            #expect(activation.version.status == .active)
            #expect(try jobs(c) == Set(ids.map { [$0, v1.id] }))
            #expect(try registry.activate(id: v1.id).queued == 0)
            #expect(try c.query("SELECT count(*) AS n FROM jobs").rows[0].decode("n", as: Int.self) == 3)
            // Keys are the queue's: <image>/<model>.
            let keys = Set(try c.query("SELECT unique_key FROM jobs").rows.map { try $0.decode("unique_key", as: String.self) })
            #expect(keys == Set(ids.map { "\($0)/\(v1.id)" }))
            // An import now (the active model) and the activation's jobs are one job per image.
            #expect(try JobQueue(connection: c, logger: logger).enqueueScreening(imageIDs: ids, modelVersionID: v1.id) == 0)
        }
    }

    @Test("Promotion queues new images only (and moves what waits for the old model); rescreen queues the archive once")
    func promotionAndRescreen() async throws {
        try await withRegistry { c, queue, registry in
            let old = try addImages(["a", "b", "c"], connection: c)
            let v1 = try register("v1", registry)
            try registry.activate(id: v1.id)
            try screenAll(c, version: v1.id)
            let waiting = try addImages(["d"], connection: c)                // imported, queued for v1, not yet screened
            #expect(try queue.enqueueScreening(imageIDs: waiting, modelVersionID: v1.id) == 1)

            let v2 = try register("v2", registry)
            let promotion = try registry.activate(id: v2.id)
            #expect(promotion.replaced?.id == v1.id)
            #expect(promotion.queued == 1 && promotion.superseded == 1)   // d moves to v2; a, b, c stay v1's results
            #expect(try jobs(c) == [[waiting[0], v2.id]])
            #expect(try jobs(c, states: ["cancelled"]) == [[waiting[0], v1.id]])

            let new = try addImages(["e", "f"], connection: c)
            #expect(try queue.enqueueScreening(imageIDs: new, modelVersionID: v2.id) == 2)  // what an import does
            #expect(try jobs(c) == Set((waiting + new).map { [$0, v2.id] }))

            // The operator's re-screen: the rest of the archive, once.
            #expect(try queue.enqueueRescreen(modelVersionID: v2.id) == 3)
            #expect(try queue.enqueueRescreen(modelVersionID: v2.id) == 0)
            #expect(try jobs(c) == Set((old + waiting + new).map { [$0, v2.id] }))
            #expect(try c.query("SELECT count(*) AS n FROM jobs WHERE model_version_id = $1", [v2.id]).rows[0]
                .decode("n", as: Int.self) == 6)
            #expect(throws: DatabaseError.self) { try queue.enqueueRescreen(modelVersionID: 999) }
        }
    }

    @Test("Rescreen --since: only images imported since then; images with a result are never queued again")
    func rescreenSince() async throws {
        try await withRegistry { c, queue, registry in
            let v1 = try register("v1", registry)
            let early = try addImages(["a", "b"], connection: c)
            try c.query("UPDATE images SET imported_at = now() - interval '10 days'")
            let late = try addImages(["c"], connection: c)
            #expect(try queue.enqueueRescreen(modelVersionID: v1.id, since: Date().addingTimeInterval(-86_400)) == 1)
            #expect(try jobs(c) == [[late[0], v1.id]])
            try screenAll(c, version: v1.id)
            #expect(try queue.enqueueRescreen(modelVersionID: v1.id) == 2)
            #expect(try jobs(c) == Set(early.map { [$0, v1.id] }))
        }
    }

    @Test("Rollback queues what the model missed while it was retired; images imported with no active model are queued by the next activation")
    func rollbackAndGap() async throws {
        try await withRegistry { c, queue, registry in
            let v1 = try register("v1", registry)
            _ = try addImages(["a"], connection: c)
            try registry.activate(id: v1.id)
            try screenAll(c, version: v1.id)
            let v2 = try register("v2", registry)
            #expect(try registry.activate(id: v2.id).queued == 0)
            let during = try addImages(["b"], connection: c)
            try queue.enqueueScreening(imageIDs: during, modelVersionID: v2.id)
            try screenAll(c, version: v2.id)

            let back = try registry.activate(id: v1.id)                       // the rollback
            #expect(back.queued == 1)
            #expect(try jobs(c) == [[during[0], v1.id]])
            try screenAll(c, version: v1.id)

            // No model active: an import queues nothing; the next activation picks those images up.
            try registry.retire(id: v1.id)
            let orphan = try addImages(["c"], connection: c)
            let v3 = try register("v3", registry)
            #expect(try registry.activate(id: v3.id).queued == 1)
            #expect(try jobs(c) == [[orphan[0], v3.id]])
        }
    }
}

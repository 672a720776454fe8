import Foundation
import Testing
@testable import Store
import TestSupport

/// One key for a screening job (issue 20): every path that queues screening keys its job `<image>/<model version>`
/// through `screening_job_key`, and sql/0007 re-keys what the old local form queued.
@Suite("One screening job key")
struct ScreeningJobKeyTests {
    let logger = TestPostgres.defaultLogger

    /// The archive images the activation tests use: one per name, patient = name.
    func addImages(_ names: [String], connection: Connection) throws -> [Int64] {
        try ActivationTests().addImages(names, connection: connection)
    }

    @Test("The local form's enqueue and the queue's enqueue of one (image, model version) make one job")
    func localAndQueueFormsMakeOneJob() async throws {
        try await withTestDatabase { db in
            let c = try db.connect()
            let ids = try addImages(["a", "b"], connection: c)
            let model = try ModelRegistry(connection: c)
                .register(name: "v1", architecture: "a", weightsPath: "/w/v1", checksum: SHA256.hex(Array("v1".utf8)))
            let queue = JobQueue(connection: c, logger: logger)
            #expect(try queue.enqueueScreening(imageIDs: ids, modelVersionID: model.id) == 2)
            // The local form queues the same images on its own queue: nothing is added, the waiting jobs move over.
            #expect(try queue.enqueueScreening(imageIDs: ids, modelVersionID: model.id, queue: "local") == 0)
            #expect(try queue.moveWaitingScreening(imageIDs: ids, modelVersionID: model.id, to: "local") == 2)
            #expect(try queue.enqueueRescreen(modelVersionID: model.id) == 0)
            let rows = try c.query("SELECT queue, unique_key FROM jobs ORDER BY id").rows
            #expect(rows.count == 2)
            #expect(try rows.map { try $0.decode("unique_key", as: String.self) } == ids.map { "\($0)/\(model.id)" })
            #expect(try rows.allSatisfy { try $0.decode("queue", as: String.self) == "local" })
        }
    }

    @Test("sql/0007 re-keys old local-form jobs and keeps one job per (image, model version): the furthest along")
    func migrationRekeysAndResolvesDuplicates() async throws {
        try await withTestDatabase(migrated: false) { db in
            let c = try db.connect()
            let before = Migration.all.filter { $0.version < 7 }
            try Migrator(connection: c, migrations: before, logger: logger).migrate()
            let ids = try addImages(["lone", "twin", "done", "late"], connection: c)
            let model: Int64 = try c.query("""
                INSERT INTO model_versions (name, architecture, weights_path, checksum_sha256)
                VALUES ('v1', 'a', '/w/v1', repeat('0', 64)) RETURNING id
                """).rows[0].decode("id")
            func add(_ image: Int64, key: String, state: String = "available") throws -> Int64 {
                let finished = ["completed", "discarded", "cancelled"].contains(state)
                let running = state == "running"
                return try c.query("""
                    INSERT INTO jobs (kind, queue, state, image_id, model_version_id, unique_key, attempt, finalized_at,
                                      attempted_by, attempted_at, heartbeat_at)
                    VALUES ('screen', 'local', $1::job_state, $2, $3, $4, $5::integer, CASE WHEN $6::boolean THEN now() END,
                            CASE WHEN $7::boolean THEN 'w' END, CASE WHEN $7::boolean THEN now() END, CASE WHEN $7::boolean THEN now() END)
                    RETURNING id
                    """, [state, image, model, key, finished || running ? 1 : 0, finished, running]).rows[0].decode("id")
            }
            let old = { (image: Int64) in "screen:\(image):\(model)" }
            let new = { (image: Int64) in "\(image)/\(model)" }
            // "lone": only an old key (0005 re-keyed those; one slipped in after it, as on a worker still running the
            // old local form). "twin": both keys, both waiting: the older is kept. "done": the old one completed,
            // the new one waits: the completed one is kept and takes the key. "late": old waiting, new running.
            let lone = try add(ids[0], key: old(ids[0]))
            let twinOld = try add(ids[1], key: old(ids[1]))
            let twinNew = try add(ids[1], key: new(ids[1]))
            let doneOld = try add(ids[2], key: old(ids[2]), state: "completed")
            let doneNew = try add(ids[2], key: new(ids[2]))
            let lateOld = try add(ids[3], key: old(ids[3]))
            let lateNew = try add(ids[3], key: new(ids[3]), state: "running")

            #expect(try Migrator(connection: c, logger: logger).migrate().map(\.version).contains(7))
            func job(_ id: Int64) throws -> (key: String?, state: String, duplicateOf: Int64?) {
                let row = try c.query("""
                    SELECT unique_key, state::text AS state, (metadata ->> 'duplicate_of')::bigint AS duplicate_of
                    FROM jobs WHERE id = $1
                    """, [id]).rows[0]
                return (try row.decodeIfPresent("unique_key"), try row.decode("state"), try row.decodeIfPresent("duplicate_of"))
            }
            #expect(try job(lone).key == new(ids[0]))
            #expect(try job(twinOld).key == new(ids[1]) && job(twinOld).state == "available")
            #expect(try job(twinNew).key == nil && job(twinNew).state == "cancelled" && job(twinNew).duplicateOf == twinOld)
            #expect(try job(doneOld).key == new(ids[2]) && job(doneOld).state == "completed")
            #expect(try job(doneNew).key == nil && job(doneNew).state == "cancelled" && job(doneNew).duplicateOf == doneOld)
            #expect(try job(lateNew).key == new(ids[3]) && job(lateNew).state == "running")
            #expect(try job(lateOld).key == nil && job(lateOld).state == "cancelled" && job(lateOld).duplicateOf == lateNew)
            let oldKeys = try c.query("SELECT count(*) AS n FROM jobs WHERE unique_key LIKE 'screen:%'").rows[0]
            #expect(try oldKeys.decode("n", as: Int.self) == 0)

            // Idempotent: the same file run again changes nothing.
            let snapshot = "SELECT id, unique_key, state::text AS state, metadata::text AS m FROM jobs ORDER BY id"
            let first = try c.query(snapshot).rows.map { [$0["unique_key"], $0["state"], $0["m"]] }
            let file = try #require(Migration.all.first { $0.version == 7 })
            try c.transaction { try $0.runScript(file.sql, name: file.label) }
            #expect(try c.query(snapshot).rows.map { [$0["unique_key"], $0["state"], $0["m"]] } == first)
            // And the queue's enqueue of these (image, model version) pairs adds nothing.
            #expect(try JobQueue(connection: c, logger: logger).enqueueScreening(imageIDs: ids, modelVersionID: model) == 0)
        }
    }
}

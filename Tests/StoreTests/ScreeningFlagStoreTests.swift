import Foundation
import Lesions
import Testing
@testable import Store
import TestSupport

/// Store keeps Lesions' verdict (`ScreeningFlag`) and rule (`ScreeningRule`) of a result: the verdict's raw value in
/// `flag` (sql/0008) with `flagged` beside it, the rule's name and version as text; converted at Store's edge.
@Suite("Screening flags in the store")
struct ScreeningFlagStoreTests {
    let logger = TestPostgres.defaultLogger

    func result(image: Int64, model: Int64, flag: ScreeningFlag?, rule: ScreeningRule? = .lesionPresenceV1,
                microaneurysms: Int = 0) -> ScreeningResult {
        ScreeningResult(
            imageID: image, modelVersionID: model, gradability: .gradable, flag: flag, rule: rule,
            findings: LesionClass.allCases.map { c in
                let n = c == .microaneurysm ? microaneurysms : 0
                return Finding(lesionClass: c, lesionCount: n, areaPixels: Int64(4 * n), fieldOfViewShare: 0,
                               largestLesionPixels: n > 0 ? 4 : 0)
            })
    }

    @Test("Every verdict a rule gives is stored and read back with its rule; flagged says whether it asks for review")
    func verdictsRoundTrip() async throws {
        try await withTestDatabase { db in
            let c = try db.connect()
            let verdicts: [ScreeningFlag] = [.noLesionsFound, .microaneurysmsOnly, .suspectedMoreThanMildDR]
            let ids = try ActivationTests().addImages(verdicts.map(\.rawValue), connection: c)
            let model = try ActivationTests().register("v1", ModelRegistry(connection: c))
            let results = ScreeningResults(connection: c)
            let rule = ScreeningRule(name: "lesion-presence", version: 12)
            for (id, verdict) in zip(ids, verdicts) {
                let written = result(image: id, model: model.id, flag: verdict, rule: rule)
                try results.write(written)
                #expect(try results.fetch(imageID: id, modelVersionID: model.id) == written)
            }
            let screened = try results.screenedImages(ids, modelVersionID: model.id)
            #expect(screened.map(\.flag) == verdicts && screened.allSatisfy { $0.rule == rule })
            let stored = try c.query("SELECT flag, flagged, flag_rule_version FROM screening_results ORDER BY image_id").rows
            #expect(stored.map { $0["flag"] } == verdicts.map(\.rawValue))
            #expect(stored.map { $0["flagged"] } == ["f", "f", "t"])
            #expect(stored.allSatisfy { $0["flag_rule_version"] == "12" })
        }
    }

    @Test("A gradable result needs a verdict other than ungradable and its rule; the schema keeps flagged in step")
    func inconsistentVerdictsRefused() async throws {
        try await withTestDatabase { db in
            let c = try db.connect()
            let id = try #require(try ActivationTests().addImages(["a"], connection: c).first)
            let model = try ActivationTests().register("v1", ModelRegistry(connection: c))
            let results = ScreeningResults(connection: c)
            #expect(throws: DatabaseError.self) { try results.write(result(image: id, model: model.id, flag: .ungradable)) }
            #expect(throws: DatabaseError.self) { try results.write(result(image: id, model: model.id, flag: .noLesionsFound, rule: nil)) }
            #expect(throws: DatabaseError.self) { try results.write(result(image: id, model: model.id, flag: nil)) }
            #expect(try results.fetch(imageID: id, modelVersionID: model.id) == nil)
            try results.write(result(image: id, model: model.id, flag: .noLesionsFound))
            let error = try #require(throws: DatabaseError.self) {
                try c.query("UPDATE screening_results SET flagged = true")
            }
            #expect(error.sqlState == "23514")
        }
    }

    @Test("sql/0008 gives results stored before it their verdict: flagged, microaneurysms only, or no lesions found")
    func migrationDerivesOldVerdicts() async throws {
        try await withTestDatabase(migrated: false) { db in
            let c = try db.connect()
            try Migrator(connection: c, migrations: Migration.all.filter { $0.version < 8 }, logger: logger).migrate()
            let ids = try ActivationTests().addImages(["raised", "ma", "clear", "dark"], connection: c)
            let model: Int64 = try c.query("""
                INSERT INTO model_versions (name, architecture, weights_path, checksum_sha256)
                VALUES ('v1', 'a', '/w/v1', repeat('0', 64)) RETURNING id
                """).rows[0].decode("id")
            // As 0.7.0 wrote them: whether the flag was raised, the rule, and the findings (here only MA and HE).
            func add(_ image: Int64, flagged: Bool?, microaneurysms: Int, haemorrhages: Int) throws {
                let result: Int64 = try c.query("""
                    INSERT INTO screening_results (image_id, model_version_id, gradable, ungradable_reasons, flagged,
                                                   flag_rule, flag_rule_version)
                    VALUES ($1, $2, $3::boolean IS NOT NULL, CASE WHEN $3::boolean IS NULL THEN '{too dark}' ELSE '{}' END::text[],
                            $3, CASE WHEN $3::boolean IS NOT NULL THEN 'lesion-presence-v1' END,
                            CASE WHEN $3::boolean IS NOT NULL THEN '1' END)
                    RETURNING id
                    """, [image, model, flagged]).rows[0].decode("id")
                guard flagged != nil else { return }
                try c.query("""
                    INSERT INTO findings (result_id, lesion_class, lesion_count, area_px, fov_share, largest_lesion_px)
                    VALUES ($1, 'MA', $2::integer, $2::integer * 3, 0, CASE WHEN $2::integer > 0 THEN 3 ELSE 0 END),
                           ($1, 'HE', $3::integer, $3::integer * 9, 0, CASE WHEN $3::integer > 0 THEN 9 ELSE 0 END)
                    """, [result, microaneurysms, haemorrhages])
            }
            try add(ids[0], flagged: true, microaneurysms: 5, haemorrhages: 2)
            try add(ids[1], flagged: false, microaneurysms: 3, haemorrhages: 0)
            try add(ids[2], flagged: false, microaneurysms: 0, haemorrhages: 0)
            try add(ids[3], flagged: nil, microaneurysms: 0, haemorrhages: 0)

            #expect(try Migrator(connection: c, logger: logger).migrate().map(\.version) == [8])
            let results = ScreeningResults(connection: c)
            let read = try ids.map { try #require(try results.fetch(imageID: $0, modelVersionID: model)) }
            #expect(read.map(\.flag) == [.suspectedMoreThanMildDR, .microaneurysmsOnly, .noLesionsFound, nil])
            #expect(read.map(\.rule) == [.lesionPresenceV1, .lesionPresenceV1, .lesionPresenceV1, nil])
            #expect(read[3].gradability == .ungradable(reasons: ["too dark"]))
        }
    }
}

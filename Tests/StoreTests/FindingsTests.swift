import Foundation
import Lesions
import Testing
import Store
import TestSupport

@Suite("Findings, model registry and screening runs")
struct FindingsTests {
    let logger = TestPostgres.defaultLogger
    let sum = String(repeating: "0f", count: 32)

    func sampleResult(image: Int64, model: Int64, run: Int64?, haemorrhages: Int) -> ScreeningResult {
        let lesions = (0..<haemorrhages).map { i in
            LesionRecord(x: 10 * i, y: 5, width: 4, height: 3, areaPixels: 10, centroidX: Double(10 * i) + 2, centroidY: 6.5,
                         meanProbability: 0.7, maxProbability: 0.9)
        }
        return ScreeningResult(
            imageID: image, modelVersionID: model, screeningRunID: run, gradability: .gradable,
            flag: haemorrhages > 0 ? .suspectedMoreThanMildDR : .noLesionsFound, rule: ScreeningRule(name: "any-HE-EX-SE", version: 1),
            findings: [
                Finding(lesionClass: .hardExudate, lesionCount: 0, areaPixels: 0, fieldOfViewShare: 0, largestLesionPixels: 0,
                        maskPath: "/masks/1_EX.png"),
                Finding(lesionClass: .haemorrhage, lesionCount: haemorrhages, areaPixels: Int64(10 * haemorrhages),
                        fieldOfViewShare: 0.001 * Double(haemorrhages), areaMM2: 0.02 * Double(haemorrhages),
                        largestLesionPixels: haemorrhages > 0 ? 10 : 0, maskPath: "/masks/1_HE.png", lesions: lesions),
                Finding(lesionClass: .softExudate, lesionCount: 0, areaPixels: 0, fieldOfViewShare: 0, largestLesionPixels: 0),
                Finding(lesionClass: .microaneurysm, lesionCount: 0, areaPixels: 0, fieldOfViewShare: 0, largestLesionPixels: 0),
            ])
    }

    @Test("A worker claims only the jobs queued for the model version it has loaded")
    func claimByModelVersion() async throws {
        try await withTestDatabase { db in
            let c = try db.connect()
            let images = try Archive(connection: c).add([
                NewImage(path: "/archive/P1_R.jpg", patientID: "P1", laterality: .right, checksum: sum, sizeBytes: 100),
                NewImage(path: "/archive/P1_L.jpg", patientID: "P1", laterality: .left, checksum: sum, sizeBytes: 100),
            ])
            let registry = ModelRegistry(connection: c)
            let x = try registry.register(name: "x", architecture: "a", weightsPath: "/x", checksum: sum)
            let y = try registry.register(name: "y", architecture: "a", weightsPath: "/y", checksum: sum)
            let queue = JobQueue(connection: c, worker: "w", logger: logger)
            #expect(try queue.enqueueScreening(imageIDs: [images["/archive/P1_R.jpg"]!], modelVersionID: x.id) == 1)
            #expect(try queue.enqueueScreening(imageIDs: [images["/archive/P1_L.jpg"]!], modelVersionID: y.id) == 1)
            let forY = try queue.claim(limit: 10, modelVersionID: y.id)
            #expect(forY.map(\.modelVersionID) == [y.id])
            #expect(try queue.claim(limit: 10, modelVersionID: y.id).isEmpty)
            #expect(try queue.claim(limit: 10).map(\.modelVersionID) == [x.id])
        }
    }

    @Test("Completing a screening job writes its findings in the same transaction; re-screening replaces them")
    func completeWritesFindings() async throws {
        try await withTestDatabase { db in
            let c = try db.connect()
            let images = try Archive(connection: c).add([
                NewImage(path: "/archive/P1_R.jpg", patientID: "P1", laterality: .right, checksum: sum, sizeBytes: 100),
            ])
            let imageID = try #require(images["/archive/P1_R.jpg"])
            let registry = ModelRegistry(connection: c)
            let model = try registry.register(name: "m2mrf-idrid-v1", architecture: "m2mrf-hrnetv2-w48-C",
                                              weightsPath: "/models/v1.safetensors", checksum: sum)
            let run = try ScreeningRuns(connection: c).start(modelVersionID: model.id, worker: "test")

            let queue = JobQueue(connection: c, worker: "w", logger: logger)
            #expect(try queue.enqueueScreening(imageIDs: [imageID], modelVersionID: model.id) == 1)
            let job = try #require(try queue.claim(limit: 1).first)
            #expect(job.imageID == imageID && job.modelVersionID == model.id)

            let first = sampleResult(image: imageID, model: model.id, run: run, haemorrhages: 3)
            #expect(try queue.completeScreening(job.lease, result: first) == .completed)
            let stored = try ScreeningResults(connection: c).fetch(imageID: imageID, modelVersionID: model.id)
            #expect(stored == first)

            // Same image, same model version, again: replaced, not duplicated.
            let second = sampleResult(image: imageID, model: model.id, run: run, haemorrhages: 1)
            try ScreeningResults(connection: c).write(second)
            #expect(try ScreeningResults(connection: c).fetch(imageID: imageID, modelVersionID: model.id) == second)
            let counts = try c.query("""
                SELECT (SELECT count(*) FROM screening_results) AS results, (SELECT count(*) FROM findings) AS findings,
                       (SELECT count(*) FROM lesions) AS lesions
                """).rows[0]
            #expect(counts["results"] == "1" && counts["findings"] == "4" && counts["lesions"] == "1")

            // An image with a result is not enqueued again for that model version.
            #expect(try queue.enqueueScreening(imageIDs: [imageID], modelVersionID: model.id) == 0)
            try ScreeningRuns(connection: c).finish(id: run, imagesScreened: 1)
        }
    }

    @Test("A late completion writes no findings: result and completion happen together or not at all")
    func lostLeaseWritesNothing() async throws {
        try await withTestDatabase { db in
            let c = try db.connect()
            let imageID = try #require(try Archive(connection: c).add([
                NewImage(path: "/archive/P2_L.jpg", patientID: "P2", laterality: .left, checksum: sum, sizeBytes: 1),
            ]).values.first)
            let model = try ModelRegistry(connection: c).register(name: "v1", architecture: "a", weightsPath: "/w", checksum: sum)
            let queue = JobQueue(connection: c, worker: "w", logger: logger)
            try queue.enqueueScreening(imageIDs: [imageID], modelVersionID: model.id)
            let job = try #require(try queue.claim(limit: 1).first)
            let stale = JobLease(jobID: job.id, attempt: job.attempt + 1)
            #expect(try queue.completeScreening(stale, result: sampleResult(image: imageID, model: model.id, run: nil, haemorrhages: 2)) == .leaseLost)
            #expect(try ScreeningResults(connection: c).fetch(imageID: imageID, modelVersionID: model.id) == nil)

            // A write that fails rolls the completion back too.
            struct Boom: Error {}
            #expect(throws: Boom.self) { try queue.complete(job.lease) { _ in throw Boom() } }
            #expect(try queue.list(state: .running).map(\.id) == [job.id])
        }
    }

    @Test("Ungradable images are stored with their reasons and no flag; inconsistent results are refused")
    func ungradableAndValidation() async throws {
        try await withTestDatabase { db in
            let c = try db.connect()
            let imageID = try #require(try Archive(connection: c).add([
                NewImage(path: "/archive/dark.jpg", patientID: "P3", laterality: nil, checksum: sum, sizeBytes: 1),
            ]).values.first)
            let model = try ModelRegistry(connection: c).register(name: "v1", architecture: "a", weightsPath: "/w", checksum: sum)
            let ungradable = ScreeningResult(imageID: imageID, modelVersionID: model.id, gradability: .ungradable(reasons: ["too dark"]),
                                             flag: nil, rule: nil, findings: [])
            try ScreeningResults(connection: c).write(ungradable)
            #expect(try ScreeningResults(connection: c).fetch(imageID: imageID, modelVersionID: model.id) == ungradable)

            var bad = sampleResult(image: imageID, model: model.id, run: nil, haemorrhages: 1)
            bad.findings[0].lesionClass = .haemorrhage   // HE twice
            #expect(throws: DatabaseError.self) { try ScreeningResults(connection: c).write(bad) }
            bad = sampleResult(image: imageID, model: model.id, run: nil, haemorrhages: 1)
            bad.findings[1].areaPixels = 0
            let error = try #require(throws: DatabaseError.self) { try ScreeningResults(connection: c).write(bad) }
            #expect(error.description.contains("image \(imageID)"))
            #expect(try ScreeningResults(connection: c).fetch(imageID: imageID, modelVersionID: model.id) == ungradable)
        }
    }

    @Test("Promoting a model version retires the active one; training runs finish once")
    func registry() async throws {
        try await withTestDatabase { db in
            let c = try db.connect()
            let registry = ModelRegistry(connection: c)
            let training = TrainingRuns(connection: c)
            let runID = try training.start(architecture: "m2mrf-hrnetv2-w48-C", configJSON: #"{"epochs": 40}"#)
            let v1 = try registry.register(name: "v1", architecture: "a", weightsPath: "/w1", checksum: sum)
            let v2 = try registry.register(name: "v2", architecture: "a", weightsPath: "/w2", checksum: sum,
                                           metricsJSON: #"{"EX": {"aupr": 0.8}}"#, trainingRunID: runID)
            #expect(v1.status == .candidate && v1.promotedAt == nil)
            #expect(try registry.active() == nil)
            try registry.promote(id: v1.id)
            #expect(try registry.active()?.name == "v1")
            let promoted = try registry.promote(id: v2.id)
            #expect(promoted.status == .active && promoted.promotedAt != nil)
            #expect(try registry.find(name: "v1")?.status == .retired)
            #expect(try registry.list().map(\.status) == [.retired, .active])
            #expect(throws: DatabaseError.self) { try registry.promote(id: 999) }
            #expect(throws: DatabaseError.self) {
                try registry.register(name: "v1", architecture: "a", weightsPath: "/w", checksum: sum)
            }
            try training.finish(id: runID, outcome: .succeeded, metricsJSON: #"{"loss": 0.1}"#)
            #expect(throws: DatabaseError.self) { try training.finish(id: runID, outcome: .failed, error: "again") }
        }
    }
}

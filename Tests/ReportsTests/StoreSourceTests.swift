import Foundation
import Lesions
import Logging
import Store
import Testing
import TestSupport
@testable import Reports

extension TestDatabase {
    func image(_ connection: Connection, path: String, patient: String, laterality: String?) throws -> Int64 {
        try connection.query("""
            INSERT INTO images (path, patient_id, laterality, checksum_sha256, size_bytes) VALUES ($1, $2, $3, $4, 1000)
            RETURNING id
            """, [path, patient, laterality, String(repeating: "0", count: 64)]).rows[0].decode("id")
    }
}

@Suite("Findings from the database")
struct StoreSourceTests {
    let logger = Logger(label: "reports-tests")

    static func finding(_ code: String, _ count: Int, mask: String? = nil) -> Finding {
        Finding(lesionClass: LesionClass(code: code)!, lesionCount: count, areaPixels: Int64(count * 300), fieldOfViewShare: Double(count) * 0.0001,
                areaMM2: count == 0 ? nil : Double(count) * 0.02, largestLesionPixels: Int64(count == 0 ? 0 : 300), maskPath: mask)
    }

    @Test("Patients, eyes, newest results, flags and findings come from Store's tables; selections by patient, run, time")
    func readsResults() async throws {
        try await withTestDatabase { db in try readsResults(db) }
    }

    func readsResults(_ db: TestDatabase) throws {
        let connection = try db.connect()
        defer { connection.close() }
        let registry = ModelRegistry(connection: connection)
        let old = try registry.register(name: "m2mrf-old", architecture: "m2mrf-hrnetv2", weightsPath: "/m/old", checksum: String(repeating: "a", count: 64))
        let new = try registry.register(name: "m2mrf-new", architecture: "m2mrf-hrnetv2", weightsPath: "/m/new", checksum: String(repeating: "b", count: 64))
        let runs = ScreeningRuns(connection: connection)
        let run1 = try runs.start(modelVersionID: old.id, worker: "test")
        // The new model's run recorded how it read the photographs (as the pipeline's InferenceSettings writes them).
        let run2 = try runs.start(modelVersionID: new.id, worker: "test", settingsJSON: #"{"augmentation": "8 passes (dihedral TTA: none, h, v, hv, t, th, tv, thv)", "tiling": "whole image", "channel_scales": {"MA": [1.5], "HE": [1, 0.75]}, "models": 2, "threshold": 0.5}"#)
        let r1 = try db.image(connection, path: "/archive/p1/right.jpg", patient: "P1", laterality: "R")
        let l1 = try db.image(connection, path: "/archive/p1/left.jpg", patient: "P1", laterality: "L")
        let x2 = try db.image(connection, path: "/archive/p2/eye.jpg", patient: "<b>P2</b>", laterality: nil)
        let results = ScreeningResults(connection: connection)
        let all4 = { (he: Int) in [Self.finding("EX", 0), Self.finding("HE", he, mask: "/masks/x_HE.png"), Self.finding("SE", 0), Self.finding("MA", 2)] }
        // The right eye was screened twice: by the old model (no haemorrhage), then by the new one (three).
        try results.write(ScreeningResult(imageID: r1, modelVersionID: old.id, screeningRunID: run1, gradability: .gradable, flag: .microaneurysmsOnly, rule: .lesionPresenceV1, findings: all4(0)))
        Thread.sleep(forTimeInterval: 0.01)
        try results.write(ScreeningResult(imageID: r1, modelVersionID: new.id, screeningRunID: run2, gradability: .gradable, flag: .suspectedMoreThanMildDR, rule: .lesionPresenceV1, findings: all4(3)))
        try results.write(ScreeningResult(imageID: l1, modelVersionID: old.id, screeningRunID: run1, gradability: .ungradable(reasons: ["too dark"]), flag: nil, rule: nil, findings: []))
        try results.write(ScreeningResult(imageID: x2, modelVersionID: old.id, screeningRunID: run1, gradability: .gradable, flag: .microaneurysmsOnly, rule: .lesionPresenceV1, findings: all4(0)))

        let source = StoreReportSource(connection: connection)
        let all = try source.patients(.all)
        #expect(all.map(\.patientID) == ["<b>P2</b>", "P1"])
        let p1 = try #require(all.last)
        #expect(p1.eyes.map(\.laterality) == [.left, .right])
        let right = try #require(p1.eyes.first { $0.laterality == .right })
        #expect(right.modelVersion == "m2mrf-new" && right.flag.raised && right.flag.rule == "lesion-presence-v1")
        #expect(right.screeningRun == String(run2) && right.imageID == "right" && right.photograph == "/archive/p1/right.jpg")
        #expect(right.findingsInClassOrder.map(\.count) == [0, 3, 0, 2])
        #expect(right.inference == "8 passes (dihedral TTA: none, h, v, hv, t, th, tv, thv), whole image, HE at the mean of 1×, 0.75×, MA also at 1.5×, the mean of 2 models' probabilities")
        let card = PatientPage.eyeCard(right, images: EyeImages(photograph: nil, overlay: nil)).html
        #expect(card.contains("Read with 8 passes (dihedral TTA: none, h, v, hv, t, th, tv, thv), whole image, HE at the mean of 1×, 0.75×, MA also at 1.5×, the mean of 2 models&#39; probabilities</p>"), "\(card)")
        #expect(right.findings.first { $0.lesionClass == .haemorrhage }?.maskPath == "/masks/x_HE.png")
        #expect(right.findings.first { $0.lesionClass == .haemorrhage }?.areaMM2 == 0.06)
        #expect(right.flagReason == "3 haemorrhages beyond microaneurysms")
        let left = try #require(p1.eyes.first { $0.laterality == .left })
        #expect(!left.gradability.isGradable && left.gradability.reasons == ["too dark"] && !left.flag.raised)
        #expect(left.inference == nil, "a run that stored no settings says nothing about them")
        #expect(!PatientPage.eyeCard(left, images: EyeImages(photograph: nil, overlay: nil)).html.contains("Read with"))
        #expect(p1.outcome == .flagged)
        #expect(all.first?.eyes.first?.laterality == .unknown)

        #expect(try source.patients(.patient("P1")).map(\.patientID) == ["P1"])
        #expect(try source.patients(.run(String(run2))).map(\.patientID) == ["P1"])
        #expect(try source.patients(.run(String(run1))).count == 2)
        #expect(try source.patients(.since(Date().addingTimeInterval(3600))).isEmpty)
        #expect(throws: ReportError.self) { try source.patients(.patient("nobody")) }
        #expect(throws: ReportError.self) { try source.patients(.run("last-night")) }

        // And the pages: written from the database's patients, the hostile id stays text.
        let out = try Fixture.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: out) }
        let summary = try ReportWriter(directory: out, logger: logger).write(all)
        #expect(summary.pagesWritten == 2 && summary.patientsIndexed == 2)
        let index = try String(contentsOf: out.appendingPathComponent("index.html"), encoding: .utf8)
        #expect(index.contains("&lt;b&gt;P2&lt;/b&gt;") && !index.contains("<b>P2"))
    }
}

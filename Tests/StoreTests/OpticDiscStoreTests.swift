import Foundation
import Lesions
import Testing
import Store
import TestSupport

@Suite("Optic disc (sql/0006)")
struct OpticDiscStoreTests {
    let sum = String(repeating: "0f", count: 32)

    func result(image: Int64, model: Int64, disc: OpticDiscRecord?) -> ScreeningResult {
        ScreeningResult(
            imageID: image, modelVersionID: model, gradability: .gradable,
            flag: .noLesionsFound, rule: .lesionPresenceV1,
            findings: LesionClass.allCases.map {
                Finding(lesionClass: $0, lesionCount: 0, areaPixels: 0, fieldOfViewShare: 0, areaMM2: 0, largestLesionPixels: 0)
            },
            disc: disc)
    }

    @Test("The migration applies; a result's disc is stored and read back, and a four-class result has none")
    func discRoundTrip() async throws {
        #expect(Migration.all.contains { $0.version == 6 && $0.name == "optic_disc" })
        try await withTestDatabase { db in
            let c = try db.connect()
            let images = try Archive(connection: c).add([
                NewImage(path: "/archive/P1_R.jpg", patientID: "P1", laterality: .right, checksum: sum, sizeBytes: 100),
                NewImage(path: "/archive/P1_L.jpg", patientID: "P1", laterality: .left, checksum: sum, sizeBytes: 100),
            ])
            let r = try #require(images["/archive/P1_R.jpg"]), l = try #require(images["/archive/P1_L.jpg"])
            let model = try ModelRegistry(connection: c).register(name: "disc", architecture: "a", weightsPath: "/m", checksum: sum)
            let results = ScreeningResults(connection: c)
            let disc = OpticDiscRecord(found: true, centreX: 812.5, centreY: 604.25, diameterPixels: 270.3, areaPixels: 57_400,
                                       areaMM2FromDisc: true, assumedDiameterMM: 1.8)
            try results.write(result(image: r, model: model.id, disc: disc))
            try results.write(result(image: l, model: model.id, disc: nil))
            #expect(try results.fetch(imageID: r, modelVersionID: model.id)?.disc == disc)
            #expect(try results.fetch(imageID: l, modelVersionID: model.id)?.disc == nil)
            // Re-screening replaces the disc with the result.
            try results.write(result(image: r, model: model.id, disc: OpticDiscRecord(found: false)))
            #expect(try results.fetch(imageID: r, modelVersionID: model.id)?.disc == OpticDiscRecord(found: false))
            // A found disc needs its centre and diameter.
            #expect(throws: (any Error).self) {
                try results.write(result(image: r, model: model.id, disc: OpticDiscRecord(found: true)))
            }
        }
    }
}

import Checkpoints
import Foundation
import Imaging
import Logging
import Store
import Testing
import TestSupport
@testable import Pipeline

/// Issue 18: `db migrate`, `archive import DIR`, `screen` on a new database screens every imported image once.
/// Runs without ../shared: synthetic photographs and a freshly initialised tiny network (its findings mean nothing;
/// what is checked is that each image is screened exactly once).
@Suite("A fresh database screens what it imports", .serialized)
struct FreshDatabaseTests {
    let logger = ScreeningFixture.logger

    /// A small orange disc on black, as a JPEG: a photograph with a field of view.
    static func syntheticPhotograph(seed: Int, width: Int = 480, height: Int = 360) throws -> Data {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        let cx = Double(width) / 2, cy = Double(height) / 2, r = Double(height) * 0.45
        for y in 0..<height {
            for x in 0..<width {
                let dx = Double(x) - cx, dy = Double(y) - cy
                guard dx * dx + dy * dy < r * r else { continue }
                let i = 3 * (y * width + x)
                let spot = (x / 23 + y / 31 + seed) % 17 == 0
                pixels[i] = spot ? 90 : 200
                pixels[i + 1] = spot ? 15 : UInt8(70 + (x + seed * 7) % 20)
                pixels[i + 2] = 30
            }
        }
        return try ImageCodec.encodeJPEG(Image(width: width, height: height, channels: 3, pixels: pixels), quality: 92)
    }

    /// The tiny architecture with fresh weights, at a 256-pixel input so a debug build screens quickly.
    static func tinyFreshModel(in folder: URL) throws -> URL {
        let fresh = try FreshModel.create(architecture: .tinyFixture(variant: .C), name: "tiny-fresh",
                                          to: folder.appendingPathComponent("fresh"))
        return try ScreeningFixture.modelFolder(of: fresh, name: "tiny-fresh", inputSide: 256,
                                                trainingData: "none: freshly initialised weights; findings mean nothing",
                                                in: folder)
    }

    @Test("Import with no model, then screen: the shipped model is activated and every image is screened exactly once")
    func importThenScreen() async throws {
        let folder = try ScreeningFixture.makeFolder("fundus-fresh-")
        defer { try? FileManager.default.removeItem(at: folder) }
        let archive = folder.appendingPathComponent("archive")
        try FileManager.default.createDirectory(at: archive, withIntermediateDirectories: true)
        let names = ["P1_R.jpg", "P1_L.jpg", "P2_R.jpg"]
        for (i, name) in names.enumerated() {
            try Self.syntheticPhotograph(seed: i).write(to: archive.appendingPathComponent(name))
        }
        let shipped = try Self.tinyFreshModel(in: folder)
        let masks = folder.appendingPathComponent("masks")
        try await withTestDatabase { db in
            let connection = try db.connect()
            let importer = ArchiveImporter(connection: connection, pattern: try FileNamePattern(), logger: logger)
            let imported = try importer.importDirectory(archive)
            #expect(imported.added == 3)
            #expect(imported.enqueued == 0 && imported.modelVersion == nil)

            // What `screen` does on a database with no active model.
            let model = try ModelResolver.resolve(.active, connection: connection, shippedModel: shipped, logger: logger)
            #expect(model.version.status == .active)
            let first = try await ScreeningFixture.run(db, model: model, masks: masks)
            #expect(first.screened + first.ungradable == 3, "\(first.text)")
            #expect(first.failed == 0)

            let counts = try ScreeningFixture.resultCounts(connection)
            #expect(counts.perImage.count == 3 && counts.perImage.values.allSatisfy { $0 == 1 })
            let jobs = try ScreeningFixture.jobs(connection)
            #expect(jobs.count == 3 && jobs.allSatisfy { $0.state == "completed" && $0.attempt == 1 })

            // Again: nothing new to import, nothing queued, nothing screened twice.
            let again = try importer.importDirectory(archive)
            #expect(again.added == 0 && again.enqueued == 0 && again.modelVersion == model.version.name)
            let reloaded = try ModelResolver.resolve(.active, connection: connection, shippedModel: nil, logger: logger)
            #expect(reloaded.version.id == model.version.id)
            let second = try await ScreeningFixture.run(db, model: reloaded, masks: masks)
            #expect(second.screened + second.ungradable + second.failed == 0)
            #expect(try ScreeningFixture.resultCounts(connection).perImage.values.allSatisfy { $0 == 1 })

            // A new photograph imported now is queued for the active model and screened once.
            try Self.syntheticPhotograph(seed: 9).write(to: archive.appendingPathComponent("P2_L.jpg"))
            #expect(try importer.importDirectory(archive).enqueued == 1)
            let third = try await ScreeningFixture.run(db, model: reloaded, masks: masks)
            #expect(third.screened + third.ungradable == 1)
            let after = try ScreeningFixture.resultCounts(connection)
            #expect(after.perImage.count == 4 && after.perImage.values.allSatisfy { $0 == 1 })
        }
    }
}

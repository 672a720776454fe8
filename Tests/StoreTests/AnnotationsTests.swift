import Foundation
import Testing
@testable import Store
import TestSupport

@Suite("Annotations")
struct AnnotationsTests {
    func addImages(_ c: Connection, _ paths: [String]) throws -> [String: Int64] {
        try Archive(connection: c).add(paths.enumerated().map { i, path in
            NewImage(path: path, patientID: "P\(i)", laterality: nil, checksum: String(repeating: "\(i % 10)", count: 64), sizeBytes: 10)
        })
    }

    @Test("Register, list by split, replace, remove; a class without a mask is annotated as no lesion")
    func roundTrip() async throws {
        try await withTestDatabase { db in
            let c = try db.connect()
            let ids = try addImages(c, ["/a/1.jpg", "/a/2.jpg", "/a/3.jpg"])
            let annotations = Annotations(connection: c)
            try annotations.register(imageID: ids["/a/1.jpg"]!, split: .train, grader: "g1",
                                     masks: ["EX": "/m/1_EX.png", "HE": String?.none])
            try annotations.register(imageID: ids["/a/2.jpg"]!, split: .validation, grader: nil,
                                     masks: ["EX": "/m/2_EX.png", "HE": "/m/2_HE.png", "SE": String?.none, "MA": "/m/2_MA.png"])
            let all = try annotations.list()
            #expect(all.map(\.path) == ["/a/1.jpg", "/a/2.jpg"])
            #expect(all[0].masks == ["EX": "/m/1_EX.png", "HE": String?.none])
            #expect(all[0].grader == "g1" && all[0].split == .train && all[0].patientID == "P0")
            #expect(all[1].masks.count == 4 && all[1].masks["SE"]! == nil)
            #expect(try annotations.list(split: .validation).map(\.path) == ["/a/2.jpg"])

            // Registering again replaces the classes and the split.
            try annotations.register(imageID: ids["/a/1.jpg"]!, split: .validation, grader: "g2", masks: ["MA": "/m/1_MA.png"])
            let again = try annotations.list(split: .validation)
            #expect(again.map(\.path) == ["/a/1.jpg", "/a/2.jpg"])
            #expect(again[0].masks == ["MA": "/m/1_MA.png"] && again[0].grader == "g2")
            #expect(try annotations.list(split: .train).isEmpty)

            #expect(try annotations.remove(imageID: ids["/a/1.jpg"]!))
            #expect(try !annotations.remove(imageID: ids["/a/1.jpg"]!))
            #expect(try annotations.list().map(\.path) == ["/a/2.jpg"])
        }
    }

    @Test("Bad annotations are refused with the image named and change nothing")
    func refusals() async throws {
        try await withTestDatabase { db in
            let c = try db.connect()
            let ids = try addImages(c, ["/a/1.jpg"])
            let annotations = Annotations(connection: c)
            let id = ids["/a/1.jpg"]!
            #expect(throws: DatabaseError.self) { try annotations.register(imageID: id, split: .train, grader: nil, masks: ["OD": "/m/x.png"]) }
            #expect(throws: DatabaseError.self) { try annotations.register(imageID: id, split: .train, grader: nil, masks: ["EX": "rel/x.png"]) }
            #expect(throws: DatabaseError.self) { try annotations.register(imageID: id, split: .train, grader: nil, masks: [:]) }
            do {
                try annotations.register(imageID: 9_999, split: .train, grader: nil, masks: ["EX": String?.none])
                Issue.record("an unknown image was accepted")
            } catch let error as DatabaseError {
                #expect(error.code == .notFound && error.message.contains("9999"))
            }
            #expect(try annotations.list().isEmpty)
            // The schema refuses what the API would not write, too.
            #expect(throws: DatabaseError.self) {
                try c.query("INSERT INTO annotated_images (image_id, split) VALUES ($1, 'test')", [id])
            }
            #expect(try annotations.imageIDs(forChecksums: [String(repeating: "0", count: 64), "nope"]) == [String(repeating: "0", count: 64): id])
        }
    }
}

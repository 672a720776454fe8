import Checkpoints
import Foundation
import Store
import Testing
import TestSupport
@testable import Pipeline

/// A model folder whose card names an ensemble: resolved and registered with its members (issue 16), against a
/// private PostgreSQL, the tiny parity checkpoints as the models.
@Test("An ensemble bundle registers with a checksum over every member and loads them; a member's bytes changed under the same name is refused, a missing one named",
      .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
func ensembleBundleRegisters() async throws {
    let folder = try ScreeningFixture.makeFolder("fundus-ensemble-")
    defer { try? FileManager.default.removeItem(at: folder) }
    let directory = try ScreeningFixture.tinyModelFolder(in: folder)
    // The card gains a member: variant A's tiny checkpoint, another architecture, in the same folder.
    let partner = directory.appendingPathComponent("partner.pth")
    try FileManager.default.copyItem(at: SharedFixtures.parity.appendingPathComponent("tiny_m2mrf_A.pth"), to: partner)
    let cardURL = directory.appendingPathComponent(ModelCard.fileName)
    var card = try ModelCard.read(cardURL)
    let mainFile = directory.appendingPathComponent(card.weightsFile!)
    card.ensemble = ["partner.pth"]
    try card.encoded().write(to: cardURL)
    try await withTestDatabase { db in
        let connection = try db.connect()
        let loaded = try ModelResolver.resolve(.named(directory.path), connection: connection, logger: ScreeningFixture.logger)
        #expect(loaded.model.ensemble.count == 1)
        #expect(loaded.model.ensemble.first?.architecture.variant == .A)
        let mainHash = try SHA256.hex(fileAt: mainFile), partnerHash = try SHA256.hex(fileAt: partner)
        #expect(loaded.version.checksum == SHA256.hex(Data((mainHash + "\n" + partnerHash).utf8)))
        #expect(loaded.version.checksum != mainHash)
        // The same folder again: the version registered already.
        let again = try ModelResolver.resolve(.named(directory.path), connection: connection, logger: ScreeningFixture.logger)
        #expect(again.version.id == loaded.version.id)
        // Another member under the same name and version: not silently the registered model.
        try FileManager.default.removeItem(at: partner)
        try FileManager.default.copyItem(at: SharedFixtures.parity.appendingPathComponent("tiny_m2mrf_B.pth"), to: partner)
        let error = #expect(throws: ScreeningRunError.self) {
            try ModelResolver.resolve(.named(directory.path), connection: connection, logger: ScreeningFixture.logger)
        }
        #expect(error?.description.contains("registered already with other weights") == true, "\(String(describing: error))")
        // A member gone: said with its name, before any checksum.
        try FileManager.default.removeItem(at: partner)
        let missing = #expect(throws: ScreeningRunError.self) {
            try ModelResolver.resolve(.named(directory.path), connection: connection, logger: ScreeningFixture.logger)
        }
        #expect(missing?.description.contains("ensemble names partner.pth") == true, "\(String(describing: missing))")
    }
}

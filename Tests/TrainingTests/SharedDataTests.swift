import Foundation
import Imaging
import Lesions
import Logging
import Network
import Testing
import TestSupport
@testable import Training

private let logger = Logger(label: "test.training.shared")
private let idrid = SharedFixtures.root.appendingPathComponent("data/idrid")

/// A dataset folder of symbolic links to some of the shared IDRiD images and their masks.
private func idridSubset(_ numbers: [String], classes: [String] = ["EX", "HE", "SE", "MA"]) throws -> URL {
    let root = try temporaryFolder("idrid")
    let fm = FileManager.default
    try fm.createDirectory(at: root.appendingPathComponent("images"), withIntermediateDirectories: true)
    for n in numbers {
        try fm.createSymbolicLink(at: root.appendingPathComponent("images/IDRiD_\(n).jpg"), withDestinationURL: idrid.appendingPathComponent("images/IDRiD_\(n).jpg"))
        for c in classes {
            try fm.createDirectory(at: root.appendingPathComponent("masks/\(c)"), withIntermediateDirectories: true)
            let mask = idrid.appendingPathComponent("masks/\(c)/IDRiD_\(n)_\(c).png")
            if fm.fileExists(atPath: mask.path) {
                try fm.createSymbolicLink(at: root.appendingPathComponent("masks/\(c)/IDRiD_\(n)_\(c).png"), withDestinationURL: mask)
            }
        }
    }
    return root
}

@Test("An IDRiD photograph loads cropped to its field of view, with its four masks merged in the official order",
      .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
func loadsIDRiDSample() throws {
    let root = try idridSubset(["03"])
    defer { try? FileManager.default.removeItem(at: root) }
    let samples = DatasetSamples(try LesionDataset.open(root, logger: logger), logger: logger)
    let s = try samples.load(0)
    #expect(s.width == s.height)                         // the field-of-view square
    #expect(s.width > 3000 && s.width < 4400)            // about the field's diameter at 4288×2848
    var counts = [Int](repeating: 0, count: 5)
    for l in s.labels { counts[Int(l)] += 1 }
    #expect(counts[1] > 0 && counts[2] > 0 && counts[3] > 0 && counts[4] > 0, "label counts \(counts)")
    #expect(s.annotated == [true, true, true, true])
    // The lesion pixels all survive the crop (the field contains every lesion).
    let sample = try LesionDataset.open(root, logger: logger).samples[0]
    let truth = try DatasetSamples.truthMasks(sample, width: 4288, height: 2848)
    let merged = LabelMap.merge(truth, pixels: 4288 * 2848)
    #expect(merged.filter { $0 == 4 }.count == counts[4])
}

@Test("A mask of another size than its photograph is an error naming both",
      .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
func maskSizeMismatch() throws {
    let root = try idridSubset(["01"], classes: [])
    defer { try? FileManager.default.removeItem(at: root) }
    try FileManager.default.createDirectory(at: root.appendingPathComponent("masks/EX"), withIntermediateDirectories: true)
    let png = try ImageCodec.encodePNG(Image(width: 8, height: 8, channels: 1, pixels: [UInt8](repeating: 255, count: 64)))
    try png.write(to: root.appendingPathComponent("masks/EX/IDRiD_01_EX.png"))
    let samples = DatasetSamples(try LesionDataset.open(root, logger: logger), logger: logger)
    #expect { try samples.load(0) } throws: { error in
        let m = "\(error)"
        return m.contains("IDRiD_01_EX.png is 8×8") && m.contains("IDRiD_01.jpg 4288×2848")
    }
}

@Test("Validation scores a model on IDRiD with the official figures and exact AP; partial sets are refused",
      .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
func validatesOnIDRiD() throws {
    let root = try idridSubset(["14"])
    defer { try? FileManager.default.removeItem(at: root) }
    let validator = try Validator(try LesionDataset.open(root, logger: logger), normalisation: .idrid,
                                  scale: .init(longEdge: 128, shortEdge: 128), logger: logger)
    let model = NetworkModel(try SegmentationModel(architecture: .tinyFixture(variant: .C)))
    let report = try validator.evaluate(model)
    #expect(report.images == 1)
    let figures = Validator.figures(report)
    for key in ["mAUPR", "mIoU", "mAP", "AUPR.EX", "AUPR.MA"] { #expect(figures[key] != nil, "no \(key)") }
    #expect((0...1).contains(figures["mAUPR"]!))

    // With mirroring TTA, the plain pass's own figures come from the same inference and equal a plain validation's.
    var tta = validator
    tta.augmentation = .mirroring
    let (withTTA, single) = try tta.evaluateWithSinglePass(model)
    let plainFigures = Validator.figures(report), singleFigures = Validator.figures(try #require(single))
    for key in ["mAUPR", "mIoU", "mAP", "AUPR.EX", "AP.HE", "IoU.MA"] { #expect(singleFigures[key] == plainFigures[key], "\(key)") }
    #expect(Validator.figures(withTTA)["mAUPR"] != nil)
    #expect(try validator.evaluateWithSinglePass(model).singlePass == nil, "no second report without augmentation")

    let partial = try idridSubset(["14"], classes: ["EX", "HE"])
    defer { try? FileManager.default.removeItem(at: partial) }
    #expect(throws: TrainingError.self) {
        try Validator(try LesionDataset.open(partial, logger: logger), normalisation: .idrid, logger: logger)
    }
}

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

/// A model that calls every pixel a hard exudate and nothing else (logits ±12 on four classes).
private struct ExudateEverywhere: TrainableModel {
    var state = ModelState()
    mutating func load(_ state: ModelState) throws {}
    mutating func updateParameters(_ body: (inout ModelState) throws -> Void) rethrows {}
    mutating func trainingStep(_ batch: TrainingBatch, loss: LossSettings) throws -> TrainingStepResult {
        throw TrainingError(.dataset, "not trainable")
    }
    func probabilities(_ image: [Float], height: Int, width: Int) throws -> [Float] {
        try logits(image, height: height, width: width).map { 1 / (1 + expf(-$0)) }
    }
    func logits(_ image: [Float], height: Int, width: Int) throws -> [Float] {
        let plane = height * width
        return (0..<(4 * plane)).map { $0 < plane ? 12 : -12 }
    }
}

@Test("model validate --overlays: the truth on the left exactly as the masks on disk draw it, the model's masks on the right",
      .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
func validationWritesTruthBesideModel() throws {
    let root = try idridSubset(["14"])
    defer { try? FileManager.default.removeItem(at: root) }
    let out = try temporaryFolder("overlays")
    defer { try? FileManager.default.removeItem(at: out) }
    var validator = try Validator(try LesionDataset.open(root, logger: logger), normalisation: .idrid,
                                  scale: .init(longEdge: 128, shortEdge: 128), logger: logger)
    validator.overlayDirectory = out
    let report = try validator.evaluate(ExudateEverywhere())
    #expect(report.images == 1)
    let picture = try ImageCodec.decode(contentsOf: out.appendingPathComponent("IDRiD_14_truth-vs-model.png"), mode: .rgb).image
    // 4288×2848 drawn at a quarter (the smallest whole factor that fits 1200): 1072×712 a side, 8 black columns between.
    #expect(picture.width == 2 * 1072 + 8 && picture.height == 712)

    // The left side, drawn here from the photograph and the mask files themselves (no disc layer: this subset has no OD).
    let photo = try ImageCodec.decode(contentsOf: idrid.appendingPathComponent("images/IDRiD_14.jpg"), mode: .rgb).image
    var layers: [OverlayLayer] = []
    for c in LesionClass.allCases {
        let url = idrid.appendingPathComponent("masks/\(c.code)/IDRiD_14_\(c.code).png")
        guard FileManager.default.fileExists(atPath: url.path) else { continue }
        let mask = try ImageCodec.decode(contentsOf: url, mode: .label).image
        layers.append(OverlayLayer(code: c.code, colour: RGBColour(red: c.colour.red, green: c.colour.green, blue: c.colour.blue), mask: mask))
    }
    #expect(layers.count == 4, "IDRiD_14 has all four classes")
    let truthSide = Overlay.draw(on: photo, layers: layers, maxLongSide: 1200)
    let plain = Overlay.draw(on: photo, layers: [], maxLongSide: 1200)
    let p = picture.bytes, t = truthSide.bytes, q = plain.bytes, w = picture.width, hw = 1072
    var leftDiffers = 0, tinted = 0
    for y in 0..<712 {
        for x in 0..<hw {
            for c in 0..<3 where p[3 * (y * w + x) + c] != t[3 * (y * hw + x) + c] { leftDiffers += 1 }
            if t[3 * (y * hw + x)] != q[3 * (y * hw + x)] { tinted += 1 }
        }
    }
    #expect(leftDiffers == 0, "the left side is the truth drawn on the photograph")
    #expect(tinted > 1000, "the truth marks lesions on IDRiD_14 (\(tinted) tinted pixels)")

    // The right side: exudate everywhere in the field of view's square and nothing else, so every pixel is either
    // the bare photograph or the photograph blended 60 % towards the exudate colour, and most are the latter.
    let ex = LesionClass.hardExudate.colour, exc = [Float(ex.red), Float(ex.green), Float(ex.blue)]
    var exudate = 0, other = 0
    for y in 0..<712 {
        for x in 0..<hw {
            let o = 3 * (y * w + hw + 8 + x), i = 3 * (y * hw + x)
            let bare = (0..<3).allSatisfy { p[o + $0] == q[i + $0] }
            let blended = (0..<3).allSatisfy { c in
                let v = Float(q[i + c])
                return p[o + c] == UInt8((v + (exc[c] - v) * 0.6).rounded())
            }
            if blended && !bare { exudate += 1 } else if !bare { other += 1 }
        }
    }
    #expect(other == 0, "right side: \(other) pixels neither bare nor exudate")
    #expect(exudate > 712 * hw / 2, "right side: exudate over the field of view (\(exudate) pixels)")
    let gap = (0..<712).reduce(0) { n, y in n + (0..<24).filter { p[3 * (y * w + hw) + $0] != 0 }.count }
    #expect(gap == 0, "the 8 columns between the sides are black")

    // A folder that cannot be made: the image, the file and the reason, not a Foundation domain and code.
    let blocker = out.appendingPathComponent("a-file")
    try Data("x".utf8).write(to: blocker)
    validator.overlayDirectory = blocker.appendingPathComponent("pictures")
    #expect { _ = try validator.evaluate(ExudateEverywhere()) } throws: { error in
        let m = "\(error)"
        return m.contains("IDRiD_14") && m.contains("a-file/pictures/IDRiD_14_truth-vs-model.png") && m.contains("Not a directory")
    }
}

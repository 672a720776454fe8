import Foundation
import Imaging
import Lesions
import Logging
import TestSupport
import Testing
@testable import Training

private let logger = Logger(label: "test.evaluate")

/// A fresh temporary folder.
private func temporaryFolder() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("evaluate-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

private func writePNG(_ pixels: [UInt8], width: Int, height: Int, to url: URL) throws {
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try ImageCodec.encodePNG(Image(width: width, height: height, channels: 1, pixels: pixels)).write(to: url)
}

/// Two 8×6 images: A with EX (two blobs) and MA, B with HE only; SE absent everywhere. Masks 0/255 in class folders.
private func writeTruth(_ folder: URL) throws -> [String: [LesionClass: [UInt8]]] {
    let w = 8, h = 6
    func mask(_ on: [(Int, Int)]) -> [UInt8] {
        var m = [UInt8](repeating: 0, count: w * h)
        for (x, y) in on { m[y * w + x] = 255 }
        return m
    }
    let masks: [String: [LesionClass: [UInt8]]] = [
        "A": [.hardExudate: mask([(0, 0), (1, 0), (5, 4), (6, 5)]), .microaneurysm: mask([(3, 2)])],
        "B": [.haemorrhage: mask([(2, 2), (3, 2), (2, 3), (3, 3)])],
    ]
    for (image, classes) in masks {
        for (c, m) in classes {
            try writePNG(m, width: w, height: h, to: folder.appendingPathComponent("\(c.code)/\(image)_\(c.code).png"))
        }
    }
    return masks
}

@Test("Truth as prediction: official IoU 1 and AUPR 1 for the classes present; lesions counted per image")
func truthAsPrediction() throws {
    let truth = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: truth) }
    _ = try writeTruth(truth)
    let result = try FolderEvaluation.run(FolderEvaluation.Options(predictions: truth, truth: truth), logger: logger)
    let r = result.report
    #expect(r.images == 2)
    for c in [LesionClass.hardExudate, .haemorrhage, .microaneurysm] {
        #expect(r.classes[c.rawValue].official.iou == 1 && r.classes[c.rawValue].official.aupr == 1)
        #expect(r.classes[c.rawValue].averagePrecision == 1)
    }
    // SE is absent everywhere and never predicted: IoU NaN (counted 0), AUPR 0, as the reference.
    #expect(r.classes[LesionClass.softExudate.rawValue].official.iou == nil)
    #expect(r.classes[LesionClass.softExudate.rawValue].official.aupr == 0)
    #expect(abs(r.official.mIoU - 0.75) < 1e-12 && abs(r.official.mAUPR - 0.75) < 1e-12)
    #expect(result.images.map(\.truthLesions) == [[2, 0, 0, 1], [0, 1, 0, 0]])
    #expect(result.images.map(\.predictedLesions) == result.images.map(\.truthLesions))
    #expect(result.images[0].missingPredictions == ["HE", "SE"])
    #expect(FolderEvaluation.table(result).contains("M2MRF official"))
}

@Test("A blank prediction: recall 0 at every threshold, precision 1, AUPR 0; IoU 0")
func blankPrediction() throws {
    let truth = try temporaryFolder(), pred = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: truth); try? FileManager.default.removeItem(at: pred) }
    _ = try writeTruth(truth)
    for image in ["A", "B"] {
        for c in LesionClass.allCases {
            try writePNG([UInt8](repeating: 0, count: 48), width: 8, height: 6,
                         to: pred.appendingPathComponent("\(image)_\(c.code).png"))
        }
    }
    let r = try FolderEvaluation.run(FolderEvaluation.Options(predictions: pred, truth: truth), logger: logger).report
    for c in [LesionClass.hardExudate, .haemorrhage, .microaneurysm] {
        let o = r.classes[c.rawValue].official
        #expect(o.curve.allSatisfy { $0.predicted == 0 && $0.precision == 1 && $0.recall == 0 })
        #expect(o.aupr == 0 && o.iou == 0)
    }
    #expect(r.official.mAUPR == 0 && r.official.mIoU == 0)
}

@Test("Probability maps: v/255, strictly above each threshold; overlapping truth counts for the higher class")
func probabilityMapsAndOverlap() throws {
    let truth = try temporaryFolder(), pred = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: truth); try? FileManager.default.removeItem(at: pred) }
    // 4×1 image; EX truth on pixels 0,1; HE truth on pixel 1 (overlap: HE wins under the official rule).
    try writePNG([255, 255, 0, 0], width: 4, height: 1, to: truth.appendingPathComponent("X_EX.png"))
    try writePNG([0, 255, 0, 0], width: 4, height: 1, to: truth.appendingPathComponent("X_HE.png"))
    try writePNG([200, 128, 127, 0], width: 4, height: 1, to: pred.appendingPathComponent("X_EX.png"))
    var options = FolderEvaluation.Options(predictions: pred, truth: truth)
    let official = try FolderEvaluation.run(options, logger: logger).report.classes[0].official
    // At 0.5: predicted {0, 1}; official truth for EX is {0} → TP 1, P 2, FN 0.
    #expect(official.curve[5].predicted == 2 && official.curve[5].truePositives == 1)
    #expect(abs(official.iou! - 0.5) < 1e-12)
    options.truthOverlap = .keep
    #expect(try FolderEvaluation.run(options, logger: logger).report.classes[0].official.iou == 1)
}

@Test("Names that match nothing, duplicates and size mismatches fail loudly, naming the files")
func loudFailures() throws {
    let truth = try temporaryFolder(), pred = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: truth); try? FileManager.default.removeItem(at: pred) }
    _ = try writeTruth(truth)
    try writePNG([UInt8](repeating: 0, count: 48), width: 8, height: 6, to: pred.appendingPathComponent("a_EX.png"))
    #expect(throws: EvaluationError.self) {
        try FolderEvaluation.run(FolderEvaluation.Options(predictions: pred, truth: truth), logger: logger)
    }
    try writePNG([UInt8](repeating: 0, count: 12), width: 4, height: 3, to: pred.appendingPathComponent("A_EX.png"))
    try writePNG([UInt8](repeating: 0, count: 48), width: 8, height: 6, to: pred.appendingPathComponent("B_EX.png"))
    do {
        _ = try FolderEvaluation.run(FolderEvaluation.Options(predictions: pred, truth: truth), logger: logger)
        Issue.record("a 4×3 prediction against 8×6 truth was accepted")
    } catch let e as EvaluationError {
        #expect(e.message.contains("A_EX.png") && e.message.contains("4×3"))
    }
    try writePNG([UInt8](repeating: 0, count: 48), width: 8, height: 6, to: pred.appendingPathComponent("EX/B_EX.png"))
    #expect(throws: EvaluationError.self) {
        try FolderEvaluation.run(FolderEvaluation.Options(predictions: pred, truth: truth), logger: logger)
    }
    #expect(FolderEvaluation.parseName("IDRiD_01_ex.TIF")! == ("IDRiD_01", LesionClass.hardExudate))
    #expect(FolderEvaluation.parseName("IDRiD_01_OD.png") == nil)
}

@Test("Connected components of real IDRiD masks match scipy.ndimage.label with a 3×3 structure",
      .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
func idridComponentCounts() throws {
    // Counted by hand with scipy 1.17 (ndimage.label(mask > 0, structure=np.ones((3, 3))))
    // on IDRiD_01–03: EX, HE, SE, MA; nil = no file (class absent).
    let expected: [String: [Int?]] = [
        "IDRiD_01": [106, 15, nil, 18], "IDRiD_02": [166, 22, nil, 41], "IDRiD_03": [347, 77, 1, 63],
    ]
    for (image, counts) in expected {
        for c in LesionClass.allCases {
            let url = SharedFixtures.idridMasks.appendingPathComponent("\(c.code)/\(image)_\(c.code).png")
            guard let count = counts[c.rawValue] else {
                #expect(!FileManager.default.fileExists(atPath: url.path)); continue
            }
            let img = try ImageCodec.decode(contentsOf: url, mode: .label).image
            let cc = ConnectedComponents(try ScorePlane(width: img.width, height: img.height, mask: img.bytes))
            #expect(cc.count == count, "\(image) \(c.code)")
        }
    }
    // The original IDRiD TIFFs (palette 0/1) give the same lesions as the PNGs.
    for (image, count) in [("IDRiD_01", 15), ("IDRiD_02", 22)] {
        let img = try ImageCodec.decode(
            contentsOf: SharedFixtures.idridMasks.appendingPathComponent("HE_tif/\(image)_HE.tif"), mode: .label).image
        #expect(ConnectedComponents(try ScorePlane(width: img.width, height: img.height, mask: img.bytes)).count == count)
    }
}

@Test("IDRiD's original TIFF truth (palette 0/1) evaluates as its PNG: IoU 1 and AUPR 1",
      .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
func tiffTruth() throws {
    let truth = try temporaryFolder(), pred = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: truth); try? FileManager.default.removeItem(at: pred) }
    // Links, not copies: the shared data stays where it is.
    try FileManager.default.createSymbolicLink(
        at: truth.appendingPathComponent("IDRiD_01_HE.tif"),
        withDestinationURL: SharedFixtures.idridMasks.appendingPathComponent("HE_tif/IDRiD_01_HE.tif"))
    try FileManager.default.createSymbolicLink(
        at: pred.appendingPathComponent("IDRiD_01_HE.png"),
        withDestinationURL: SharedFixtures.idridMasks.appendingPathComponent("HE/IDRiD_01_HE.png"))
    let result = try FolderEvaluation.run(FolderEvaluation.Options(predictions: pred, truth: truth), logger: logger)
    let he = result.report.classes[LesionClass.haemorrhage.rawValue]
    #expect(he.official.iou == 1 && he.official.aupr == 1)
    #expect(he.truthPixels == 35430, "pixels counted by numpy on the PNG")
    #expect(result.images[0].truthLesions == [0, 15, 0, 0])
}

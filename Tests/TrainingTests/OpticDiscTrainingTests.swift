import Checkpoints
import Foundation
import Imaging
import Lesions
import Logging
import Network
import Tensor
import Testing
@testable import Training

private let logger = Logger(label: "test.training.disc")

private func writePNG(_ url: URL, width: Int, height: Int, channels: Int, pixels: [UInt8]) throws {
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    try ImageCodec.encodePNG(Image(width: width, height: height, channels: channels, pixels: pixels)).write(to: url)
}

@Suite("Optic disc channel (issue #16)")
struct OpticDiscTrainingTests {
    @Test("--disc reads masks/OD; an image without an OD mask is not annotated for the disc; without --disc OD is ignored")
    func discMasksRead() throws {
        let root = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        for path in ["images/A_01.jpg", "images/A_02.jpg", "masks/EX/A_01_EX.png", "masks/HE/A_02_HE.png",
                     "masks/SE/A_01_SE.png", "masks/MA/A_01_MA.png", "masks/OD/A_01_OD.png"] {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data().write(to: url)
        }
        let plain = try LesionDataset.open(root, logger: logger)
        #expect(plain.samples.allSatisfy { $0.discMask == nil })
        #expect(plain.samples[0].annotatedChannels(4) == [true, true, true, true])

        let d = try LesionDataset.open(root, disc: true, logger: logger)
        #expect(d.annotated == Set(LesionClass.allCases), "the disc is not a lesion class")
        #expect(d.samples[0].discMask?.lastPathComponent == "A_01_OD.png")
        #expect(d.samples[1].discMask == nil)
        #expect(d.samples[0].annotatedChannels(5) == [true, true, true, true, true])
        #expect(d.samples[1].annotatedChannels(5) == [true, true, true, true, false])
        #expect(d.samples[0].annotatedChannels(4) == [true, true, true, true])

        try FileManager.default.createDirectory(at: root.appendingPathComponent("masks/OD"), withIntermediateDirectories: true)
        try Data().write(to: root.appendingPathComponent("masks/OD/A_03_OD.png"))
        #expect(throws: TrainingError.self) { try LesionDataset.open(root, disc: true, logger: logger) }
    }

    @Test("Label map: the disc is 5 and has the lowest precedence (every lesion overwrites it)")
    func labelPrecedence() {
        let disc: [UInt8] = [255, 255, 255, 255, 255, 0]
        let masks: [LesionClass: [UInt8]] = [
            .hardExudate: [0, 1, 0, 0, 0, 1], .haemorrhage: [0, 0, 1, 0, 0, 0],
            .softExudate: [0, 0, 0, 1, 0, 0], .microaneurysm: [0, 0, 0, 0, 1, 0],
        ]
        #expect(LabelMap.merge(masks, disc: disc, pixels: 6) == [5, 1, 2, 3, 4, 1])
        #expect(LabelMap.merge(masks, pixels: 6) == [0, 1, 2, 3, 4, 1])
        #expect(OpticDisc.labelIndex == 5 && OpticDisc.channel == 4)
    }

    @Test("DatasetSamples with 5 channels: OD pixels labelled 5 under the lesions, flags per image")
    func samplesWithDisc() throws {
        let root = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let w = 8, h = 4
        for stem in ["B_01", "B_02"] {
            try writePNG(root.appendingPathComponent("images/\(stem).png"), width: w, height: h, channels: 3,
                         pixels: [UInt8](repeating: 120, count: 3 * w * h))
        }
        var od = [UInt8](repeating: 0, count: w * h), ex = [UInt8](repeating: 0, count: w * h)
        for i in 0..<8 { od[i] = 255 }
        ex[2] = 255
        try writePNG(root.appendingPathComponent("masks/OD/B_01_OD.png"), width: w, height: h, channels: 1, pixels: od)
        try writePNG(root.appendingPathComponent("masks/EX/B_01_EX.png"), width: w, height: h, channels: 1, pixels: ex)
        let set = try LesionDataset.open(root, classes: Set(LesionClass.allCases), disc: true, logger: logger)
        let samples = DatasetSamples(set, fieldOfViewCrop: false, channels: 5, logger: logger)
        let first = try samples.load(0), second = try samples.load(1)
        #expect(Array(first.labels[0..<8]) == [5, 5, 1, 5, 5, 5, 5, 5])
        #expect(first.labels[8...].allSatisfy { $0 == 0 })
        #expect(first.annotated == [true, true, true, true, true])
        #expect(second.annotated == [true, true, true, true, false])
        #expect(second.labels.allSatisfy { $0 == 0 })
        // A four-channel model never sees the disc.
        let four = try DatasetSamples(set, fieldOfViewCrop: false, channels: 4, logger: logger).load(0)
        #expect(four.annotated.count == 4 && !four.labels.contains(5))
    }

    @Test("The loss over 5 channels: an image not annotated for the disc gets no disc gradient; 4 of 5 = the 4-channel loss")
    func partialDiscLoss() throws {
        var rng = TrainingRNG(seed: 7)
        let n = 2, h = 3, w = 4, hw = h * w
        let logits5 = (0..<(n * 5 * hw)).map { _ in Float(rng.uniform(-2, 2)) }
        let labels = (0..<(n * hw)).map { _ in UInt8(rng.below(6)) }
        let flags = [true, true, true, true, true, true, true, true, true, false]
        let (_, g) = try BinaryDiceLoss.evaluate(logits: logits5, labels: labels, annotated: flags, batch: n, height: h, width: w)
        #expect(g[((1 * 5) + 4) * hw ..< ((1 * 5) + 5) * hw].allSatisfy { $0 == 0 })
        #expect(g[4 * hw ..< 5 * hw].contains { $0 != 0 })

        // No image annotated for the disc: the same loss as the four lesion channels alone (disc pixels background).
        let none = [true, true, true, true, false, true, true, true, true, false]
        let (l5, g5) = try BinaryDiceLoss.evaluate(logits: logits5, labels: labels, annotated: none, batch: n, height: h, width: w)
        var logits4: [Float] = [], g5lesions: [Float] = []
        for image in 0..<n {
            logits4 += logits5[(image * 5 * hw)..<((image * 5 + 4) * hw)]
            g5lesions += g5[(image * 5 * hw)..<((image * 5 + 4) * hw)]
        }
        let labels4 = labels.map { $0 == 5 ? 0 : $0 }
        let (l4, g4) = try BinaryDiceLoss.evaluate(logits: logits4, labels: labels4, annotated: [Bool](repeating: true, count: 8),
                                                  batch: n, height: h, width: w)
        #expect(abs(l4 - l5) < 1e-6)
        #expect(zip(g4, g5lesions).allSatisfy { abs($0 - $1) < 1e-7 })

        let batch = TrainingBatch(count: n, height: h, width: w, images: [Float](repeating: 0, count: n * 3 * hw),
                                  labels: labels, annotated: flags)
        #expect(batch.channels == 5)
    }

    @Test("Head expansion: the four lesion outputs of the expanded model equal the four-class model's exactly")
    func headExpansionExact() throws {
        let four = try SegmentationModel(architecture: .tinyFixture(variant: .C))
        let weights = four.exportWeights()
        let (expandedWeights, architecture) = try DiscHead.expand(weights, architecture: four.architecture, seed: 3)
        #expect(architecture.numClasses == 5)
        let w5 = expandedWeights[DiscHead.weightName]!, b5 = expandedWeights[DiscHead.biasName]!
        #expect(w5.shape == [5, four.architecture.headChannels, 1, 1] && b5.shape == [5])
        let w4 = weights[DiscHead.weightName]!.floats()
        #expect(Array(w5.floats()[0..<w4.count]) == w4)
        let newRow = Array(w5.floats()[w4.count...])
        #expect(newRow.contains { $0 != 0 } && newRow.allSatisfy { abs($0) < 0.1 })
        #expect(b5.floats()[4] == 0 && Array(b5.floats()[0..<4]) == weights[DiscHead.biasName]!.floats())

        let five = try SegmentationModel(architecture: architecture, weights: expandedWeights)
        var rng = TrainingRNG(seed: 11)
        let h = 64, wd = 64
        let input = (0..<(3 * h * wd)).map { _ in Float(rng.uniform(-1.5, 1.5)) }
        let out4 = try four.upsampledLogits(Tensor(input, shape: [1, 3, h, wd])).values()
        let out5 = try five.upsampledLogits(Tensor(input, shape: [1, 3, h, wd])).values()
        #expect(out5.count == out4.count / 4 * 5)
        #expect(Array(out5[0..<out4.count]) == out4, "the lesion channels must be bit-identical")

        // A five-class model cannot be expanded again.
        #expect(throws: TrainingError.self) { try DiscHead.expand(expandedWeights, architecture: architecture, seed: 3) }
    }

    @Test("The model card of a five-channel model lists OD; four-channel cards are unchanged")
    func cardClasses() throws {
        var a = ModelArchitecture.tinyFixture(variant: .C)
        #expect(ModelCard(name: "x", version: "1", architecture: a).classes == ["EX", "HE", "SE", "MA"])
        #expect(!ModelCard(name: "x", version: "1", architecture: a).hasDiscChannel)
        a.numClasses = 5
        let card = ModelCard(name: "x", version: "1", architecture: a)
        #expect(card.classes == ["EX", "HE", "SE", "MA", "OD"] && card.hasDiscChannel)
        let decoded = try ModelCard.decode(card.encoded())
        #expect(decoded.classes == card.classes)
    }
}

@Test("evaluate: OD files in both folders give the disc's IoU and Dice beside the lesion metrics")
func folderEvaluationDisc() throws {
    let root = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: root) }
    let w = 4, h = 2
    let truth = root.appendingPathComponent("truth"), predicted = root.appendingPathComponent("pred")
    try writePNG(truth.appendingPathComponent("EX/A_EX.png"), width: w, height: h, channels: 1, pixels: [255, 0, 0, 0, 0, 0, 0, 0])
    try writePNG(predicted.appendingPathComponent("A_EX.png"), width: w, height: h, channels: 1, pixels: [1, 0, 0, 0, 0, 0, 0, 0])
    try writePNG(truth.appendingPathComponent("OD/A_OD.png"), width: w, height: h, channels: 1, pixels: [0, 0, 255, 255, 0, 0, 255, 255])
    try writePNG(predicted.appendingPathComponent("A_OD.png"), width: w, height: h, channels: 1, pixels: [0, 0, 0, 1, 0, 0, 1, 1])
    let result = try FolderEvaluation.run(.init(predictions: predicted, truth: truth), logger: logger)
    let disc = try #require(result.report.disc)
    #expect(disc.images == 1 && disc.iou == 0.75 && disc.dice == 6.0 / 7.0)
    #expect(result.report.classes.map(\.code) == ["EX", "HE", "SE", "MA"], "the disc is never a lesion class")
    #expect(FolderEvaluation.table(result).contains("Optic disc"))
}

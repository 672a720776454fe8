import Checkpoints
import Foundation
import Imaging
import Lesions
import Logging
import Network
import Tensor
import Testing
import TestSupport
@testable import Training

private let logger = Logger(label: "test.training.vessels")

private func writeImage(_ url: URL, width: Int, height: Int, channels: Int, pixels: [UInt8]) throws {
    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
    let image = Image(width: width, height: height, channels: channels, pixels: pixels)
    try (url.pathExtension == "jpg" ? ImageCodec.encodeJPEG(image, quality: 95) : ImageCodec.encodePNG(image)).write(to: url)
}

/// A vessel set in HRF's layout: `images/V_<n>.png`, `masks/vessels/V_<n>.png` with a vertical vessel two pixels
/// wide at x = 2n + 1 (grey 255), a faint ringing pixel (grey 100, not a vessel) beside it.
private func vesselSet(_ root: URL, images: Int, width w: Int = 8, height h: Int = 4) throws {
    for n in 0..<images {
        try writeImage(root.appendingPathComponent("images/V_\(n).png"), width: w, height: h, channels: 3,
                       pixels: [UInt8](repeating: 140, count: 3 * w * h))
        var mask = [UInt8](repeating: 0, count: w * h)
        for y in 0..<h {
            mask[y * w + 2 * n + 1] = 255
            mask[y * w + 2 * n + 2] = 255
            mask[y * w + 2 * n] = 100
        }
        try writeImage(root.appendingPathComponent("masks/vessels/V_\(n).png"), width: w, height: h, channels: 1, pixels: mask)
    }
}

@Suite("Vessel channel: partially labelled HRF-style data (issue #16)")
struct VesselTrainingTests {
    @Test("A vessel set scans images/ and masks/vessels/: nothing but the vessels annotated; a missing or stray mask is an error naming it")
    func scan() throws {
        let root = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        try vesselSet(root, images: 2)
        let set = try LesionDataset.vessels(root)
        #expect(set.samples.map(\.name) == ["V_0", "V_1"])
        #expect(set.annotated.isEmpty && set.samples.allSatisfy { $0.annotated.isEmpty && $0.discMask == nil })
        #expect(set.samples[1].vesselMask?.lastPathComponent == "V_1.png")
        #expect(set.samples[0].annotatedChannels(6) == [false, false, false, false, false, true])
        #expect(set.samples[0].annotatedChannels(5) == [false, false, false, false, false], "a five-channel model never sees the vessels")

        // An IDRiD image (lesions and disc annotated) in a six-channel model: not annotated for the vessels.
        let idrid = LabelledSample(name: "I", image: root, labels: .masks([:]), annotated: Set(LesionClass.allCases), discMask: root)
        #expect(idrid.annotatedChannels(6) == [true, true, true, true, true, false])

        try writeImage(root.appendingPathComponent("images/V_9.png"), width: 8, height: 4, channels: 3, pixels: [UInt8](repeating: 0, count: 96))
        #expect { try LesionDataset.vessels(root) } throws: { "\($0)".contains("V_9.png") && "\($0)".contains("no vessel mask") }
        try FileManager.default.removeItem(at: root.appendingPathComponent("images/V_9.png"))
        try writeImage(root.appendingPathComponent("masks/vessels/W_1.png"), width: 8, height: 4, channels: 1, pixels: [UInt8](repeating: 0, count: 32))
        #expect { try LesionDataset.vessels(root) } throws: { "\($0)".contains("W_1.png") && "\($0)".contains("matches no photograph") }
        #expect { try LesionDataset.vessels(root.appendingPathComponent("masks")) } throws: { "\($0)".contains("not a vessel set") }
    }

    @Test("Label map: vessels are 6 above grey 127, under the disc and every lesion")
    func labelPrecedence() {
        let vessels: [UInt8] = [255, 255, 255, 200, 128, 127, 100, 0]
        let disc: [UInt8] = [255, 0, 0, 0, 0, 0, 0, 255]
        let masks: [LesionClass: [UInt8]] = [.haemorrhage: [0, 1, 0, 0, 0, 0, 0, 0], .microaneurysm: [0, 0, 1, 0, 0, 0, 0, 0]]
        #expect(LabelMap.merge(masks, disc: disc, vessels: vessels, pixels: 8) == [5, 2, 4, 6, 6, 0, 0, 5])
        #expect(LabelMap.merge([:], vessels: vessels, pixels: 8) == [6, 6, 6, 6, 6, 0, 0, 0])
        #expect(RetinalVessels.labelIndex == 6 && RetinalVessels.channel == 5)
    }

    @Test("DatasetSamples with 6 channels: a vessel image is labelled 6 on its vessels and annotated for them alone")
    func samples() throws {
        let root = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        try vesselSet(root, images: 2)
        let sets = try LesionDataset.vessels(root)
        let six = try DatasetSamples(sets, fieldOfViewCrop: false, channels: 6, logger: logger).load(1)
        #expect(Array(six.labels[0..<8]) == [0, 0, 0, 6, 6, 0, 0, 0])
        #expect(six.labels.filter { $0 == 6 }.count == 8 && six.labels.allSatisfy { $0 == 0 || $0 == 6 })
        #expect(six.annotated == [false, false, false, false, false, true])
        let five = try DatasetSamples(sets, fieldOfViewCrop: false, channels: 5, logger: logger).load(1)
        #expect(five.labels.allSatisfy { $0 == 0 } && five.annotated == [false, false, false, false, false])
    }

    @Test("The loss over 6 channels: a vessel image moves only the vessel channel; an IDRiD image never the vessel channel")
    func partialLoss() throws {
        var rng = TrainingRNG(seed: 5)
        let n = 2, h = 3, w = 4, hw = h * w
        let logits = (0..<(n * 6 * hw)).map { _ in Float(rng.uniform(-2, 2)) }
        let labels = (0..<(n * hw)).map { _ in UInt8(rng.below(7)) }
        let flags = [true, true, true, true, true, false,      // IDRiD: lesions and disc
                     false, false, false, false, false, true]  // HRF: vessels
        let (_, g) = try BinaryDiceLoss.evaluate(logits: logits, labels: labels, annotated: flags, batch: n, height: h, width: w)
        #expect(g[5 * hw ..< 6 * hw].allSatisfy { $0 == 0 })
        #expect(g[0 ..< 5 * hw].contains { $0 != 0 })
        #expect(g[6 * hw ..< 11 * hw].allSatisfy { $0 == 0 })
        #expect(g[11 * hw ..< 12 * hw].contains { $0 != 0 })
    }

    @Test("Head expansion to 6 channels: earlier outputs bit-identical; the disc row the same whether the vessels come with it or later")
    func headExpansion() throws {
        let four = try SegmentationModel(architecture: .tinyFixture(variant: .C))
        let weights = four.exportWeights()
        let (w6, a6) = try DiscHead.expand(weights, architecture: four.architecture, to: 6, seed: 3)
        let (w5, a5) = try DiscHead.expand(weights, architecture: four.architecture, seed: 3)
        let (w56, a56) = try DiscHead.expand(w5, architecture: a5, to: 6, seed: 3)
        #expect(a6.numClasses == 6 && a56.numClasses == 6)
        #expect(w6[DiscHead.weightName]!.shape == [6, a6.headChannels, 1, 1] && w6[DiscHead.biasName]!.floats().suffix(2) == [0, 0])
        #expect(w6[DiscHead.weightName]!.floats() == w56[DiscHead.weightName]!.floats())
        let rows = w6[DiscHead.weightName]!.floats(), c = a6.headChannels
        #expect(Array(rows[4 * c ..< 5 * c]) != Array(rows[5 * c ..< 6 * c]), "the vessel row is drawn apart from the disc row")

        let six = try SegmentationModel(architecture: a6, weights: w6)
        var rng = TrainingRNG(seed: 13)
        let input = (0..<(3 * 64 * 64)).map { _ in Float(rng.uniform(-1.5, 1.5)) }
        let out4 = try four.upsampledLogits(Tensor(input, shape: [1, 3, 64, 64])).values()
        let out6 = try six.upsampledLogits(Tensor(input, shape: [1, 3, 64, 64])).values()
        #expect(Array(out6[0..<out4.count]) == out4, "the lesion channels must be bit-identical")

        #expect(throws: TrainingError.self) { try DiscHead.expand(w6, architecture: a6, to: 6, seed: 3) }
        #expect(throws: TrainingError.self) { try DiscHead.expand(weights, architecture: four.architecture, to: 7, seed: 3) }
        #expect(ModelCard(name: "x", version: "1", architecture: a6).classes == ["EX", "HE", "SE", "MA", "OD", "VESSELS"])
        #expect(ModelCard(name: "x", version: "1", architecture: a6).hasDiscChannel)
    }

    @Test("A training session with --vessels: a six-channel model whose card names the vessels, trained on both sets")
    func session() throws {
        let root = try temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let side = 64
        // Two IDRiD-layout images with an exudate square and a disc.
        for n in 0..<2 {
            var ex = [UInt8](repeating: 0, count: side * side), od = ex
            for y in 20..<28 { for x in 20..<28 { ex[y * side + x] = 255 } }
            for y in 40..<56 { for x in 40..<56 { od[y * side + x] = 255 } }
            try writeImage(root.appendingPathComponent("idrid/images/I_\(n).png"), width: side, height: side, channels: 3,
                           pixels: [UInt8](repeating: UInt8(100 + 20 * n), count: 3 * side * side))
            try writeImage(root.appendingPathComponent("idrid/masks/EX/I_\(n)_EX.png"), width: side, height: side, channels: 1, pixels: ex)
            try writeImage(root.appendingPathComponent("idrid/masks/OD/I_\(n)_OD.png"), width: side, height: side, channels: 1, pixels: od)
        }
        try vesselSet(root.appendingPathComponent("hrf"), images: 3, width: side, height: side)
        var request = TrainingRequest(data: root.appendingPathComponent("idrid"), validation: nil, initialWeights: nil,
                                      architecture: .tinyFixture(variant: .C),
                                      configuration: .short(iterations: 3, crop: (32, 32), scale: (64, 64), checkpointInterval: 2),
                                      workDirectory: root.appendingPathComponent("work"),
                                      modelDirectory: root.appendingPathComponent("models"), name: "with-vessels")
        request.fieldOfViewCrop = false
        request.vessels = root.appendingPathComponent("hrf")
        request.vesselImages = ["V_0", "V_2"]
        request.vesselShare = 0.5
        let outcome = try TrainingSession.run(request, connection: nil, logger: logger)
        #expect(outcome.card.architecture.numClasses == 6)
        #expect(outcome.card.classes == ["EX", "HE", "SE", "MA", "OD", "VESSELS"])
        let loaded = try WeightLoader.load(outcome.weights)
        #expect(loaded.tensors[DiscHead.biasName]?.shape == [6])

        // Fine-tuning the six-channel model without a vessel set keeps its six channels.
        var again = request
        again.name = "again"
        again.initialWeights = outcome.weights
        again.architecture = nil
        again.vessels = nil
        again.vesselImages = nil
        again.workDirectory = root.appendingPathComponent("work-again")
        #expect(try TrainingSession.run(again, connection: nil, logger: logger).card.architecture.numClasses == 6)
    }

    @Test("--vessel-share: repeats that come nearest the share with the shortest pass; a repeated source maps draws onto its base")
    func share() throws {
        #expect(RepeatedSamples.repeats(main: 12, extra: 20, share: 0.25) == (main: 5, extra: 1))
        #expect(RepeatedSamples.repeats(main: 12, extra: 20, share: 0.5) == (main: 5, extra: 3))
        #expect(RepeatedSamples.repeats(main: 12, extra: 2, share: 0.25) == (main: 1, extra: 2))
        let r = RepeatedSamples.repeats(main: 11, extra: 20, share: 0.1)
        #expect(abs(Double(20 * r.extra) / Double(20 * r.extra + 11 * r.main) - 0.1) < 0.01)
        let base = InMemorySamples((0..<3).map {
            LabelledImage(name: "s\($0)", width: 1, height: 1, rgb: [0, 0, 0], labels: [0], annotated: [true, true, true, true])
        })
        let repeated = RepeatedSamples(base, indices: [0, 1, 0, 1, 2])
        #expect(repeated.count == 5)
        #expect(try (0..<5).map { try repeated.load($0).name } == ["s0", "s1", "s0", "s1", "s2"])
    }

    @Test("HRF's vessel masks read as a vessel set: 20 photographs, vessels a plausible share of each field of view",
          .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
    func sharedHRF() throws {
        let set = try LesionDataset.vessels(SharedFixtures.root.appendingPathComponent("data/hrf"))
        #expect(set.samples.count == 20 && set.samples.allSatisfy { $0.vesselMask != nil })
        let sample = try DatasetSamples(set.selecting(["01_dr"]), fieldOfViewCrop: true, channels: 6, logger: logger).load(0)
        let vessel = Double(sample.labels.filter { $0 == UInt8(RetinalVessels.labelIndex) }.count) / Double(sample.labels.count)
        // HRF's vessel trees cover about 7–10 % of the field of view (a square crop of it: π/4 of that share).
        #expect((0.03...0.15).contains(vessel), "vessel share \(vessel)")
        #expect(sample.labels.allSatisfy { $0 == 0 || $0 == UInt8(RetinalVessels.labelIndex) })
    }
}

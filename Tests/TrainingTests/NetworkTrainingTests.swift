import Checkpoints
import Foundation
import Logging
import Network
import Testing
@testable import Training

private let logger = Logger(label: "test.training.network")

/// Toy samples at a size the tiny M2MRF network accepts after the crop (64×64).
private func networkSamples() -> InMemorySamples {
    InMemorySamples(toySamples(3, seed: 5).map { s in
        // 30×20 → 90×60 by repeating pixels, so crops of 64 hold blobs.
        var rgb = [UInt8](), labels = [UInt8]()
        for y in 0..<60 { for x in 0..<90 { let i = (y / 3) * 30 + x / 3; rgb += s.rgb[(3 * i)..<(3 * i + 3)]; labels.append(s.labels[i]) } }
        return LabelledImage(name: s.name, width: 90, height: 60, rgb: rgb, labels: labels, annotated: [true, true, true, true])
    })
}

private func networkConfiguration() -> TrainingConfiguration {
    var c = TrainingConfiguration()
    c.seed = 11
    c.iterations = 6
    c.schedule = PolySchedule(maxIterations: 6)
    c.cropHeight = 64
    c.cropWidth = 64
    c.scaleLong = 96
    c.scaleShort = 64
    c.batchSize = 1
    c.accumulation = 2
    c.checkpointInterval = 2
    c.architecture = .tinyFixture(variant: .C)
    return c
}

@Test("M2MRF network: a run killed after a checkpoint and resumed ends with the same weights as an uninterrupted one")
func networkKillAndResume() throws {
    let data = networkSamples(), configuration = networkConfiguration()
    let a = try temporaryFolder("netstraight"), b = try temporaryFolder("netkilled")
    defer { for f in [a, b] { try? FileManager.default.removeItem(at: f) } }

    var straight = try Trainer(model: NetworkModel(SegmentationModel(architecture: .tinyFixture(variant: .C))), data: data,
                               configuration: configuration, checkpointFolder: a, logger: logger)
    let losses = try straight.run()
    #expect(losses.allSatisfy { $0.isFinite })

    var killed = try Trainer(model: NetworkModel(SegmentationModel(architecture: .tinyFixture(variant: .C))), data: data,
                             configuration: configuration, checkpointFolder: b, logger: logger)
    try killed.run(stoppingAt: 3)   // checkpoint at 2; iteration 3 dies with the process

    var resumed = try Trainer(model: NetworkModel(SegmentationModel(architecture: .tinyFixture(variant: .C))), data: data,
                              configuration: configuration, checkpointFolder: b, logger: logger)
    #expect(try resumed.resume() == 2)
    try resumed.run()

    let s = straight.model.state, r = resumed.model.state
    #expect(s.names == r.names)
    let differing = s.names.filter { s[$0] != r[$0] }
    #expect(differing.isEmpty, "tensors that differ: \(differing.prefix(5))")
    #expect(resumed.optimiser == straight.optimiser)
    // The weights moved, and the batch-norm buffers with them.
    let fresh = NetworkModel(try SegmentationModel(architecture: .tinyFixture(variant: .C))).state
    #expect(s["decode_head.conv_seg.weight"] != fresh["decode_head.conv_seg.weight"])
    #expect(s["decode_head.convs.0.bn.running_mean"] != fresh["decode_head.convs.0.bn.running_mean"])
}

@Test("M2MRF network: partially-labelled batches are refused until the engine's loss can mask classes")
func networkRefusesPartial() throws {
    var model = NetworkModel(try SegmentationModel(architecture: .tinyFixture(variant: .C)))
    let batch = TrainingBatch(count: 1, height: 32, width: 32, images: [Float](repeating: 0, count: 3 * 32 * 32),
                              labels: [UInt8](repeating: 0, count: 32 * 32), annotated: [true, false, true, true])
    #expect(throws: TrainingError.self) { try model.trainingStep(batch, loss: LossSettings()) }
}

import Checkpoints
import Foundation
import Logging
import Network
import Tensor
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
    var c = TrainingConfiguration.short(iterations: 6, crop: (64, 64), scale: (96, 64), checkpointInterval: 2)
    c.seed = 11
    c.batchSize = 1
    c.accumulation = 2
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

@Test("Lesion-centred crops and the sample cache keep kill-and-resume exact; a snapshot of the last checkpoint is the model")
func networkResumeWithLesionCropsAndSnapshot() throws {
    var configuration = networkConfiguration()
    configuration.lesionCropProbability = 0.5
    configuration.bceWeight = 1
    let a = try temporaryFolder("lesionstraight"), b = try temporaryFolder("lesionkilled"), out = try temporaryFolder("snapshot")
    defer { for f in [a, b, out] { try? FileManager.default.removeItem(at: f) } }
    func trainer(_ folder: URL) throws -> Trainer<NetworkModel> {
        try Trainer(model: NetworkModel(SegmentationModel(architecture: .tinyFixture(variant: .C))),
                    data: CachedSamples(networkSamples(), budgetBytes: 1 << 20),
                    configuration: configuration, checkpointFolder: folder, logger: logger)
    }
    var straight = try trainer(a)
    try straight.run()
    var killed = try trainer(b)
    try killed.run(stoppingAt: 5)
    var resumed = try trainer(b)
    #expect(try resumed.resume() == 4)
    try resumed.run()
    let s = straight.model.state, r = resumed.model.state
    #expect(s.names.filter { s[$0] != r[$0] }.isEmpty)

    // The snapshot bundle of the finished run loads as the same network.
    let checkpoint = try #require(try TrainingCheckpoint.latest(in: a))
    let bundle = try TrainingSnapshot.export(checkpoint, from: a, name: "snap", to: out)
    let loaded = try WeightLoader.load(bundle)
    #expect(loaded.card?.name == "snap" && loaded.architecture == .tinyFixture(variant: .C))
    let snapshot = NetworkModel(try SegmentationModel(architecture: loaded.architecture, weights: loaded.tensors)).state
    #expect(s.names.filter { s[$0] != snapshot[$0] }.isEmpty)
}

@Test("Averaging checkpoints: the bundle holds the element-wise mean of the runs' weights and BN buffers; other states are refused")
func checkpointAverage() throws {
    let folder = try temporaryFolder("average"), out = try temporaryFolder("averagebundle")
    defer { for f in [folder, out] { try? FileManager.default.removeItem(at: f) } }
    var trainer = try Trainer(model: NetworkModel(SegmentationModel(architecture: .tinyFixture(variant: .C))),
                              data: networkSamples(), configuration: networkConfiguration(), checkpointFolder: folder, logger: logger)
    trainer.keepCheckpoints = 10
    try trainer.run()
    let files = try TrainingCheckpoint.files(in: folder)
    #expect(files.map(\.lastPathComponent) == ["iter_00000002.safetensors", "iter_00000004.safetensors", "iter_00000006.safetensors"])
    let checkpoints = try files.map { try TrainingCheckpoint.read($0) }
    let bundle = try TrainingSnapshot.exportAverage(checkpoints, from: folder, name: "avg", to: out)
    let loaded = try WeightLoader.load(bundle)
    #expect(loaded.card?.changelog["avg"]?.contains("iterations 2, 4, 6 of 6") == true)
    let averaged = NetworkModel(try SegmentationModel(architecture: loaded.architecture, weights: loaded.tensors)).state
    // The mean, computed here in double precision from the three files.
    var checked = 0
    for name in checkpoints[0].model.names {
        let values = checkpoints.map { $0.model[name]!.values }
        let got = try #require(averaged[name]).values
        for i in got.indices {
            let mean = values.map { Double($0[i]) }.reduce(0, +) / 3
            if abs(Double(got[i]) - mean) > 1e-6 * max(1, abs(mean)) { Issue.record("\(name)[\(i)]: \(got[i]) against \(mean)"); return }
        }
        checked += 1
    }
    #expect(checked == checkpoints[0].model.names.count)
    // Not simply the last checkpoint: the weights moved between checkpoints, in the parameters and the BN buffers.
    for name in ["decode_head.conv_seg.weight", "decode_head.convs.0.bn.running_mean"] {
        #expect(averaged[name] != checkpoints[2].model[name])
    }
    // States that do not hold the same tensors are refused, naming the difference.
    var other = checkpoints[1].model
    other["decode_head.conv_seg.bias"] = nil
    #expect(throws: TrainingError.self) { try ModelState.mean([checkpoints[0].model, other]) }
    var reshaped = checkpoints[1].model
    reshaped["decode_head.conv_seg.bias"] = NamedTensor(zeros: [1])
    #expect(throws: TrainingError.self) { try ModelState.mean([checkpoints[0].model, reshaped]) }
}

@Test("M2MRF network: the one bdice trains fully and partially labelled batches; an unannotated class changes the loss")
func networkOwnLoss() throws {
    var rng = TrainingRNG(seed: 4)
    let n = 2, h = 64, w = 64
    let images = (0..<(n * 3 * h * w)).map { _ in Float(rng.uniform(-1, 1)) }
    let labels = (0..<(n * h * w)).map { i in UInt8((i / 97) % 5) }
    let batch = TrainingBatch(count: n, height: h, width: w, images: images, labels: labels, annotated: [Bool](repeating: true, count: 8))
    var official = NetworkModel(try SegmentationModel(architecture: .tinyFixture(variant: .C)))
    // The fully-annotated bdice step is the engine's own (the one the parity fixtures check).
    let engine = try SegmentationModel(architecture: .tinyFixture(variant: .C))
    let a = try official.trainingStep(batch, loss: LossSettings())
    let e = try engine.trainingStep(input: Tensor(images, shape: [n, 3, h, w]), labels: labels.map { Int32($0) })
    #expect(abs(a.loss - e.loss) < 1e-6 * max(1, abs(a.loss)), "trainer \(a.loss), engine \(e.loss)")
    var partial = batch
    partial.annotated = [true, true, false, false, true, false, true, true]
    let p = try official.trainingStep(partial, loss: LossSettings(bceWeight: 0.5))
    #expect(p.loss.isFinite && p.loss != a.loss)
}

import Checkpoints
import Foundation
import Imaging
import Lesions
import Logging
import Store
import Testing
import TestSupport
@testable import Training

private let logger = Logger(label: "test.training.session")

/// Writes a small synthetic fundus set in the IDRiD layout: 640×640 photographs with a dark surround, an orange
/// field of view (radius 300), bright exudates and dark haemorrhages; SE and MA annotated, absent.
private func syntheticSet(_ root: URL, images: Int, seed: UInt64) throws {
    let fm = FileManager.default
    for folder in ["images", "masks/EX", "masks/HE", "masks/SE", "masks/MA"] {
        try fm.createDirectory(at: root.appendingPathComponent(folder), withIntermediateDirectories: true)
    }
    var rng = TrainingRNG(seed: seed)
    let side = 640
    for n in 0..<images {
        var rgb = [UInt8](repeating: 0, count: 3 * side * side), ex = [UInt8](repeating: 0, count: side * side)
        var he = ex
        let blobs = (0..<12).map { _ in (x: 150 + rng.below(340), y: 150 + rng.below(340), r: 6 + rng.below(14), ex: rng.coin()) }
        for y in 0..<side {
            for x in 0..<side {
                let i = y * side + x
                let dx = x - 320, dy = y - 320
                guard dx * dx + dy * dy < 300 * 300 else { continue }
                var c = (180 + rng.below(20), 80 + rng.below(20), 30 + rng.below(10))
                for b in blobs where (x - b.x) * (x - b.x) + (y - b.y) * (y - b.y) < b.r * b.r {
                    if b.ex { c = (240, 230, 90); ex[i] = 255 } else { c = (90, 10, 5); he[i] = 255 }
                }
                rgb[3 * i] = UInt8(c.0); rgb[3 * i + 1] = UInt8(c.1); rgb[3 * i + 2] = UInt8(c.2)
            }
        }
        let name = "S_\(n)"
        try ImageCodec.encodePNG(Image(width: side, height: side, channels: 3, pixels: rgb)).write(to: root.appendingPathComponent("images/\(name).png"))
        try ImageCodec.encodePNG(Image(width: side, height: side, channels: 1, pixels: ex)).write(to: root.appendingPathComponent("masks/EX/\(name)_EX.png"))
        try ImageCodec.encodePNG(Image(width: side, height: side, channels: 1, pixels: he)).write(to: root.appendingPathComponent("masks/HE/\(name)_HE.png"))
    }
}

@Test("A retraining session trains, validates against the active model, saves the bundle and registers a candidate")
func session() async throws {
    let root = try temporaryFolder("session")
    defer { try? FileManager.default.removeItem(at: root) }
    try syntheticSet(root.appendingPathComponent("train"), images: 2, seed: 1)
    try syntheticSet(root.appendingPathComponent("val"), images: 1, seed: 2)
    try await withTestDatabase { db in
        let connection = try db.connect()
        let configuration = TrainingConfiguration.short(iterations: 2, crop: (64, 64), scale: (128, 128), checkpointInterval: 1)
        func request(_ name: String, from: URL?, validate: Bool = true) -> TrainingRequest {
            TrainingRequest(data: root.appendingPathComponent("train"), validation: validate ? root.appendingPathComponent("val") : nil,
                            initialWeights: from, architecture: from == nil ? .tinyFixture(variant: .C) : nil,
                            configuration: configuration, workDirectory: root.appendingPathComponent("work/\(name)"),
                            modelDirectory: root.appendingPathComponent("models"), name: name)
        }
        var firstRequest = request("first", from: nil)
        firstRequest.validationOverlays = root.appendingPathComponent("pictures")   // what `crossval` asks per fold
        let first = try TrainingSession.run(firstRequest, connection: connection, logger: logger)
        #expect(first.metrics.validation?.images == 1)
        #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent("pictures/S_0_truth-vs-model.png").path),
                "the validation drew the truth beside the model's masks")
        #expect(first.metrics.figures["mAUPR"] != nil && first.metrics.baseline == nil)
        #expect(FileManager.default.fileExists(atPath: root.appendingPathComponent("models/first/metadata.json").path))
        // A training checkpoint loads as a model (to validate a run still going): the weights the bundle holds.
        let checkpoint = try WeightLoader.load(root.appendingPathComponent("work/first/iter_00000002.safetensors"))
        let bundle = try WeightLoader.load(first.weights)
        #expect(checkpoint.architecture == bundle.architecture && checkpoint.card == nil && checkpoint.meta["iteration"] == "2")
        #expect(Set(checkpoint.tensors.names) == Set(bundle.tensors.names))
        for name in bundle.tensors.names {   // (batch counts: f32 in a checkpoint, i64 in a bundle, as PyTorch's)
            #expect(checkpoint.tensors[name]?.shape == bundle.tensors[name]?.shape
                        && checkpoint.tensors[name]?.floats() == bundle.tensors[name]?.floats(), "\(name)")
        }
        let registry = ModelRegistry(connection: connection)
        _ = try ModelRollout(registry: registry).promote("first", force: false)

        // Fine-tuning the active model validates it alongside, on the same images.
        let second = try TrainingSession.run(request("second", from: first.weights), connection: connection, logger: logger)
        #expect(second.metrics.baseline?.model == "first")
        #expect(second.metrics.baseline?.figures["mAUPR"] == first.metrics.figures["mAUPR"])
        let versions = try registry.list()
        #expect(versions.map(\.name) == ["first", "second"])
        #expect(versions[1].status == .candidate && versions[1].architecture == "HRNetV2-W8 M2MRF-C")
        #expect(ValidationMetrics.parse(versions[1].metricsJSON) == second.metrics)
        let card = try ModelCard.read(root.appendingPathComponent("models/second/metadata.json"))
        #expect(card.changelog["second"]?.contains("from first") == true)
        // Same seed, same start, same data: the same weights, bit for bit.
        var againRequest = request("second-again", from: first.weights, validate: false)
        againRequest.command = "fundus-screen train --data 'my set' --iterations 2"
        let record = CrossValidationRecord(folds: 2, images: 4, settings: "iterations=2", augmentation: "1 pass (no TTA)",
                                           statistics: ["mAUPR": .init([(1, 0.4), (2, 0.6)])],
                                           singlePassStatistics: nil, foldResults: [], differences: [], table: "| fold |")
        againRequest.crossValidation = record
        againRequest.channelScales = ["MA": [1.5]]   // `train --class-scale MA=1.5`: the card's, not the start's (none)
        let again = try TrainingSession.run(againRequest, connection: nil, logger: logger)
        // The card says how it was made: the command, the seconds of training, the machine, the cross-validation.
        let againCard = try ModelCard.read(root.appendingPathComponent("models/second-again/metadata.json"))
        #expect(againCard.training?.command == "fundus-screen train --data 'my set' --iterations 2")
        #expect(againCard.training?.iterations == 2 && (againCard.training?.seconds ?? 0) > 0)
        #expect(againCard.training?.machine.contains("cores") == true)
        #expect(againCard.crossValidation == record)
        #expect(againCard.channelScales == ["MA": [1.5]] && card.channelScales.isEmpty)
        #expect(card.training == nil && card.crossValidation == nil)   // a request without them records none
        let a = try Safetensors.read(again.weights), b = try Safetensors.read(second.weights)
        #expect(a.names == b.names && a.tensors == b.tensors)

        // A name already registered is refused before any training, not at registration after it.
        do {
            _ = try TrainingSession.run(request("second", from: first.weights), connection: connection, logger: logger)
            Issue.record("a second model named 'second' was trained")
        } catch let error as TrainingError {
            #expect("\(error)".contains("already registered"), "\(error)")
        }
        #expect(try registry.list().map(\.name) == ["first", "second"])
    }
}

@Test("--more-data: a set split over --data and --more-data trains to the very weights of the set in one folder; a name in both is refused")
func moreDataIsTheSameTraining() throws {
    let root = try temporaryFolder("more-data")
    defer { try? FileManager.default.removeItem(at: root) }
    let whole = root.appendingPathComponent("whole")
    try syntheticSet(whole, images: 3, seed: 5)
    // The same files in two folders: S_0 and S_1 in one, S_2 in the other.
    let fm = FileManager.default
    for (folder, names) in [("first", ["S_0", "S_1"]), ("second", ["S_2"]), ("clash", ["S_1"])] {
        for sub in ["images", "masks/EX", "masks/HE", "masks/SE", "masks/MA"] {
            try fm.createDirectory(at: root.appendingPathComponent("\(folder)/\(sub)"), withIntermediateDirectories: true)
        }
        for name in names {
            try fm.copyItem(at: whole.appendingPathComponent("images/\(name).png"), to: root.appendingPathComponent("\(folder)/images/\(name).png"))
            for c in ["EX", "HE"] {
                try fm.copyItem(at: whole.appendingPathComponent("masks/\(c)/\(name)_\(c).png"),
                                to: root.appendingPathComponent("\(folder)/masks/\(c)/\(name)_\(c).png"))
            }
        }
    }
    let configuration = TrainingConfiguration.short(iterations: 3, crop: (64, 64), scale: (128, 128), checkpointInterval: 3)
    func train(_ name: String, data: String, more: [String]) throws -> URL {
        var request = TrainingRequest(data: root.appendingPathComponent(data), validation: nil, initialWeights: nil,
                                      architecture: .tinyFixture(variant: .C), configuration: configuration,
                                      workDirectory: root.appendingPathComponent("work/\(name)"),
                                      modelDirectory: root.appendingPathComponent("models"), name: name)
        request.moreData = more.map { .folder(root.appendingPathComponent($0)) }
        request.register = false
        return try TrainingSession.run(request, connection: nil, logger: logger).weights
    }
    let a = try Safetensors.read(try train("one-folder", data: "whole", more: []))
    let b = try Safetensors.read(try train("two-folders", data: "first", more: ["second"]))
    #expect(a.names == b.names && a.tensors == b.tensors, "the same images in the same order: the same training")
    let c = try Safetensors.read(try train("fewer", data: "first", more: []))
    #expect(c.tensors != a.tensors, "without the second folder it is another training")
    #expect { _ = try train("clash", data: "first", more: ["clash"]) } throws: { "\($0)".contains("S_1") }
}

import Foundation
import Logging
import Synchronization
import Testing
@testable import Training

private let logger = Logger(label: "test.training.loop")

/// Small fundus-like samples, 30×20: a dark background with bright (EX) and red (HE) 5×5 blobs whose labels follow
/// the colour.
func toySamples(_ count: Int, seed: UInt64, onlyPresent: Bool = false) -> [LabelledImage] {
    var rng = TrainingRNG(seed: seed)
    return (0..<count).map { n in
        let w = 30, h = 20
        var rgb = [UInt8](repeating: 0, count: 3 * w * h), labels = [UInt8](repeating: 0, count: w * h)
        let blocks = (0..<(6 * 4)).map { _ in rng.below(6) }   // 5×5 blocks; 0: EX, 1: HE, else background
        for i in 0..<(w * h) {
            let kind = blocks[(i / w) / 5 * 6 + (i % w) / 5]
            let (r, g, b, l): (Int, Int, Int, UInt8) = kind == 0 ? (230, 220, 60, 1) : kind == 1 ? (150, 20, 10, 2) : (90, 40, 20, 0)
            rgb[3 * i] = UInt8(r - rng.below(30)); rgb[3 * i + 1] = UInt8(g - rng.below(20)); rgb[3 * i + 2] = UInt8(b - rng.below(10))
            labels[i] = l
        }
        return LabelledImage(name: "toy\(n)", width: w, height: h, rgb: rgb, labels: labels, annotated: onlyPresent ? [true, true, false, false] : [true, true, n % 2 == 0, true])
    }
}

func toyConfiguration(iterations: Int = 12) -> TrainingConfiguration {
    var c = TrainingConfiguration.short(
        iterations: iterations, schedule: PolySchedule(baseLearningRate: 0.5, minimumLearningRate: 1e-4, maxIterations: iterations),
        crop: (8, 12), scale: (24, 16), checkpointInterval: 4)
    c.seed = 2024
    c.batchSize = 2
    c.accumulation = 2
    c.mean = [100, 50, 20]
    c.std = [60, 40, 15]
    return c
}

@Test("A run killed after its last checkpoint and resumed ends with the same weights as an uninterrupted run")
func killAndResume() throws {
    let data = InMemorySamples(toySamples(5, seed: 1))
    let configuration = toyConfiguration()
    let straightFolder = try temporaryFolder("straight"), killedFolder = try temporaryFolder("killed")
    defer { for f in [straightFolder, killedFolder] { try? FileManager.default.removeItem(at: f) } }

    var straight = try Trainer(model: ToyPixelModel(seed: 1), data: data, configuration: configuration, checkpointFolder: straightFolder, logger: logger)
    try straight.run()

    var killed = try Trainer(model: ToyPixelModel(seed: 1), data: data, configuration: configuration, checkpointFolder: killedFolder, logger: logger)
    try killed.run(stoppingAt: 6)   // checkpoint at 4; iterations 5 and 6 are lost with the process
    #expect(killed.iteration == 6)

    // Checkpoint 4 recorded the seconds trained up to it; the resumed run goes on from them.
    let atFour = try #require(try TrainingCheckpoint.latest(in: killedFolder)?.trainingSeconds)
    #expect(atFour > 0 && atFour <= killed.trainingSeconds!)
    var resumed = try Trainer(model: ToyPixelModel(seed: 77), data: data, configuration: configuration, checkpointFolder: killedFolder, logger: logger)
    #expect(try resumed.resume() == 4)
    #expect(resumed.trainingSeconds == atFour)
    try resumed.run()
    #expect(resumed.trainingSeconds! > atFour)

    #expect(resumed.iteration == 12)
    #expect(resumed.model.state == straight.model.state)
    #expect(resumed.optimiser == straight.optimiser)
    #expect(resumed.rng == straight.rng)
    #expect(resumed.sampler == straight.sampler)
    // Only the last two checkpoints are kept.
    let kept = try FileManager.default.contentsOfDirectory(atPath: straightFolder.path).filter { $0.hasPrefix("iter_") }.sorted()
    #expect(kept == ["iter_00000008.safetensors", "iter_00000012.safetensors"])
    // And the final checkpoints on disk agree.
    var a = try #require(try TrainingCheckpoint.latest(in: straightFolder)), b = try #require(try TrainingCheckpoint.latest(in: resumedFolderOf(resumed)))
    #expect(a.trainingSeconds != nil && b.trainingSeconds != nil)
    a.trainingSeconds = nil   // time is the one thing that differs
    b.trainingSeconds = nil
    #expect(a == b)
}

private func resumedFolderOf(_ t: Trainer<ToyPixelModel>) -> URL { t.checkpointFolder! }

@Test("Resuming with a different configuration is refused, naming the setting")
func resumeOtherConfiguration() throws {
    let data = InMemorySamples(toySamples(2, seed: 1))
    let folder = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: folder) }
    var first = try Trainer(model: ToyPixelModel(seed: 1), data: data, configuration: toyConfiguration(), checkpointFolder: folder, logger: logger)
    try first.run(stoppingAt: 4)
    // Saving more or less often is not a different run.
    var oftener = toyConfiguration()
    oftener.checkpointInterval = 1
    var third = try Trainer(model: ToyPixelModel(seed: 1), data: data, configuration: oftener, checkpointFolder: folder, logger: logger)
    #expect(try third.resume() == 4)
    var other = toyConfiguration()
    other.seed = 1
    var second = try Trainer(model: ToyPixelModel(seed: 1), data: data, configuration: other, checkpointFolder: folder, logger: logger)
    #expect { try second.resume() } throws: { ($0 as? TrainingError)?.message.contains("seed") == true }
}

// bdice of a class absent from a crop stays near 1 whatever the model does (1 − ε/(Σp + ε)), so this set annotates
// only the two classes the toy images contain.
@Test("The toy model learns: the loss falls, progress lines carry iteration, loss, lr, speed and ETA")
func learns() throws {
    var configuration = toyConfiguration(iterations: 60)
    configuration.photometricDistortion = false
    configuration.checkpointInterval = 1000
    configuration.schedule = PolySchedule(baseLearningRate: 1.0, minimumLearningRate: 1e-4, maxIterations: 60)
    let lines = LockedLines()
    var trainer = try Trainer(model: ToyPixelModel(seed: 3), data: InMemorySamples(toySamples(6, seed: 2, onlyPresent: true)), configuration: configuration,
                              checkpointFolder: nil, logger: logger)
    trainer.onProgress = { lines.append($0.line) }
    let losses = try trainer.run()
    let early = losses.prefix(10).reduce(0, +) / 10, late = losses.suffix(10).reduce(0, +) / 10
    #expect(late < early * 0.7, "loss \(early) → \(late)")
    #expect(lines.all.count == 6)
    #expect(lines.all.last?.hasPrefix("iter 60/60  loss ") == true)
    #expect(lines.all.last?.contains("img/s  data ") == true)
    #expect(lines.all.last?.hasSuffix("%  ETA 0h00m00s") == true)
}

final class LockedLines: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ s: String) { lock.lock(); lines.append(s); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
}

@Test("Resumed from a checkpoint that recorded no training time, the run's time is unknown, not its last part taken for the whole")
func resumeWithoutRecordedTime() throws {
    let data = InMemorySamples(toySamples(5, seed: 1))
    let configuration = toyConfiguration()
    let folder = try temporaryFolder("untimed")
    defer { try? FileManager.default.removeItem(at: folder) }
    var first = try Trainer(model: ToyPixelModel(seed: 1), data: data, configuration: configuration, checkpointFolder: folder, logger: logger)
    try first.run(stoppingAt: 4)
    var old = try #require(try TrainingCheckpoint.latest(in: folder))
    #expect(old.trainingSeconds != nil)
    old.trainingSeconds = nil   // as a checkpoint of an earlier build
    try old.write(to: folder)
    var resumed = try Trainer(model: ToyPixelModel(seed: 1), data: data, configuration: configuration, checkpointFolder: folder, logger: logger)
    #expect(try resumed.resume() == 4)
    #expect(resumed.trainingSeconds == nil)
    try resumed.run()
    #expect(resumed.iteration == configuration.iterations && resumed.trainingSeconds == nil)
}

@Test("A stop requested mid-run writes a checkpoint at that iteration and throws .interrupted; resuming ends as an uninterrupted run")
func stopOnRequestAndResume() throws {
    let data = InMemorySamples(toySamples(5, seed: 1))
    let configuration = toyConfiguration()   // checkpoints every 4 iterations
    let straightFolder = try temporaryFolder("straight-stop"), stoppedFolder = try temporaryFolder("stopped")
    defer { for f in [straightFolder, stoppedFolder] { try? FileManager.default.removeItem(at: f) } }

    var straight = try Trainer(model: ToyPixelModel(seed: 1), data: data, configuration: configuration, checkpointFolder: straightFolder, logger: logger)
    try straight.run()

    // The request arrives during iteration 6 (between two scheduled checkpoints).
    let asked = Mutex(0)
    var stopped = try Trainer(model: ToyPixelModel(seed: 1), data: data, configuration: configuration, checkpointFolder: stoppedFolder, logger: logger)
    stopped.stopRequested = { asked.withLock { $0 += 1; return $0 >= 6 } }
    do { try stopped.run(); Issue.record("the run should stop on request") } catch let e as TrainingError {
        #expect(e.code == .interrupted)
        #expect(e.message.contains("iteration 6/12") && e.message.contains(stoppedFolder.path), "\(e.message)")
    }
    #expect(stopped.iteration == 6)
    #expect(try TrainingCheckpoint.latest(in: stoppedFolder)?.iteration == 6)   // written for the stop, not scheduled

    var resumed = try Trainer(model: ToyPixelModel(seed: 77), data: data, configuration: configuration, checkpointFolder: stoppedFolder, logger: logger)
    #expect(try resumed.resume() == 6)
    try resumed.run()
    #expect(resumed.iteration == 12)
    #expect(resumed.model.state == straight.model.state)
    #expect(resumed.optimiser == straight.optimiser)
    #expect(resumed.rng == straight.rng)
    #expect(resumed.sampler == straight.sampler)
}

@Test("Preparing the next batch on another thread changes nothing: the same weights, generator and sampler as preparing each in turn, through a stop and a resume")
func prefetchMatchesSequential() throws {
    let data = InMemorySamples(toySamples(5, seed: 3))
    let configuration = toyConfiguration()   // two micro-batches a step, checkpoints every 4
    let folders = try ["in-turn", "prefetch"].map { try temporaryFolder("prefetch-\($0)") }
    defer { for f in folders { try? FileManager.default.removeItem(at: f) } }

    var inTurn = try Trainer(model: ToyPixelModel(seed: 5), data: data, configuration: configuration, checkpointFolder: folders[0], logger: logger)
    inTurn.prefetchBatches = false
    try inTurn.run()

    // Stopped at 7 (a prepared batch is thrown away with the process), resumed from the checkpoint at 4.
    var first = try Trainer(model: ToyPixelModel(seed: 5), data: data, configuration: configuration, checkpointFolder: folders[1], logger: logger)
    #expect(first.prefetchBatches)
    try first.run(stoppingAt: 7)
    var resumed = try Trainer(model: ToyPixelModel(seed: 99), data: data, configuration: configuration, checkpointFolder: folders[1], logger: logger)
    #expect(try resumed.resume() == 4)
    try resumed.run()
    #expect(resumed.model.state == inTurn.model.state)
    #expect(resumed.optimiser == inTurn.optimiser)
    #expect(resumed.rng == inTurn.rng)
    #expect(resumed.sampler == inTurn.sampler)
}

/// Fails to load one sample, as an unreadable photograph would.
private struct FailingSamples: TrainingSampleSource {
    var inner: InMemorySamples
    var failing: Int
    var count: Int { inner.count }
    func load(_ index: Int) throws -> LabelledImage {
        if index == failing { throw TrainingError(.dataset, "toy\(index): cannot be read") }
        return try inner.load(index)
    }
}

@Test("A sample that cannot be loaded on the preparing thread stops the run with its error, as it would without prefetching")
func prefetchPassesLoadErrors() throws {
    let data = FailingSamples(inner: InMemorySamples(toySamples(5, seed: 3)), failing: 2)
    let stoppedAt = try [false, true].map { prefetch in
        var trainer = try Trainer(model: ToyPixelModel(seed: 5), data: data, configuration: toyConfiguration(), checkpointFolder: nil, logger: logger)
        trainer.prefetchBatches = prefetch
        #expect { try trainer.run() } throws: { ($0 as? TrainingError)?.message == "toy2: cannot be read" }
        return trainer.iteration
    }
    // Four draws a step from a shuffled pass over five samples: toy2 comes in the first two steps, the same one both ways.
    #expect(stoppedAt[0] < 2 && stoppedAt[0] == stoppedAt[1], "\(stoppedAt)")
}

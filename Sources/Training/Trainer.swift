import Foundation
import Logging

/// Where training images come from: decoded, cropped to the field of view, with merged labels.
public protocol TrainingSampleSource: Sendable {
    var count: Int { get }
    func load(_ index: Int) throws -> LabelledImage
}

/// Samples already in memory (tests, small sets).
public struct InMemorySamples: TrainingSampleSource {
    public var samples: [LabelledImage]
    public init(_ samples: [LabelledImage]) { self.samples = samples }
    public var count: Int { samples.count }
    public func load(_ index: Int) throws -> LabelledImage { samples[index] }
}

/// One progress report: after each logged optimiser step.
public struct TrainingProgress: Sendable {
    public var iteration: Int
    public var iterations: Int
    /// Mean loss of this step's micro-batches.
    public var loss: Float
    public var learningRate: Double
    public var imagesPerSecond: Double
    /// Seconds to the end at the current speed.
    public var secondsLeft: Double
    /// Share of the wall time spent waiting for samples to be loaded and augmented (the rest is the network and the
    /// update); with `prefetchBatches` only what the preparing thread has not finished during the previous step.
    public var dataShare: Double = 0

    public var line: String {
        let eta = Int(secondsLeft.isFinite ? secondsLeft : 0)
        return String(format: "iter %d/%d  loss %.4f  lr %.6f  %.2f img/s  data %.0f%%  ETA %dh%02dm%02ds",
                      iteration, iterations, loss, learningRate, imagesPerSecond, 100 * dataShare, eta / 3600, eta / 60 % 60, eta % 60)
    }
}

/// The training loop. Read `run` top to bottom: draw samples, augment, step, average, update, report, checkpoint.
/// Every random choice draws from one `TrainingRNG` whose state is saved with the weights, momentum and sampler,
/// so a run killed and resumed from its last checkpoint ends with the same weights as one that never stopped.
public struct Trainer<Model: TrainableModel> {
    public private(set) var model: Model
    public let configuration: TrainingConfiguration
    /// Optimiser steps done.
    public private(set) var iteration = 0
    public private(set) var optimiser: SGD
    public private(set) var rng: TrainingRNG
    public private(set) var sampler = SampleOrder()
    /// Seconds spent in `run` so far, including those of the runs this one resumed (as far as their checkpoints
    /// recorded them; nil when a checkpoint resumed did not).
    public private(set) var trainingSeconds: Double? = 0
    public let data: any TrainingSampleSource
    public let checkpointFolder: URL?
    /// Log a progress line every this many iterations.
    public var logInterval = 10
    /// Checkpoints kept in the folder (older ones are deleted; a W48 checkpoint is about 0.5 GB).
    public var keepCheckpoints = 2
    public var onProgress: (@Sendable (TrainingProgress) -> Void)?
    /// Asked after every iteration: when it answers true, `run` writes a checkpoint and throws `.interrupted` (a
    /// SIGINT/SIGTERM loses no finished iteration; the same command resumes from there).
    public var stopRequested: (@Sendable () -> Bool)?
    /// Prepare the next batch (load, augment, normalise) on another thread while the network steps on this one.
    /// The batches, the order of the random draws and so the weights are the same either way; a checkpoint records
    /// the generator and sampler as they were after the batches already trained on, so a resumed run draws the
    /// prepared-but-unused batch again. Measured on 0.10.0's recipe with two threads: 1.53 → 1.65 iterations/s.
    public var prefetchBatches = true
    let augmentation: TrainingAugmentation
    let logger: Logger

    public init(model: Model, data: any TrainingSampleSource, configuration: TrainingConfiguration,
                checkpointFolder: URL?, logger: Logger) throws(TrainingError) {
        try configuration.validate()
        guard data.count > 0 else { throw TrainingError(.dataset, "the training set is empty") }
        self.model = model
        self.data = data
        self.configuration = configuration
        self.checkpointFolder = checkpointFolder
        self.logger = logger
        self.optimiser = SGD(momentum: configuration.momentum, weightDecay: configuration.weightDecay)
        self.rng = TrainingRNG(seed: configuration.seed)
        self.augmentation = TrainingAugmentation(configuration: configuration)
    }

    /// Continues from the newest checkpoint in the checkpoint folder, when there is one written by the same
    /// configuration. Returns the iteration resumed at, or nil when starting fresh.
    @discardableResult
    public mutating func resume() throws -> Int? {
        guard let folder = checkpointFolder, let checkpoint = try TrainingCheckpoint.latest(in: folder) else { return nil }
        // How often to save does not change what is computed; everything else must match.
        var saved = checkpoint.configuration
        saved.checkpointInterval = configuration.checkpointInterval
        guard saved == configuration else {
            throw TrainingError(.checkpoint, "\(folder.path) holds a run with a different configuration (\(Self.differences(checkpoint.configuration, configuration))); use another folder or the same settings")
        }
        try model.load(checkpoint.model)
        optimiser.momentumBuffers = checkpoint.momentumBuffers
        rng = checkpoint.rng
        sampler = checkpoint.sampler
        iteration = checkpoint.iteration
        trainingSeconds = checkpoint.trainingSeconds
        logger.info("training: resumed at iteration \(iteration)/\(configuration.iterations) from \(folder.path)")
        return iteration
    }

    /// Trains until `configuration.iterations`, or until `stop` iterations are done (tests use it to stop a run
    /// as a kill would). Returns the mean loss of each step run.
    @discardableResult
    public mutating func run(stoppingAt stop: Int? = nil) throws -> [Float] {
        let end = min(stop ?? configuration.iterations, configuration.iterations)
        let loss = LossSettings(bceWeight: configuration.bceWeight, batchDice: configuration.batchDice ?? false,
                                bcePositiveWeight: configuration.bcePositiveWeight ?? 1)
        let started = Date(), startIteration = iteration, secondsBefore = trainingSeconds
        var losses: [Float] = []
        var dataSeconds = 0.0
        var prepared: BatchPreparation?
        while iteration < end {
            var accumulator = GradientAccumulator()
            for micro in 0..<configuration.accumulation {
                let loading = Date()
                let batch: TrainingBatch
                if prefetchBatches {
                    // Waiting for the batch prepared during the last step (or preparing this one now) is the time
                    // counted as data.
                    let next = try (prepared ?? prepare(rng: rng, sampler: sampler)).wait()
                    (batch, rng, sampler) = (next.batch, next.rng, next.sampler)
                    let lastOfRun = micro == configuration.accumulation - 1 && iteration + 1 == end
                    prepared = lastOfRun ? nil : prepare(rng: rng, sampler: sampler)
                } else {
                    batch = try nextBatch()
                }
                dataSeconds += Date().timeIntervalSince(loading)
                let result = try model.trainingStep(batch, loss: loss)
                guard result.loss.isFinite else {
                    throw TrainingError(.model, "training: the loss became \(result.loss) at iteration \(iteration); lower the learning rate or check the data")
                }
                try accumulator.add(result.gradients, loss: result.loss)
            }
            let (gradients, meanLoss) = accumulator.mean()
            let learningRate = configuration.schedule.learningRate(at: iteration)
            var sgd = optimiser
            try model.updateParameters { parameters in try sgd.step(&parameters, gradients: gradients, learningRate: learningRate) }
            optimiser = sgd
            iteration += 1
            losses.append(meanLoss)
            trainingSeconds = secondsBefore.map { $0 + Date().timeIntervalSince(started) }

            if iteration % logInterval == 0 || iteration == end {
                let seconds = Date().timeIntervalSince(started)
                let images = Double((iteration - startIteration) * configuration.effectiveBatch)
                let speed = seconds > 0 ? images / seconds : 0
                let progress = TrainingProgress(iteration: iteration, iterations: configuration.iterations, loss: meanLoss,
                                                learningRate: learningRate, imagesPerSecond: speed,
                                                secondsLeft: speed > 0 ? Double((configuration.iterations - iteration) * configuration.effectiveBatch) / speed : .infinity,
                                                dataShare: seconds > 0 ? dataSeconds / seconds : 0)
                logger.info("training: \(progress.line)")
                onProgress?(progress)
            }
            let checkpointed = iteration % configuration.checkpointInterval == 0 || iteration == configuration.iterations
            if checkpointed { try saveCheckpoint() }
            if iteration < end, let stopRequested, stopRequested() {
                if !checkpointed { try saveCheckpoint() }
                let where_ = checkpointFolder.map { "checkpoint in \($0.path): run the same command again to resume" }
                    ?? "no checkpoint folder, so nothing to resume from"
                throw TrainingError(.interrupted, "training: stopped on request at iteration \(iteration)/\(configuration.iterations); \(where_)")
            }
        }
        return losses
    }

    /// Writes the current state to the checkpoint folder (nothing when there is none).
    public func saveCheckpoint() throws(TrainingError) {
        guard let folder = checkpointFolder else { return }
        let url = try TrainingCheckpoint(configuration: configuration, iteration: iteration, rng: rng, sampler: sampler,
                                         model: model.state, momentumBuffers: optimiser.momentumBuffers,
                                         trainingSeconds: trainingSeconds).write(to: folder)
        logger.info("training: checkpoint \(url.lastPathComponent)")
        let old = ((try? TrainingCheckpoint.files(in: folder)) ?? []).dropLast(max(1, keepCheckpoints))
        for file in old { try? FileManager.default.removeItem(at: file) }
    }

    /// The next `batchSize` samples in shuffled order, augmented, normalised and padded to the crop.
    mutating func nextBatch() throws -> TrainingBatch {
        try TrainingBatch.next(data: data, augmentation: augmentation, configuration: configuration, rng: &rng, sampler: &sampler)
    }

    /// Starts preparing the batch that `nextBatch` would make from this generator and sampler, on another thread.
    func prepare(rng: TrainingRNG, sampler: SampleOrder) -> BatchPreparation {
        BatchPreparation(rng: rng, sampler: sampler) { [data, augmentation, configuration] rng, sampler in
            try TrainingBatch.next(data: data, augmentation: augmentation, configuration: configuration, rng: &rng, sampler: &sampler)
        }
    }

    /// The names of the settings in which two configurations differ.
    static func differences(_ a: TrainingConfiguration, _ b: TrainingConfiguration) -> String {
        func fields(_ c: TrainingConfiguration) -> [String: String] {
            guard let data = try? JSONEncoder().encode(c), let o = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return [:] }
            return o.mapValues { "\($0)" }
        }
        let fa = fields(a), fb = fields(b)
        let keys = Set(fa.keys).union(fb.keys).filter { fa[$0] != fb[$0] }.sorted()
        return keys.isEmpty ? "unknown" : keys.joined(separator: ", ")
    }
}

/// One batch being prepared on a global-queue thread, with the generator and sampler as they are after drawing it.
/// `wait` returns it (or rethrows what loading it threw, naming the file as `nextBatch` would).
final class BatchPreparation: @unchecked Sendable {
    struct Prepared: Sendable {
        var batch: TrainingBatch
        var rng: TrainingRNG
        var sampler: SampleOrder
    }

    private let finished = DispatchSemaphore(value: 0)
    /// Written once by the preparing thread before it signals `finished`; read after waiting on it.
    private var result: Result<Prepared, any Error>?

    init(rng: TrainingRNG, sampler: SampleOrder,
         make: @escaping @Sendable (inout TrainingRNG, inout SampleOrder) throws -> TrainingBatch) {
        DispatchQueue.global(qos: .userInitiated).async { [self] in
            var rng = rng, sampler = sampler
            result = Result { Prepared(batch: try make(&rng, &sampler), rng: rng, sampler: sampler) }
            finished.signal()
        }
    }

    /// Called once per preparation (the training loop consumes each batch once).
    func wait() throws -> Prepared {
        finished.wait()
        return try result!.get()
    }
}

extension TrainingBatch {
    /// The next `configuration.batchSize` samples of `data` in the sampler's order, augmented, normalised and padded.
    static func next(data: any TrainingSampleSource, augmentation: TrainingAugmentation, configuration: TrainingConfiguration,
                     rng: inout TrainingRNG, sampler: inout SampleOrder) throws -> TrainingBatch {
        let n = configuration.batchSize, h = configuration.cropHeight, w = configuration.cropWidth
        var images = [Float](repeating: 0, count: n * 3 * h * w), labels = [UInt8](repeating: 0, count: n * h * w)
        var annotated: [Bool] = []
        for i in 0..<n {
            let index = sampler.next(count: data.count, rng: &rng)
            let sample = augmentation.apply(try data.load(index), rng: &rng)
            augmentation.normalise(sample, image: &images[(i * 3 * h * w)..<((i + 1) * 3 * h * w)],
                                   labels: &labels[(i * h * w)..<((i + 1) * h * w)])
            annotated += sample.annotated
        }
        return TrainingBatch(count: n, height: h, width: w, images: images, labels: labels, annotated: annotated)
    }
}

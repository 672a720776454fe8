import ArgumentParser
import Foundation
import Checkpoints
import Network
import Logging
import Tensor
import Training

/// `fundus-screen bench`: inference speed of W48 M2MRF-C with random weights (release builds; asserts nothing).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time HRNetV2-W48 M2MRF-C inference with random weights: s/image, GFLOP/s, peak RSS, time by layer kind.")

    @Option(help: "Input height.") var height = 960
    @Option(help: "Input width.") var width = 1440
    @Option(help: "Timed runs (after one warm-up).") var runs = 3
    @Option(help: "Fuse variant: plain, A, B, C, D.") var variant = "C"
    @Option(help: "Another network instead of W48 (--variant then ignored): \(ModelArchitecture.namesHelp).") var arch: String?
    @Flag(help: "Time training steps (bdice forward + backward) instead of inference.") var training = false
    @Option(help: "Batch size of the training steps.") var batch = 2
    @Flag(help: "Convolutions in bf16 (f32 accumulation); with --training, the mixed-precision step of `train --bf16`.")
    var bf16 = false
    @Flag(help: "Direct 3×3 convolutions only (no Winograd): the engine's previous path, for comparison.") var direct = false
    @Option(help: "--training: recompute the blocks of this many branches in backward instead of keeping their activations (gradient checkpointing; 0: keep every activation). Default: as training chooses (2 where a step would hold more than ~1.5 GiB of activations, else 0).")
    var checkpointBranches: Int?
    @Flag(help: "Split the profiled run by convolution shape, not only by layer kind.") var shapes = false
    @Option(help: ArgumentHelp("Time the training data pipeline instead, on this annotated folder (IDRiD layout): each stage of a draw (scale jitter, flip/rotation, crop, photometric distortion, normalisation), from decoded samples in memory, at --crop with --lesion-crops.", valueName: "dir"))
    var augmentation: String?
    @Option(parsing: .upToNextOption, help: "--augmentation: training crop, height width.") var crop: [Int] = [384, 384]
    @Option(help: "--augmentation: share of lesion-centred crops.") var lesionCrops = 0.75
    @Option(help: "--augmentation: draws to time.") var draws = 40

    func run() throws {
        EngineThreads.configureProcessForEngine()
        if let augmentation {
            try AugmentationBenchmark(folder: URL(fileURLWithPath: augmentation), cropHeight: crop.first ?? 384,
                                      cropWidth: crop.last ?? 384, lesionCrops: lesionCrops, draws: draws).run()
            return
        }
        guard let v = ModelArchitecture.Variant(rawValue: variant) else {
            throw ValidationError("unknown variant '\(variant)': plain, A, B, C or D")
        }
        var architecture = ModelArchitecture.w48(variant: v)
        if let arch {
            guard let named = ModelArchitecture.named(arch) else { throw ValidationError("unknown --arch '\(arch)': \(ModelArchitecture.namesHelp)") }
            architecture = named
        }
        if training {
            let branches = checkpointBranches ?? SegmentationModel.automaticCheckpointBranches(architecture, batch: batch,
                                                                                               height: height, width: width)
            print("gradient checkpointing: \(branches) branch(es)\(checkpointBranches == nil ? " (as training chooses for this size)" : "")")
            let r = try NetworkBenchmark.training(architecture: architecture, batch: batch, height: height,
                                                  width: width, runs: runs, bf16: bf16, winograd: !direct,
                                                  checkpointBranches: branches) { print($0) }
            print(String(format: "training step%@, batch %d at %d×%d: median %.3f s of %d (%@); peak RSS %.2f GiB",
                         bf16 ? " (bf16 convolutions, fp32 master weights)" : "", batch, height, width, r.medianSeconds,
                         r.seconds.count, r.seconds.map { String(format: "%.3f", $0) }.joined(separator: ", "),
                         Double(r.peakRSSBytes) / Double(1 << 30)))
            print(String(format: "tensors: %.2f GiB at the most, %.2f GiB when the forward pass had finished (weights, gradients and saved activations; oneDNN's own buffers not)",
                         Double(r.peakTensorBytes) / Double(1 << 30), Double(r.tensorBytesAfterForward) / Double(1 << 30)))
            let rate = r.gflopPerStep / r.medianSeconds
            print(String(format: "work: %.1f GFLOP of convolutions per step (forward, backward data, backward weights), %.1f GFLOP/s",
                         r.gflopPerStep, rate))
            print(MachineLimit.line(gflops: rate, bf16: bf16, winograd: !direct))
            return
        }
        let report = try NetworkBenchmark.run(architecture: architecture, height: height, width: width, runs: runs,
                                               bf16: bf16, winograd: !direct, shapes: shapes) { print($0) }
        print(report.text)
    }
}

/// `bench --augmentation`: where a training draw's data time goes, stage by stage, on real photographs already decoded
/// (the training cache holds them so), one thread, as the trainer runs them between steps.
struct AugmentationBenchmark {
    var folder: URL
    var cropHeight: Int
    var cropWidth: Int
    var lesionCrops: Double
    var draws: Int

    func run() throws {
        let logger = Logger(label: "fundus-screen.bench")
        let set = try LesionDataset.open(folder, disc: true, logger: logger)
        let source = DatasetSamples(set, channels: 5, logger: logger)
        let decodeStart = Date()
        let samples = try (0..<min(set.samples.count, 4)).map { try source.load($0) }
        print(String(format: "decoded %d samples (field-of-view squares, e.g. %d×%d) in %.2f s — done once per run by the cache",
                     samples.count, samples[0].width, samples[0].height, Date().timeIntervalSince(decodeStart)))
        var c = TrainingConfiguration()
        c.cropHeight = cropHeight
        c.cropWidth = cropWidth
        c.lesionCropProbability = lesionCrops
        let augmentation = TrainingAugmentation(configuration: c)
        var rng = TrainingRNG(seed: 1)
        var stages = [String: Double](), order = ["rescale", "orient", "crop", "photometric", "normalise"]
        func timed<T>(_ name: String, _ body: () -> T) -> T {
            let t = Date()
            defer { stages[name, default: 0] += Date().timeIntervalSince(t) }
            return body()
        }
        var image = [Float](repeating: 0, count: 3 * cropHeight * cropWidth), labels = [UInt8](repeating: 0, count: cropHeight * cropWidth)
        let started = Date()
        for n in 0..<draws {
            // The stages of `TrainingAugmentation.apply`, in its order and with its draws.
            let sample = samples[n % samples.count]
            var s = timed("rescale") { TrainingAugmentation.rescale(sample, long: c.scaleLong, short: c.scaleShort, ratio: rng.uniform(c.ratioRange[0], c.ratioRange[1])) }
            let orientation = TrainingAugmentation.Orientation(rawValue: rng.below(6))!
            s = timed("orient") { TrainingAugmentation.orient(s, orientation) }
            s = timed("crop") {
                if rng.unit() < lesionCrops, let centred = TrainingAugmentation.lesionCentredCrop(s, height: cropHeight, width: cropWidth, rng: &rng) {
                    return centred
                }
                return TrainingAugmentation.randomCrop(s, height: cropHeight, width: cropWidth, catMaxRatio: c.catMaxRatio, rng: &rng)
            }
            timed("photometric") { PhotometricDistortion().apply(&s.rgb, rng: &rng) }
            timed("normalise") { augmentation.normalise(s, image: &image[...], labels: &labels[...]) }
        }
        let total = Date().timeIntervalSince(started)
        print(String(format: "%d draws at crop %d×%d, lesion-centred share %.2f, whole images stage by stage: %.1f ms a draw",
                     draws, cropHeight, cropWidth, lesionCrops, 1000 * total / Double(draws)))
        for name in order {
            let t = stages[name, default: 0]
            print("  " + name.padding(toLength: 12, withPad: " ", startingAt: 0)
                  + String(format: "%7.1f ms a draw  %5.1f %%", 1000 * t / Double(draws), 100 * t / total))
        }
        // What training runs: the same draws, the photograph resized and turned only inside the crop.
        var fastRNG = TrainingRNG(seed: 1)
        let fastStart = Date()
        for n in 0..<draws {
            let s = augmentation.apply(samples[n % samples.count], rng: &fastRNG)
            augmentation.normalise(s, image: &image[...], labels: &labels[...])
        }
        print(String(format: "as training runs it (TrainingAugmentation.apply: only the crop's pixels resized and turned): %.1f ms a draw",
                     1000 * Date().timeIntervalSince(fastStart) / Double(draws)))
    }
}

import ArgumentParser
import Foundation
import Lesions
import Logging
import Network
import Pipeline
import Store
import Training

/// The options that decide how a network is trained, shared by `train` and `crossval` (each fold trains exactly as
/// `train` would with them).
struct TrainingOptions: ParsableArguments {
    @Option(help: "Share of crops centred on a lesion pixel (0: the official uniform crops; nnU-Net uses 0.33).") var lesionCrops: Double = 0
    @Option(help: "MiB of memory for decoded training samples (each photograph is decoded once while they fit).") var cacheMb: Int = 4096
    @Option(help: "Start from this model: a registered version's name or id, 'active', or a weight file/folder.")
    var from: String?
    @Option(help: "Network to train from its initialisation: \(ArchitectureName.help).") var arch: String?
    @Option(help: "Optimiser steps.") var iterations: Int
    @Option(parsing: .upToNextOption, help: "Training crop, height width (default 960 960: the field-of-view square at the IDRiD scale).")
    var crop: [Int] = [960, 960]
    @Option(help: "Images per forward/backward pass.") var batch: Int = 1
    @Option(help: "Passes summed into one optimiser step (effective batch = batch × accumulate; official 4).") var accumulate: Int = 1
    @Option(help: "Random seed: the run is a function of it.") var seed: UInt64 = 0
    @Option(help: "Base learning rate.") var lr: Double = 0.01
    @Option(help: "Final learning rate of the poly schedule.") var minLr: Double = 1e-4
    @Option(help: "Weight of a BCE term added to bdice (0: the official loss).") var bce: Float = 0
    @Option(help: "Weight of lesion pixels in the BCE term (PyTorch's pos_weight; 1: plain BCE).") var bcePosWeight: Float = 1
    @Flag(help: "Dice over the whole batch per class instead of per image (nnU-Net's batch dice; not the official loss).")
    var batchDice = false
    @Option(parsing: .upToNextOption, help: "Model scale, long edge and short edge (IDRiD 1440 960; DDR 1024 1024).")
    var scale: [Int] = [1440, 960]
    @Option(help: "Normalisation statistics: idrid or ddr.") var stats: String = "idrid"
    @Option(help: "Train only on these classes, e.g. EX,HE (the others are left out of the loss).") var classes: String?
    @Option(help: "Save the training state every this many iterations.") var checkpointEvery: Int = 500
    @Option(help: "Recompute the blocks of this many branches in backward instead of keeping their activations (gradient checkpointing; same weights, less memory). Default: 2 where a step would hold more than ~1.5 GiB of activations, else 0.")
    var checkpointBranches: Int?
    @Flag(help: "Prepare each batch in turn instead of on another thread while the network steps (the same weights either way; for measuring what preparing batches ahead saves).")
    var noPrefetch = false
    @Option(help: "Log progress every this many iterations.") var logEvery: Int = 10
    @Flag(help: ArgumentHelp("Also train the optic disc as a fifth output channel (OD), from the set's masks/OD; images without an OD mask leave it out of their loss.",
                             discussion: "With --from a four-class model, the head's final 1×1 conv gains the OD channel (newly initialised; the lesion channels copied exactly). A model that has the channel keeps training it without this flag."))
    var disc = false
    @Flag(help: ArgumentHelp("Mixed precision: convolutions forward and backward in bf16 (f32 accumulation), master weights, BatchNorm, loss and gradients in f32.",
                             discussion: "About twice as fast per convolution on CPUs with AVX512-BF16; gradients agree with f32 to about 1e-2 relative."))
    var bf16 = false
    @Flag(help: "Train on whole photographs instead of the field-of-view square.") var noFovCrop = false
    @Option(help: ArgumentHelp("A folder of photographs with none of the four lesions (e.g. graded free of retinopathy), added to the training set as negatives: every lesion class annotated as absent, the optic disc not annotated.",
                               valueName: "dir")) var negatives: String?
    @Option(help: "Only these photographs of --negatives, by stem (comma-separated, ranges allowed).") var negativeImages: String?
    @Option(help: ArgumentHelp("Another annotated folder (same layouts as --data) added whole to the training set, after --images has selected from --data; repeatable. In crossval, every fold trains on it and none validates on it (e.g. ../shared/data/idrid-extra).",
                               valueName: "dir")) var moreData: [String] = []
    @Option(help: ArgumentHelp("A partially labelled set with only the vessels annotated (images/ and masks/vessels/, e.g. HRF), added to the training set: the model gains a sixth output channel, the vessels (after the optic disc, which it then has too); the lesion and disc channels are left out of these images' loss.",
                               valueName: "dir")) var vessels: String?
    @Option(help: "Only these photographs of --vessels, by stem (comma-separated, ranges allowed).") var vesselImages: String?
    @Option(help: "Share of the training draws taken from --vessels (default: every image equally often), e.g. 0.25.") var vesselShare: Double?
    @Flag(help: "No online flips and 90° rotations (the official code made them offline).") var noFlips = false
    @Flag(help: "No photometric distortion.") var noPhotometric = false
    @Option(help: ArgumentHelp("Read this class from a second pass at another input scale, e.g. MA=1.5 or SE=0.75, or as the mean of its probabilities at several, e.g. HE=1+0.75 (repeatable): in validation and in the new model card's channel_scales. Default: the starting model's card's.",
                               valueName: "class=factor[+factor…]"))
    var classScale: [String] = []

    func validate() throws {
        if arch == nil && from == nil { throw ValidationError("give --arch or --from") }
        if let arch, ArchitectureName.parse(arch) == nil { throw ValidationError("unknown --arch '\(arch)': \(ArchitectureName.help)") }
        if crop.count != 2 || crop.contains(where: { $0 < 1 }) { throw ValidationError("--crop takes two positive numbers: height width") }
        if scale.count != 2 || scale.contains(where: { $0 < 1 }) { throw ValidationError("--scale takes two positive numbers: long short") }
        if iterations < 1 || batch < 1 || accumulate < 1 { throw ValidationError("--iterations, --batch and --accumulate must be positive") }
        if !(0...1).contains(lesionCrops) { throw ValidationError("--lesion-crops is a share between 0 and 1") }
        if cacheMb < 0 { throw ValidationError("--cache-mb must not be negative") }
        _ = try ClassScales.parse(classScale)
        if !["idrid", "ddr"].contains(stats) { throw ValidationError("--stats is idrid or ddr") }
        if negativeImages != nil && negatives == nil { throw ValidationError("--negative-images needs --negatives") }
        if (vesselImages != nil || vesselShare != nil) && vessels == nil { throw ValidationError("--vessel-images and --vessel-share need --vessels") }
        if let vesselShare, !(vesselShare > 0 && vesselShare < 1) { throw ValidationError("--vessel-share is a share strictly between 0 and 1") }
        _ = try lesionClasses()
    }

    /// The run's configuration, as the options say.
    func configuration() -> TrainingConfiguration {
        var configuration = TrainingConfiguration()
        configuration.seed = seed
        configuration.iterations = iterations
        configuration.schedule = PolySchedule(baseLearningRate: lr, minimumLearningRate: minLr, maxIterations: iterations)
        configuration.batchSize = batch
        configuration.accumulation = accumulate
        configuration.cropHeight = crop[0]
        configuration.cropWidth = crop[1]
        configuration.scaleLong = scale[0]
        configuration.scaleShort = scale[1]
        configuration.bceWeight = bce
        configuration.batchDice = batchDice ? true : nil
        configuration.bcePositiveWeight = bcePosWeight != 1 ? bcePosWeight : nil
        configuration.checkpointInterval = checkpointEvery
        configuration.flipsAndRotations = !noFlips
        configuration.photometricDistortion = !noPhotometric
        configuration.lesionCropProbability = lesionCrops > 0 ? lesionCrops : nil
        configuration.bf16 = bf16 ? true : nil
        if stats == "ddr" { configuration.normalisation = .ddr }
        return configuration
    }

    /// --classes as a set; nil for all.
    func lesionClasses() throws -> Set<LesionClass>? {
        guard let classes else { return nil }
        var set = Set<LesionClass>()
        for code in classes.split(separator: ",") {
            guard let c = LesionClass(code: String(code)) else { throw ValidationError("--classes: '\(code)' is not EX, HE, SE or MA") }
            set.insert(c)
        }
        return set
    }

    /// The request's training settings from these options (data, validation and places are the command's).
    /// SIGINT/SIGTERM while training: the current iteration finishes, a checkpoint is written and the command exits
    /// (the same command resumes); a second signal exits at once. What the request's `stopRequested` reads.
    static func stopOnSignal(logger: Logger) -> @Sendable () -> Bool {
        let shutdown = ShutdownSignal()
        shutdown.onRequest { signal in
            logger.notice("signal \(signal): training stops after this iteration with a checkpoint (a validation already under way runs to its end); a second signal exits at once")
        }
        shutdown.install()
        return { shutdown.isRequested }
    }

    func apply(to request: inout TrainingRequest) throws {
        request.fieldOfViewCrop = !noFovCrop
        request.disc = disc
        request.logInterval = logEvery
        request.cacheBytes = cacheMb << 20
        request.classes = try lesionClasses()
        request.negatives = negatives.map { URL(fileURLWithPath: $0) }
        request.moreData = try moreData.map { try TrainingData.parse($0) }
        request.negativeImages = try negativeImages.map { try LesionDataset.expandSelection($0) }
        request.vessels = vessels.map { URL(fileURLWithPath: $0) }
        request.vesselImages = try vesselImages.map { try LesionDataset.expandSelection($0) }
        request.vesselShare = vesselShare
        request.checkpointBranches = checkpointBranches
        request.prefetchBatches = !noPrefetch
        let scales = try ClassScales.parse(classScale)
        request.channelScales = scales.isEmpty ? nil : scales
    }
}

extension TrainingOptions {
    /// The options that decide a model's figures, in one line: a cross-validation fold saved with other options is
    /// not mixed in, and `train --crossval` lists where the final training differs. `augmentation` nil: no `tta=`.
    func settingsLine(data: String, initialWeights: URL?, configuration: TrainingConfiguration,
                      augmentation: TestTimeAugmentation?) -> String {
        let c = configuration
        var parts = [
            "data=\(data)", "from=\(initialWeights?.path ?? "-")", "arch=\(arch ?? "-")", "iterations=\(c.iterations)",
            "crop=\(c.cropHeight)x\(c.cropWidth)", "batch=\(c.batchSize)x\(c.accumulation)", "seed=\(c.seed)",
            "lr=\(c.schedule.baseLearningRate)->\(c.schedule.minimumLearningRate)", "bce=\(c.bceWeight)",
            "bce-pos-weight=\(c.bcePositiveWeight ?? 1)", "batch-dice=\(c.batchDice ?? false)",
            "lesion-crops=\(c.lesionCropProbability ?? 0)", "scale=\(c.scaleLong)x\(c.scaleShort)", "stats=\(stats)",
            "classes=\(classes ?? "all")", "fov-crop=\(!noFovCrop)", "flips=\(c.flipsAndRotations)",
            "photometric=\(c.photometricDistortion)", "disc=\(disc)", "bf16=\(c.bf16 ?? false)",
        ]
        if let negatives = negatives { parts.append("negatives=\(negatives):\(negativeImages ?? "all")") }
        if !moreData.isEmpty { parts.append("more-data=" + moreData.joined(separator: ",")) }
        if let vessels = vessels {
            parts.append("vessels=\(vessels):\(vesselImages ?? "all"):\(vesselShare.map { "share-\($0)" } ?? "uniform")")
        }
        if !classScale.isEmpty {
            let scales = (try? ClassScales.parse(classScale)) ?? [:]
            parts.append("class-scales=" + scales.sorted { $0.key < $1.key }.map { "\($0.key)@" + $0.value.map { "\($0)" }.joined(separator: "+") }.joined(separator: ","))
        }
        if let augmentation { parts.append("tta=\(augmentation.passes)") }
        return parts.joined(separator: " ")
    }
}

/// `--class-scale CLASS=FACTOR[+FACTOR…]` (repeatable), shared by `train`, `crossval` and `model validate`: the model
/// card's `channel_scales` by class code (several factors: the mean of the class's probabilities at those scales).
enum ClassScales {
    static func parse(_ items: [String]) throws -> [String: [Double]] {
        var scales: [String: [Double]] = [:]
        for item in items {
            let parts = item.split(separator: "=", omittingEmptySubsequences: false)
            let factors = parts.count == 2 ? parts[1].split(separator: "+", omittingEmptySubsequences: false).map { Double($0) } : []
            guard parts.count == 2, let lesion = LesionClass(code: String(parts[0])), !factors.isEmpty,
                  factors.allSatisfy({ $0 != nil && $0! > 0 && $0! <= 4 }), Set(factors).count == factors.count else {
                throw ValidationError("--class-scale wants CLASS=FACTOR with a lesion class (EX, HE, SE, MA) and a factor in (0, 4], e.g. MA=1.5, or several different ones joined by '+' for the mean of the class's probabilities at those scales, e.g. HE=1+0.75; got '\(item)'")
            }
            scales[lesion.code] = factors.compactMap { $0 }
        }
        return scales
    }
}

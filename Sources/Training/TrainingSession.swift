import Checkpoints
import Foundation
import Imaging
import Lesions
import Logging
import Network
import Store

/// What `fundus-screen train` asks for.
public struct TrainingRequest: Sendable {
    /// Training set: a folder (IDRiD, DDR or nnU-Net layout) or the database's annotations.
    public var data: TrainingData
    /// Validation set; without one the model is registered without figures (and promotion will refuse it).
    public var validation: TrainingData?
    /// Weights to start from (fine-tuning); nil trains `architecture` from its initialisation.
    public var initialWeights: URL?
    public var architecture: ModelArchitecture?
    public var configuration: TrainingConfiguration
    /// Classes to train on (others are left out of the loss); nil: what the dataset annotates.
    public var classes: Set<LesionClass>?
    /// Also train the optic disc (a fifth output channel) from the training set's OD masks: a four-class model
    /// given by `initialWeights` gains the channel (`DiscHead.expand`); a model that has it keeps training it.
    public var disc = false
    public var fieldOfViewCrop = true
    /// Checkpoints of this run (resumed from when present).
    public var workDirectory: URL
    /// Where the finished model bundle (`<name>.safetensors` + `metadata.json`) goes.
    public var modelDirectory: URL
    /// The model version's name in the registry.
    public var name: String
    /// Also validate the active model on the same images, so promotion compares like with like.
    public var validateActive = true
    /// Log a progress line every this many iterations.
    public var logInterval = 10
    /// A folder of lesion-free photographs added to the training set (`LesionDataset.lesionFree`), and which of them.
    public var negatives: URL?
    public var negativeImages: [String]?
    /// A partially labelled vessel set (`LesionDataset.vessels`, e.g. HRF) added to the training set, and which of
    /// its images: the model gains a sixth output channel, the vessels (after the optic disc, which it then always
    /// has); only that channel learns from these images.
    public var vessels: URL?
    public var vesselImages: [String]?
    /// Share of the training draws that come from the vessel set (nil: each image of the combined set equally
    /// often). The sets' images are repeated in each pass to come nearest it.
    public var vesselShare: Double?
    /// Only these images of the training / validation folder (stems, e.g. IDRiD_01); nil: all of them.
    public var trainingImages: [String]?
    public var validationImages: [String]?
    /// Record the run and register the candidate in the database (when there is a connection). Cross-validation
    /// folds do not.
    public var register = true
    /// Test-time augmentation of the validation (`.none`: the official single pass).
    public var validationAugmentation: TestTimeAugmentation = .none
    /// Further annotated sets added whole to the training set, after `trainingImages` has selected from `data`
    /// (`--more-data`): a cross-validation fold trains on them and never validates on them.
    public var moreData: [TrainingData] = []
    /// When set, the validation draws each image's truth beside the model's masks here (`Validator.overlayDirectory`).
    public var validationOverlays: URL?
    /// Memory for decoded training samples (each is decoded once while it fits; 0 decodes on every draw).
    public var cacheBytes = 4 << 30
    /// Gradient checkpointing (`SegmentationModel.checkpointBranches`); nil: where it saves memory that matters
    /// (`automaticCheckpointBranches`). The same weights either way: a speed and memory knob.
    public var checkpointBranches: Int?
    /// Prepare the next batch on another thread while the network steps (`Trainer.prefetchBatches`): the same
    /// weights either way.
    public var prefetchBatches = true
    /// Classes read from a second pass at another input scale (the card's `channel_scales`, by class code, e.g.
    /// ["MA": [1.5]]) in this run's validation and in the new card. nil: the starting model's card's, if any.
    public var channelScales: [String: [Double]]?
    /// The command line that asked for this training, for the model card (`TrainingRecord`); nil: none recorded.
    public var command: String?
    /// The cross-validation that chose this recipe, copied into the model card.
    public var crossValidation: CrossValidationRecord?
    /// Asked after every training iteration; true stops the run with a checkpoint (`Trainer.stopRequested`).
    public var stopRequested: (@Sendable () -> Bool)?

    public init(data: URL, validation: URL?, initialWeights: URL?, architecture: ModelArchitecture?,
                configuration: TrainingConfiguration, workDirectory: URL, modelDirectory: URL, name: String) {
        self.init(data: .folder(data), validation: validation.map { .folder($0) }, initialWeights: initialWeights,
                  architecture: architecture, configuration: configuration, workDirectory: workDirectory,
                  modelDirectory: modelDirectory, name: name)
    }

    public init(data: TrainingData, validation: TrainingData?, initialWeights: URL?, architecture: ModelArchitecture?,
                configuration: TrainingConfiguration, workDirectory: URL, modelDirectory: URL, name: String) {
        self.data = data
        self.validation = validation
        self.initialWeights = initialWeights
        self.architecture = architecture
        self.configuration = configuration
        self.workDirectory = workDirectory
        self.modelDirectory = modelDirectory
        self.name = name
    }
}

public struct TrainingOutcome: Sendable {
    public var weights: URL
    public var card: ModelCard
    public var metrics: ValidationMetrics
    /// The candidate's full validation report (per class, absent classes visible as no truth pixels); nil without validation.
    public var report: EvaluationReport?
    /// With test-time augmentation, the figures of its plain pass alone (from the same inference).
    public var singlePassReport: EvaluationReport?
    /// Seconds of training, summed over the runs that resumed one another where their checkpoints recorded it.
    public var trainingSeconds: Double?
    public var validationSeconds: Double?
    public var modelVersionID: Int64?
    public var trainingRunID: Int64?
}

/// One retraining, top to bottom: data → network → training run row → train (resuming) → validate → save the
/// bundle → register the candidate. Promotion is a separate, explicit step (`ModelRollout`).
public enum TrainingSession {
    public static func run(_ request: TrainingRequest, connection: Connection?, logger: Logger) throws -> TrainingOutcome {
        // 1. Data. The disc masks are read when the disc is trained, or when the starting model already has it; the
        // vessel channel is there when a vessel set is given or the starting model has it (it then learns only from a
        // vessel set).
        var startingCard: ModelCard?
        if let url = request.initialWeights {
            startingCard = try? ModelCard.beside(WeightLoader.weightFile(url))
        }
        let startingChannels = startingCard?.classes.count ?? request.architecture?.numClasses ?? LesionClass.allCases.count
        let vessels = request.vessels != nil || startingChannels > RetinalVessels.channel
        let disc = vessels || request.disc || startingCard?.hasDiscChannel == true || (request.architecture?.numClasses ?? 4) > 4
        // Output channels of the trained model: the lesions, the disc, the vessels.
        let channels = vessels ? RetinalVessels.channel + 1 : disc ? OpticDisc.channel + 1 : LesionClass.allCases.count
        var trainingSet = try request.data.open(classes: request.classes, disc: disc, connection: connection, logger: logger)
        if let names = request.trainingImages { trainingSet = try trainingSet.selecting(names) }
        for more in request.moreData {
            let extra = try more.open(classes: request.classes, disc: disc, connection: connection, logger: logger)
            trainingSet = try trainingSet.adding(extra)
            logger.info("dataset: \(extra.source): \(extra.samples.count) annotated images added to the training set")
        }
        if let folder = request.negatives {
            var free = try LesionDataset.lesionFree(folder)
            if let names = request.negativeImages { free = try free.selecting(names) }
            trainingSet = try trainingSet.adding(free)
            logger.info("dataset: \(folder.path): \(free.samples.count) lesion-free photographs added (every lesion class annotated as absent; optic disc not annotated)")
        }
        let lesionImages = trainingSet.samples.count
        if let folder = request.vessels {
            var vesselSet = try LesionDataset.vessels(folder)
            if let names = request.vesselImages { vesselSet = try vesselSet.selecting(names) }
            trainingSet = try trainingSet.adding(vesselSet)
            logger.info("dataset: \(folder.path): \(vesselSet.samples.count) photographs with vessel masks added (vessels annotated; the lesions and the optic disc not: only the vessel channel \(RetinalVessels.channel) learns from them)")
        }
        var configuration = request.configuration
        let validator = try request.validation.map {
            var set = try $0.open(disc: disc, connection: connection, logger: logger)
            if let names = request.validationImages { set = try set.selecting(names) }
            var validator = try Validator(set,
                          normalisation: configuration.normalisation,
                          scale: configuration.inputScale, logger: logger)
            validator.augmentation = request.validationAugmentation
            validator.overlayDirectory = request.validationOverlays
            return validator
        }

        // 2. Network: the starting weights, or a fresh one of the asked architecture.
        let network: SegmentationModel
        var startedFrom = "initialisation"
        if let url = request.initialWeights {
            let loaded = try WeightLoader.load(url)
            if let asked = request.architecture, asked != loaded.architecture {
                throw TrainingError(.configuration, "\(url.path) holds \(loaded.architecture.displayName), not the asked \(asked.displayName)")
            }
            var architecture = loaded.architecture, tensors = loaded.tensors
            startedFrom = loaded.card.map { $0.version == $0.name ? $0.name : "\($0.name) \($0.version)" } ?? url.lastPathComponent
            if architecture.numClasses < channels {
                let had = architecture.numClasses
                (tensors, architecture) = try DiscHead.expand(tensors, architecture: architecture, to: channels, seed: configuration.seed)
                let added = [OpticDisc.name, RetinalVessels.name][(had - OpticDisc.channel)..<(channels - OpticDisc.channel)]
                logger.notice("training: \(startedFrom) has \(had) output channels; added \(added.joined(separator: " and ")) to decode_head.conv_seg (weights normal std \(DiscHead.initialStd), bias 0; the other channels copied exactly)")
                startedFrom += " + " + added.joined(separator: " + ") + " channel" + (added.count > 1 ? "s" : "")
            } else if architecture.numClasses != channels {
                throw TrainingError(.configuration, "\(url.path) has \(architecture.numClasses) output channels; this training needs \(channels) (the 4 lesions\(disc ? ", the optic disc" : "")\(vessels ? ", the vessels" : ""))")
            }
            network = try SegmentationModel(architecture: architecture, weights: tensors, weightsFile: url.path)
        } else if var architecture = request.architecture {
            architecture.numClasses = max(architecture.numClasses, channels)
            network = try SegmentationModel(architecture: architecture)
        } else {
            throw TrainingError(.configuration, "give the network to train: --arch, or --from a model")
        }
        configuration.architecture = network.architecture
        network.bf16Training = configuration.bf16 == true
        network.checkpointBranches = request.checkpointBranches ?? SegmentationModel.automaticCheckpointBranches(
            network.architecture, batch: configuration.batchSize, height: configuration.cropHeight, width: configuration.cropWidth)
        // Inference settings of the starting model's card carry over unless the request names its own: classes read
        // at a larger scale are read so in this run's validation and in the new card.
        let channelScales = request.channelScales
            ?? request.initialWeights.flatMap { try? ModelCard.beside(WeightLoader.weightFile($0)) }?.channelScales ?? [:]
        network.channelScales = ModelCard(name: "", version: "", architecture: network.architecture, channelScales: channelScales).channelScaleIndices
        logger.info("training: \(network.architecture.displayName) from \(startedFrom) on \(trainingSet.samples.count) images, \(configuration.iterations) iterations, crop \(configuration.cropHeight)×\(configuration.cropWidth), batch \(configuration.batchSize)×\(configuration.accumulation)")

        // 3. The run in the database. A taken model name would only fail at registration, after the training:
        // refuse it now.
        if request.register, let connection, let taken = try ModelRegistry(connection: connection).find(name: request.name) {
            throw TrainingError(.configuration, "a model version named '\(request.name)' is already registered (id \(taken.id)); choose another --name")
        }
        let runs = request.register ? connection.map { TrainingRuns(connection: $0) } : nil
        let runID = try runs?.start(architecture: network.architecture.displayName, configJSON: jsonText(configuration))
        do {
            // 4. Train, continuing from the last checkpoint of this work folder.
            var samples: any TrainingSampleSource = CachedSamples(DatasetSamples(trainingSet, fieldOfViewCrop: request.fieldOfViewCrop,
                                                       channels: network.architecture.numClasses, logger: logger),
                                        budgetBytes: request.cacheBytes)
            let vesselImages = trainingSet.samples.count - lesionImages
            if let share = request.vesselShare, vesselImages > 0 {
                let r = RepeatedSamples.repeats(main: lesionImages, extra: vesselImages, share: share)
                let indices = Array(repeating: Array(0..<lesionImages), count: r.main).flatMap { $0 }
                    + Array(repeating: Array(lesionImages..<trainingSet.samples.count), count: r.extra).flatMap { $0 }
                samples = RepeatedSamples(samples, indices: indices)
                logger.info("training: a pass draws the \(lesionImages) lesion-set images \(r.main)× and the \(vesselImages) vessel images \(r.extra)×: vessel share \(String(format: "%.3f", Double(r.extra * vesselImages) / Double(indices.count))) (asked \(share))")
            }
            var trainer = try Trainer(model: NetworkModel(network), data: samples,
                                      configuration: configuration, checkpointFolder: request.workDirectory, logger: logger)
            trainer.logInterval = max(1, request.logInterval)
            trainer.stopRequested = request.stopRequested
            trainer.prefetchBatches = request.prefetchBatches
            let trainingStarted = Date()
            try trainer.resume()
            let losses = try trainer.run()
            // The whole training's time where the checkpoints resumed from recorded theirs, else this run's.
            let trainingSeconds = trainer.trainingSeconds ?? Date().timeIntervalSince(trainingStarted)
            let validationStarted = Date()

            // 5. Validate the candidate, and the active model on the same images.
            var metrics = ValidationMetrics()
            var candidateReport: EvaluationReport?
            var singlePassReport: EvaluationReport?
            var validationSeconds: Double?
            if let validator {
                let (report, single) = try validator.evaluateWithSinglePass(trainer.model, label: request.name)
                candidateReport = report
                singlePassReport = single
                validationSeconds = Date().timeIntervalSince(validationStarted)
                metrics = ValidationMetrics(validation: .init(set: validator.dataset.source, imageNames: validator.imageNames),
                                            figures: Validator.figures(report))
                if request.validateActive, let connection, let active = try ModelRegistry(connection: connection).active() {
                    metrics.baseline = try baseline(active, validator: validator, logger: logger)
                }
                logger.info("validation: \(request.name): mAUPR \(fmt(metrics.figures["mAUPR"])) mIoU \(fmt(metrics.figures["mIoU"])) mAP \(fmt(metrics.figures["mAP"]))\(metrics.baseline.map { " (active \($0.model): mAUPR \(fmt($0.figures["mAUPR"])) mAP \(fmt($0.figures["mAP"])))" } ?? "")")
            }

            // 6. The bundle: weights + model card.
            var card = ModelCard(name: request.name, version: request.name, architecture: network.architecture,
                                 normalisation: configuration.normalisation,
                                 inputScale: configuration.inputScale,
                                 trainingData: "\(trainingSet.source) (\(trainingSet.layout.rawValue), \(trainingSet.samples.count) images, \(trainingSet.annotated.sorted().map(\.code).joined(separator: ","))\(disc ? ", optic disc on \(trainingSet.samples.filter { $0.discMask != nil }.count)" : ""))",
                                 metrics: metrics.figures.filter { $0.value.isFinite })
            card.channelScales = channelScales
            if let command = request.command {
                card.training = TrainingRecord(command: command, seconds: trainer.trainingSeconds,
                                               iterations: configuration.iterations, machine: TrainingRecord.thisMachine)
            }
            card.crossValidation = request.crossValidation
            card.changelog[request.name] = "trained \(configuration.iterations) iterations from \(startedFrom), seed \(configuration.seed), final loss \(fmt(losses.last.map(Double.init)))"
            let weights = try WeightLoader.save(tensors: stableExport(network), card: card,
                                                to: request.modelDirectory.appendingPathComponent(request.name))

            // 7. Register the candidate.
            var versionID: Int64?
            if request.register, let connection {
                let version = try ModelRegistry(connection: connection).register(
                    name: request.name, architecture: network.architecture.displayName, weightsPath: weights.path,
                    checksum: SHA256.hex(fileAt: weights), metricsJSON: metrics.json, trainingRunID: runID)
                versionID = version.id
                logger.info("registry: \(version.name) registered as candidate \(version.id)")
            }
            if let runID { try runs?.finish(id: runID, outcome: .succeeded, metricsJSON: metrics.json) }
            return TrainingOutcome(weights: weights, card: card, metrics: metrics, report: candidateReport,
                                   singlePassReport: singlePassReport,
                                   trainingSeconds: trainingSeconds, validationSeconds: validationSeconds,
                                   modelVersionID: versionID, trainingRunID: runID)
        } catch {
            if let runID { try? runs?.finish(id: runID, outcome: .failed, error: "\(error)") }
            throw error
        }
    }

    /// The active model's figures on the validation images.
    static func baseline(_ active: ModelVersion, validator: Validator, logger: Logger) throws -> ValidationMetrics.Baseline {
        let loaded = try WeightLoader.load(URL(fileURLWithPath: active.weightsPath))
        let network = try ModelWeights.inferenceModel(loaded)
        let model = NetworkModel(network)
        var v = validator
        if let n = loaded.card?.normalisation {
            v = try Validator(validator.dataset, normalisation: n,
                              scale: validator.scale, logger: logger)
            v.augmentation = validator.augmentation
        }
        return .init(model: active.name, figures: Validator.figures(try v.evaluate(model, label: active.name)))
    }

    /// The weights with the architecture metadata in sorted-key JSON, so equal weights give byte-equal files (and
    /// equal registry checksums): the engine's export writes the keys in hash order, which varies between runs.
    static func stableExport(_ network: SegmentationModel) -> TensorFile {
        var file = network.exportWeights()
        if file.metadata[ModelWeights.architectureKey] != nil {
            file.metadata[ModelWeights.architectureKey] = jsonText(network.architecture)
        }
        return file
    }

    static func jsonText<T: Encodable>(_ value: T) -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return (try? e.encode(value)).flatMap { String(data: $0, encoding: .utf8) } ?? "{}"
    }

    static func fmt(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "–" }
}

import ArgumentParser
import Checkpoints
import Foundation
import Store
import Tensor
import Training

/// `fundus-screen train`: train or fine-tune on an annotated set, validate with the official metrics, save the model
/// bundle and register it as a candidate. A killed run started again with the same options resumes from its last
/// checkpoint and ends with the same weights.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train or fine-tune M2MRF-HRNetV2 on annotated images; validate; register the result as a candidate model.",
        discussion: """
        Datasets: IDRiD layout (images/ + masks/<CLS>/<image>_<CLS>.png|tif), DDR (image/ + label/<CLS>/), or \
        nnU-Net (imagesTr/, labelsTr/, dataset.json); or db:train / db:validation, the archive images whose masks \
        were registered with `fundus-screen annotations import`. Classes a dataset does not annotate are left out of the loss. \
        Defaults follow the official config: SGD lr 0.01 momentum 0.9 weight decay 5e-4, poly 0.9 to 1e-4, \
        scale jitter 0.5–2.0, crop with cat_max_ratio 0.75, photometric distortion; plus flips and 90° rotations.

        SIGINT/SIGTERM: the iteration under way finishes, a checkpoint is written and the command exits; the same \
        command resumes (a second signal exits at once).
        """
    )

    @OptionGroup var global: GlobalOptions

    @OptionGroup var training: TrainingOptions
    @Option(help: "Training set: a folder, or db:train for the annotations registered in the database.") var data: String
    @Option(help: "Only these training images, by stem: comma-separated, ranges allowed (IDRiD_01-IDRiD_10).") var images: String?
    @Option(help: "Only these validation images (same form as --images).") var valImages: String?
    @Option(help: "Validation set: a folder or db:validation (all four classes annotated). Without it the model has no figures and promotion refuses it.")
    var val: String?
    @Option(help: "Name of the model version (default train-<date>-<time>).") var name: String?
    @Option(help: "Folder for checkpoints (default <state>/training/<name>); a run resumes from what is there.") var workDir: String?
    @Option(help: "Folder for model bundles (default <state>/models).") var modelsDir: String?
    @Option(help: ArgumentHelp("A finished cross-validation's --work-dir: its table goes into the model card, with the options where this training differs from the cross-validated recipe.", valueName: "dir"))
    var crossval: String?
    @Flag(help: "With --crossval: accept a cross-validation whose folds are not all finished (the card names the missing ones; `model crossval` can replace the record once they are).")
    var crossvalUnfinished = false
    @Flag(help: "Do not validate the active model alongside (promotion then needs figures on the same images).") var noBaseline = false

    func run() throws {
        let logger = global.makeLogger("fundus-screen.train")
        EngineThreads.configureProcessForEngine()
        let location = global.databaseLocation
        let connection = try Database.connect(location, logger: logger)
        let state = global.stateDir.map { URL(fileURLWithPath: $0) } ?? DatabaseLocation.defaultStateDirectory()

        let configuration = training.configuration()
        let modelName = name ?? "train-" + Self.timestamp()
        var request = TrainingRequest(
            data: try TrainingData.parse(data), validation: try val.map { try TrainingData.parse($0) },
            initialWeights: try training.from.map { try Self.weights(of: $0, connection: connection) },
            architecture: training.arch.flatMap(ArchitectureName.parse), configuration: configuration,
            workDirectory: workDir.map { URL(fileURLWithPath: $0) } ?? state.appendingPathComponent("training/\(modelName)"),
            modelDirectory: modelsDir.map { URL(fileURLWithPath: $0) } ?? state.appendingPathComponent("models"),
            name: modelName)
        try training.apply(to: &request)
        request.validateActive = !noBaseline
        request.trainingImages = try images.map { try LesionDataset.expandSelection($0) }
        request.validationImages = try valImages.map { try LesionDataset.expandSelection($0) }
        request.command = TrainingRecord.commandLine(["fundus-screen"] + CommandLine.arguments.dropFirst())
        if let crossval {
            let settings = training.settingsLine(data: data, initialWeights: request.initialWeights, configuration: configuration,
                                                 augmentation: nil)
            let (summary, record) = try Self.crossValidationRecord(crossval, finalSettings: settings, allowUnfinished: crossvalUnfinished)
            request.crossValidation = record
            print("cross-validation: \(summary.folds) folds\(summary.missingFolds.isEmpty ? "" : " (\(summary.missingFolds.count) unfinished)") over \(summary.images) images from \(crossval); " + (record.differences.isEmpty
                ? "this training is its recipe on all the images"
                : "this training differs from its recipe in " + record.differences.joined(separator: "; ")))
        }
        request.stopRequested = TrainingOptions.stopOnSignal(logger: logger)
        let outcome = try TrainingSession.run(request, connection: connection, logger: logger)
        print("model \(modelName): \(outcome.weights.path)")
        if let id = outcome.modelVersionID { print("registered as candidate \(id)") }
        for key in ["mAUPR", "mIoU", "mAP"] {
            if let v = outcome.metrics.figures[key] {
                let active = outcome.metrics.baseline.flatMap { b in b.figures[key].map { " (active \(b.model): " + String(format: "%.4f", $0) + ")" } } ?? ""
                print("  \(key) " + String(format: "%.4f", v) + active)
            }
        }
    }

    /// The card record of the cross-validation in `directory` (its crossval.json) for a final training whose options,
    /// in `crossval`'s settings form, are `finalSettings` (nil: unknown, said so among the differences). The
    /// test-time augmentation is a validation setting, not the recipe's, and is not listed as a difference.
    static func crossValidationRecord(_ directory: String, finalSettings: String?,
                                      allowUnfinished: Bool) throws -> (CrossValidation.Summary, CrossValidationRecord) {
        let summary = try CrossValidation.finishedSummary(in: URL(fileURLWithPath: directory), allowUnfinished: allowUnfinished)
        var record = CrossValidation.record(summary, finalSettings: finalSettings)
        record.differences.removeAll { $0.hasPrefix("tta:") }
        if finalSettings == nil { record.differences = ["the final training's options are not known (the card has no train command that parses)"] }
        return (summary, record)
    }

    /// A model reference for --from (see `ModelRollout.weights(of:)`).
    static func weights(of reference: String, connection: Connection) throws -> URL {
        do { return try ModelRollout(registry: ModelRegistry(connection: connection)).weights(of: reference) } catch let error as TrainingError {
            throw ValidationError("--from \(error.message)")
        }
    }

    static func timestamp() -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd-HHmmss"
        return f.string(from: Date())
    }
}

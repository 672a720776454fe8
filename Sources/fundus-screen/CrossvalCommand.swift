import ArgumentParser
import Checkpoints
import Foundation
import Logging
import Network
import Store
import Tensor
import Training

/// `fundus-screen crossval`: k-fold cross-validation in one command. Each fold trains exactly as `train` would
/// (same options, from --from or the initialisation, resuming from its own checkpoints) on the other folds' images,
/// without registering anything, then validates its own images at full resolution with `train --val`'s code.
struct CrossvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crossval",
        abstract: "k-fold cross-validation: train on k−1 folds, validate the held-out fold (official AUPR, exact AP, IoU), for every fold; summarise.",
        discussion: """
        Folds: \(CrossValidation.assignmentRule). Every image is validated exactly once. \
        The work folder keeps fold-<n>.json (figures), fold-<n>/ (checkpoints, model bundle, and held-out/: each \
        validated image's truth beside the fold model's masks, <image>_truth-vs-model.png), crossval.json and \
        crossval.md; a rerun with the same options skips finished folds and resumes unfinished ones from their \
        checkpoints, so a run can span several sittings (--fold N runs one); SIGINT/SIGTERM stops it after the \
        iteration under way with a checkpoint. Nothing is registered in the database; \
        it is used only for db: data or a --from that names a registered model.
        """
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var training: TrainingOptions
    @Option(help: "Annotated images (all four classes): a folder in IDRiD, DDR or nnU-Net layout, or db:train.") var data: String
    @Option(help: "Only these images, by stem: comma-separated, ranges allowed (IDRiD_01-IDRiD_14).") var images: String?
    @Option(help: "Number of folds.") var folds: Int = 5
    @Option(help: "Run only this fold (1-based); the summary covers the folds finished so far.") var fold: Int?
    @Flag(inversion: .prefixedNo, help: "Validate with mirroring test-time augmentation (on by default; 4 passes per image, sigmoid probabilities averaged at the photograph's pixels). --no-tta: the official single pass.")
    var tta = true
    @Flag(help: "With TTA: also the transposed image and its three mirrorings (8 passes per image).")
    var dihedral = false
    @Option(help: "Work folder: fold results, checkpoints and the summary (crossval.json, crossval.md).") var workDir: String

    func validate() throws {
        if dihedral && !tta { throw ValidationError("--dihedral adds passes to test-time augmentation: not with --no-tta") }
        if folds < 2 { throw ValidationError("--folds must be at least 2") }
        if let fold, !(1...folds).contains(fold) { throw ValidationError("--fold must lie in 1…\(folds)") }
    }

    func run() throws {
        let logger = global.makeLogger("fundus-screen.crossval")
        EngineThreads.configureProcessForEngine()
        let work = URL(fileURLWithPath: workDir)
        let dataSource = try TrainingData.parse(data)

        // The database only where the options need it.
        var connection: Connection?
        func database() throws -> Connection {
            if let connection { return connection }
            let c = try Database.connect(global.databaseLocation, logger: logger)
            connection = c
            return c
        }
        if case .annotations = dataSource { _ = try database() }
        let initialWeights: URL? = try training.from.map { reference in
            if FileManager.default.fileExists(atPath: reference) { return URL(fileURLWithPath: reference) }
            return try TrainCommand.weights(of: reference, connection: database())
        }

        // Every image of the set (or the asked ones) that validation can use.
        var set = try dataSource.open(connection: connection, logger: logger)
        if let images { set = try set.selecting(LesionDataset.expandSelection(images)) }
        // The extra training sets are read now, so a wrong folder fails before any fold starts.
        if let vessels = training.vessels {
            let extra = try LesionDataset.vessels(URL(fileURLWithPath: vessels))
            if let names = training.vesselImages { _ = try extra.selecting(LesionDataset.expandSelection(names)) }
        }
        if let negatives = training.negatives {
            let extra = try LesionDataset.lesionFree(URL(fileURLWithPath: negatives))
            if let names = training.negativeImages { _ = try extra.selecting(LesionDataset.expandSelection(names)) }
        }
        let assignment = try CrossValidation.folds(set.samples.map(\.name), count: folds)
        let augmentation = TestTimeAugmentation.chosen(tta: tta, dihedral: dihedral)
        print("crossval: \(set.samples.count) images of \(set.source), \(folds) folds: \(CrossValidation.assignmentRule)")
        for (i, f) in assignment.enumerated() { print("  fold \(i + 1): \(f.joined(separator: ", "))") }
        print("validation inference: \(augmentation.description) per image")

        let configuration = training.configuration()
        let settings = training.settingsLine(data: data, initialWeights: initialWeights, configuration: configuration, augmentation: augmentation)
        let stopRequested = TrainingOptions.stopOnSignal(logger: logger)
        let results = try CrossValidation.run(folds: assignment, only: fold, workDirectory: work, settings: settings, logger: logger) {
            n, trainingImages, validationImages, folder in
            var request = TrainingRequest(
                data: dataSource, validation: dataSource, initialWeights: initialWeights,
                architecture: training.arch.flatMap(ArchitectureName.parse), configuration: configuration,
                workDirectory: folder.appendingPathComponent("checkpoints"), modelDirectory: folder, name: "crossval-fold-\(n)")
            try training.apply(to: &request)
            request.validateActive = false
            request.trainingImages = trainingImages
            request.validationImages = validationImages
            request.validationAugmentation = augmentation
            request.validationOverlays = folder.appendingPathComponent("held-out")
            request.command = TrainingRecord.commandLine(["fundus-screen"] + CommandLine.arguments.dropFirst())
            request.register = false
            request.stopRequested = stopRequested
            let started = Date()
            // Nothing is registered; the connection (nil unless db: data or a registered --from) only reads data.
            let outcome = try TrainingSession.run(request, connection: connection, logger: logger)
            guard let report = outcome.report else {
                throw TrainingError(.configuration, "fold \(n): the training session returned no validation report")
            }
            var result = CrossValidation.FoldResult(
                fold: n, folds: assignment.count, trainingImages: trainingImages, validationImages: validationImages,
                settings: settings, augmentation: augmentation.description, report: report)
            if let single = outcome.singlePassReport { result.setSinglePass(single) }
            result.weights = outcome.weights.path
            result.trainingSeconds = outcome.trainingSeconds
            result.validationSeconds = outcome.validationSeconds
            logger.info("crossval: fold \(n) done in \(String(format: "%.0f", Date().timeIntervalSince(started))) s")
            return result
        }
        let summary = CrossValidation.summarise(results, folds: assignment.count)
        let (json, md) = try CrossValidation.writeSummary(summary, to: work)
        print("")
        print(CrossValidation.markdown(summary))
        print("written: \(json.path), \(md.path)")
    }
}

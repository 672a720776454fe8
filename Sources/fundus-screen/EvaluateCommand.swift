import ArgumentParser
import Foundation
import Lesions
import Logging
import Training

/// `fundus-screen evaluate --pred DIR --truth DIR [--json FILE]`: the official M2MRF figures and ours, per class.
struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Evaluate per-class lesion predictions against IDRiD-style truth masks.",
        discussion: """
            Both folders hold <image>_<EX|HE|SE|MA>.png/.tif files, directly or in EX/ HE/ SE/ MA/ sub-folders. \
            Predictions are 8-bit probability maps (v/255) or binary masks; a missing truth file means the class \
            is absent. Prints the official M2MRF figures (dataset-level pixel counts, IoU at 0.5, 11-threshold \
            AUPR) and, beside them, exact average precision, sensitivity/precision/F1, per-image Dice and \
            image-level presence AUC.
            """)

    @Option(name: .long, help: "Folder of predictions (probability maps or masks).")
    var pred: String

    @Option(name: .long, help: "Folder of truth masks (PNG or TIFF).")
    var truth: String

    @Option(name: .long, help: "Write the full result (per-class curves, per-image lesion counts) as JSON here.")
    var json: String?

    @Option(name: .long, help: "Operating threshold for our figures (the official ones always use 0.5).")
    var threshold: Float = 0.5

    @Option(name: .long, help: "Truth pixels marked for several classes: official (only the highest class, as the reference's label map) or keep (every class).")
    var truthOverlap: FolderEvaluation.TruthOverlap = .official

    @Option(name: .long, help: "Prediction files: auto (all values 0/1 = mask, else probability), probability, mask.")
    var predictionKind: FolderEvaluation.PredictionKind = .auto

    @Option(name: .long, help: "Predicted components smaller than this many pixels are not counted as lesions.")
    var minimumLesionArea: Int = 1

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func run() throws {
        LoggingBootstrap.once()
        var logger = Logger(label: "fundus-screen.evaluate")
        logger.logLevel = logLevel
        guard threshold >= 0 && threshold < 1 else {
            throw ValidationError("--threshold must be in [0, 1), got \(threshold)")
        }
        guard minimumLesionArea >= 1 else { throw ValidationError("--minimum-lesion-area must be at least 1") }
        var options = FolderEvaluation.Options(
            predictions: URL(fileURLWithPath: pred), truth: URL(fileURLWithPath: truth))
        options.operatingThreshold = threshold
        options.truthOverlap = truthOverlap
        options.predictionKind = predictionKind
        options.minimumLesionArea = minimumLesionArea
        let result = try FolderEvaluation.run(options, logger: logger)
        print(FolderEvaluation.table(result), terminator: "")
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(result).write(to: URL(fileURLWithPath: json), options: .atomic)
            print("wrote \(json)")
        }
        if let peak = ProcessMemory.peakResidentBytes() {
            print("peak RSS \(peak / (1 << 20)) MiB")
        }
    }
}

extension FolderEvaluation.TruthOverlap: ExpressibleByArgument {}
extension FolderEvaluation.PredictionKind: ExpressibleByArgument {}

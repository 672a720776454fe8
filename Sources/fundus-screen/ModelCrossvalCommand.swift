import ArgumentParser
import Checkpoints
import Foundation
import Training

/// `fundus-screen model crossval MODEL --crossval DIR`: put a cross-validation's table into a model folder's card,
/// for a final model whose training ended before its cross-validation did (`train --crossval` needs it at the start).
struct ModelCrossval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crossval",
        abstract: "Record a cross-validation (its --work-dir) in a model folder's card (metadata.json), with where the model's training differs from the cross-validated recipe.",
        discussion: """
        The differences are read from the train command in the card. Only the folder's metadata.json changes: a \
        version already registered in the database keeps the card it was registered with.
        """)
    @Argument(help: "The model folder (weights and metadata.json).") var model: String
    @Option(help: ArgumentHelp("The cross-validation's --work-dir (its crossval.json).", valueName: "dir")) var crossval: String
    @Flag(help: "Accept a cross-validation whose folds are not all finished: the card names the missing ones.") var unfinished = false

    func run() throws {
        let url = URL(fileURLWithPath: model).appendingPathComponent(ModelCard.fileName)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw ValidationError("\(model) has no \(ModelCard.fileName): not a model folder")
        }
        var card = try ModelCard.read(url)
        let settings = card.training.flatMap { Self.settings(ofTrainCommand: $0.command) }
        let (summary, record) = try TrainCommand.crossValidationRecord(crossval, finalSettings: settings, allowUnfinished: unfinished)
        card.crossValidation = record
        try card.write(to: url)
        let mean = summary.means["mAUPR"].flatMap { s in s.mean.map { m in String(format: "mAUPR %.4f", m) + (s.standardDeviation.map { String(format: " ± %.4f", $0) } ?? "") } } ?? "mAUPR –"
        print("\(url.path): cross-validation of \(summary.folds - summary.missingFolds.count) of \(summary.folds) folds "
              + "(\(mean)) recorded; " + (record.differences.isEmpty ? "the model trained its recipe on all the images"
                                          : "differences: " + record.differences.joined(separator: "; ")))
    }

    /// The options of a `fundus-screen train …` line in `crossval`'s settings form; nil when the line is not one
    /// or does not parse. `--from` is taken as written (the training itself records the resolved path).
    static func settings(ofTrainCommand line: String) -> String? {
        let words = TrainingRecord.arguments(of: line)
        guard words.count >= 2, words[0].hasSuffix("fundus-screen"), words[1] == TrainCommand.configuration.commandName,
              let train = try? TrainCommand.parse(Array(words.dropFirst(2))) else { return nil }
        return train.training.settingsLine(data: train.data, initialWeights: train.training.from.map { URL(fileURLWithPath: $0) },
                                           configuration: train.training.configuration(), augmentation: nil)
    }
}

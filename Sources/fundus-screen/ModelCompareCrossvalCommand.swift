import ArgumentParser
import Foundation
import Training

/// `fundus-screen model compare-crossval BASELINE ARM`: two cross-validations (their --work-dir) fold by fold.
struct ModelCompareCrossval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare-crossval",
        abstract: "Compare two cross-validations of the same folds (their --work-dir) fold by fold: the paired differences of the arm from the baseline, per class and in the means.",
        discussion: """
        Reads the fold-<n>.json files of both folders (finished folds only: an arm still running can be compared on \
        the folds it has) and pairs the folds both finished; refuses folds that hold other images. Prints Markdown.
        """)
    @Argument(help: ArgumentHelp("The baseline's cross-validation work folder.", valueName: "baseline")) var baseline: String
    @Argument(help: ArgumentHelp("The arm's cross-validation work folder (the recipe change).", valueName: "arm")) var arm: String
    @Option(help: ArgumentHelp("Also write the Markdown to this file.", valueName: "file")) var output: String?

    func run() throws {
        let base = URL(fileURLWithPath: baseline), armURL = URL(fileURLWithPath: arm)
        let comparison = try CrossValidation.compare(baseline: CrossValidation.foldResults(in: base),
                                                     arm: CrossValidation.foldResults(in: armURL))
        let text = CrossValidation.markdown(comparison, baselineName: base.lastPathComponent, armName: armURL.lastPathComponent)
        print(text)
        if let output { try Data(text.utf8).write(to: URL(fileURLWithPath: output), options: .atomic) }
    }
}

import ArgumentParser
import Checkpoints
import Foundation
import Training
import Network
import Tensor

/// `fundus-screen model …`: weight files (inspect), the network on stored tensors (parity checks), model versions.
struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Inspect weight files, run the network on stored tensors, and manage model versions.",
        subcommands: [ModelInspect.self, ModelList.self, ModelPromote.self, ModelRollback.self, ModelValidate.self, ModelCrossval.self, ModelCompareCrossval.self, Snapshot.self, Init.self, Forward.self,
                      Gradients.self, Time.self]
    )

    /// `fundus-screen model snapshot`: the newest checkpoint of a training run as a model bundle.
    struct Snapshot: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Save the newest checkpoint of a training run (its --work-dir) as a model bundle, while it runs.",
            discussion: """
                With --average N: the mean of the weights of the folder's last N checkpoint files (iter_*.safetensors, \
                by iteration; batch-norm running statistics averaged like the weights). A run keeps its last two \
                checkpoints; keep copies of more (hard links do) to average over a longer stretch.
                """)
        @Option(help: "The run's work folder (train --work-dir), or a folder of its checkpoint files.") var workDir: String
        @Option(help: "Folder for the bundle.") var out: String
        @Option(help: "Model name (default snapshot-<iteration>, or average-<first>-<last>).") var name: String?
        @Option(help: "Average the weights of the last N checkpoint files instead of taking the newest.") var average: Int?

        func run() throws {
            let folder = URL(fileURLWithPath: workDir)
            if let average {
                guard average >= 1 else { throw ValidationError("--average takes a count of 1 or more") }
                let files = try TrainingCheckpoint.files(in: folder).suffix(average)
                guard files.count == average else {
                    throw ValidationError("\(workDir) holds \(files.count) checkpoint file(s); --average asks for \(average)")
                }
                let checkpoints = try files.map { try TrainingCheckpoint.read($0) }
                let first = checkpoints.map(\.iteration).min()!, last = checkpoints.map(\.iteration).max()!
                let url = try TrainingSnapshot.exportAverage(checkpoints, from: folder, name: name ?? "average-\(first)-\(last)",
                                                             to: URL(fileURLWithPath: out))
                print("mean of \(average) checkpoints, iterations \(first)–\(last): \(url.path)")
                return
            }
            guard let checkpoint = try TrainingCheckpoint.latest(in: folder) else {
                throw ValidationError("\(workDir) holds no training checkpoint yet")
            }
            let bundleName = name ?? "snapshot-\(checkpoint.iteration)"
            let url = try TrainingSnapshot.export(checkpoint, from: folder, name: bundleName, to: URL(fileURLWithPath: out))
            print("iteration \(checkpoint.iteration)/\(checkpoint.configuration.iterations): \(url.path)")
        }
    }

    struct Forward: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Eval-mode pass: reads 'input' [N,3,H,W]; writes 'logits' (1/4 resolution) and 'probs' (H×W).")
        @OptionGroup var files: PassFiles

        func run() throws {
            let (model, file) = try files.open()
            let x = try file.require("input", in: files.input)
            let (logits, probs) = try model.logitsAndProbabilities(Tensor(x.floats(), shape: x.shape))
            var out = TensorFile()
            out.set("logits", StoredTensor(floats: logits.values(), shape: logits.shape))
            out.set("probs", StoredTensor(floats: probs.values(), shape: probs.shape))
            try Safetensors.write(out, to: URL(fileURLWithPath: files.output))
        }
    }

    struct Gradients: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Training-mode pass with the bdice loss: reads 'train.input' [N,3,H,W] and 'train.labels' [N,H,W]; writes 'train.loss' and 'grad.<parameter>'.")
        @OptionGroup var files: PassFiles

        func run() throws {
            let (model, file) = try files.open()
            let x = try file.require("train.input", in: files.input)
            let labels = try file.require("train.labels", in: files.input)
            let (loss, grads) = try model.trainingStep(input: Tensor(x.floats(), shape: x.shape),
                                                       labels: labels.ints().map { Int32(clamping: $0) })
            var out = TensorFile()
            out.set("train.loss", StoredTensor(floats: [loss], shape: [1]))
            for name in model.trainableNames {
                let g = grads[name]!
                out.set("grad." + name, StoredTensor(floats: g.values(), shape: g.shape))
            }
            try Safetensors.write(out, to: URL(fileURLWithPath: files.output))
        }
    }
}

/// The files of `model forward` and `model gradients`: the weights, the stored tensors the command reads (named in
/// its description), the file it writes.
struct PassFiles: ParsableArguments {
    @Option(help: "Weight file (.pth of the official code, or a safetensors export).") var weights: String
    @Option(help: "safetensors file holding the tensors the command reads.") var input: String
    @Option(help: "safetensors file to write.") var output: String

    /// What both passes start with: the engine's threads, the network of `weights`, the tensors of `input`.
    func open() throws -> (SegmentationModel, TensorFile) {
        EngineThreads.configureProcessForEngine()
        return (try ModelWeights.model(from: URL(fileURLWithPath: weights)), try Safetensors.read(URL(fileURLWithPath: input)))
    }
}

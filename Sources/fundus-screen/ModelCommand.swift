import ArgumentParser
import Checkpoints
import Foundation
import Network
import Tensor

/// `fundus-screen model …`: weight files (inspect), the network on stored tensors (parity checks), model versions.
struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Inspect weight files, run the network on stored tensors, and manage model versions.",
        subcommands: [ModelInspect.self, ModelList.self, ModelPromote.self, ModelRollback.self, Init.self, Forward.self,
                      Gradients.self, Time.self]
    )

    struct Forward: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Eval-mode pass: reads 'input' [N,3,H,W]; writes 'logits' (1/4 resolution) and 'probs' (H×W).")
        @Option(help: "Weight file (.pth of the official code, or a safetensors export).") var weights: String
        @Option(help: "safetensors file holding 'input'.") var input: String
        @Option(help: "safetensors file to write.") var output: String

        func run() throws {
            EngineThreads.configureProcessForEngine()
            let model = try ModelWeights.model(from: URL(fileURLWithPath: weights))
            let file = try Safetensors.read(URL(fileURLWithPath: input))
            let x = try file.require("input", in: input)
            let (logits, probs) = try model.logitsAndProbabilities(Tensor(x.floats(), shape: x.shape))
            var out = TensorFile()
            out.set("logits", StoredTensor(floats: logits.values(), shape: logits.shape))
            out.set("probs", StoredTensor(floats: probs.values(), shape: probs.shape))
            try Safetensors.write(out, to: URL(fileURLWithPath: output))
        }
    }

    struct Gradients: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Training-mode pass with the bdice loss: reads 'train.input' and 'train.labels'; writes 'train.loss' and 'grad.<parameter>'.")
        @Option(help: "Weight file (.pth of the official code, or a safetensors export).") var weights: String
        @Option(help: "safetensors file holding 'train.input' [N,3,H,W] and 'train.labels' [N,H,W].") var input: String
        @Option(help: "safetensors file to write.") var output: String

        func run() throws {
            EngineThreads.configureProcessForEngine()
            let model = try ModelWeights.model(from: URL(fileURLWithPath: weights))
            let file = try Safetensors.read(URL(fileURLWithPath: input))
            let x = try file.require("train.input", in: input)
            let labels = try file.require("train.labels", in: input)
            let (loss, grads) = try model.trainingStep(input: Tensor(x.floats(), shape: x.shape),
                                                       labels: labels.ints().map { Int32(clamping: $0) })
            var out = TensorFile()
            out.set("train.loss", StoredTensor(floats: [loss], shape: [1]))
            for name in model.trainableNames {
                let g = grads[name]!
                out.set("grad." + name, StoredTensor(floats: g.values(), shape: g.shape))
            }
            try Safetensors.write(out, to: URL(fileURLWithPath: output))
        }
    }
}

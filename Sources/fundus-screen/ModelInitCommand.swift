import ArgumentParser
import Foundation
import Pipeline
import Tensor

extension ModelCommand {
    /// `fundus-screen model init`: a model folder with fresh weights, to train from scratch or to time the pipeline.
    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init",
            abstract: "Write a model folder (<name>.safetensors + metadata.json) with freshly initialised weights.",
            discussion: "The weights are untrained: use the folder to start training, or to time the pipeline. " +
                        "Its findings mean nothing.")

        @Option(help: "Architecture: w18-small-C (the shipped one), w18-C, w32-C, w48-C, tiny-C; variants plain, A–D.")
        var arch = "w18-small-C"
        @Option(help: "Output folder.") var out: String
        @Option(help: "Model name (default: untrained-<arch>).") var name: String?
        @Option(help: "Starting probability of every class (classifier bias = its logit); 0 keeps bias 0 (p ≈ 0.5).")
        var prior = 0.01

        func run() throws {
            EngineThreads.configureBLASForEngine()
            let architecture = try FreshModel.architecture(named: arch)
            let weights = try FreshModel.create(architecture: architecture, name: name ?? "untrained-\(arch)",
                                                prior: prior > 0 ? prior : nil, to: URL(fileURLWithPath: out))
            print("\(architecture.displayName), fresh weights: \(weights.path)")
        }
    }
}

import ArgumentParser
import Checkpoints
import Foundation
import Network
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
            EngineThreads.configureProcessForEngine()
            let architecture = try FreshModel.architecture(named: arch)
            let weights = try FreshModel.create(architecture: architecture, name: name ?? "untrained-\(arch)",
                                                prior: prior > 0 ? prior : nil, to: URL(fileURLWithPath: out))
            print("\(architecture.displayName), fresh weights: \(weights.path)")
        }
    }
}

extension ModelCommand {
    /// `fundus-screen model time`: the network alone on an input of the pipeline's size, to compare a screening
    /// run's time per image with (pipelines/bench.sh).
    struct Time: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "time",
            abstract: "Time the network alone (random input, the architecture's cost; no decode, masks or database): s/image.")

        @Option(help: "Architecture (w18-small-C, w48-C, …); ignored with --weights.") var arch = "w18-small-C"
        @Option(help: "A weight file or model folder: time its architecture.") var weights: String?
        @Option(help: "Input height (a 4288×2848 IDRiD photograph's square crop at the IDRiD scale: 960).") var height = 960
        @Option(help: "Input width.") var width = 960
        @Option(help: "Timed runs (after one warm-up).") var runs = 3
        @Flag(help: "Ignore the card's channel_scales (as screen --one-scale does).") var oneScale = false
        @Flag(help: "Time the card's own weight file alone, not its ensemble (as screen --one-model does).") var oneModel = false

        func run() throws {
            EngineThreads.configureProcessForEngine()
            let loaded = try weights.map { try WeightLoader.load(URL(fileURLWithPath: $0)) }
            let architecture = try loaded?.architecture ?? FreshModel.architecture(named: arch)
            // The card's classes read at a larger scale cost their extra pass here too, as in screening.
            let scales = oneScale ? [:] : loaded?.card?.channelScaleIndices ?? [:]
            // An ensemble card's other networks run for every image too (screen averages them).
            let members = try oneModel ? [] : (loaded.map { ModelWeights.files(of: $0).dropFirst() } ?? [])
                .map { try WeightLoader.load($0).architecture }
            let report = try NetworkBenchmark.run(architecture: architecture, height: height, width: width, runs: runs,
                                                  channelScales: scales, ensemble: members) {
                print($0)
            }
            print("architecture: \(architecture.displayName)" + (scales.isEmpty ? "" : "; " + scales.sorted { $0.key < $1.key }.map { "channel \($0.key) at \(ModelCard.readingText($0.value))" }.joined(separator: ", ") + " (the card's channel_scales)"))
            print(report.text)
        }
    }
}

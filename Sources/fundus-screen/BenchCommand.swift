import ArgumentParser
import Foundation
import Checkpoints
import Network
import Tensor

/// `fundus-screen bench`: inference speed of W48 M2MRF-C with random weights (release builds; asserts nothing).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time HRNetV2-W48 M2MRF-C inference with random weights: s/image, GFLOP/s, peak RSS, time by layer kind.")

    @Option(help: "Input height.") var height = 960
    @Option(help: "Input width.") var width = 1440
    @Option(help: "Timed runs (after one warm-up).") var runs = 3
    @Option(help: "Fuse variant: plain, A, B, C, D.") var variant = "C"
    @Flag(help: "Time training steps (bdice forward + backward) instead of inference.") var training = false
    @Option(help: "Batch size of the training steps.") var batch = 2
    @Flag(help: "Inference convolutions in bf16 (f32 accumulation).") var bf16 = false
    @Flag(help: "Split the profiled run by convolution shape, not only by layer kind.") var shapes = false

    func run() throws {
        EngineThreads.configureProcessForEngine()
        guard let v = ModelArchitecture.Variant(rawValue: variant) else {
            throw ValidationError("unknown variant '\(variant)': plain, A, B, C or D")
        }
        if training {
            let (seconds, rss) = try NetworkBenchmark.training(architecture: .w48(variant: v), batch: batch, height: height,
                                                                width: width, runs: runs) { print($0) }
            let median = seconds.sorted()[seconds.count / 2]
            print(String(format: "training step, batch %d at %d×%d: median %.3f s; peak RSS %.2f GiB", batch, height, width,
                         median, Double(rss) / Double(1 << 30)))
            return
        }
        let report = try NetworkBenchmark.run(architecture: .w48(variant: v), height: height, width: width, runs: runs,
                                               bf16: bf16, shapes: shapes) { print($0) }
        print(report.text)
    }
}

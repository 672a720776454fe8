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
    @Flag(help: "Convolutions in bf16 (f32 accumulation); with --training, the mixed-precision step of `train --bf16`.")
    var bf16 = false
    @Flag(help: "Direct 3×3 convolutions only (no Winograd): the engine's previous path, for comparison.") var direct = false
    @Option(help: "--training: recompute the blocks of this many branches in backward instead of keeping their activations (gradient checkpointing, as training does; 0: keep every activation).")
    var checkpointBranches = 2
    @Flag(help: "Split the profiled run by convolution shape, not only by layer kind.") var shapes = false

    func run() throws {
        EngineThreads.configureProcessForEngine()
        guard let v = ModelArchitecture.Variant(rawValue: variant) else {
            throw ValidationError("unknown variant '\(variant)': plain, A, B, C or D")
        }
        if training {
            let r = try NetworkBenchmark.training(architecture: .w48(variant: v), batch: batch, height: height,
                                                  width: width, runs: runs, bf16: bf16, winograd: !direct,
                                                  checkpointBranches: checkpointBranches) { print($0) }
            print(String(format: "training step%@, batch %d at %d×%d: median %.3f s of %d (%@); peak RSS %.2f GiB",
                         bf16 ? " (bf16 convolutions, fp32 master weights)" : "", batch, height, width, r.medianSeconds,
                         r.seconds.count, r.seconds.map { String(format: "%.3f", $0) }.joined(separator: ", "),
                         Double(r.peakRSSBytes) / Double(1 << 30)))
            print(String(format: "tensors: %.2f GiB at the most, %.2f GiB when the forward pass had finished (weights, gradients and saved activations; oneDNN's own buffers not)",
                         Double(r.peakTensorBytes) / Double(1 << 30), Double(r.tensorBytesAfterForward) / Double(1 << 30)))
            let rate = r.gflopPerStep / r.medianSeconds
            print(String(format: "work: %.1f GFLOP of convolutions per step (forward, backward data, backward weights), %.1f GFLOP/s",
                         r.gflopPerStep, rate))
            print(MachineLimit.line(gflops: rate, bf16: bf16, winograd: !direct))
            return
        }
        let report = try NetworkBenchmark.run(architecture: .w48(variant: v), height: height, width: width, runs: runs,
                                               bf16: bf16, winograd: !direct, shapes: shapes) { print($0) }
        print(report.text)
    }
}

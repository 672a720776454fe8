import ArgumentParser
import Checkpoints
import Network

/// `fundus-screen bench`: inference speed of W48 M2MRF-C with random weights (release builds; asserts nothing).
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time HRNetV2-W48 M2MRF-C inference with random weights: s/image, GFLOP/s, peak RSS, time by layer kind.")

    @Option(help: "Input height.") var height = 960
    @Option(help: "Input width.") var width = 1440
    @Option(help: "Timed runs (after one warm-up).") var runs = 3
    @Option(help: "Fuse variant: plain, A, B, C, D.") var variant = "C"

    func run() throws {
        guard let v = ModelArchitecture.Variant(rawValue: variant) else {
            throw ValidationError("unknown variant '\(variant)': plain, A, B, C or D")
        }
        let report = try NetworkBenchmark.run(architecture: .w48(variant: v), height: height, width: width, runs: runs) {
            print($0)
        }
        print(report.text)
    }
}

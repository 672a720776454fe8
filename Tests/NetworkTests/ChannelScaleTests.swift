import Foundation
import Testing
@testable import Checkpoints
@testable import Network
@testable import Tensor

// `SegmentationModel.channelScales`: the listed channels come from a second pass on the input enlarged by their
// factor, brought back to the input size; every other channel is the single pass's, untouched.
@Test("Channels read at a larger scale: taken from the network run on the enlarged input and resized back; the other channels unchanged")
func channelsAtLargerScale() throws {
    let model = try SegmentationModel(architecture: .small(width: 16, variant: .C))
    randomiseWeights(model, seed: 21)
    var r = GradientCheckRandom(22)
    let n = 2, H = 67, W = 83
    let input = Tensor((0..<(n * 3 * H * W)).map { _ in Float(r.normal()) }, shape: [n, 3, H, W])
    let single = try model.upsampledLogits(input).values()
    let ops = Ops(engine: ComputeEngine())
    let enlarged = ops.resizeBilinearPlain(input, height: 101, width: 125)  // 1.5 × 67 = 100.5 → 101, 1.5 × 83 = 124.5 → 125
    let expected = ops.resizeBilinearPlain(try model.upsampledLogits(enlarged), height: H, width: W).values()
    model.channelScales = [3: [1.5]]
    let scaled = try model.upsampledLogits(input).values()
    let plane = H * W
    var other = 0.0, scaledDifference = 0.0, moved = 0.0
    for b in 0..<n {
        for k in 0..<4 {
            for i in 0..<plane {
                let at = (b * 4 + k) * plane + i
                if k == 3 {
                    scaledDifference = max(scaledDifference, Double(abs(scaled[at] - expected[at])))
                    moved = max(moved, Double(abs(scaled[at] - single[at])))
                } else {
                    other = max(other, Double(abs(scaled[at] - single[at])))
                }
            }
        }
    }
    #expect(other == 0, "channels 0–2 changed by \(other)")
    #expect(scaledDifference <= 1e-5, "channel 3 differs from the enlarged pass by \(scaledDifference)")
    #expect(moved > 1e-3, "channel 3 did not change (\(moved)): the second pass was not used")
    // probabilities() is the same inference, sigmoid last.
    let p = try model.probabilities(input).values()
    let sigmoidGap = zip(p, scaled).map { abs(Double($0) - 1 / (1 + exp(-Double($1)))) }.max() ?? 1
    #expect(sigmoidGap < 1e-6, "probabilities differ from sigmoid(logits) by \(sigmoidGap)")
    model.channelScales = [3: [1]]
    #expect(try model.upsampledLogits(input).values() == single)
}

@Test("Channels at several scales, smaller and larger than the model's, each as a fresh model's pass on the resized input; the rest unchanged")
func channelsAtSeveralScales() throws {
    func fresh() throws -> SegmentationModel { try freshSmallModel(seed: 23) }
    var r = GradientCheckRandom(24)
    let n = 1, H = 96, W = 144
    let input = Tensor((0..<(n * 3 * H * W)).map { _ in Float(r.normal()) }, shape: [n, 3, H, W])
    let ops = Ops(engine: ComputeEngine())
    let factors: [Int: Double] = [0: 0.5, 1: 0.75, 3: 1.5]
    // Each reference on a model that has run nothing else: what a pass depends on is its input alone.
    var expected: [Int: [Float]] = [:]
    for (k, f) in factors {
        let resized = ops.resizeBilinearPlain(input, height: Int((Double(H) * f).rounded()), width: Int((Double(W) * f).rounded()))
        expected[k] = ops.resizeBilinearPlain(try fresh().upsampledLogits(resized), height: H, width: W).values()
    }
    let single = try fresh().upsampledLogits(input).values()
    let model = try fresh()
    model.channelScales = factors.mapValues { [$0] }
    let scaled = try model.upsampledLogits(input).values()
    let plane = H * W
    for k in 0..<4 {
        let reference = expected[k] ?? single
        var gap: Float = 0
        for i in k * plane ..< (k + 1) * plane { gap = max(gap, abs(scaled[i] - reference[i])) }
        #expect(gap <= 1e-5, "channel \(k) (factor \(factors[k] ?? 1)) differs from its pass by \(gap)")
    }
}

@Test("A class read as the mean of its probabilities at several scales: the sigmoid of its logits is the mean of each scale's pass; the other channels unchanged")
func channelAsMeanOfScales() throws {
    func fresh() throws -> SegmentationModel { try freshSmallModel(seed: 25) }
    var r = GradientCheckRandom(26)
    let n = 2, H = 80, W = 112
    let input = Tensor((0..<(n * 3 * H * W)).map { _ in Float(r.normal()) }, shape: [n, 3, H, W])
    let ops = Ops(engine: ComputeEngine())
    // References from fresh models, each on its own resized input: scale 1, 0.75 (60 × 84) and 1.5 (120 × 168).
    let single = try fresh().upsampledLogits(input).values()
    func at(_ f: Double) throws -> [Float] {
        let resized = ops.resizeBilinearPlain(input, height: Int((Double(H) * f).rounded()), width: Int((Double(W) * f).rounded()))
        return ops.resizeBilinearPlain(try fresh().upsampledLogits(resized), height: H, width: W).values()
    }
    let small = try at(0.75), large = try at(1.5)
    let model = try fresh()
    model.channelScales = [1: [1, 0.75], 2: [0.75], 3: [0.75, 1.5, 1]]
    let read = try model.probabilities(input).values()
    func sigmoid(_ x: Float) -> Double { 1 / (1 + exp(-Double(x))) }
    let plane = H * W
    var gaps = [Double](repeating: 0, count: 4), moved = 0.0
    for b in 0..<n {
        for k in 0..<4 {
            for i in 0..<plane {
                let j = (b * 4 + k) * plane + i
                let expected: Double = switch k {
                case 1: (sigmoid(single[j]) + sigmoid(small[j])) / 2
                case 2: sigmoid(small[j])
                case 3: (sigmoid(small[j]) + sigmoid(large[j]) + sigmoid(single[j])) / 3
                default: sigmoid(single[j])
                }
                gaps[k] = max(gaps[k], abs(Double(read[j]) - expected))
                if k == 1 { moved = max(moved, abs(Double(read[j]) - sigmoid(single[j]))) }
            }
        }
    }
    #expect(gaps[0] < 1e-6, "channel 0 (one scale) changed by \(gaps[0])")
    for k in 1..<4 { #expect(gaps[k] < 2e-6, "channel \(k) differs from the mean of its scales' probabilities by \(gaps[k])") }
    #expect(moved > 1e-3, "channel 1 is the first pass's (\(moved)): the 0.75× pass was not averaged in")
}

/// A W16-small model with random weights that has run nothing yet: a pass's reference that depends on its input alone.
private func freshSmallModel(seed: UInt64) throws -> SegmentationModel {
    let model = try SegmentationModel(architecture: .small(width: 16, variant: .C))
    randomiseWeights(model, seed: seed)
    return model
}

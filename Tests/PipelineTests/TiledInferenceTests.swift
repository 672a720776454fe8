import Checkpoints
import Foundation
import Network
import Tensor
import Testing
import TestSupport
@testable import Pipeline

@Test("Tiled inference: one tile covering the input is the whole-image result; overlapping tiles cover every pixel",
      .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
func tiledInference() throws {
    let loaded = try WeightLoader.load(SharedFixtures.parity.appendingPathComponent("tiny_m2mrf_C.pth"))
    let model = try SegmentationModel(architecture: loaded.architecture, weights: loaded.tensors)
    let (w, h) = (96, 64)
    var rng = SystemRandomNumberGenerator()
    let input = (0..<(3 * w * h)).map { _ in Float.random(in: -2...2, using: &rng) }
    let whole = try model.upsampledLogits(Tensor(input, shape: [1, 3, h, w])).values()
    let probabilities = try model.probabilities(Tensor(input, shape: [1, 3, h, w])).values()
    #expect(Tensor.relativeError(whole.map { 1 / (1 + expf(-$0)) }, probabilities) < 1e-6)   // logits before the sigmoid

    let single = try ScreeningStages.tiledLogits(model: model, input: input, width: w, height: h, size: 96, overlap: 0.25)
    #expect(Tensor.relativeError(single, whole) < 1e-6)

    let tiled = try ScreeningStages.tiledLogits(model: model, input: input, width: w, height: h, size: 48, overlap: 0.25)
    #expect(tiled.count == whole.count)
    // Every pixel is covered by some tile: the blend is a weighted mean of tile logits, so it lies within their range
    // and never is the 0 of a gap (a logit of exactly 0 is as unlikely as any other exact value).
    #expect(tiled.allSatisfy { $0 != 0 && $0.isFinite })
    // The same network on overlapping views: close, not equal (compared as probabilities, the scale users see).
    func sigmoid(_ v: [Float]) -> [Float] { v.map { 1 / (1 + expf(-$0)) } }
    #expect(Tensor.relativeError(sigmoid(tiled), sigmoid(whole)) < 0.5)
}

import Foundation
import Testing
import TestSupport
@testable import Checkpoints
@testable import Network
@testable import Tensor

/// The fixture's weights and architecture, from its .pth checkpoint (architecture inferred from the keys).
func referenceModel(_ name: String, expecting variant: ModelArchitecture.Variant) throws -> SegmentationModel {
    let (architecture, tensors) = try ModelWeights.read(SharedFixtures.parity.appendingPathComponent(name + ".pth"))
    #expect(architecture == .tinyFixture(variant: variant), "\(name): inferred \(architecture)")
    return try SegmentationModel(architecture: architecture, weights: tensors, weightsFile: name + ".pth")
}

@Test("Eval-mode logits and probabilities match the official code on the five tiny models",
      .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)), arguments: modelCases.indices)
func evalParity(_ k: Int) throws {
    let (name, variant) = modelCases[k]
    let file = try fixture(name)
    let model = try referenceModel(name, expecting: variant)
    let input = file["input"]!
    let (logits, probs) = try model.logitsAndProbabilities(Tensor(input.floats(), shape: input.shape))
    #expect(logits.shape == file["logits"]!.shape)
    let eL = Tensor.relativeError(logits.values(), file["logits"]!.floats())
    let eP = Tensor.relativeError(probs.values(), file["probs"]!.floats())
    #expect(eL < 1e-4, "\(name): logits relative error \(eL)")
    #expect(eP < 1e-4, "\(name): probs relative error \(eP)")
    print("\(name): logits relative error \(eL), probs \(eP)")
}

@Test("Training-mode loss and every parameter's gradient match the official code on the five tiny models (or differ only through ReLU ties, with our backward exact)",
      .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)), arguments: modelCases.indices)
func gradientParity(_ k: Int) throws {
    let (name, variant) = modelCases[k]
    try checkGradientsAgainstFixture(name, model: try referenceModel(name, expecting: variant))
}

@Test("Opt-in bf16 inference stays close to the reference probabilities",
      .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
func bf16Inference() throws {
    let file = try fixture("tiny_m2mrf_C")
    let model = try referenceModel("tiny_m2mrf_C", expecting: .C)
    model.bf16Inference = true
    let input = file["input"]!
    let (logits, probs) = try model.logitsAndProbabilities(Tensor(input.floats(), shape: input.shape))
    let eL = Tensor.relativeError(logits.values(), file["logits"]!.floats())
    let eP = Tensor.relativeError(probs.values(), file["probs"]!.floats())
    print("bf16 tiny_m2mrf_C: logits relative error \(eL), probs \(eP)")
    #expect(eP < 1e-2, "probs relative error \(eP)")
}

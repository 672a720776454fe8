import Foundation
import Testing
import TestSupport
@testable import Checkpoints
@testable import Network
@testable import Tensor

/// Until the .pth reader lands on main, the model parity tests read safetensors conversions of the fixture
/// checkpoints from the folder named by FUNDUS_PARITY_WEIGHTS, and are skipped without it.
let conversions = ProcessInfo.processInfo.environment["FUNDUS_PARITY_WEIGHTS"] ?? ""
let weightsAvailable = SharedFixtures.available && !conversions.isEmpty

/// The fixture's weights, from its .pth checkpoint.
func referenceWeights(_ name: String) throws -> TensorFile {
    try Safetensors.read(URL(fileURLWithPath: conversions).appendingPathComponent(name + ".safetensors"))
}

@Test("Eval-mode logits and probabilities match the official code on the five tiny models",
      .enabled(if: weightsAvailable, "needs ../shared and the fixture weights"), arguments: modelCases.indices)
func evalParity(_ k: Int) throws {
    let (name, variant) = modelCases[k]
    let file = try fixture(name)
    let model = try SegmentationModel(architecture: .tinyFixture(variant: variant), weights: try referenceWeights(name),
                                      weightsFile: name + ".pth")
    let input = file["input"]!
    let (logits, probs) = try model.logitsAndProbabilities(Tensor(input.floats(), shape: input.shape))
    #expect(logits.shape == file["logits"]!.shape)
    let eL = Tensor.relativeError(logits.values(), file["logits"]!.floats())
    let eP = Tensor.relativeError(probs.values(), file["probs"]!.floats())
    #expect(eL < 1e-4, "\(name): logits relative error \(eL)")
    #expect(eP < 1e-4, "\(name): probs relative error \(eP)")
    print("\(name): logits relative error \(eL), probs \(eP)")
}

@Test("Training-mode loss and every parameter's gradient match the official code on the five tiny models",
      .enabled(if: weightsAvailable, "needs ../shared and the fixture weights"), arguments: modelCases.indices)
func gradientParity(_ k: Int) throws {
    let (name, variant) = modelCases[k]
    let file = try fixture(name)
    let model = try SegmentationModel(architecture: .tinyFixture(variant: variant), weights: try referenceWeights(name),
                                      weightsFile: name + ".pth")
    let input = file["train.input"]!
    let labels = file["train.labels"]!.ints().map { Int32($0) }
    let (loss, grads) = try model.trainingStep(input: Tensor(input.floats(), shape: input.shape), labels: labels)
    let wantLoss = file["train.loss"]!.floats()[0]
    #expect(abs(loss - wantLoss) / abs(wantLoss) < 1e-4, "\(name): loss \(loss) vs \(wantLoss)")
    var worst = (0.0, "")
    for key in file.names where key.hasPrefix("grad.") {
        let pname = String(key.dropFirst(5))
        guard let g = grads[pname] else { Issue.record("\(name): no gradient for \(pname)"); continue }
        let want = file[key]!.floats()
        let norm = want.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        if norm < 1e-9 {
            // A bias right before a training-mode BatchNorm: its gradient is zero in exact arithmetic, and the
            // reference holds rounding noise (~1e-11). Relative error means nothing here; ours must be as small.
            let ours = g.values().reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            #expect(ours < 1e-8, "\(name): \(pname) should be ~0, norm \(ours)")
            continue
        }
        let e = Tensor.relativeError(g.values(), want)
        if e > worst.0 { worst = (e, pname) }
        #expect(e < 1e-3, "\(name): \(pname) relative error \(e)")
    }
    print("\(name): loss \(loss) vs \(wantLoss); worst gradient error \(worst.0) at \(worst.1)")
}

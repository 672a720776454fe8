import Foundation
import Testing
import TestSupport
@testable import Checkpoints
@testable import Network
@testable import Tensor

/// The operator cases of the parity fixture: prefixes like `s0.125_13x21`, `s8_3x5`.
func operatorCases() throws -> (TensorFile, [String]) {
    let file = try Safetensors.read(SharedFixtures.parity.appendingPathComponent("m2mrf_operator.safetensors"))
    let prefixes = file.names.filter { $0.hasSuffix(".input") }.map { String($0.dropLast(".input".count)) }.sorted()
    return (file, prefixes)
}

/// Builds the fixture's M2MRF(16 → 12, patch 8, r 4, α 64) for a case prefix and loads its weights.
func fixtureOperator(_ prefix: String, _ file: TensorFile) throws -> M2MRF {
    let scale = Double(prefix.dropFirst().prefix { $0 != "_" })!
    let store = ParameterStore()
    let op = M2MRF(prefix, scaleUp: scale >= 1 ? Int(scale) : 1, scaleDown: scale < 1 ? Int((1 / scale).rounded()) : 1,
                   in: 16, out: 12, settings: (8, 4, 64), store)
    try store.load(file, fileName: "m2mrf_operator.safetensors")
    return op
}

@Test("M2MRF matches the official operator on all 18 fixture cases (scales ×2…×8, ÷2…÷8; odd, tiny, even sizes)",
      .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
func m2mrfParity() throws {
    let (file, prefixes) = try operatorCases()
    #expect(prefixes.count == 18)
    let ops = Ops(engine: ComputeEngine())
    for prefix in prefixes {
        let op = try fixtureOperator(prefix, file)
        let input = file[prefix + ".input"]!, want = file[prefix + ".output"]!
        let y = op(Tensor.blocked(nchw: input.floats(), shape: input.shape), ops)
        #expect(y.shape == want.shape, "\(prefix)")
        if y.shape == want.shape {
            let err = Tensor.relativeError(y.values(), want.floats())
            #expect(err < 1e-5, "\(prefix): relative error \(err)")
        }
    }
}

@Test("M2MRF backward agrees with finite differences (down and up, odd size)",
      .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
func m2mrfGradients() throws {
    let (file, _) = try operatorCases()
    for prefix in ["s0.5_13x21", "s4_3x5"] {
        let op = try fixtureOperator(prefix, file)
        let input = file[prefix + ".input"]!
        let x = Tensor.blocked(nchw: input.floats(), shape: input.shape)
        let weights = [op.encodeWeight, op.fcWeight, op.fc1Bias, op.decodeWeight]
        let errors = networkGradientCheck([x] + weights) { ops in op(x, ops) }
        #expect(errors.allSatisfy { $0 < 1e-2 }, "\(prefix): \(errors)")
    }
}

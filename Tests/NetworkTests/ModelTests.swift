import Foundation
import Testing
import TestSupport
@testable import Checkpoints
@testable import Network
@testable import Tensor

let modelCases: [(String, ModelArchitecture.Variant)] = [
    ("tiny_hrnet", .plain), ("tiny_m2mrf_A", .A), ("tiny_m2mrf_B", .B), ("tiny_m2mrf_C", .C), ("tiny_m2mrf_D", .D),
]

func fixture(_ name: String) throws -> TensorFile {
    try Safetensors.read(SharedFixtures.parity.appendingPathComponent(name + ".safetensors"))
}

@Test("Parameter names and shapes are exactly the reference's (the grad.* keys of each model fixture)",
      .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)), arguments: modelCases.indices)
func parameterNames(_ k: Int) throws {
    let (name, variant) = modelCases[k]
    let file = try fixture(name)
    let model = try SegmentationModel(architecture: .tinyFixture(variant: variant))
    let reference = Set(file.names.filter { $0.hasPrefix("grad.") }.map { String($0.dropFirst(5)) })
    let ours = Set(model.trainableNames)
    #expect(ours.subtracting(reference).sorted() == [], "\(name): names the reference lacks")
    #expect(reference.subtracting(ours).sorted() == [], "\(name): names we lack")
    for n in ours.intersection(reference) {
        #expect(model.parameter(n)?.shape == file["grad." + n]?.shape, "\(name): \(n)")
    }
}

@Test("Loading refuses missing keys and wrong shapes, naming the key")
func loadErrors() throws {
    let model = try SegmentationModel(architecture: .tinyFixture(variant: .C))
    var weights = model.exportWeights()
    weights.tensors["backbone.conv1.weight"] = nil
    #expect(throws: NetworkError.missingParameter(name: "backbone.conv1.weight", file: "w.pth")) {
        try model.load(weights, file: "w.pth")
    }
    weights = model.exportWeights()
    weights.set("decode_head.conv_seg.bias", StoredTensor(floats: [0, 0], shape: [2]))
    #expect(throws: NetworkError.shapeMismatch(name: "decode_head.conv_seg.bias", expected: [4], found: [2], file: "w.pth")) {
        try model.load(weights, file: "w.pth")
    }
}

@Test("W48 M2MRF parameter counts match the reference (backbone A 69.41M … D 67.00M, head 0.52M)")
func w48Counts() throws {
    let want: [ModelArchitecture.Variant: Double] = [.plain: 65.33, .A: 69.41, .B: 66.63, .C: 69.78, .D: 67.00]
    for (variant, millions) in want {
        let store = ParameterStore(initialize: false)
        _ = HRNetBackbone(.w48(variant: variant), store)
        let count = store.trainable.reduce(0) { $0 + store.tensors[$1]!.count }
        #expect(abs(Double(count) / 1e6 - millions) < 0.006, "\(variant): \(count)")
    }
}

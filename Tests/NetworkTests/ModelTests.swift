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

@Test("The fast inference path (BN folded, ReLU/sum post-ops, head in row bands) equals the plain eval-mode graph")
func inferencePathMatchesGraph() throws {
    let architecture = ModelArchitecture(variant: .C, stages: [
        .init(modules: 1, block: .bottleneck, blocks: [1], channels: [16]),
        .init(modules: 1, block: .basic, blocks: [1, 1], channels: [16, 32]),
        .init(modules: 1, block: .basic, blocks: [1, 1, 1], channels: [16, 32, 48]),
        .init(modules: 1, block: .basic, blocks: [1, 1, 1, 1], channels: [16, 32, 48, 64]),
    ])
    let model = try SegmentationModel(architecture: architecture)
    var seed: UInt64 = 3
    for name in model.parameterNames where name.hasSuffix("running_mean") || name.hasSuffix("running_var") {
        let t = model.parameter(name)!
        for i in 0..<t.count {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            let u = Float(seed >> 40) / Float(1 << 24)
            t.data[i] = name.hasSuffix("var") ? 0.5 + u : u - 0.5
        }
    }
    model.invalidateInferenceWeights()
    model.head.bandFloats = 160 * 20 * 3  // several bands of 3 rows
    let input = Tensor((0..<(3 * 53 * 77)).map { Float(($0 * 7919) % 201) / 100 - 1 }, shape: [1, 3, 53, 77])
    let fast = try model.predict(input)
    let graph = model.withEngine { engine in
        model.forward(input, Ops(engine: engine, tape: Tape(), training: false)).toPlain()
    }
    #expect(fast.shape == graph.shape)
    let e = Tensor.relativeError(fast.values(), graph.values())
    #expect(e < 1e-5, "relative error \(e)")
}

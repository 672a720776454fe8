import Testing
import Foundation
import TestSupport
@testable import Checkpoints

private let fixtureCases: [(String, ModelArchitecture.Variant)] = [
    ("tiny_hrnet", .plain), ("tiny_m2mrf_A", .A), ("tiny_m2mrf_B", .B), ("tiny_m2mrf_C", .C), ("tiny_m2mrf_D", .D),
]

@Test("Each parity .pth loads, and its inferred architecture is the tiny fixture configuration",
      .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)),
      arguments: fixtureCases.map(\.0))
func pthFixtureLoads(name: String) throws {
    let variant = fixtureCases.first { $0.0 == name }!.1
    let url = SharedFixtures.parity.appendingPathComponent("\(name).pth")
    let loaded = try WeightLoader.load(url)
    #expect(loaded.architecture == .tinyFixture(variant: variant))
    #expect(loaded.card == nil)
    #expect(loaded.classes == ["EX", "HE", "SE", "MA"])
    #expect(loaded.meta["CLASSES"] == "('bg', 'EX', 'HE', 'SE', 'MA')")
    #expect(loaded.meta["case"] == name)
    let tracked = try #require(loaded.tensors["backbone.bn1.num_batches_tracked"])
    #expect(tracked.dtype == .i64 && tracked.shape == [])
    #expect(loaded.tensors["backbone.conv1.weight"]?.dtype == .f32)
    #expect(loaded.tensors["backbone.conv1.weight"]?.shape == [64, 3, 3, 3])

    // Every gradient of the parity fixture names a parameter of the .pth with the same shape, and the .pth has
    // nothing else but BN buffers.
    let parity = try Safetensors.read(SharedFixtures.parity.appendingPathComponent("\(name).safetensors"))
    let grads = parity.names.filter { $0.hasPrefix("grad.") }
    #expect(!grads.isEmpty)
    var params = Set<String>()
    for g in grads {
        let p = String(g.dropFirst("grad.".count))
        params.insert(p)
        #expect(loaded.tensors[p]?.shape == parity[g]?.shape, "\(p)")
    }
    let buffers = [".running_mean", ".running_var", ".num_batches_tracked"]
    let others = loaded.tensors.names.filter { n in !params.contains(n) && !buffers.contains { n.hasSuffix($0) } }
    #expect(others.isEmpty, "tensors neither parameter nor BN buffer: \(others.prefix(5))")
    // The layout the architecture implies is exactly the file's content.
    let layout = loaded.architecture.stateDictLayout()
    #expect(Set(layout.map(\.name)) == Set(loaded.tensors.names))
    #expect(Set(layout.filter(\.isParameter).map(\.name)) == params)
}

@Test("W48 layouts have the reference's key counts and parameter counts (§2.1, §2.3)")
func w48Layouts() {
    let expected: [(ModelArchitecture.Variant, Int, Double)] = [
        (.plain, 1830, 65.33), (.A, 2220, 69.41), (.B, 2348, 66.63), (.C, 2428, 69.78), (.D, 2556, 67.00),
    ]
    for (v, keys, millions) in expected {
        let layout = ModelArchitecture.w48(variant: v).stateDictLayout()
        let backbone = layout.filter { $0.name.hasPrefix("backbone.") }
        #expect(backbone.count == keys, "\(v)")
        let params = backbone.filter(\.isParameter).reduce(0) { $0 + $1.shape.reduce(1, *) }
        #expect(abs(Double(params) / 1e6 - millions) < 0.005, "\(v): \(params)")
        let head = layout.filter { $0.name.hasPrefix("decode_head.") && $0.isParameter }.reduce(0) { $0 + $1.shape.reduce(1, *) }
        #expect(abs(Double(head) / 1e6 - 0.52) < 0.005)
    }
}

@Test("W48 M2MRF-C is inferred from names and shapes alone, and they match the reference's samples")
func infersW48C() throws {
    let layout = ModelArchitecture.w48(variant: .C).stateDictLayout()
    let shapes = Dictionary(uniqueKeysWithValues: layout.map { ($0.name, $0.shape) })
    // Samples quoted in m2mrf-reference.md §2.3.
    let samples: [String: [Int]] = [
        "backbone.transition1.1.0.0.sample_encode_conv.weight": [64, 256, 1, 1],
        "backbone.transition1.1.0.0.sample.sample_fc.weight": [64, 4096, 1],
        "backbone.transition1.1.0.0.sample.sample_fc1.weight": [1024, 64, 1],
        "backbone.transition1.1.0.0.sample_decode_conv.weight": [96, 64, 1, 1],
        "backbone.stage4.0.fuse_layers.0.1.0.weight": [48, 96, 1, 1],
        "backbone.stage4.0.fuse_layers.0.1.2.sample.sample_fc1.weight": [3072, 12, 1],
        "backbone.stage4.0.fuse_layers.0.3.2.sample.sample_fc1.weight": [49152, 12, 1],
        "backbone.stage4.0.fuse_layers.1.0.0.0.sample.sample_fc1.weight": [192, 12, 1],
        "backbone.stage4.0.fuse_layers.1.0.0.0.sample_decode_conv.weight": [96, 12, 1, 1],
        "backbone.stage4.0.fuse_layers.3.0.2.0.sample_decode_conv.weight": [384, 12, 1, 1],
        "backbone.stage4.0.fuse_layers.3.0.2.1.running_var": [384],
        "decode_head.convs.0.conv.weight": [720, 720, 1, 1],
        "decode_head.conv_seg.weight": [4, 720, 1, 1],
    ]
    for (k, s) in samples { #expect(shapes[k] == s, "\(k)") }
    #expect(try ModelArchitecture.infer(shapes: shapes) == .w48(variant: .C))
    // Other M2MRF settings are read off the shapes too.
    var odd = ModelArchitecture.w18(variant: .B)
    odd.m2mrf = .init(patchSize: 16, encodeChannelsRate: 2, fcChannelsRate: 32)
    let oddShapes = Dictionary(uniqueKeysWithValues: odd.stateDictLayout().map { ($0.name, $0.shape) })
    #expect(try ModelArchitecture.infer(shapes: oddShapes) == odd)
    // Every variant of the small W18.
    for v in ModelArchitecture.Variant.allCases {
        let l = ModelArchitecture.w18Small(variant: v).stateDictLayout()
        #expect(try ModelArchitecture.infer(shapes: Dictionary(uniqueKeysWithValues: l.map { ($0.name, $0.shape) })) == .w18Small(variant: v))
    }
}

@Test("A checkpoint of another network is refused, naming what is missing")
func refusesOtherNetwork() throws {
    // A ResNet-like state dict.
    let resnet: [String: [Int]] = ["conv1.weight": [64, 3, 7, 7], "bn1.weight": [64], "fc.weight": [1000, 2048]]
    let e1 = #expect(throws: CheckpointError.self) { try ModelArchitecture.infer(shapes: resnet, file: "resnet50.pth") }
    #expect(e1?.description.contains("backbone.conv1.weight") == true)
    #expect(e1?.description.contains("resnet50.pth") == true)
    // HRNet without its head (a backbone-only ImageNet checkpoint).
    var shapes = Dictionary(uniqueKeysWithValues: ModelArchitecture.w18(variant: .plain).stateDictLayout().map { ($0.name, $0.shape) })
    shapes = shapes.filter { !$0.key.hasPrefix("decode_head.") }
    let e2 = #expect(throws: CheckpointError.self) { try ModelArchitecture.infer(shapes: shapes) }
    #expect(e2?.description.contains("decode_head.conv_seg.weight") == true)
    // One tensor gone from an otherwise complete M2MRF-B.
    var b = Dictionary(uniqueKeysWithValues: ModelArchitecture.tinyFixture(variant: .B).stateDictLayout().map { ($0.name, $0.shape) })
    b["backbone.stage3.0.fuse_layers.0.2.sample_1.sample_decode_conv.bias"] = nil
    let e3 = #expect(throws: CheckpointError.self) { try ModelArchitecture.infer(shapes: b) }
    #expect(e3?.description.contains("sample_1.sample_decode_conv.bias") == true)
}

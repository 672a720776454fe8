import Testing
import Foundation
import TestSupport
@testable import Checkpoints

@Test("safetensors round-trips names, shapes, values and metadata")
func roundTrip() throws {
    var f = TensorFile(metadata: ["format": "pt"])
    f.set("b.weight", StoredTensor(floats: [1, -2.5, 3, 4, 5, 6], shape: [2, 3]))
    f.set("a.labels", StoredTensor(int32s: [0, 4], shape: [2]))
    let back = try Safetensors.decode(Safetensors.encode(f))
    #expect(back.names == ["b.weight", "a.labels"])
    #expect(back["b.weight"]?.floats() == [1, -2.5, 3, 4, 5, 6])
    #expect(back["b.weight"]?.shape == [2, 3])
    #expect(back["a.labels"]?.ints() == [0, 4])
    #expect(back.metadata["format"] == "pt")
}

@Test("A truncated or garbage safetensors file is refused with the reason")
func refusesBroken() throws {
    var f = TensorFile()
    f.set("x", StoredTensor(floats: [1, 2, 3, 4], shape: [4]))
    let good = Safetensors.encode(f)
    #expect(throws: CheckpointError.self) { try Safetensors.decode(good.prefix(good.count - 3)) }
    #expect(throws: CheckpointError.self) { try Safetensors.decode(Data([1, 2, 3])) }
    #expect(throws: CheckpointError.self) { try Safetensors.decode(Data(repeating: 0xFF, count: 64)) }
}

@Test("The parity fixtures read: operator cases and a model case", .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
func readsFixtures() throws {
    let op = try Safetensors.read(SharedFixtures.parity.appendingPathComponent("m2mrf_operator.safetensors"))
    #expect(op["s0.5_13x21.input"]?.shape == [2, 16, 13, 21])
    let c = try Safetensors.read(SharedFixtures.parity.appendingPathComponent("tiny_m2mrf_C.safetensors"))
    #expect(c["input"]?.shape == [1, 3, 72, 104])
    #expect(c["logits"]?.shape == [1, 4, 18, 26])
    #expect(c["train.labels"]?.dtype == .i32)
}

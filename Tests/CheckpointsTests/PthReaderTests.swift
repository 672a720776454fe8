import Testing
import Foundation
import TestSupport
@testable import Checkpoints

@Test("Values come out as saved: a strided, offset view is copied row-major; module. prefixes and meta are read")
func stridedTensorAndMeta() throws {
    var p = PickleBytes()
    p.op(0x7D); p.put(0); p.mark()                      // {…
    p.string("state_dict")
    p.global("collections", "OrderedDict"); p.op(0x29, 0x52); p.put(1); p.mark()
    // A 2×3 view of storage [0 … 7] starting at 1 with strides (1, 2): [[1, 3, 5], [2, 4, 6]].
    p.string("module.w")
    p.tensor(key: "0", numel: 8, offset: 1, size: [2, 3], stride: [1, 2])
    // The same storage again, contiguous, with an offset: [5, 6, 7].
    p.string("module.tail")
    p.tensor(key: "0", numel: 8, offset: 5, size: [3], stride: [1])
    p.string("module.n")
    p.tensor(storageType: "LongStorage", key: "1", numel: 1, offset: 0, size: [], stride: [])
    // nn.Parameter: _rebuild_parameter(tensor, requires_grad, hooks).
    p.string("module.p")
    p.global("torch._utils", "_rebuild_parameter"); p.mark()
    p.tensor(key: "0", numel: 8, offset: 0, size: [2], stride: [1]); p.op(0x88)
    p.global("collections", "OrderedDict"); p.op(0x29, 0x52); p.endTuple(); p.op(0x52)
    p.op(0x75)                                          // SETITEMS
    // state_dict()'s `_metadata` instance state: BUILD with {'_metadata': {…}}.
    p.op(0x7D); p.string("_metadata"); p.op(0x7D); p.string("version"); p.int(1); p.op(0x73); p.op(0x73); p.op(0x62)
    // An optimizer whose momentum buffer lives in a storage that is never read (and is not even in the archive).
    p.string("optimizer"); p.op(0x7D); p.string("state"); p.op(0x7D); p.int(0)
    p.tensor(key: "99", numel: 4, offset: 0, size: [4], stride: [1]); p.op(0x73); p.op(0x73)
    p.string("meta"); p.op(0x7D); p.mark()
    p.string("CLASSES"); p.mark(); p.string("bg"); p.string("EX"); p.endTuple()
    p.string("iter"); p.int(40000)
    p.string("lr"); p.float(0.01)
    p.string("big"); p.int(1 << 40)
    p.string("neg"); p.int(-3)
    p.string("none"); p.op(0x4E)
    p.string("flags"); p.op(0x5D); p.mark(); p.op(0x88); p.op(0x89); p.op(0x65)   // [True, False]
    p.op(0x75)
    p.op(0x75); p.stop()

    var n = Data(); withUnsafeBytes(of: Int64(40000).littleEndian) { n.append(contentsOf: $0) }
    let zip = makeZip([("ckpt/data.pkl", p.data), ("ckpt/byteorder", Data("little".utf8)),
                       ("ckpt/data/0", floatBytes([0, 1, 2, 3, 4, 5, 6, 7])), ("ckpt/data/1", n),
                       ("ckpt/version", Data("3\n".utf8))])
    let f = try TorchCheckpoint.decode(zip, file: "hand.pth")
    #expect(f.names == ["w", "tail", "n", "p"])
    #expect(f["p"]?.floats() == [0, 1])
    #expect(f["w"]?.shape == [2, 3])
    #expect(f["w"]?.floats() == [1, 3, 5, 2, 4, 6])
    #expect(f["tail"]?.floats() == [5, 6, 7])
    #expect(f["n"]?.dtype == .i64 && f["n"]?.shape == [] && f["n"]?.ints() == [40000])
    #expect(f.metadata["CLASSES"] == "('bg', 'EX')")
    #expect(f.metadata["iter"] == "40000")
    #expect(f.metadata["lr"] == "0.01")
    #expect(f.metadata["big"] == "\(1 << 40)")
    #expect(f.metadata["neg"] == "-3")
    #expect(f.metadata["none"] == "None")
    #expect(f.metadata["flags"] == "[True, False]")
}

@Test("A pickle naming any other global (os.system) is refused before anything happens, naming it")
func refusesForeignGlobal() throws {
    var p = PickleBytes()
    p.global("os", "system"); p.put(0); p.string("touch /tmp/pwned"); p.op(0x85, 0x52); p.stop()
    let zip = makeZip([("evil/data.pkl", p.data), ("evil/byteorder", Data("little".utf8))])
    let e = #expect(throws: CheckpointError.self) { try TorchCheckpoint.decode(zip, file: "evil.pth") }
    #expect(e?.description.contains("os.system") == true)
    #expect(e?.description.contains("evil.pth") == true)
    // builtins.eval through STACK_GLOBAL (protocol 4) is refused the same way.
    var q = PickleBytes()
    q.op(0x8C, 8); q.bytes += Array("builtins".utf8); q.op(0x8C, 4); q.bytes += Array("eval".utf8); q.op(0x93); q.stop()
    let e2 = #expect(throws: CheckpointError.self) { try PickleReader.load(q.data, file: "x") }
    #expect(e2?.description.contains("builtins.eval") == true)
    // An opcode outside the subset is named too (INST, 'i').
    let e3 = #expect(throws: CheckpointError.self) { try PickleReader.load(Data([0x80, 0x02, 0x69]), file: "x") }
    #expect(e3?.description.contains("0x69") == true)
}

@Test("Broken archives say what is wrong: no data.pkl, truncated, legacy format, deflated entries, missing storage")
func refusesBrokenArchives() throws {
    let noPickle = makeZip([("ckpt/byteorder", Data("little".utf8)), ("ckpt/data/0", floatBytes([1]))])
    let e1 = #expect(throws: CheckpointError.self) { try TorchCheckpoint.decode(noPickle, file: "a.pth") }
    #expect(e1?.description.contains("no data.pkl") == true)

    var p = PickleBytes()
    p.op(0x7D); p.string("w"); p.tensor(key: "0", numel: 4, offset: 0, size: [4], stride: [1]); p.op(0x73); p.stop()
    let good = makeZip([("c/data.pkl", p.data), ("c/data/0", floatBytes([1, 2, 3, 4]))])
    #expect(try TorchCheckpoint.decode(good)["w"]?.floats() == [1, 2, 3, 4])
    let e2 = #expect(throws: CheckpointError.self) { try TorchCheckpoint.decode(good.prefix(good.count - 30), file: "t.pth") }
    #expect(e2?.description.contains("truncated") == true)

    let deflated = makeZip([("c/data.pkl", p.data), ("c/data/0", floatBytes([1, 2, 3, 4]))], deflated: ["c/data.pkl"])
    let e3 = #expect(throws: CheckpointError.self) { try TorchCheckpoint.decode(deflated, file: "d.pth") }
    #expect(e3?.description.contains("c/data.pkl") == true && e3?.description.contains("deflate") == true)

    let noStorage = makeZip([("c/data.pkl", p.data)])
    let e4 = #expect(throws: CheckpointError.self) { try TorchCheckpoint.decode(noStorage, file: "s.pth") }
    #expect(e4?.description.contains("c/data/0") == true)

    let tooShort = makeZip([("c/data.pkl", p.data), ("c/data/0", floatBytes([1, 2]))])
    #expect(throws: CheckpointError.self) { try TorchCheckpoint.decode(tooShort) }

    // Pre-1.6 torch.save: a pickled magic number, no zip.
    let legacy = Data([0x80, 0x02, 0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19, 0x2E])
    let e5 = #expect(throws: CheckpointError.self) { try TorchCheckpoint.decode(legacy, file: "old.pth") }
    #expect(e5?.description.contains("legacy") == true)
}

@Test("A truncated fixture .pth is refused, naming the file and the truncation",
      .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
func truncatedFixture() throws {
    let url = SharedFixtures.parity.appendingPathComponent("tiny_m2mrf_A.pth")
    let data = try Data(contentsOf: url)
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    for keep in [data.count / 2, data.count - 100, 100] {
        let cut = dir.appendingPathComponent("cut\(keep).pth")
        try data.prefix(keep).write(to: cut)
        let e = #expect(throws: CheckpointError.self) { try WeightLoader.load(cut) }
        #expect(e?.description.contains("truncated") == true, "\(e?.description ?? "")")
        #expect(e?.description.contains(cut.lastPathComponent) == true)
    }
}

@Test("Values of the fixture .pth match an independent reading (Python pickle of the same file)",
      .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
func fixtureValues() throws {
    let f = try TorchCheckpoint.read(SharedFixtures.parity.appendingPathComponent("tiny_m2mrf_C.pth"))
    #expect(f.names.count == 532)
    let conv1 = try #require(f["backbone.conv1.weight"]).floats()
    #expect(Array(conv1.prefix(3)) == [-0.025405893102288246, -0.024140484631061554, 0.06626295298337936])
    #expect(abs(conv1.reduce(0, +) - -11.168022453751291) < 1e-4)
    let fc1 = try #require(f["backbone.stage4.0.fuse_layers.3.0.2.0.sample.sample_fc1.weight"]).floats()
    #expect(abs(fc1.reduce(0, +) - -4.0285662561655045) < 1e-4)
    #expect(try #require(f["decode_head.conv_seg.bias"]).floats().prefix(3) == [0.015564480796456337, -0.011324344202876091, 0.10540135204792023])
    #expect(abs(try #require(f["backbone.bn1.running_var"]).floats().reduce(0, +) - 65.20468962192535) < 1e-4)
    #expect(f["backbone.bn1.num_batches_tracked"]?.ints() == [1000])
}

@Test("Damaged bytes anywhere in a .pth give an error or a result, never a crash",
      .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
func damagedBytesNeverCrash() throws {
    let good = try Data(contentsOf: SharedFixtures.parity.appendingPathComponent("tiny_hrnet.pth"))
    // Where the pickle and the central directory lie: damage there is what a reader must survive.
    let pickleEnd = 70_000, directory = good.count - 40_000
    var seed: UInt64 = 0x5EED
    func next() -> Int {
        seed = seed &* 6364136223846793005 &+ 1442695040888963407
        return Int(truncatingIfNeeded: seed >> 33)
    }
    var refused = 0, read = 0
    for round in 0..<80 {
        var bad = good
        for _ in 0..<(1 + round % 4) {
            let at = round % 2 == 0 ? next() % pickleEnd : directory + next() % (good.count - directory)
            bad[at] = UInt8(truncatingIfNeeded: next())
        }
        do { _ = try TorchCheckpoint.decode(bad, file: "damaged.pth"); read += 1 } catch { refused += 1 }
    }
    #expect(refused + read == 80)
    #expect(refused > 0)
}

@Test("A self-referencing list in the meta prints with bounded depth")
func selfReferencingMeta() throws {
    var p = PickleBytes()
    p.op(0x5D); p.put(0); p.get(0); p.op(0x61); p.stop()          // l = []; l.append(l)
    let v = try PickleReader.load(p.data, file: "x")
    #expect(v.repr.contains("…"))
    #expect(v.repr.count < 200)
}

@Test("An architecture that cannot be built (from a hand-edited metadata.json) is refused, not crashed on")
func impossibleArchitecture() throws {
    var a = ModelArchitecture.tinyFixture(variant: .C)
    #expect(a.problem == nil)
    a.stages[2].blocks = [1, 1]
    #expect(a.problem?.contains("stage3") == true)
    #expect(a.stateDictLayout().isEmpty)
    #expect(throws: CheckpointError.self) { try a.check(shapes: [:]) }
    var b = ModelArchitecture.tinyFixture(variant: .A)
    b.m2mrf.encodeChannelsRate = 0
    #expect(b.problem != nil)
    #expect(b.parameterCount == 0)
}

@Test("A big-endian checkpoint (byteorder 'big') is read with its bytes swapped")
func bigEndian() throws {
    var p = PickleBytes()
    p.op(0x7D); p.string("w"); p.tensor(key: "0", numel: 2, offset: 0, size: [2], stride: [1]); p.op(0x73)
    p.string("n"); p.tensor(storageType: "LongStorage", key: "1", numel: 1, offset: 0, size: [], stride: []); p.op(0x73); p.stop()
    let floats = [Float(1.5), -2].flatMap { f in withUnsafeBytes(of: f.bitPattern.bigEndian) { Array($0) } }
    let long = withUnsafeBytes(of: Int64(7).bigEndian) { Array($0) }
    let zip = makeZip([("b/data.pkl", p.data), ("b/byteorder", Data("big".utf8)),
                       ("b/data/0", Data(floats)), ("b/data/1", Data(long))])
    let f = try TorchCheckpoint.decode(zip)
    #expect(f["w"]?.floats() == [1.5, -2])
    #expect(f["n"]?.ints() == [7])
}

import Testing
import Foundation
import TestSupport
@testable import Checkpoints

private func temporaryFolder() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

/// Tensors for an architecture, values 0.001·i per tensor, int64 counters for num_batches_tracked.
private func syntheticWeights(_ a: ModelArchitecture) -> TensorFile {
    var f = TensorFile()
    for (i, e) in a.stateDictLayout().enumerated() {
        if e.name.hasSuffix("num_batches_tracked") {
            var d = Data(); withUnsafeBytes(of: Int64(i).littleEndian) { d.append(contentsOf: $0) }
            f.set(e.name, StoredTensor(dtype: .i64, shape: [], bytes: d))
        } else {
            let n = e.shape.reduce(1, *)
            f.set(e.name, StoredTensor(floats: (0..<n).map { Float($0 % 97) * 0.001 + Float(i) }, shape: e.shape))
        }
    }
    return f
}

@Test("The model card round-trips through metadata.json, with an ISO-8601 date and the IDRiD defaults")
func modelCardRoundTrip() throws {
    let dir = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: dir) }
    let card = ModelCard(name: "m2mrf-c-idrid", version: "1.2.0", architecture: .w48(variant: .C),
                         trainingData: "IDRiD segmentation train split (54 images, ×6 offline augmentation)",
                         metrics: ["mIoU": 0.5017, "mAUPR": 0.6755], created: Date(timeIntervalSince1970: 1_790_000_000),
                         changelog: ["1.2.0": "retrained on 2026 archive"])
    #expect(card.classes == ["EX", "HE", "SE", "MA"])
    #expect(card.normalisation.mean == [116.513, 56.437, 16.309])
    #expect(card.normalisation.std == [80.206, 41.232, 13.293])
    #expect(card.inputScale == .init(longEdge: 1440, shortEdge: 960, keepRatio: true))
    #expect(card.threshold == 0.5)
    let url = dir.appendingPathComponent(ModelCard.fileName)
    try card.write(to: url)
    #expect(try ModelCard.read(url) == card)
    let text = try String(contentsOf: url, encoding: .utf8)
    #expect(text.contains("\"created\" : \"2026-09-21T"))
    #expect(text.contains("\"input_scale\""))
    // A default JSONEncoder (dates as numbers elsewhere) still writes the date as text.
    let again = try JSONDecoder().decode(ModelCard.self, from: JSONEncoder().encode(card))
    #expect(again == card)
    // A card missing a field says which.
    let e = #expect(throws: CheckpointError.self) { try ModelCard.decode(Data("{\"name\": \"x\"}".utf8), file: "bad.json") }
    #expect(e?.description.contains("version") == true)
}

@Test("Our safetensors + metadata.json round-trip through WeightLoader, by content and as a folder")
func saveAndLoad() throws {
    let dir = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: dir) }
    let arch = ModelArchitecture.tinyFixture(variant: .D)
    let tensors = syntheticWeights(arch)
    let card = ModelCard(name: "tiny-d", version: "0.1.0", architecture: arch, trainingData: "none (synthetic)")
    let url = try WeightLoader.save(tensors: tensors, card: card, to: dir)
    #expect(url.lastPathComponent == "tiny-d.safetensors")
    #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("metadata.json").path))

    for source in [url, dir] {
        let back = try WeightLoader.load(source)
        #expect(back.architecture == arch)
        #expect(back.card?.name == "tiny-d" && back.card?.weightsFile == "tiny-d.safetensors")
        #expect(back.tensors.names.count == tensors.names.count)
        #expect(back.tensors["backbone.bn1.num_batches_tracked"]?.dtype == .i64)
        #expect(back.tensors["decode_head.conv_seg.bias"] == tensors["decode_head.conv_seg.bias"])
        #expect(back.meta["fundus-screen.version"] == "0.1.0")
        #expect(back.source == url)
    }

    // Without the card the architecture is inferred from names and shapes.
    try FileManager.default.removeItem(at: dir.appendingPathComponent("metadata.json"))
    #expect(try WeightLoader.load(url).architecture == arch)
    #expect(try WeightLoader.load(url).card == nil)

    // A card that does not fit the tensors is refused, naming the mismatch.
    try ModelCard(name: "tiny-d", version: "0.1.0", architecture: .tinyFixture(variant: .A), weightsFile: "tiny-d.safetensors")
        .write(to: dir.appendingPathComponent("metadata.json"))
    let e = #expect(throws: CheckpointError.self) { try WeightLoader.load(url) }
    #expect(e?.description.contains("M2MRF-A") == true)

    // Saving tensors that do not fit the card's architecture is refused too.
    var partial = tensors
    partial.tensors["decode_head.conv_seg.bias"] = nil
    partial.names.removeAll { $0 == "decode_head.conv_seg.bias" }
    let e2 = #expect(throws: CheckpointError.self) { try WeightLoader.save(tensors: partial, card: card, to: dir) }
    #expect(e2?.description.contains("decode_head.conv_seg.bias") == true)
}

@Test("The format is sniffed from the content, not the extension; unknown content is named")
func sniffsContent() throws {
    let dir = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: dir) }
    let tensors = syntheticWeights(.tinyFixture(variant: .plain))
    let misnamed = dir.appendingPathComponent("weights.pth")
    try Safetensors.write(tensors, to: misnamed)
    #expect(try WeightLoader.sniff(misnamed) == .safetensors)
    #expect(try WeightLoader.load(misnamed).architecture == .tinyFixture(variant: .plain))
    let text = dir.appendingPathComponent("notes.safetensors")
    try Data("hello, not weights".utf8).write(to: text)
    let e = #expect(throws: CheckpointError.self) { try WeightLoader.load(text) }
    #expect(e?.description.contains("neither a PyTorch checkpoint nor safetensors") == true)
    let empty = dir.appendingPathComponent("empty.pt")
    try Data().write(to: empty)
    #expect(throws: CheckpointError.self) { try WeightLoader.load(empty) }
}

@Test("Imported .pth weights saved as our safetensors load back identical",
      .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
func importThenSave() throws {
    let dir = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: dir) }
    let pth = try WeightLoader.load(SharedFixtures.parity.appendingPathComponent("tiny_m2mrf_B.pth"))
    let card = ModelCard(name: "tiny-b", version: "1.0.0", architecture: pth.architecture, classes: pth.classes)
    let url = try WeightLoader.save(tensors: pth.tensors, card: card, to: dir)
    let back = try WeightLoader.load(url)
    #expect(back.architecture == pth.architecture)
    #expect(back.tensors.names == pth.tensors.names)
    for n in pth.tensors.names { #expect(back.tensors[n] == pth.tensors[n], "\(n)") }
}

@Test("model inspect shows format, architecture, parameter and buffer counts, classes and meta",
      .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
func inspectSummary() throws {
    let s = try WeightLoader.summary(SharedFixtures.parity.appendingPathComponent("tiny_m2mrf_C.pth"))
    #expect(s.format == WeightFormat.pytorch.rawValue)
    #expect(s.architecture == "HRNetV2-W8 M2MRF-C")
    #expect(s.variant == "C")
    #expect(s.stages.map(\.widths) == [[8], [8, 16], [8, 16, 32], [8, 16, 32, 64]])
    #expect(s.stages.map(\.blocks) == [[1], [1, 1], [1, 1, 1], [1, 1, 1, 1]])
    #expect(s.stages.map(\.modules) == [1, 1, 1, 1])
    #expect(s.m2mrf == .init(patchSize: 8, encodeChannelsRate: 4, fcChannelsRate: 64))
    #expect(s.parameters == ModelArchitecture.tinyFixture(variant: .C).parameterCount)
    #expect(s.bufferTensors == 3 * s.dtypes["I64", default: 0])
    #expect(s.dtypes["I64"] == 54)
    #expect(s.classes == ["EX", "HE", "SE", "MA"])
    #expect(s.meta["case"] == "tiny_m2mrf_C")
    let text = s.text
    #expect(text.contains("HRNetV2-W8 M2MRF-C (variant C: cascade M2MRF down, one-step M2MRF up)"))
    #expect(s.parameters == 326_100)
    #expect(text.contains("parameters    326,100 (0.33 M) in 370 tensors"))
    #expect(text.contains("buffers       2,838 BN running statistics and counters in 162 tensors"))
    #expect(text.contains("classes       EX, HE, SE, MA"))
    let decoded = try JSONDecoder().decode(WeightSummary.self, from: Data(s.json.utf8))
    #expect(decoded == s)

    // The plain network reports no M2MRF settings and the conv fuse paths.
    let plain = try WeightLoader.summary(SharedFixtures.parity.appendingPathComponent("tiny_hrnet.pth"))
    #expect(plain.m2mrf == nil && plain.variant == "plain")
    #expect(!plain.text.contains("M2MRF"))
}

@Test("channel_scales: absent means one scale; round-trips; names map to output channels; a factor outside (0, 4] is refused")
func cardChannelScales() throws {
    var architecture = ModelArchitecture.small(width: 16, variant: .C)
    architecture.numClasses = 5
    var card = ModelCard(name: "d", version: "0.8.0", architecture: architecture, created: Date(timeIntervalSince1970: 1_790_000_000))
    #expect(card.channelScales.isEmpty && card.channelScaleIndices.isEmpty)
    #expect(!String(decoding: card.encoded(), as: UTF8.self).contains("channel_scales"))
    card.channelScales = ["MA": [1.5], "od": [2], "XX": [3], "HE": [1, 0.75]]
    #expect(card.channelScaleIndices == [3: [1.5], 4: [2], 1: [1, 0.75]])
    let again = try ModelCard.decode(card.encoded())
    #expect(again == card)
    // One factor is written as a number, as cards before lists had it; several as a list.
    let written = String(decoding: card.encoded(), as: UTF8.self)
    #expect(written.contains("\"MA\" : 1.5") && written.contains("\"HE\" : [") && !written.contains("\"MA\" : ["))
    for bad in ["\"MA\" : 0", "\"MA\" : []", "\"MA\" : [1, 1]", "\"MA\" : [1, 5]"] {
        let text = written.replacingOccurrences(of: "\"MA\" : 1.5", with: bad)
        #expect(throws: CheckpointError.self, "\(bad)") { try ModelCard.decode(Data(text.utf8)) }
    }
}

@Test("training and cross_validation: absent in older cards; round-trip; the command line quoted so a shell reads it back; settings differences listed")
func cardProvenance() throws {
    var card = ModelCard(name: "d", version: "0.9.0", architecture: .small(width: 16, variant: .C), created: Date(timeIntervalSince1970: 1_790_000_000))
    let text = String(decoding: card.encoded(), as: UTF8.self)
    #expect(!text.contains("cross_validation") && !text.contains("\"training\""))
    #expect(try ModelCard.decode(card.encoded()).training == nil)
    card.training = TrainingRecord(command: TrainingRecord.commandLine(["fundus-screen", "train", "--data", "../shared/data/idrid", "--name", "it's mine", "--images", "A B"]),
                                   seconds: 7212.5, iterations: 6000, machine: TrainingRecord.thisMachine)
    #expect(card.training?.command == "fundus-screen train --data ../shared/data/idrid --name 'it'\\''s mine' --images 'A B'")
    #expect(TrainingRecord.commandLine(["a", ""]) == "a ''")
    // …and `arguments(of:)` reads it back, as a shell would.
    for args in [["fundus-screen", "train", "--data", "../shared/data/idrid", "--name", "it's mine", "--images", "A B"],
                 ["a", "", "'", "''x'", "tab\there", "back\\slash", "$HOME", "new\nline"]] {
        #expect(TrainingRecord.arguments(of: TrainingRecord.commandLine(args)) == args)
    }
    #expect(TrainingRecord.arguments(of: "  a\\ b  'c d'e\t") == ["a b", "c de"])
    card.crossValidation = CrossValidationRecord(
        folds: 5, images: 14, settings: "iterations=6000 seed=31", augmentation: "mirroring TTA, 4 passes",
        statistics: ["mAUPR": .init([(1, 0.42), (2, 0.57), (3, nil)])],
        singlePassStatistics: nil,
        foldResults: [.init(fold: 1, validationImages: ["IDRiD_01"], figures: ["mAUPR": 0.495, "AUPR.EX": 0.697])],
        differences: ["iterations: 6000 → 8000"], table: "| fold | mAUPR |")
    let again = try ModelCard.decode(card.encoded())
    #expect(again == card)
    #expect(String(decoding: card.encoded(), as: UTF8.self).contains("\"cross_validation\""))
    #expect(!String(decoding: card.encoded(), as: UTF8.self).contains("unfinishedFolds"))
    card.crossValidation?.unfinishedFolds = [4, 5]
    #expect(try ModelCard.decode(card.encoded()).crossValidation?.unfinishedFolds == [4, 5])
    // The figures measured after training survive a rewrite of the card (`model crossval` once dropped them).
    #expect(!String(decoding: card.encoded(), as: UTF8.self).contains("\"evaluation\""))
    card.evaluation = ["0.9.0 on IDRiD_21-24, TTA": ["mAUPR": 0.4206, "AUPR.HE": 0.2791]]
    #expect(try ModelCard.decode(card.encoded()).evaluation == card.evaluation)

    #expect(CrossValidationRecord.differences(crossValidated: "data=x iterations=6000 seed=31 tta=4",
                                              final: "data=x iterations=8000 seed=31 vessels=h:all:share-0.25")
            == ["iterations: 6000 → 8000", "tta: 4 → –", "vessels: – → h:all:share-0.25"])
    #expect(CrossValidationRecord.differences(crossValidated: "a=1 b=2", final: "b=2 a=1").isEmpty)
}

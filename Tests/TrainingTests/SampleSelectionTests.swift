import Foundation
import Lesions
import Logging
import Store
import Testing
import TestSupport
@testable import Training

private let logger = Logger(label: "test.training.selection")

@Test("Image selections expand ranges with zero padding and keep single names")
func selectionExpands() throws {
    #expect(try LesionDataset.expandSelection("IDRiD_01-IDRiD_03, IDRiD_13") == ["IDRiD_01", "IDRiD_02", "IDRiD_03", "IDRiD_13"])
    #expect(try LesionDataset.expandSelection("a9-a11") == ["a9", "a10", "a11"])
    #expect(try LesionDataset.expandSelection("x-ray,b") == ["x-ray", "b"])
    #expect(throws: TrainingError.self) { try LesionDataset.expandSelection(" , ") }
}

@Test("Selecting images keeps the order asked and names an unknown image")
func selectingImages() throws {
    let root = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: root) }
    for path in ["images/A_01.jpg", "images/A_02.jpg", "images/A_03.jpg", "masks/EX/A_01_EX.png"] {
        let url = root.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data().write(to: url)
    }
    let d = try LesionDataset.open(root, logger: logger)
    #expect(try d.selecting(["A_03", "A_01", "A_03"]).samples.map(\.name) == ["A_03", "A_01"])
    do {
        _ = try d.selecting(["A_01", "A_04"])
        Issue.record("an unknown image was selected")
    } catch {
        #expect("\(error)".contains("A_04") && "\(error)".contains("A_02"))
    }
}

/// Counts loads, and makes each sample a distinct, fixed image.
private final class CountingSource: TrainingSampleSource, @unchecked Sendable {
    let lock = NSLock()
    var loads: [Int] = []
    let count = 3
    func load(_ index: Int) throws -> LabelledImage {
        lock.withLock { loads.append(index) }
        return LabelledImage(name: "s\(index)", width: 10, height: 10, rgb: [UInt8](repeating: UInt8(index), count: 300),
                             labels: [UInt8](repeating: 0, count: 100), annotated: [true, true, true, true])
    }
}

@Test("The sample cache decodes each sample once while it fits, and drops the least recently used beyond its budget")
func sampleCache() throws {
    let source = CountingSource()
    let roomy = CachedSamples(source, budgetBytes: 10_000)
    for i in [0, 1, 0, 2, 1, 0] { #expect(try roomy.load(i) == (try source.load(i))) }
    #expect(source.loads.filter { $0 >= 0 }.count == 3 + 6)   // 3 misses + the 6 direct loads of the comparisons
    #expect(roomy.statistics.hits == 3 && roomy.statistics.misses == 3)
    #expect(roomy.cachedBytes == 1_200)

    let tight = CachedSamples(CountingSource(), budgetBytes: 800)   // room for two samples of 400 bytes
    for i in [0, 1, 0, 2, 1, 0] { _ = try tight.load(i) }
    // 0 miss, 1 miss, 0 hit, 2 miss (drops 1), 1 miss (drops 0), 0 miss (drops 2).
    #expect(tight.statistics.hits == 1 && tight.statistics.misses == 5)
    #expect(tight.cachedBytes == 800)

    let none = CachedSamples(CountingSource(), budgetBytes: 0)
    for i in [0, 0] { _ = try none.load(i) }
    #expect(none.statistics.misses == 2 && none.cachedBytes == 0)
}

@Test("With the optic-disc channel, centred crops are drawn among the four lesions and the disc; without it, never on the disc")
func discCentredCrops() throws {
    let w = 64, h = 48
    var labels = [UInt8](repeating: 0, count: w * h)
    labels[40 * w + 60] = 4          // one MA pixel near the bottom-right corner
    for y in 2..<8 { for x in 2..<8 { labels[y * w + x] = 5 } }   // the disc, top-left
    let rgb = [UInt8](repeating: 7, count: 3 * w * h)
    let withDisc = LabelledImage(name: "d", width: w, height: h, rgb: rgb, labels: labels, annotated: [true, true, true, true, true])
    var rng = TrainingRNG(seed: 3)
    var onDisc = 0, onMA = 0
    for _ in 0..<200 {
        let crop = try #require(TrainingAugmentation.lesionCentredCrop(withDisc, height: 16, width: 16, rng: &rng))
        if crop.labels.contains(5) { onDisc += 1 }
        if crop.labels.contains(4) { onMA += 1 }
        #expect(crop.labels.contains(5) || crop.labels.contains(4))
    }
    // Two classes present, drawn uniformly: about half the crops each (the two sites are far apart).
    #expect(onDisc > 60 && onMA > 60, "disc \(onDisc), MA \(onMA) of 200")
    // A four-channel model (the disc label present in the data but not trained) is never centred on the disc.
    let noDisc = LabelledImage(name: "n", width: w, height: h, rgb: rgb, labels: labels, annotated: [true, true, true, true])
    for _ in 0..<50 {
        let crop = try #require(TrainingAugmentation.lesionCentredCrop(noDisc, height: 16, width: 16, rng: &rng))
        #expect(crop.labels.contains(4) && !crop.labels.contains(5))
    }
    // The disc not annotated for this image: only the lesions.
    let unannotated = LabelledImage(name: "u", width: w, height: h, rgb: rgb, labels: labels, annotated: [true, true, true, true, false])
    for _ in 0..<50 {
        let crop = try #require(TrainingAugmentation.lesionCentredCrop(unannotated, height: 16, width: 16, rng: &rng))
        #expect(crop.labels.contains(4))
    }
}

@Test("Lesion-centred crops contain a lesion pixel of an annotated class; without lesions there is none")
func lesionCentredCrops() throws {
    let w = 64, h = 48
    var labels = [UInt8](repeating: 0, count: w * h)
    labels[40 * w + 60] = 4          // one MA pixel near the bottom-right corner
    labels[5 * w + 3] = 1            // one EX pixel near the top-left
    let image = LabelledImage(name: "x", width: w, height: h, rgb: [UInt8](repeating: 7, count: 3 * w * h), labels: labels,
                              annotated: [false, true, true, true])   // EX not annotated: never centred on
    var rng = TrainingRNG(seed: 5)
    for _ in 0..<50 {
        let crop = try #require(TrainingAugmentation.lesionCentredCrop(image, height: 16, width: 16, rng: &rng))
        #expect(crop.width == 16 && crop.height == 16)
        #expect(crop.labels.contains(4))
    }
    let blank = LabelledImage(name: "b", width: w, height: h, rgb: image.rgb, labels: [UInt8](repeating: 0, count: w * h),
                              annotated: [true, true, true, true])
    #expect(TrainingAugmentation.lesionCentredCrop(blank, height: 16, width: 16, rng: &rng) == nil)

    // Off by default: the augmentation draws exactly what it drew before the option existed.
    var c = TrainingConfiguration()
    c.cropHeight = 16; c.cropWidth = 16; c.scaleLong = 64; c.scaleShort = 48
    c.ratioRange = [1, 1]   // a downscale could drop the one-pixel lesion
    var a = TrainingRNG(seed: 9), b = TrainingRNG(seed: 9)
    _ = TrainingAugmentation(configuration: c).apply(image, rng: &a)
    c.lesionCropProbability = 0
    _ = TrainingAugmentation(configuration: c).apply(image, rng: &b)
    #expect(a == b)
    c.lesionCropProbability = 1
    var d = TrainingRNG(seed: 9)
    for _ in 0..<10 { #expect(TrainingAugmentation(configuration: c).apply(image, rng: &d).labels.contains(4)) }
}

@Test("A training set from the database's annotations: per-image classes, selection by split, missing masks named")
func databaseAnnotations() async throws {
    let root = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: root) }
    for path in ["images/A_01.jpg", "images/A_02.jpg", "masks/EX/A_01_EX.png", "masks/HE/A_02_HE.png"] {
        let url = root.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(path.utf8).write(to: url)
    }
    try await withTestDatabase { db in
        let c = try db.connect()
        let paths = ["A_01", "A_02"].map { root.appendingPathComponent("images/\($0).jpg").standardizedFileURL.path }
        // The first is in the archive under its path; the second under another path, found by its content.
        try Archive(connection: c).add([
            NewImage(path: paths[0], patientID: "P1", laterality: nil, checksum: try SHA256.hex(fileAt: URL(fileURLWithPath: paths[0])), sizeBytes: 1),
            NewImage(path: "/elsewhere/A_02.jpg", patientID: "P2", laterality: nil, checksum: try SHA256.hex(fileAt: URL(fileURLWithPath: paths[1])), sizeBytes: 1),
        ])
        let outcome = try AnnotationImport(connection: c, logger: logger).register(folder: root, split: .train, grader: "test")
        #expect(outcome.registered == ["A_01", "A_02"] && outcome.notInArchive.isEmpty)

        // The second was matched by content, so training reads the archive's path: it does not exist here.
        #expect(throws: TrainingError.self) { try TrainingData.annotations(.train).open(connection: c, logger: logger) }
        try Annotations(connection: c).remove(imageID: try Archive(connection: c).ids(forPaths: ["/elsewhere/A_02.jpg"])["/elsewhere/A_02.jpg"]!)

        let set = try TrainingData.parse("db:train").open(connection: c, logger: logger)
        #expect(set.layout == .database && set.source == "database annotations (train)")
        #expect(set.samples.map(\.name) == ["A_01"])
        #expect(set.samples[0].annotated == [.hardExudate, .haemorrhage])   // the folder annotates EX and HE; A_01 has no HE lesion
        guard case let .masks(files) = set.samples[0].labels else { Issue.record("expected masks"); return }
        #expect(files.keys.sorted() == [.hardExudate])
        #expect(throws: TrainingError.self) { try TrainingData.annotations(.validation).open(connection: c, logger: logger) }
        #expect(throws: TrainingError.self) { try TrainingData.parse("db:test") }
        #expect(try TrainingData.parse("some/folder") == .folder(URL(fileURLWithPath: "some/folder")))
    }
}

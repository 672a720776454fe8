import Foundation
import Imaging
import Lesions
import Logging
import Testing
import TestSupport
@testable import Training

private let logger = Logger(label: "test.training.dataset")

/// Creates empty files at the given relative paths (the scan reads names, not pixels).
private func makeTree(_ root: URL, _ paths: [String]) throws {
    for path in paths {
        let url = root.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data().write(to: url)
    }
}

@Test("IDRiD layout: masks by class folder, an absent file meaning no lesion, other folders ignored")
func idridLayout() throws {
    let root = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: root) }
    try makeTree(root, ["images/A_01.jpg", "images/A_02.jpg", "masks/EX/A_01_EX.png", "masks/HE/A_01_HE.tif",
                        "masks/HE/A_02_HE.png", "masks/SE/A_02_SE.png", "masks/MA/A_01_MA.png", "masks/OD/A_01_OD.png"])
    let d = try LesionDataset.open(root, logger: logger)
    #expect(d.layout == .idrid)
    #expect(d.samples.map(\.name) == ["A_01", "A_02"])
    #expect(d.annotated == Set(LesionClass.allCases))
    guard case let .masks(m) = d.samples[1].labels else { Issue.record("expected masks"); return }
    #expect(Set(m.keys) == [.haemorrhage, .softExudate])
}

@Test("A mask that matches no image is an error naming the file (the official code made black labels)")
func orphanMask() throws {
    let root = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: root) }
    try makeTree(root, ["images/IDRiD_01.jpg", "masks/EX/IDRiD_1_EX.png"])
    #expect { try LesionDataset.open(root, logger: logger) } throws: { error in
        (error as? TrainingError)?.message.contains("IDRiD_1_EX.png matches no image") == true
    }
    let wrongSuffix = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: wrongSuffix) }
    try makeTree(wrongSuffix, ["images/IDRiD_01.jpg", "masks/EX/IDRiD_01.png"])
    #expect(throws: TrainingError.self) { try LesionDataset.open(wrongSuffix, logger: logger) }
}

@Test("Partial labels: a missing class folder, dataset.json or --classes decide which classes are annotated")
func partialLabels() throws {
    let root = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: root) }
    try makeTree(root, ["image/x.jpg", "label/EX/x.tif", "label/HE/x.tif"])
    let ddr = try LesionDataset.open(root, logger: logger)
    #expect(ddr.layout == .ddr)
    #expect(ddr.annotated == [.hardExudate, .haemorrhage])
    #expect(ddr.samples[0].annotated == [.hardExudate, .haemorrhage])
    let only = try LesionDataset.open(root, classes: [.hardExudate], logger: logger)
    guard case let .masks(m) = only.samples[0].labels else { Issue.record("expected masks"); return }
    #expect(Set(m.keys) == [.hardExudate])
    try Data(#"{"annotated": ["EX", "HE", "MA"]}"#.utf8).write(to: root.appendingPathComponent("dataset.json"))
    #expect(try LesionDataset.open(root, logger: logger).annotated == [.hardExudate, .haemorrhage, .microaneurysm])
    try Data(#"{"annotated": ["EX"]}"#.utf8).write(to: root.appendingPathComponent("dataset.json"))
    #expect(throws: TrainingError.self) { try LesionDataset.open(root, logger: logger) }   // HE masks contradict it
}

@Test("nnU-Net layout: dataset.json labels (v1 and v2) name the annotated classes")
func nnunetLayout() throws {
    let root = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: root) }
    try makeTree(root, ["imagesTr/case1_0000.png", "imagesTr/case2_0000.png", "labelsTr/case1.png", "labelsTr/case2.png"])
    try Data(#"{"labels": {"background": 0, "hard exudates": 1, "MA": 2, "optic disc": 3}, "file_ending": ".png"}"#.utf8)
        .write(to: root.appendingPathComponent("dataset.json"))
    let d = try LesionDataset.open(root, logger: logger)
    #expect(d.layout == .nnunet)
    #expect(d.annotated == [.hardExudate, .microaneurysm])
    #expect(d.samples[1].labels == .indexMap(root.appendingPathComponent("labelsTr/case2.png"), values: [.hardExudate: 1, .microaneurysm: 2]))
    try Data(#"{"labels": {"0": "background", "1": "HE"}}"#.utf8).write(to: root.appendingPathComponent("dataset.json"))
    #expect(try LesionDataset.open(root, logger: logger).annotated == [.haemorrhage])
    try makeTree(root, ["labelsTr/case3.png"])
    #expect(throws: TrainingError.self) { try LesionDataset.open(root, logger: logger) }
}

@Test("Merged label map: MA > SE > HE > EX at overlaps; nnU-Net indices remapped")
func labelMaps() {
    let merged = LabelMap.merge([.hardExudate: [255, 255, 0, 0], .haemorrhage: [0, 1, 1, 0], .microaneurysm: [0, 0, 1, 0]], pixels: 4)
    #expect(merged == [1, 2, 4, 0])
    #expect(LabelMap.remap([0, 1, 2, 3], values: [.hardExudate: 1, .microaneurysm: 2]) == [0, 1, 4, 0])
}

@Test("The shared IDRiD set scans: 14 images, four classes, SE for 03, 08, 13, 14 only", .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
func sharedIDRiD() throws {
    let d = try LesionDataset.open(SharedFixtures.root.appendingPathComponent("data/idrid"), logger: logger)
    #expect(d.samples.count == 14)
    #expect(d.annotated == Set(LesionClass.allCases))
    let withSE = d.samples.filter { if case let .masks(m) = $0.labels { m[.softExudate] != nil } else { false } }.map(\.name)
    #expect(withSE == ["IDRiD_03", "IDRiD_08", "IDRiD_13", "IDRiD_14"])
}

@Test("nnU-Net cases load: the index map becomes our merged labels, other labels background")
func nnunetLoads() throws {
    let root = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: root) }
    for folder in ["imagesTr", "labelsTr"] {
        try FileManager.default.createDirectory(at: root.appendingPathComponent(folder), withIntermediateDirectories: true)
    }
    let w = 6, h = 4
    let rgb = (0..<(3 * w * h)).map { UInt8($0 % 256) }
    let index: [UInt8] = (0..<(w * h)).map { UInt8($0 % 4) }   // 0 background, 1 EX, 2 MA, 3 optic disc
    try ImageCodec.encodePNG(Image(width: w, height: h, channels: 3, pixels: rgb)).write(to: root.appendingPathComponent("imagesTr/c1_0000.png"))
    try ImageCodec.encodePNG(Image(width: w, height: h, channels: 1, pixels: index)).write(to: root.appendingPathComponent("labelsTr/c1.png"))
    try Data(#"{"labels": {"background": 0, "EX": 1, "microaneurysms": 2, "optic disc": 3}, "file_ending": ".png"}"#.utf8)
        .write(to: root.appendingPathComponent("dataset.json"))
    let samples = DatasetSamples(try LesionDataset.open(root, logger: logger), fieldOfViewCrop: false, logger: logger)
    let s = try samples.load(0)
    #expect(s.rgb == rgb)
    #expect(s.labels == index.map { [0, 1, 4, 0][Int($0)] })
    #expect(s.annotated == [true, false, false, true])
}

@Test("Lesion-free photographs (--negatives): every lesion class annotated as absent, the disc not annotated, a label map of background, names kept apart from the lesion set's")
func lesionFreePhotographs() throws {
    let root = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: root) }
    let w = 40, h = 30
    try FileManager.default.createDirectory(at: root.appendingPathComponent("free/images"), withIntermediateDirectories: true)
    var rgb = [UInt8](repeating: 0, count: 3 * w * h)
    for i in 0..<(w * h) { rgb[3 * i] = 150; rgb[3 * i + 1] = 60; rgb[3 * i + 2] = 20 }
    for name in ["h1", "h2"] {
        try ImageCodec.encodePNG(Image(width: w, height: h, channels: 3, pixels: rgb))
            .write(to: root.appendingPathComponent("free/images/\(name).png"))
    }
    try makeTree(root, ["free/masks/vessels/h1.png", "free/notes.txt"])
    let free = try LesionDataset.lesionFree(root.appendingPathComponent("free"))
    #expect(free.samples.map(\.name) == ["h1", "h2"])
    #expect(free.samples.allSatisfy { $0.annotated == Set(LesionClass.allCases) && $0.labels == .masks([:]) && $0.discMask == nil })
    #expect(free.samples[0].annotatedChannels(5) == [true, true, true, true, false])
    let loaded = try DatasetSamples(free, fieldOfViewCrop: false, channels: 5, logger: logger).load(1)
    #expect(loaded.labels.allSatisfy { $0 == 0 } && loaded.labels.count == w * h)
    #expect(loaded.annotated == [true, true, true, true, false])

    try makeTree(root, ["set/images/A_01.jpg", "set/masks/EX/A_01_EX.png"])
    let lesions = try LesionDataset.open(root.appendingPathComponent("set"), logger: logger)
    let both = try lesions.adding(free.selecting(["h2"]))
    #expect(both.samples.map(\.name) == ["A_01", "h2"])
    #expect(both.samples[0].annotated == [.hardExudate])
    #expect(both.annotated == Set(LesionClass.allCases))
    #expect(both.source.contains("1 from") && both.source.contains("lesion-free"))
    #expect { try lesions.adding(lesions) } throws: { ($0 as? TrainingError)?.message.contains("both hold an image named A_01") == true }
    let empty = root.appendingPathComponent("empty")
    try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
    #expect { try LesionDataset.lesionFree(empty) } throws: { ($0 as? TrainingError)?.message.contains("holds no JPEG") == true }
}

@Test("IDRiD's download as it comes: both sets' images, lesion folders by name, the disc folder with --disc; the folder holding \"A. Segmentation\" works too")
func idridDownloadLayout() throws {
    let top = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: top) }
    let root = top.appendingPathComponent("A. Segmentation")
    let truth = "2. All Segmentation Groundtruths"
    try makeTree(root, [
        "1. Original Images/a. Training Set/IDRiD_01.jpg", "1. Original Images/a. Training Set/IDRiD_02.jpg",
        "1. Original Images/b. Testing Set/IDRiD_55.jpg",
        "\(truth)/a. Training Set/1. Microaneurysms/IDRiD_01_MA.tif", "\(truth)/a. Training Set/2. Haemorrhages/IDRiD_01_HE.tif",
        "\(truth)/a. Training Set/3. Hard Exudates/IDRiD_01_EX.tif", "\(truth)/a. Training Set/3. Hard Exudates/IDRiD_02_EX.tif",
        "\(truth)/a. Training Set/4. Soft Exudates/IDRiD_02_SE.tif", "\(truth)/a. Training Set/5. Optic Disc/IDRiD_01_OD.tif",
        "\(truth)/b. Testing Set/1. Microaneurysms/IDRiD_55_MA.tif", "\(truth)/b. Testing Set/3. Hard Exudates/IDRiD_55_EX.tif",
        "\(truth)/b. Testing Set/5. Optic Disc/IDRiD_55_OD.tif",
    ])
    for folder in [root, top] {
        let d = try LesionDataset.open(folder, disc: true, logger: logger)
        #expect(d.layout == .idridDownload)
        #expect(d.samples.map(\.name) == ["IDRiD_01", "IDRiD_02", "IDRiD_55"])
        #expect(d.annotated == Set(LesionClass.allCases))
        let test = try d.selecting(["IDRiD_55"])
        guard case let .masks(m) = test.samples[0].labels else { Issue.record("expected masks"); return }
        #expect(m[.hardExudate]?.lastPathComponent == "IDRiD_55_EX.tif" && m[.microaneurysm]?.lastPathComponent == "IDRiD_55_MA.tif")
        #expect(m.count == 2, "no HE or SE mask for IDRiD_55: no such lesion there")
        #expect(test.samples[0].discMask?.lastPathComponent == "IDRiD_55_OD.tif")
        #expect(d.samples[1].discMask == nil)
    }
    // Without --disc the disc folder is not read; a mask of no image and a name in both sets are errors naming the file.
    #expect(try LesionDataset.open(root, logger: logger).samples.allSatisfy { $0.discMask == nil })
    try makeTree(root, ["\(truth)/b. Testing Set/2. Haemorrhages/IDRiD_56_HE.tif"])
    #expect { try LesionDataset.open(root, logger: logger) } throws: { error in
        (error as? TrainingError)?.message.contains("IDRiD_56_HE.tif matches no image") == true
    }
    try FileManager.default.removeItem(at: root.appendingPathComponent("\(truth)/b. Testing Set/2. Haemorrhages"))
    try makeTree(root, ["1. Original Images/b. Testing Set/IDRiD_01.jpg"])
    #expect { try LesionDataset.open(root, logger: logger) } throws: { error in
        (error as? TrainingError)?.message.contains("two images share the name IDRiD_01") == true
    }
}

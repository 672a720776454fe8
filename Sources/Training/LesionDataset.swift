import Foundation
import Lesions
import Logging

/// Where one training image's lesion labels come from.
public enum LabelSource: Sendable, Equatable {
    /// One binary mask file per class present (IDRiD, DDR); an annotated class without a file has no lesion.
    case masks([LesionClass: URL])
    /// One index map (nnU-Net `labelsTr/`), with the pixel value of each class.
    case indexMap(URL, values: [LesionClass: Int])
}

/// One training image, its labels, and the classes it is annotated for. Classes it is not annotated for are left
/// out of its loss (see `BinaryDiceLoss`).
public struct LabelledSample: Sendable, Equatable {
    public var name: String
    public var image: URL
    public var labels: LabelSource
    public var annotated: Set<LesionClass>
    /// The optic-disc mask (non-zero = disc), when the set is read with the disc (`LesionDataset.open(disc: true)`)
    /// and this image has one. An image without one is not annotated for the disc: its disc channel is left out of
    /// the loss.
    public var discMask: URL?
    /// The vessel mask (grey above `RetinalVessels.maskThreshold` = vessel), for an image of a vessel set
    /// (`LesionDataset.vessels`). An image without one is not annotated for the vessels.
    public var vesselMask: URL?

    public init(name: String, image: URL, labels: LabelSource, annotated: Set<LesionClass>, discMask: URL? = nil,
                vesselMask: URL? = nil) {
        self.name = name
        self.image = image
        self.labels = labels
        self.annotated = annotated
        self.discMask = discMask
        self.vesselMask = vesselMask
    }

    /// Per output channel, whether this image is annotated for it: EX, HE, SE, MA, then (for `channels` 5) the disc,
    /// then (for 6) the vessels.
    public func annotatedChannels(_ channels: Int) -> [Bool] {
        var flags = LesionClass.allCases.map { annotated.contains($0) }
        if channels > flags.count { flags.append(discMask != nil) }
        if channels > flags.count { flags.append(vesselMask != nil) }
        return flags + [Bool](repeating: false, count: max(0, channels - flags.count))
    }
}

/// A folder of annotated fundus photographs in one of the layouts our users have:
///
/// - IDRiD: `images/<stem>.jpg` and `masks/<CLS>/<stem>_<CLS>.png|tif` (CLS = EX, HE, SE, MA);
/// - IDRiD's download as it comes: `1. Original Images/<set>/` and `2. All Segmentation Groundtruths/<set>/<n>. <Lesion>/`
///   (`scanIDRiDDownload`);
/// - DDR: `image/<stem>.jpg` and `label/<CLS>/<stem>.tif|png`;
/// - nnU-Net: `dataset.json`, `imagesTr/<case>_0000.<ext>` (one RGB file) and `labelsTr/<case>.<ext>`.
///
/// For IDRiD and DDR a class is annotated when its mask folder exists, or as a `dataset.json` in the root states
/// (`{"annotated": ["EX", "HE"]}`); an annotated class without a file for an image means no such lesion there.
/// Unlike the official `prepare_labels.py`, which silently skipped mask files whose names did not match and so
/// produced all-black labels, a mask that matches no image is an error naming the file.
public struct LesionDataset: Sendable {
    public enum Layout: String, Sendable, Codable { case idrid, idridDownload = "idrid-download", ddr, nnunet, database }

    public var root: URL
    public var layout: Layout
    public var samples: [LabelledSample]
    /// The classes the dataset annotates (for a folder every sample shares them; for database annotations, the
    /// classes any image annotates: each sample says its own).
    public var annotated: Set<LesionClass>
    /// Where the set came from, when it is not a folder (e.g. "database annotations (train)").
    public var origin: String?

    /// The folder, or where the set came from: for messages and model cards.
    public var source: String { origin ?? root.path }

    static let imageExtensions: Set<String> = ["jpg", "jpeg", "png", "tif", "tiff"]
    static let maskExtensions: Set<String> = ["png", "tif", "tiff"]

    /// Recognises the layout of `root` and scans it. `classes`, when given, overrides which classes are annotated.
    /// `disc`: also read the optic-disc masks (`masks/OD/<image>_OD.*` in the IDRiD layout, `label/OD/` in DDR's).
    public static func open(_ root: URL, classes: Set<LesionClass>? = nil, disc: Bool = false, logger: Logger) throws(TrainingError) -> LesionDataset {
        let fm = FileManager.default
        func isDirectory(_ name: String) -> Bool {
            var dir: ObjCBool = false
            return fm.fileExists(atPath: root.appendingPathComponent(name).path, isDirectory: &dir) && dir.boolValue
        }
        let dataset: LesionDataset
        if isDirectory("imagesTr") {
            dataset = try scanNNUNet(root, logger: logger)
        } else if isDirectory(idridDownloadImages) && isDirectory(idridDownloadTruth) {
            dataset = try scanIDRiDDownload(root, classes: classes, disc: disc, logger: logger)
        } else if isDirectory("A. Segmentation") {
            return try open(root.appendingPathComponent("A. Segmentation"), classes: classes, disc: disc, logger: logger)
        } else if isDirectory("images") && isDirectory("masks") {
            dataset = try scanPerClassMasks(root, layout: .idrid, imageFolder: "images", maskFolder: "masks", classes: classes, disc: disc, logger: logger)
        } else if isDirectory("image") && isDirectory("label") {
            dataset = try scanPerClassMasks(root, layout: .ddr, imageFolder: "image", maskFolder: "label", classes: classes, disc: disc, logger: logger)
        } else {
            throw TrainingError(.dataset, "\(root.path) is not a dataset folder: expected images/ + masks/ (IDRiD), \"1. Original Images/\" + \"2. All Segmentation Groundtruths/\" (IDRiD's download, its \"A. Segmentation\" folder), image/ + label/ (DDR) or imagesTr/ + labelsTr/ + dataset.json (nnU-Net)")
        }
        guard !dataset.samples.isEmpty else { throw TrainingError(.dataset, "\(root.path) holds no images") }
        guard !dataset.annotated.isEmpty else { throw TrainingError(.dataset, "\(root.path) annotates none of EX, HE, SE, MA") }
        if let classes, dataset.layout == .nnunet {
            var narrowed = dataset
            narrowed.annotated = dataset.annotated.intersection(classes)
            narrowed.samples = dataset.samples.map { var s = $0; s.annotated = narrowed.annotated; return s }
            return narrowed
        }
        return dataset
    }

    /// The samples named in `names` (image stems, e.g. `IDRiD_01`), in the order given; an unknown name is an error
    /// that lists what the folder holds, so a typo never trains on fewer images than asked.
    public func selecting(_ names: [String]) throws(TrainingError) -> LesionDataset {
        let byName = Dictionary(samples.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var chosen: [LabelledSample] = [], seen = Set<String>()
        for name in names where seen.insert(name).inserted {
            guard let sample = byName[name] else {
                let known = samples.map(\.name)
                throw TrainingError(.dataset, "\(source) has no image '\(name)' (it holds \(known.prefix(8).joined(separator: ", "))\(known.count > 8 ? ", … \(known.count) in all" : ""))")
            }
            chosen.append(sample)
        }
        guard !chosen.isEmpty else { throw TrainingError(.dataset, "no images selected from \(source)") }
        var subset = self
        subset.samples = chosen
        return subset
    }

    /// Photographs known to hold none of the four lesions (a screening programme's images graded free of
    /// retinopathy; HRF's healthy and glaucoma eyes): every lesion class annotated, no lesion pixel; the optic disc
    /// not annotated. Read from `root/images/` when it exists, else from `root` itself; masks folders are ignored.
    public static func lesionFree(_ root: URL) throws(TrainingError) -> LesionDataset {
        var imageDir = root
        var isDirectory: ObjCBool = false
        let images = root.appendingPathComponent("images")
        if FileManager.default.fileExists(atPath: images.path, isDirectory: &isDirectory), isDirectory.boolValue { imageDir = images }
        let samples = try photographs(in: imageDir).map {
            LabelledSample(name: $0.stem, image: $0.url, labels: .masks([:]), annotated: Set(LesionClass.allCases))
        }
        return LesionDataset(root: root, layout: .idrid, samples: samples, annotated: Set(LesionClass.allCases),
                             origin: "\(root.path) (lesion-free)")
    }

    /// A partially labelled set of photographs whose vessels are annotated and nothing else (HRF): `root/images/`
    /// and `root/masks/vessels/<stem>.<ext>`. Every image must have its vessel mask (one without is an error naming
    /// it, as is a mask that matches no image); no lesion class and not the disc is annotated, so those channels are
    /// left out of these images' loss and only the vessel channel learns from them.
    public static func vessels(_ root: URL) throws(TrainingError) -> LesionDataset {
        let imageDir = root.appendingPathComponent("images")
        let maskDir = root.appendingPathComponent("masks").appendingPathComponent(RetinalVessels.folder)
        for (dir, name) in [(imageDir, "images"), (maskDir, "masks/" + RetinalVessels.folder)] {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw TrainingError(.dataset, "\(root.path) is not a vessel set: it has no \(name) folder")
            }
        }
        let images = Dictionary(uniqueKeysWithValues: try photographs(in: imageDir).map { ($0.stem, $0.url) })
        let masks = Dictionary(uniqueKeysWithValues: try photographs(in: maskDir).map { ($0.stem, $0.url) })
        if let stray = masks.keys.sorted().first(where: { images[$0] == nil }) {
            throw TrainingError(.dataset, "\(masks[stray]!.path) matches no photograph in \(imageDir.path)")
        }
        var samples: [LabelledSample] = []
        for stem in images.keys.sorted() {
            guard let mask = masks[stem] else {
                throw TrainingError(.dataset, "\(images[stem]!.path) has no vessel mask in \(maskDir.path)")
            }
            samples.append(LabelledSample(name: stem, image: images[stem]!, labels: .masks([:]), annotated: [], vesselMask: mask))
        }
        return LesionDataset(root: root, layout: .idrid, samples: samples, annotated: [],
                             origin: "\(root.path) (vessels)")
    }

    /// The photographs (JPEG, PNG, TIFF) of a folder in the order `files(in:)` lists them, by stem; two with one stem,
    /// or none at all, is an error.
    static func photographs(in dir: URL) throws(TrainingError) -> [(stem: String, url: URL)] {
        var found: [(stem: String, url: URL)] = [], seen = Set<String>()
        for name in try files(in: dir) {
            let (stem, ext) = splitExtension(name)
            guard imageExtensions.contains(ext) else { continue }
            guard seen.insert(stem).inserted else { throw TrainingError(.dataset, "\(dir.path): two images share the name \(stem)") }
            found.append((stem, dir.appendingPathComponent(name)))
        }
        guard !found.isEmpty else { throw TrainingError(.dataset, "\(dir.path) holds no JPEG, PNG or TIFF photograph") }
        return found
    }

    /// This set and `other` as one training set: samples of both (each keeps what it is annotated for), names unique.
    public func adding(_ other: LesionDataset) throws(TrainingError) -> LesionDataset {
        let mine = Set(samples.map(\.name))
        if let clash = other.samples.first(where: { mine.contains($0.name) }) {
            throw TrainingError(.dataset, "\(source) and \(other.source) both hold an image named \(clash.name)")
        }
        var merged = self
        merged.samples += other.samples
        merged.annotated.formUnion(other.annotated)
        merged.origin = "\(source) + \(other.samples.count) from \(other.source)"
        return merged
    }

    /// Expands a selection such as `IDRiD_01-IDRiD_10,IDRiD_13`: commas separate items; `A-B` is every name from A
    /// to B by numeric suffix (same prefix; zero-padded when both ends have one width), `A` alone is itself.
    public static func expandSelection(_ text: String) throws(TrainingError) -> [String] {
        var names: [String] = []
        for item in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            let ends = item.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
            if ends.count == 2, let a = numbered(ends[0]), let b = numbered(ends[1]), a.prefix == b.prefix, a.number <= b.number {
                // Zero-padded when both ends are written at one width (IDRiD_01-IDRiD_10), plain otherwise (a9-a11).
                let width = a.digits == b.digits ? a.digits : 0
                for n in a.number...b.number {
                    let digits = String(n)
                    names.append(a.prefix + String(repeating: "0", count: max(0, width - digits.count)) + digits)
                }
            } else {
                names.append(item)
            }
        }
        guard !names.isEmpty else { throw TrainingError(.dataset, "the image selection '\(text)' names no images") }
        return names
    }

    private static func numbered(_ name: String) -> (prefix: String, number: Int, digits: Int)? {
        let digits = name.reversed().prefix { $0.isNumber }
        guard !digits.isEmpty, let n = Int(String(digits.reversed())) else { return nil }
        return (String(name.dropLast(digits.count)), n, digits.count)
    }

    static func files(in folder: URL) throws(TrainingError) -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { !$0.hasPrefix(".") }.sorted()
        } catch {
            throw TrainingError(.dataset, "cannot list \(folder.path): \(error.localizedDescription)")
        }
    }

    static func splitExtension(_ name: String) -> (stem: String, ext: String) {
        let url = URL(fileURLWithPath: name)
        return (url.deletingPathExtension().lastPathComponent, url.pathExtension.lowercased())
    }

    /// `dataset.json` in an IDRiD/DDR root: `{"annotated": ["EX", …]}`.
    static func statedClasses(_ root: URL) throws(TrainingError) -> Set<LesionClass>? {
        let url = root.appendingPathComponent("dataset.json")
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw TrainingError(.dataset, "\(url.path) is not a JSON object")
        }
        guard let codes = object["annotated"] as? [String] else { return nil }
        var out = Set<LesionClass>()
        for code in codes {
            guard let c = LesionClass(code: code) else {
                throw TrainingError(.dataset, "\(url.path): '\(code)' in \"annotated\" is not one of EX, HE, SE, MA")
            }
            out.insert(c)
        }
        return out
    }

    static func scanPerClassMasks(_ root: URL, layout: Layout, imageFolder: String, maskFolder: String,
                                  classes: Set<LesionClass>?, disc: Bool = false, logger: Logger) throws(TrainingError) -> LesionDataset {
        let imageDir = root.appendingPathComponent(imageFolder), maskDir = root.appendingPathComponent(maskFolder)
        var images: [String: URL] = [:]
        try addImages(in: imageDir, shownAs: imageFolder, to: &images, logger: logger)

        var present = Set<LesionClass>()
        var masks: [String: [LesionClass: URL]] = [:]
        var discMasks: [String: URL] = [:]
        for folder in try files(in: maskDir) {
            if disc && folder == OpticDisc.code {
                try addDiscMasks(in: maskDir.appendingPathComponent(folder), idridNames: layout == .idrid, images: images,
                                 imageDir: imageDir, to: &discMasks)
                continue
            }
            guard let lesion = LesionClass(code: folder), folder == lesion.code else {
                logger.notice("dataset: ignoring \(maskFolder)/\(folder): not a lesion class folder (EX, HE, SE, MA)")
                continue
            }
            present.insert(lesion)
            try addMasks(in: maskDir.appendingPathComponent(folder), of: lesion, idridNames: layout == .idrid, images: images,
                         imageDir: imageDir, to: &masks)
        }
        return try assemble(root: root, layout: layout, images: images, masks: masks, discMasks: discMasks, present: present,
                            classes: classes, disc: disc, missing: { "no \(maskFolder)/\($0) folder" }, logger: logger)
    }

    /// The IDRiD segmentation download as it comes (its "A. Segmentation" folder, or a folder holding it):
    /// `1. Original Images/<set>/<image>.jpg` and `2. All Segmentation Groundtruths/<set>/<n>. <Lesion>/<image>_<CLS>.tif`
    /// (lesions "Microaneurysms", "Haemorrhages", "Hard Exudates", "Soft Exudates"; "Optic Disc" with `disc`), <set>
    /// being "a. Training Set" and "b. Testing Set". Every set's images are read, their names unique across sets;
    /// choose with `--images` / `--val-images` (the test set: IDRiD_55-IDRiD_81). No conversion by hand, unlike the
    /// official code's (m2mrf-reference 4.1).
    static let idridDownloadImages = "1. Original Images"
    static let idridDownloadTruth = "2. All Segmentation Groundtruths"

    static func scanIDRiDDownload(_ root: URL, classes: Set<LesionClass>?, disc: Bool, logger: Logger) throws(TrainingError) -> LesionDataset {
        let imageRoot = root.appendingPathComponent(idridDownloadImages), truthRoot = root.appendingPathComponent(idridDownloadTruth)
        func subfolders(_ dir: URL) throws(TrainingError) -> [String] {
            try files(in: dir).filter { name in
                var isDir: ObjCBool = false
                return FileManager.default.fileExists(atPath: dir.appendingPathComponent(name).path, isDirectory: &isDir) && isDir.boolValue
            }
        }
        var images: [String: URL] = [:]
        for set in try subfolders(imageRoot) {
            try addImages(in: imageRoot.appendingPathComponent(set), shownAs: "\(idridDownloadImages)/\(set)", to: &images, logger: logger)
        }
        var present = Set<LesionClass>()
        var masks: [String: [LesionClass: URL]] = [:]
        var discMasks: [String: URL] = [:]
        for set in try subfolders(truthRoot) {
            let setDir = truthRoot.appendingPathComponent(set)
            for folder in try subfolders(setDir) {
                let dir = setDir.appendingPathComponent(folder)
                if folder.lowercased().filter(\.isLetter).hasSuffix("opticdisc") {
                    guard disc else { continue }
                    try addDiscMasks(in: dir, idridNames: true, images: images, imageDir: imageRoot, to: &discMasks)
                    continue
                }
                // "3. Hard Exudates" → hard exudate: the name without its numbering.
                let name = folder.drop { !$0.isLetter }
                guard let lesion = lesionClass(named: String(name)) else {
                    logger.notice("dataset: ignoring \(idridDownloadTruth)/\(set)/\(folder): not a lesion folder (Microaneurysms, Haemorrhages, Hard Exudates, Soft Exudates, Optic Disc)")
                    continue
                }
                present.insert(lesion)
                try addMasks(in: dir, of: lesion, idridNames: true, images: images, imageDir: imageRoot, to: &masks)
            }
        }
        return try assemble(root: root, layout: .idridDownload, images: images, masks: masks, discMasks: discMasks,
                            present: present, classes: classes, disc: disc,
                            missing: { "no \(idridDownloadTruth)/<set>/ folder for \($0)" }, logger: logger)
    }

    /// The photographs of one folder into `images` (image stem → file); a name already there is an error.
    static func addImages(in imageDir: URL, shownAs folder: String, to images: inout [String: URL], logger: Logger) throws(TrainingError) {
        for name in try files(in: imageDir) {
            let (stem, ext) = splitExtension(name)
            guard imageExtensions.contains(ext) else {
                logger.notice("dataset: ignoring \(folder)/\(name): not a JPEG, PNG or TIFF image")
                continue
            }
            if let other = images[stem] {
                throw TrainingError(.dataset, "\(imageDir.path): two images share the name \(stem): \(other.path) and \(name)")
            }
            images[stem] = imageDir.appendingPathComponent(name)
        }
    }

    /// One class's mask folder into `masks`: files named `<image>_<CLS>.<ext>` (`idridNames`) or `<image>.<ext>`; a
    /// mask that matches no image, or a second mask of the class for an image, is an error naming the file.
    static func addMasks(in dir: URL, of lesion: LesionClass, idridNames: Bool, images: [String: URL], imageDir: URL,
                         to masks: inout [String: [LesionClass: URL]]) throws(TrainingError) {
        for (stem, file) in try maskFiles(in: dir, code: lesion.code, idridNames: idridNames, images: images, imageDir: imageDir) {
            if let other = masks[stem]?[lesion] {
                throw TrainingError(.dataset, "two \(lesion.code) masks for \(stem): \(other.path) and \(file.path)")
            }
            masks[stem, default: [:]][lesion] = file
        }
    }

    /// The mask files of one folder with the image each belongs to: its name less `_<code>` (`idridNames`) or its
    /// name. A file that is not PNG or TIFF, an IDRiD name without the suffix, or a stem that is no image is an error
    /// naming the file.
    static func maskFiles(in dir: URL, code: String, idridNames: Bool, images: [String: URL],
                          imageDir: URL) throws(TrainingError) -> [(stem: String, file: URL)] {
        var out: [(stem: String, file: URL)] = []
        for name in try files(in: dir) {
            let (base, ext) = splitExtension(name)
            let file = dir.appendingPathComponent(name)
            guard maskExtensions.contains(ext) else { throw TrainingError(.dataset, "\(file.path): a mask must be PNG or TIFF") }
            var stem = base
            if idridNames {
                let suffix = "_" + code
                guard base.hasSuffix(suffix) else {
                    throw TrainingError(.dataset, "\(file.path): an IDRiD \(code) mask is named <image>\(suffix).\(ext)")
                }
                stem = String(base.dropLast(suffix.count))
            }
            guard images[stem] != nil else {
                throw TrainingError(.dataset, "\(file.path) matches no image in \(imageDir.path) (looked for \(stem).*)")
            }
            out.append((stem, file))
        }
        return out
    }

    /// The samples, once images and masks are found. Annotated classes: those asked for, else those `dataset.json`
    /// states, else those with a mask folder (`missing` says, for a class without one, what was not found); a mask
    /// of a class not annotated is an error unless fewer classes were asked for.
    static func assemble(root: URL, layout: Layout, images: [String: URL], masks: [String: [LesionClass: URL]],
                         discMasks: [String: URL], present: Set<LesionClass>, classes: Set<LesionClass>?, disc: Bool,
                         missing: (String) -> String, logger: Logger) throws(TrainingError) -> LesionDataset {
        var masks = masks
        let annotated: Set<LesionClass>
        if let classes {
            annotated = classes
        } else if let stated = try statedClasses(root) {
            annotated = stated
        } else {
            annotated = present
            for c in LesionClass.allCases where !present.contains(c) {
                logger.notice("dataset: \(root.lastPathComponent) has \(missing(c.code)); \(c.code) is treated as not annotated")
            }
        }
        if classes != nil {
            // Asked for fewer classes: the others' masks are set aside, not an error.
            masks = masks.mapValues { $0.filter { annotated.contains($0.key) } }
        }
        for (stem, byClass) in masks {
            for c in byClass.keys where !annotated.contains(c) {
                throw TrainingError(.dataset, "\(byClass[c]!.path): a \(c.code) mask for \(stem), but the dataset says it does not annotate \(c.code)")
            }
        }
        let samples = images.keys.sorted().map { stem in
            LabelledSample(name: stem, image: images[stem]!, labels: .masks(masks[stem] ?? [:]), annotated: annotated,
                           discMask: discMasks[stem])
        }
        if disc && discMasks.isEmpty {
            logger.warning("dataset: \(root.path) has no optic-disc masks (\(missing(OpticDisc.code))); the optic disc is not annotated on any image")
        }
        logger.info("dataset: \(root.path): \(layout.rawValue) layout, \(samples.count) images, annotated \(annotated.sorted().map(\.code).joined(separator: ","))\(disc ? ", optic disc on \(discMasks.count)" : "")")
        return LesionDataset(root: root, layout: layout, samples: samples, annotated: annotated)
    }

    /// The optic-disc masks of one folder into `discMasks` (image stem → file); a second mask for an image is an error.
    static func addDiscMasks(in dir: URL, idridNames: Bool, images: [String: URL], imageDir: URL,
                             to discMasks: inout [String: URL]) throws(TrainingError) {
        for (stem, file) in try maskFiles(in: dir, code: OpticDisc.code, idridNames: idridNames, images: images, imageDir: imageDir) {
            if let other = discMasks[stem] {
                throw TrainingError(.dataset, "two \(OpticDisc.code) masks for \(stem): \(other.path) and \(file.path)")
            }
            discMasks[stem] = file
        }
    }

    /// Label names nnU-Net datasets use for our classes.
    static func lesionClass(named name: String) -> LesionClass? {
        let key = name.lowercased().filter { $0.isLetter }
        if let c = LesionClass(code: key) { return c }
        switch key {
        case "hardexudate", "hardexudates", "exudate", "exudates": return .hardExudate
        case "haemorrhage", "haemorrhages", "hemorrhage", "hemorrhages": return .haemorrhage
        case "softexudate", "softexudates", "cottonwoolspot", "cottonwoolspots": return .softExudate
        case "microaneurysm", "microaneurysms": return .microaneurysm
        default: return nil
        }
    }

    static func scanNNUNet(_ root: URL, logger: Logger) throws(TrainingError) -> LesionDataset {
        let jsonURL = root.appendingPathComponent("dataset.json")
        guard let data = FileManager.default.contents(atPath: jsonURL.path),
              let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw TrainingError(.dataset, "\(jsonURL.path) is missing or not JSON (an nnU-Net dataset needs it)")
        }
        guard let labels = json["labels"] as? [String: Any] else {
            throw TrainingError(.dataset, "\(jsonURL.path) has no \"labels\" object")
        }
        // nnU-Net v2: {"background": 0, "EX": 1}; v1: {"0": "background", "1": "EX"}.
        var values: [LesionClass: Int] = [:]
        for (key, value) in labels {
            let (name, index): (String, Int?) = if let v = value as? Int { (key, v) } else { ((value as? String) ?? "", Int(key)) }
            guard let index else { throw TrainingError(.dataset, "\(jsonURL.path): label '\(key)' has no integer value") }
            if index == 0 { continue }
            guard let lesion = lesionClass(named: name) else {
                logger.notice("dataset: \(jsonURL.lastPathComponent): label '\(name)' (\(index)) is not a lesion class; its pixels count as background")
                continue
            }
            values[lesion] = index
        }
        let ending = (json["file_ending"] as? String).map { $0.hasPrefix(".") ? String($0.dropFirst()) : $0 }
        let imageDir = root.appendingPathComponent("imagesTr"), labelDir = root.appendingPathComponent("labelsTr")
        var images: [String: URL] = [:]
        for name in try files(in: imageDir) {
            let (base, ext) = splitExtension(name)
            guard imageExtensions.contains(ext), ending == nil || ext == ending!.lowercased() else { continue }
            guard let underscore = base.lastIndex(of: "_"), base[base.index(after: underscore)...].allSatisfy(\.isNumber) else {
                throw TrainingError(.dataset, "\(imageDir.appendingPathComponent(name).path): nnU-Net images are named <case>_0000.\(ext)")
            }
            guard base[base.index(after: underscore)...] == "0000" else {
                throw TrainingError(.dataset, "\(imageDir.appendingPathComponent(name).path): separate channel files are not supported; store each case as one RGB <case>_0000.\(ext)")
            }
            images[String(base[..<underscore])] = imageDir.appendingPathComponent(name)
        }
        var labelFiles: [String: URL] = [:]
        for name in try files(in: labelDir) {
            let (case_, ext) = splitExtension(name)
            guard maskExtensions.contains(ext) else { continue }
            guard images[case_] != nil else {
                throw TrainingError(.dataset, "\(labelDir.appendingPathComponent(name).path) matches no image in \(imageDir.path) (looked for \(case_)_0000.*)")
            }
            labelFiles[case_] = labelDir.appendingPathComponent(name)
        }
        let annotated = Set(values.keys)
        var samples: [LabelledSample] = []
        for case_ in images.keys.sorted() {
            guard let label = labelFiles[case_] else {
                throw TrainingError(.dataset, "\(images[case_]!.path) has no label map in \(labelDir.path)")
            }
            samples.append(LabelledSample(name: case_, image: images[case_]!, labels: .indexMap(label, values: values), annotated: annotated))
        }
        logger.info("dataset: \(root.path): nnU-Net layout, \(samples.count) cases, annotated \(annotated.sorted().map(\.code).joined(separator: ","))")
        return LesionDataset(root: root, layout: .nnunet, samples: samples, annotated: annotated)
    }
}

/// The merged label map the loss trains on: 0 background, class index 1…4 where its mask is set, later classes
/// overwriting earlier ones as the official `prepare_labels.py` does (MA > SE > HE > EX).
public enum LabelMap {
    /// Merges binary masks (non-zero = lesion), each `pixels` long; classes absent from `masks` stay 0.
    /// `disc` (non-zero = optic disc), when given, is written before them as `OpticDisc.labelIndex` (5), so every
    /// lesion pixel overwrites it; `vessels` (grey above `RetinalVessels.maskThreshold`) first of all, as
    /// `RetinalVessels.labelIndex` (6): the lowest precedence.
    public static func merge(_ masks: [LesionClass: [UInt8]], disc: [UInt8]? = nil, vessels: [UInt8]? = nil,
                             pixels: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: pixels)
        if let vessels {
            let v = UInt8(RetinalVessels.labelIndex)
            for i in 0..<min(pixels, vessels.count) where vessels[i] > RetinalVessels.maskThreshold { out[i] = v }
        }
        if let disc {
            let v = UInt8(OpticDisc.labelIndex)
            for i in 0..<min(pixels, disc.count) where disc[i] != 0 { out[i] = v }
        }
        for lesion in LesionClass.allCases {   // EX, HE, SE, MA: later writes win
            guard let mask = masks[lesion] else { continue }
            let v = UInt8(lesion.labelIndex)
            for i in 0..<min(pixels, mask.count) where mask[i] != 0 { out[i] = v }
        }
        return out
    }

    /// Maps an nnU-Net index map onto our indices; values of other labels become background.
    public static func remap(_ indexMap: [UInt8], values: [LesionClass: Int]) -> [UInt8] {
        var table = [UInt8](repeating: 0, count: 256)
        for (lesion, v) in values where (0..<256).contains(v) { table[v] = UInt8(lesion.labelIndex) }
        return indexMap.map { table[Int($0)] }
    }
}

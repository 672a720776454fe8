import Foundation
import Lesions
import Logging
import Store

/// Where a training or validation set comes from: a folder in one of the dataset layouts, or the graders'
/// annotations registered in the database (sql/0004), one split of them.
public enum TrainingData: Sendable, Equatable, CustomStringConvertible {
    case folder(URL)
    case annotations(AnnotationSplit)

    /// `db:train` / `db:validation` names the database's annotations; anything else is a folder.
    public static func parse(_ text: String) throws(TrainingError) -> TrainingData {
        guard text.hasPrefix("db:") else { return .folder(URL(fileURLWithPath: text)) }
        let split = String(text.dropFirst(3))
        guard let s = AnnotationSplit(rawValue: split) else {
            throw TrainingError(.configuration, "'\(text)': the database's annotations are db:train or db:validation")
        }
        return .annotations(s)
    }

    public var description: String {
        switch self {
        case let .folder(url): url.path
        case let .annotations(split): "db:\(split.rawValue)"
        }
    }

    /// Opens the set: scans the folder, or reads the split's annotated images from the database. `disc`: also the
    /// optic-disc masks of a folder (database annotations have none: the disc is then not annotated).
    public func open(classes: Set<LesionClass>? = nil, disc: Bool = false, connection: Connection?, logger: Logger) throws -> LesionDataset {
        switch self {
        case let .folder(url):
            return try LesionDataset.open(url, classes: classes, disc: disc, logger: logger)
        case let .annotations(split):
            guard let connection else { throw TrainingError(.configuration, "db:\(split.rawValue) needs the database") }
            return try LesionDataset.annotated(try Annotations(connection: connection).list(split: split), split: split,
                                               classes: classes, logger: logger)
        }
    }
}

extension LesionDataset {
    /// A set of annotated archive images. Each image trains on the classes its grader annotated (a mask, or a
    /// stated absence), so partly annotated images mix with fully annotated ones. A mask file that is gone is an
    /// error naming it and the image, found now rather than hours into a run.
    public static func annotated(_ images: [AnnotatedImage], split: AnnotationSplit, classes: Set<LesionClass>? = nil,
                                 logger: Logger) throws(TrainingError) -> LesionDataset {
        let origin = "database annotations (\(split.rawValue))"
        guard !images.isEmpty else {
            throw TrainingError(.dataset, "\(origin): no annotated images; register some with `fundus-screen annotations import`")
        }
        var samples: [LabelledSample] = [], union = Set<LesionClass>()
        for image in images {
            var files: [LesionClass: URL] = [:], annotated = Set<LesionClass>()
            for (code, path) in image.masks {
                guard let lesion = LesionClass(code: code), classes?.contains(lesion) ?? true else { continue }
                annotated.insert(lesion)
                if let path {
                    guard FileManager.default.fileExists(atPath: path) else {
                        throw TrainingError(.dataset, "\(origin): the \(code) mask of \(image.path) (image \(image.imageID)) is missing: \(path)")
                    }
                    files[lesion] = URL(fileURLWithPath: path)
                }
            }
            guard !annotated.isEmpty else { continue }
            guard FileManager.default.fileExists(atPath: image.path) else {
                throw TrainingError(.dataset, "\(origin): image \(image.imageID) is missing: \(image.path)")
            }
            union.formUnion(annotated)
            let url = URL(fileURLWithPath: image.path)
            samples.append(LabelledSample(name: url.deletingPathExtension().lastPathComponent, image: url,
                                          labels: .masks(files), annotated: annotated))
        }
        guard !samples.isEmpty else { throw TrainingError(.dataset, "\(origin): no image annotates the asked classes") }
        logger.info("dataset: \(origin): \(samples.count) images, annotated \(union.sorted().map(\.code).joined(separator: ","))")
        return LesionDataset(root: URL(fileURLWithPath: "/"), layout: .database, samples: samples, annotated: union, origin: origin)
    }
}

/// Registers an annotated folder (IDRiD, DDR or nnU-Net-free per-class mask layouts) against the archive: each
/// photograph is matched to its archive image by path, else by content (SHA-256), and its masks are recorded with
/// the classes the folder annotates. Photographs not in the archive are reported, not guessed at.
public struct AnnotationImport {
    public struct Outcome: Sendable {
        public var registered: [String] = []
        /// Photographs the archive does not hold (import them with `archive import` first).
        public var notInArchive: [String] = []
    }

    let connection: Connection
    let logger: Logger

    public init(connection: Connection, logger: Logger) {
        self.connection = connection
        self.logger = logger
    }

    public func register(folder: URL, split: AnnotationSplit, images selection: [String]? = nil, grader: String? = nil,
                         classes: Set<LesionClass>? = nil) throws -> Outcome {
        var dataset = try LesionDataset.open(folder, classes: classes, logger: logger)
        if let selection { dataset = try dataset.selecting(selection) }
        let paths = dataset.samples.map { $0.image.standardizedFileURL.path }
        let byPath = try Archive(connection: connection).ids(forPaths: paths)
        var checksums: [String: String] = [:]
        for (sample, path) in zip(dataset.samples, paths) where byPath[path] == nil {
            checksums[path] = try SHA256.hex(fileAt: sample.image)
        }
        let annotations = Annotations(connection: connection)
        let byChecksum = try annotations.imageIDs(forChecksums: Array(checksums.values))
        var outcome = Outcome()
        for (sample, path) in zip(dataset.samples, paths) {
            guard let id = byPath[path] ?? checksums[path].flatMap({ byChecksum[$0] }) else {
                outcome.notInArchive.append(path)
                continue
            }
            var masks: [String: String?] = [:]
            for lesion in sample.annotated { masks[lesion.code] = .some(nil) }
            switch sample.labels {
            case let .masks(files):
                for (lesion, url) in files { masks[lesion.code] = url.standardizedFileURL.path }
            case .indexMap:
                throw TrainingError(.dataset, "\(folder.path): nnU-Net index maps cannot be registered as per-class masks; register IDRiD or DDR folders")
            }
            try annotations.register(imageID: id, split: split, grader: grader, masks: masks)
            outcome.registered.append(sample.name)
        }
        logger.info("annotations: \(outcome.registered.count) images of \(folder.path) registered as \(split.rawValue)\(outcome.notInArchive.isEmpty ? "" : "; \(outcome.notInArchive.count) not in the archive")")
        return outcome
    }
}

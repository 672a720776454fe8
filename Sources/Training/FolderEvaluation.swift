import Foundation
import Imaging
import Lesions
import Logging

/// `fundus-screen evaluate`: per-class predictions in one folder against IDRiD-style truth masks in another,
/// one image at a time, so memory stays at a few images' worth of planes whatever the size of the test set.
///
/// Layout of both folders: files named `<image>_<CLS>.<png|tif|tiff>` (CLS = EX, HE, SE, MA, any case), either
/// directly in the folder or in sub-folders named by the class (`EX/IDRiD_01_EX.png`, as IDRiD ships them).
/// Other files and folders (OD, `HE_tif/`) are ignored. A missing truth file means the class is absent from the
/// image (the IDRiD convention); a missing prediction file is taken as nothing predicted and reported; an image
/// with truth but no prediction file at all is an error (mismatched names must not pass as blank predictions).
public enum FolderEvaluation {
    /// How truth pixels marked for several classes count.
    public enum TruthOverlap: String, Sendable, CaseIterable, Codable {
        /// As the reference's merged label map: only for the highest class (MA > SE > HE > EX).
        case official
        /// For every class marked (multi-label, as our model predicts).
        case keep
    }

    /// How prediction files are read.
    public enum PredictionKind: String, Sendable, CaseIterable, Codable {
        /// A file whose values are all 0 or 1 is a binary mask; anything else an 8-bit probability map (v/255).
        case auto
        case probability
        case mask
    }

    public struct Options: Sendable {
        public var predictions: URL
        public var truth: URL
        public var operatingThreshold: Float = 0.5
        public var truthOverlap: TruthOverlap = .official
        public var predictionKind: PredictionKind = .auto
        /// Predicted components smaller than this are not counted as lesions in the per-image counts.
        public var minimumLesionArea: Int = 1

        public init(predictions: URL, truth: URL) {
            self.predictions = predictions
            self.truth = truth
        }
    }

    /// One image: sizes and lesion counts in class order EX, HE, SE, MA.
    public struct ImageRow: Codable, Sendable, Equatable {
        public var image: String
        public var width: Int
        public var height: Int
        /// 8-connected components of the truth masks as given (before any overlap rule); 0 when absent.
        public var truthLesions: [Int]
        /// Components of the predictions at the operating threshold, at least the minimum lesion area.
        public var predictedLesions: [Int]
        /// Classes with no prediction file, taken as nothing predicted.
        public var missingPredictions: [String]
    }

    public struct Result: Codable, Sendable {
        public var predictions: String
        public var truth: String
        public var truthOverlap: TruthOverlap
        public var minimumLesionArea: Int
        public var report: EvaluationReport
        public var images: [ImageRow]
    }

    public static func run(_ options: Options, logger: Logger) throws -> Result {
        let predicted = try classFiles(in: options.predictions, what: "predictions")
        let truthFiles = try classFiles(in: options.truth, what: "truth")
        let names = Set(predicted.keys).union(truthFiles.keys).sorted()
        guard !names.isEmpty else {
            throw EvaluationError("no <image>_<EX|HE|SE|MA>.png/.tif files in \(options.predictions.path) "
                + "or \(options.truth.path)")
        }
        let unmatched = names.filter { predicted[$0] == nil && truthFiles[$0] != nil }
        guard unmatched.isEmpty else {
            throw EvaluationError("\(unmatched.count) image(s) have truth in \(options.truth.path) but no prediction "
                + "file in \(options.predictions.path) (names must match, e.g. IDRiD_01_EX.png): "
                + unmatched.prefix(5).joined(separator: ", ") + (unmatched.count > 5 ? ", …" : ""))
        }
        let truthless = names.filter { truthFiles[$0] == nil }
        if !truthless.isEmpty {
            logger.warning("\(truthless.count) image(s) have no truth file for any class; evaluated as lesion-free",
                           metadata: ["images": "\(truthless.prefix(5).joined(separator: ", "))"])
        }

        var evaluation = SegmentationEvaluation(operatingThreshold: options.operatingThreshold)
        let measurement = LesionMeasurement(threshold: options.operatingThreshold,
                                            minimumLesionArea: options.minimumLesionArea)
        var rows: [ImageRow] = []
        let started = Date()
        for (n, name) in names.enumerated() {
            let t0 = Date()
            let row = try evaluateImage(name, predicted[name] ?? [:], truthFiles[name] ?? [:], options, measurement,
                                        &evaluation)
            rows.append(row)
            if !row.missingPredictions.isEmpty {
                logger.warning("\(name): no prediction for \(row.missingPredictions.joined(separator: ", ")); taken as nothing predicted")
            }
            logger.info("evaluated \(n + 1)/\(names.count) \(name)", metadata: [
                "size": "\(row.width)x\(row.height)",
                "seconds": "\(String(format: "%.2f", Date().timeIntervalSince(t0)))",
                "truth_lesions": "\(row.truthLesions)", "predicted_lesions": "\(row.predictedLesions)",
            ])
        }
        // The optic disc, beside the lesions: where both folders hold `<image>_OD` files (predictions of a model with
        // the disc channel, and IDRiD's OD truth).
        let predictedDiscs = try discFiles(in: options.predictions), truthDiscs = try discFiles(in: options.truth)
        var disc = DiscOverlap()
        for name in names {
            guard let p = predictedDiscs[name], let t = truthDiscs[name] else { continue }
            let (pw, ph, values) = try readPrediction(p)
            let truth = try ImageCodec.decode(contentsOf: t, mode: .label).image
            guard truth.width == pw && truth.height == ph else {
                throw EvaluationError("\(p.path) is \(pw)×\(ph), but \(t.path) is \(truth.width)×\(truth.height)")
            }
            let isMask = options.predictionKind == .mask || (options.predictionKind == .auto && values.allSatisfy { $0 <= 1 })
            let plane = isMask ? try ScorePlane(width: pw, height: ph, mask: values)
                : try ScorePlane(width: pw, height: ph, probabilityBytes: values)
            try disc.add(predicted: plane, truth: truth.bytes, threshold: options.operatingThreshold)
        }
        var report = evaluation.report()
        if disc.images > 0 {
            report.disc = disc
            logger.info("optic disc", metadata: ["images": "\(disc.images)", "IoU": "\(disc.iou.map { String(format: "%.4f", $0) } ?? "–")",
                                                 "Dice": "\(disc.dice.map { String(format: "%.4f", $0) } ?? "–")"])
        }
        logger.info("evaluation done", metadata: [
            "images": "\(rows.count)", "seconds": "\(String(format: "%.1f", Date().timeIntervalSince(started)))",
        ])
        return Result(
            predictions: options.predictions.path, truth: options.truth.path, truthOverlap: options.truthOverlap,
            minimumLesionArea: options.minimumLesionArea, report: report, images: rows)
    }

    private static func evaluateImage(
        _ name: String, _ predictedFiles: [LesionClass: URL], _ truthFiles: [LesionClass: URL], _ options: Options,
        _ measurement: LesionMeasurement, _ evaluation: inout SegmentationEvaluation
    ) throws -> ImageRow {
        var size: (width: Int, height: Int, from: String)?
        func checkSize(_ w: Int, _ h: Int, _ url: URL) throws {
            if let s = size, s.width != w || s.height != h {
                throw EvaluationError("\(url.path) is \(w)×\(h), but \(s.from) is \(s.width)×\(s.height); "
                    + "predictions and truth of one image must have the same size")
            }
            if size == nil { size = (w, h, url.path) }
        }

        var truth: [LesionClass: [UInt8]] = [:]
        var truthLesions = [Int](repeating: 0, count: 4)
        for (c, url) in truthFiles.sorted(by: { $0.key < $1.key }) {
            let decoded = try ImageCodec.decode(contentsOf: url, mode: .label)
            try checkSize(decoded.image.width, decoded.image.height, url)
            let mask = decoded.image.bytes
            truthLesions[c.rawValue] = ConnectedComponents(
                try ScorePlane(width: decoded.image.width, height: decoded.image.height, mask: mask)).count
            truth[c] = mask
        }
        if options.truthOverlap == .official { truth = try OfficialM2MRF.overwrittenTruth(truth) }

        var planes: [LesionClass: ScorePlane] = [:]
        var missing: [String] = []
        for c in LesionClass.allCases {
            guard let url = predictedFiles[c] else { missing.append(c.code); continue }
            let (w, h, values) = try readPrediction(url)
            try checkSize(w, h, url)
            let isMask: Bool
            switch options.predictionKind {
            case .mask: isMask = true
            case .probability: isMask = false
            case .auto: isMask = values.allSatisfy { $0 <= 1 }
            }
            planes[c] = isMask ? try ScorePlane(width: w, height: h, mask: values)
                : try ScorePlane(width: w, height: h, probabilityBytes: values)
        }
        guard let size else { throw EvaluationError("\(name): no files") }
        for c in LesionClass.allCases where planes[c] == nil {
            planes[c] = try ScorePlane(width: size.width, height: size.height,
                                       mask: [UInt8](repeating: 0, count: size.width * size.height))
        }
        let predictedLesions = LesionClass.allCases.map { measurement.measureClass($0, planes[$0]!).count }
        do {
            try evaluation.add(imageID: name, scores: planes, truth: truth)
        } catch let e as LesionsError {
            throw EvaluationError("\(name): \(e.message)")
        }
        return ImageRow(image: name, width: size.width, height: size.height, truthLesions: truthLesions,
                        predictedLesions: predictedLesions, missingPredictions: missing)
    }

    /// One 8-bit value per pixel. 16-bit grey maps are scaled to 8 bits (the label decode would clamp them).
    private static func readPrediction(_ url: URL) throws -> (Int, Int, [UInt8]) {
        let decoded = try ImageCodec.decode(contentsOf: url, mode: .label)
        if decoded.sourceBitDepth > 8 && !decoded.sourceHasPalette {
            let rgb = try ImageCodec.decode(contentsOf: url, mode: .rgb).image
            let grey = rgb.withPixels { p in (0..<rgb.pixelCount).map { p[$0 * rgb.channels] } }
            return (rgb.width, rgb.height, grey)
        }
        return (decoded.image.width, decoded.image.height, decoded.image.bytes)
    }

    /// `<image>_<CLS>.<ext>` files directly in `folder` or in its class-named sub-folders.
    static func classFiles(in folder: URL, what: String) throws -> [String: [LesionClass: URL]] {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw EvaluationError("the \(what) folder \(folder.path) does not exist or is not a folder")
        }
        var places = [folder]
        for c in LesionClass.allCases {
            for sub in [c.code, c.code.lowercased()] {
                let u = folder.appendingPathComponent(sub)
                if fm.fileExists(atPath: u.path, isDirectory: &isDirectory), isDirectory.boolValue { places.append(u) }
            }
        }
        var files: [String: [LesionClass: URL]] = [:]
        for place in places {
            let entries = try fm.contentsOfDirectory(atPath: place.path).sorted()
            for entry in entries {
                guard let (image, c) = parseName(entry) else { continue }
                let url = place.appendingPathComponent(entry)
                if let other = files[image]?[c] {
                    throw EvaluationError("two \(what) files for \(image) \(c.code): \(other.path) and \(url.path)")
                }
                files[image, default: [:]][c] = url
            }
        }
        return files
    }

    /// `<image>_OD.<png|tif|tiff>` files directly in `folder` or in its `OD/` sub-folder: image → file.
    static func discFiles(in folder: URL) throws -> [String: URL] {
        var out: [String: URL] = [:]
        let fm = FileManager.default
        for place in [folder, folder.appendingPathComponent(OpticDisc.code)] {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: place.path, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
            for entry in try fm.contentsOfDirectory(atPath: place.path).sorted() {
                let ns = entry as NSString
                guard ["png", "tif", "tiff"].contains(ns.pathExtension.lowercased()) else { continue }
                let stem = ns.deletingPathExtension, suffix = "_" + OpticDisc.code
                guard stem.uppercased().hasSuffix(suffix), stem.count > suffix.count else { continue }
                out[String(stem.dropLast(suffix.count))] = place.appendingPathComponent(entry)
            }
        }
        return out
    }

    /// "IDRiD_01_EX.png" → ("IDRiD_01", .hardExudate).
    static func parseName(_ file: String) -> (String, LesionClass)? {
        let ns = file as NSString
        guard ["png", "tif", "tiff"].contains(ns.pathExtension.lowercased()) else { return nil }
        let stem = ns.deletingPathExtension
        guard let underscore = stem.lastIndex(of: "_") else { return nil }
        let image = String(stem[..<underscore])
        guard !image.isEmpty, let c = LesionClass(code: String(stem[stem.index(after: underscore)...])) else { return nil }
        return (image, c)
    }

    /// The per-class table and the means, as printed by `fundus-screen evaluate`.
    public static func table(_ result: Result) -> String {
        let r = result.report
        func pct(_ v: Double?) -> String { v.map { String(format: "%.2f", $0 * 100) } ?? "nan" }
        func num(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "—" }
        func pad(_ s: String, _ n: Int) -> String { String(repeating: " ", count: max(0, n - s.count)) + s }
        var out = "\(r.officialName) (\(r.images) images; truth overlap: \(result.truthOverlap.rawValue))\n"
        out += "  \(r.officialDefinition)\n"
        out += "Class" + ["IoU", "F1", "PPV", "S", "AUPR"].map { pad($0, 9) }.joined() + "\n"
        for c in r.classes {
            let o = c.official
            out += c.code.padding(toLength: 5, withPad: " ", startingAt: 0)
                + [o.iou, o.f1, o.precision, o.sensitivity, o.aupr].map { pad(pct($0), 9) }.joined() + "\n"
        }
        let m = r.official
        out += "mean " + [m.mIoU, m.mF1, m.mPPV, m.mS, m.mAUPR].map { pad(pct($0), 9) }.joined() + "\n\n"
        out += "Beside it, at the operating threshold \(String(format: "%.2f", r.operatingThreshold)) "
            + "(AP: exact area under the precision-recall curve; presence AUC: does the image contain the lesion)\n"
        out += "Class" + ["AP", "Sens", "Prec", "F1", "ImgDice", "PresAUC"].map { pad($0, 9) }.joined()
            + pad("images", 10) + "\n"
        for c in r.classes {
            out += c.code.padding(toLength: 5, withPad: " ", startingAt: 0)
                + [c.averagePrecision, c.sensitivity, c.precision, c.f1, c.meanImageDice, c.presenceAUC]
                    .map { pad(num($0), 9) }.joined()
                + pad("\(c.imagesWithLesion)/\(c.images)", 10) + "\n"
        }
        out += "mean " + [r.meanAveragePrecision, nil, nil, nil, r.meanImageDice, r.meanPresenceAUC]
            .map { pad(num($0), 9) }.joined() + "\n"
        if let d = r.disc {
            out += "\nOptic disc (not a lesion; \(d.images) images with OD predictions and truth): IoU \(num(d.iou))  Dice \(num(d.dice))\n"
        }
        return out
    }
}

/// What is wrong with an evaluation's input, naming the file or folder.
public struct EvaluationError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The process's peak resident memory (VmHWM in /proc/self/status), in bytes; nil where it cannot be read.
public enum ProcessMemory {
    public static func peakResidentBytes() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kB = line.split(separator: " ").compactMap { Int($0) }.first
            return kB.map { $0 * 1024 }
        }
        return nil
    }
}

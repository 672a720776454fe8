import Checkpoints
import Foundation
import Lesions
import Logging

/// k-fold cross-validation: fold assignment, one JSON file of figures per finished fold (so a rerun skips it and a
/// run can span several sittings), and the summary over folds (mean ± sample standard deviation, min–max) as JSON
/// and as a Markdown table for a model card.
///
/// A class with no truth pixel in a fold's validation images has no AUPR, AP or IoU there (the official code would
/// count it as 0 in its means): it is marked absent, left out of that class's statistics over folds and out of
/// that fold's means over classes, and the table says so.
public enum CrossValidation {
    /// How folds are drawn, as printed.
    public static let assignmentRule = "consecutive folds of the images sorted by name (the first n mod k folds have one image more)"

    /// The images sorted by name, cut into `count` consecutive folds whose sizes differ by at most one.
    public static func folds(_ images: [String], count: Int) throws(TrainingError) -> [[String]] {
        let sorted = Array(Set(images)).sorted()
        guard sorted.count == images.count else {
            throw TrainingError(.configuration, "cross-validation: the image list names some images twice")
        }
        guard count >= 2 else { throw TrainingError(.configuration, "cross-validation needs at least 2 folds, got \(count)") }
        guard sorted.count >= count else {
            throw TrainingError(.configuration, "cross-validation: \(count) folds need at least \(count) images, got \(sorted.count)")
        }
        let base = sorted.count / count, extra = sorted.count % count
        var folds: [[String]] = [], start = 0
        for f in 0..<count {
            let size = base + (f < extra ? 1 : 0)
            folds.append(Array(sorted[start..<(start + size)]))
            start += size
        }
        return folds
    }

    /// The training images of fold `index` (0-based): every image of the other folds.
    public static func trainingImages(_ folds: [[String]], fold index: Int) -> [String] {
        folds.enumerated().filter { $0.offset != index }.flatMap(\.element)
    }

    // MARK: Figures of one fold

    /// One class in one fold's validation images.
    public struct ClassFigures: Codable, Sendable, Equatable {
        /// Truth pixels (after the official overlap rule) in the fold's validation images; 0: the class is absent.
        public var truthPixels: Int
        public var imagesWithLesion: Int
        /// Official M2MRF AUPR (11 thresholds); nil when the class is absent.
        public var aupr: Double?
        /// Exact average precision over all distinct scores; nil when absent.
        public var averagePrecision: Double?
        /// Official IoU at 0.5; nil when absent.
        public var iou: Double?

        public var present: Bool { truthPixels > 0 }

        public init(truthPixels: Int, imagesWithLesion: Int, aupr: Double?, averagePrecision: Double?, iou: Double?) {
            self.truthPixels = truthPixels
            self.imagesWithLesion = imagesWithLesion
            let present = truthPixels > 0
            self.aupr = present ? aupr.flatMap { $0.isFinite ? $0 : nil } : nil
            self.averagePrecision = present ? averagePrecision : nil
            self.iou = present ? iou : nil
        }

        public init(_ c: ClassEvaluation) {
            self.init(truthPixels: c.truthPixels, imagesWithLesion: c.imagesWithLesion, aupr: c.official.aupr,
                      averagePrecision: c.averagePrecision, iou: c.official.iou)
        }
    }

    /// A finished fold: what it trained and validated on, and its figures. Saved as `fold-<n>.json`.
    public struct FoldResult: Codable, Sendable, Equatable {
        /// 1-based.
        public var fold: Int
        public var folds: Int
        public var trainingImages: [String]
        public var validationImages: [String]
        /// The options the fold was run with (a rerun with other options refuses to mix them).
        public var settings: String
        /// "1 pass (no TTA)" or the mirroring passes.
        public var augmentation: String
        /// By class code: EX, HE, SE, MA.
        public var classes: [String: ClassFigures]
        /// The official four-class means of the fold (absent classes counted 0, as the reference does), for reference.
        public var officialMeanAUPR: Double?
        public var officialMeanIoU: Double?
        /// With test-time augmentation: the figures of its plain pass alone (the official single pass), by class code.
        public var singlePassClasses: [String: ClassFigures]?
        public var weights: String?
        public var trainingSeconds: Double?
        public var validationSeconds: Double?

        public init(fold: Int, folds: Int, trainingImages: [String], validationImages: [String], settings: String,
                    augmentation: String, classes: [String: ClassFigures]) {
            self.fold = fold
            self.folds = folds
            self.trainingImages = trainingImages
            self.validationImages = validationImages
            self.settings = settings
            self.augmentation = augmentation
            self.classes = classes
        }

        public init(fold: Int, folds: Int, trainingImages: [String], validationImages: [String], settings: String,
                    augmentation: String, report: EvaluationReport) {
            self.init(fold: fold, folds: folds, trainingImages: trainingImages, validationImages: validationImages,
                      settings: settings, augmentation: augmentation,
                      classes: Dictionary(uniqueKeysWithValues: report.classes.map { ($0.code, ClassFigures($0)) }))
            officialMeanAUPR = report.official.mAUPR
            officialMeanIoU = report.official.mIoU
        }

        /// Mean of a figure over the classes present in this fold; nil if none is. `singlePass`: of the plain pass.
        public func mean(_ figure: Figure, singlePass: Bool = false) -> Double? {
            guard let figures = singlePass ? singlePassClasses : classes else { return nil }
            let v = LesionClass.allCases.compactMap { figures[$0.code].flatMap(figure.value) }
            return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
        }

        /// The single pass's figures from its report.
        public mutating func setSinglePass(_ report: EvaluationReport) {
            singlePassClasses = Dictionary(uniqueKeysWithValues: report.classes.map { ($0.code, ClassFigures($0)) })
        }

        /// Codes of the classes absent from this fold's validation images.
        public var absentClasses: [String] {
            LesionClass.allCases.map(\.code).filter { !(classes[$0]?.present ?? false) }
        }
    }

    /// The three figures cross-validation reports.
    public enum Figure: String, Codable, Sendable, CaseIterable {
        case aupr = "AUPR", averagePrecision = "AP", iou = "IoU"

        public func value(_ c: ClassFigures) -> Double? {
            switch self {
            case .aupr: c.aupr
            case .averagePrecision: c.averagePrecision
            case .iou: c.iou
            }
        }

        /// The mean's name: mAUPR, mAP, mIoU.
        public var meanName: String { "m" + rawValue }
        public var title: String {
            switch self {
            case .aupr: "Official AUPR (M2MRF metric, 11 thresholds)"
            case .averagePrecision: "Exact AP (all distinct scores)"
            case .iou: "IoU at 0.5 (official)"
            }
        }
    }

    // MARK: Over folds

    /// Mean, sample standard deviation, min and max of a figure over the folds (`CrossValidationRecord.Statistic`,
    /// the model card's form too).
    public typealias Statistic = CrossValidationRecord.Statistic

    public struct Summary: Codable, Sendable, Equatable {
        public var folds: Int
        public var images: Int
        public var assignment: String
        public var augmentation: String
        public var settings: String
        /// Folds not finished yet (1-based).
        public var missingFolds: [Int]
        /// [figure: [class code: statistic]].
        public var classes: [String: [String: Statistic]]
        /// [mAUPR | mAP | mIoU: statistic of the folds' means over their present classes].
        public var means: [String: Statistic]
        /// The same of the augmentation's plain pass alone, when every finished fold has it.
        public var singlePassClasses: [String: [String: Statistic]]?
        public var singlePassMeans: [String: Statistic]?
        public var results: [FoldResult]
    }

    public static func summarise(_ results: [FoldResult], folds: Int, assignment: String = assignmentRule) -> Summary {
        let results = results.sorted { $0.fold < $1.fold }
        let (classes, means) = statistics(results, singlePass: false)
        let single = !results.isEmpty && results.allSatisfy({ $0.singlePassClasses != nil })
            ? statistics(results, singlePass: true) : nil
        let done = Set(results.map(\.fold))
        return Summary(folds: folds, images: Set(results.flatMap(\.validationImages)).count, assignment: assignment,
                       augmentation: results.first?.augmentation ?? "", settings: results.first?.settings ?? "",
                       missingFolds: (1...max(1, folds)).filter { !done.contains($0) }, classes: classes, means: means,
                       singlePassClasses: single?.classes, singlePassMeans: single?.means, results: results)
    }

    /// Per figure and class, and of the folds' means: the statistics over folds of their figures (`singlePass`: of
    /// the augmentation's plain pass).
    static func statistics(_ results: [FoldResult], singlePass: Bool)
        -> (classes: [String: [String: Statistic]], means: [String: Statistic]) {
        var classes: [String: [String: Statistic]] = [:]
        var means: [String: Statistic] = [:]
        for figure in Figure.allCases {
            for c in LesionClass.allCases {
                classes[figure.rawValue, default: [:]][c.code] = Statistic(results.map { r in
                    (r.fold, (singlePass ? r.singlePassClasses : r.classes)?[c.code].flatMap(figure.value))
                })
            }
            means[figure.meanName] = Statistic(results.map { ($0.fold, $0.mean(figure, singlePass: singlePass)) })
        }
        return (classes, means)
    }

    /// The summary as Markdown: one table per figure (folds × classes and the fold's mean over present classes,
    /// then mean ± sd and min–max over folds), and what was left out.
    public static func markdown(_ s: Summary) -> String {
        func f(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "–" }
        func meanSD(_ st: Statistic?) -> String {
            guard let st, let m = st.mean else { return "–" }
            return f(m) + (st.standardDeviation.map { " ± " + f($0) } ?? "") + (st.folds < s.results.count ? " (n=\(st.folds))" : "")
        }
        func range(_ st: Statistic?) -> String {
            guard let st, let lo = st.minimum, let hi = st.maximum else { return "–" }
            return f(lo) + "–" + f(hi)
        }
        let codes = LesionClass.allCases.map(\.code)
        var out = "## Cross-validation: \(s.results.count) of \(s.folds) folds\n\n"
        out += "- Folds: \(s.assignment).\n"
        out += "- Each fold trains on the other folds' images and is validated on its own at full resolution "
            + "(official M2MRF AUPR and IoU, exact AP); inference: \(s.augmentation.isEmpty ? "–" : s.augmentation) per image.\n"
        out += "- Over folds: mean ± sample standard deviation (n − 1), and min–max. A class absent from a fold's "
            + "validation images (no truth pixel) has no figure there: it is left out of that class's statistics and of "
            + "that fold's mean over classes (marked \"absent\"; the fold's mean is then over the classes present, marked *).\n"
        if !s.missingFolds.isEmpty {
            out += "- Not finished yet: fold\(s.missingFolds.count == 1 ? "" : "s") \(s.missingFolds.map(String.init).joined(separator: ", ")).\n"
        }
        out += "\n"
        for figure in Figure.allCases {
            out += "### \(figure.title)\n\n"
            out += "| Fold | Validation images | " + codes.joined(separator: " | ") + " | \(figure.meanName) |\n"
            out += "|---|---|" + String(repeating: "---:|", count: codes.count + 1) + "\n"
            for r in s.results {
                let cells = codes.map { code -> String in
                    guard let c = r.classes[code], c.present else { return "absent" }
                    return f(figure.value(c))
                }
                let star = r.absentClasses.isEmpty ? "" : "*"
                out += "| \(r.fold) | \(r.validationImages.joined(separator: ", ")) | " + cells.joined(separator: " | ")
                    + " | \(f(r.mean(figure)))\(star) |\n"
            }
            let stats = s.classes[figure.rawValue] ?? [:]
            out += "| **mean ± sd** | | " + codes.map { meanSD(stats[$0]) }.joined(separator: " | ")
                + " | **\(meanSD(s.means[figure.meanName]))** |\n"
            out += "| min–max | | " + codes.map { range(stats[$0]) }.joined(separator: " | ")
                + " | \(range(s.means[figure.meanName])) |\n\n"
        }
        if let singleClasses = s.singlePassClasses, let singleMeans = s.singlePassMeans {
            out += "### Without the test-time augmentation (its plain pass alone, the official single pass)\n\n"
            out += "Class means over folds (mean ± sd), from the same inference; the difference is what the augmentation adds.\n\n"
            out += "| Figure | " + codes.joined(separator: " | ") + " | mean | with TTA | TTA − single, per fold |\n"
            out += "|---|" + String(repeating: "---:|", count: codes.count + 3) + "\n"
            for figure in Figure.allCases {
                let stats = singleClasses[figure.rawValue] ?? [:]
                let gains = s.results.compactMap { r in r.mean(figure).flatMap { t in r.mean(figure, singlePass: true).map { t - $0 } } }
                out += "| \(figure.rawValue) | " + codes.map { meanSD(stats[$0]) }.joined(separator: " | ")
                    + " | **\(meanSD(singleMeans[figure.meanName]))** | \(meanSD(s.means[figure.meanName])) | "
                    + gains.map { String(format: "%+.4f", $0) }.joined(separator: ", ") + " |\n"
            }
            out += "\n"
        }
        let absent = s.results.filter { !$0.absentClasses.isEmpty }
        if !absent.isEmpty {
            out += "Absent classes (left out as above): "
                + absent.map { "fold \($0.fold): \($0.absentClasses.joined(separator: ", "))" }.joined(separator: "; ") + ".\n"
            out += "For comparison, the official four-class means, which count an absent class as 0: "
                + s.results.map { "fold \($0.fold) mAUPR \(f($0.officialMeanAUPR)), mIoU \(f($0.officialMeanIoU))" }
                    .joined(separator: "; ") + ".\n"
        }
        return out
    }

    // MARK: Running

    /// `fold-<n>.json` in the work folder.
    public static func resultFile(_ workDirectory: URL, fold: Int) -> URL {
        workDirectory.appendingPathComponent("fold-\(fold).json")
    }

    /// The working folder of fold n (its checkpoints and model bundle).
    public static func foldDirectory(_ workDirectory: URL, fold: Int) -> URL {
        workDirectory.appendingPathComponent("fold-\(fold)")
    }

    /// A fold's saved result, if finished; refuses one made with other settings or images.
    public static func finished(_ workDirectory: URL, fold: Int, folds: [[String]], settings: String) throws -> FoldResult? {
        let url = resultFile(workDirectory, fold: fold)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let result: FoldResult
        do { result = try JSONDecoder().decode(FoldResult.self, from: Data(contentsOf: url)) } catch {
            throw TrainingError(.checkpoint, "\(url.path) is not a cross-validation fold result (\(error)); delete it to run the fold again")
        }
        guard result.fold == fold, result.folds == folds.count, result.validationImages == folds[fold - 1],
              result.trainingImages == trainingImages(folds, fold: fold - 1) else {
            throw TrainingError(.configuration, "\(url.path) holds fold \(result.fold) of \(result.folds) validated on \(result.validationImages.joined(separator: ", ")), not this run's fold \(fold) of \(folds.count) (\(folds[fold - 1].joined(separator: ", "))); use another --work-dir")
        }
        guard result.settings == settings else {
            throw TrainingError(.configuration, "\(url.path) was made with other options (\(result.settings)), not \(settings); use another --work-dir or delete it")
        }
        return result
    }

    /// Runs the folds asked (all, or only `only`, 1-based) that are not finished, saving each result as it comes,
    /// and returns every finished fold's result. `runFold(fold, training, validation, folder)` trains and validates one.
    public static func run(folds: [[String]], only: Int? = nil, workDirectory: URL, settings: String, logger: Logger,
                           runFold: (Int, [String], [String], URL) throws -> FoldResult) throws -> [FoldResult] {
        if let only, !(1...folds.count).contains(only) {
            throw TrainingError(.configuration, "--fold \(only): there are folds 1…\(folds.count)")
        }
        try FileManager.default.createDirectory(at: workDirectory, withIntermediateDirectories: true)
        var results: [FoldResult] = []
        for fold in 1...folds.count {
            if let done = try finished(workDirectory, fold: fold, folds: folds, settings: settings) {
                if only == nil || only == fold {
                    logger.info("crossval: fold \(fold)/\(folds.count) already finished (\(resultFile(workDirectory, fold: fold).path)); skipped")
                }
                results.append(done)
                continue
            }
            guard only == nil || only == fold else { continue }
            let training = trainingImages(folds, fold: fold - 1)
            logger.info("crossval: fold \(fold)/\(folds.count): training on \(training.count) images, validating \(folds[fold - 1].joined(separator: ", "))")
            var result = try runFold(fold, training, folds[fold - 1], foldDirectory(workDirectory, fold: fold))
            result.fold = fold
            result.folds = folds.count
            result.settings = settings
            try write(result, to: resultFile(workDirectory, fold: fold))
            results.append(result)
        }
        return results
    }

    /// crossval.json and crossval.md in the work folder.
    public static func writeSummary(_ summary: Summary, to workDirectory: URL) throws -> (json: URL, markdown: URL) {
        let json = workDirectory.appendingPathComponent("crossval.json")
        let md = workDirectory.appendingPathComponent("crossval.md")
        try write(summary, to: json)
        try Data(markdown(summary).utf8).write(to: md, options: .atomic)
        return (json, md)
    }

    // MARK: Into a model card

    /// The finished cross-validation summarised in `workDirectory` (its crossval.json); refuses one with folds
    /// still to run unless `allowUnfinished` (the record then names the folds it lacks).
    public static func finishedSummary(in workDirectory: URL, allowUnfinished: Bool = false) throws(TrainingError) -> Summary {
        let url = workDirectory.appendingPathComponent("crossval.json")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw TrainingError(.configuration, "\(workDirectory.path) has no crossval.json: run `fundus-screen crossval --work-dir \(workDirectory.path)` to its end first")
        }
        let summary: Summary
        do { summary = try JSONDecoder().decode(Summary.self, from: Data(contentsOf: url)) } catch {
            throw TrainingError(.configuration, "\(url.path) is not a cross-validation summary: \(error)")
        }
        guard summary.missingFolds.isEmpty || allowUnfinished else {
            throw TrainingError(.configuration, "\(url.path): folds \(summary.missingFolds.map(String.init).joined(separator: ", ")) of \(summary.folds) are not finished (record the finished ones anyway: train --crossval-unfinished, model crossval --unfinished)")
        }
        guard !summary.results.isEmpty else {
            throw TrainingError(.configuration, "\(url.path): no fold is finished yet")
        }
        return summary
    }

    /// A finished cross-validation as a model card's record. `finalSettings`: the final training's options in
    /// `crossval`'s settings form, to list where they differ from the cross-validated recipe.
    public static func record(_ s: Summary, finalSettings: String?) -> CrossValidationRecord {
        func flat(_ classes: [String: [String: Statistic]], _ means: [String: Statistic]) -> [String: Statistic] {
            var out = means
            for (figure, perClass) in classes { for (code, st) in perClass { out[figure + "." + code] = st } }
            return out
        }
        func figures(_ r: FoldResult, singlePass: Bool) -> [String: Double]? {
            guard let classes = singlePass ? r.singlePassClasses : r.classes else { return nil }
            var out: [String: Double] = [:]
            for figure in Figure.allCases {
                out[figure.meanName] = r.mean(figure, singlePass: singlePass)
                for (code, c) in classes { out[figure.rawValue + "." + code] = figure.value(c) }
            }
            return out
        }
        let single = s.singlePassClasses.flatMap { c in s.singlePassMeans.map { flat(c, $0) } }
        return CrossValidationRecord(
            folds: s.folds, images: s.images, settings: s.settings, augmentation: s.augmentation,
            statistics: flat(s.classes, s.means), singlePassStatistics: single,
            foldResults: s.results.map { r in
                .init(fold: r.fold, validationImages: r.validationImages, figures: figures(r, singlePass: false) ?? [:],
                      singlePassFigures: figures(r, singlePass: true))
            },
            differences: finalSettings.map { CrossValidationRecord.differences(crossValidated: s.settings, final: $0) } ?? [],
            table: markdown(s), unfinishedFolds: s.missingFolds.isEmpty ? nil : s.missingFolds)
    }

    static func write<T: Encodable>(_ value: T, to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(value).write(to: url, options: .atomic)
    }
}

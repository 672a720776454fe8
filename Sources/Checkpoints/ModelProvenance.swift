import Foundation

/// How a model's weights were made, in its card (`metadata.json` key `training`): the command, the time it took
/// and the machine, so that anyone can run it again and know what to expect.
public struct TrainingRecord: Codable, Sendable, Equatable {
    /// The command line, as typed (arguments with spaces or shell characters quoted).
    public var command: String
    /// Seconds of training, summed over the runs that resumed one another (nil when a checkpoint it resumed did
    /// not record its share); validation not included.
    public var seconds: Double?
    /// Optimiser steps.
    public var iterations: Int
    /// CPU model and core count of the machine that ran the last part of the training.
    public var machine: String

    public init(command: String, seconds: Double?, iterations: Int, machine: String) {
        self.command = command
        self.seconds = seconds
        self.iterations = iterations
        self.machine = machine
    }

    /// `arguments` as one shell line: each argument with a space, quote or shell character single-quoted.
    public static func commandLine(_ arguments: [String]) -> String {
        arguments.map { a in
            let plain = !a.isEmpty && a.allSatisfy { $0.isLetter || $0.isNumber || "-_./=:,+@%".contains($0) }
            return plain ? a : "'" + a.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }.joined(separator: " ")
    }

    /// The arguments of a line `commandLine(_:)` wrote (single quotes, `'\\''` inside them, and backslash escapes
    /// outside are undone; unquoted whitespace separates).
    public static func arguments(of line: String) -> [String] {
        var out: [String] = []
        var word = ""
        var inWord = false, quoted = false, escaped = false
        for ch in line {
            if escaped { word.append(ch); escaped = false; continue }
            if quoted {
                if ch == "'" { quoted = false } else { word.append(ch) }
                continue
            }
            switch ch {
            case "'": quoted = true; inWord = true
            case "\\": escaped = true; inWord = true
            case " ", "\t", "\n":
                if inWord { out.append(word); word = ""; inWord = false }
            default: word.append(ch); inWord = true
            }
        }
        if inWord { out.append(word) }
        return out
    }

    /// "<CPU model name>, <n> cores" from /proc/cpuinfo (Linux); the core count alone elsewhere.
    public static var thisMachine: String {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let name = info.split(separator: "\n").first { $0.hasPrefix("model name") }
            .flatMap { $0.split(separator: ":", maxSplits: 1).last }
            .map { $0.trimmingCharacters(in: .whitespaces) }
        return (name.map { $0 + ", " } ?? "") + "\(cores) cores"
    }
}

/// The cross-validation that chose a model's recipe, in its card (`metadata.json` key `cross_validation`): per-fold
/// figures, their mean and spread, and where the final training's settings differ from the cross-validated ones.
public struct CrossValidationRecord: Codable, Sendable, Equatable {
    /// Mean, sample standard deviation (n − 1; nil for one value), min and max of the folds where a figure exists.
    public struct Statistic: Codable, Sendable, Equatable {
        public var folds: Int
        public var mean: Double?
        public var standardDeviation: Double?
        public var minimum: Double?
        public var maximum: Double?
        /// Folds (1-based) left out because the class was absent from their validation images.
        public var excludedFolds: [Int]

        public init(_ values: [(fold: Int, value: Double?)]) {
            let present = values.compactMap(\.value)
            folds = present.count
            excludedFolds = values.filter { $0.value == nil }.map(\.fold)
            guard !present.isEmpty else { return }
            let m = present.reduce(0, +) / Double(present.count)
            mean = m
            if present.count > 1 {
                standardDeviation = (present.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(present.count - 1)).squareRoot()
            }
            minimum = present.min()
            maximum = present.max()
        }
    }

    /// One fold: the images it held out and its figures on them ("mAUPR", "AUPR.EX", "AP.HE", "IoU.OD", …).
    public struct Fold: Codable, Sendable, Equatable {
        public var fold: Int
        public var validationImages: [String]
        public var figures: [String: Double]
        /// The same inference's plain pass, when the validation used test-time augmentation.
        public var singlePassFigures: [String: Double]?

        public init(fold: Int, validationImages: [String], figures: [String: Double], singlePassFigures: [String: Double]? = nil) {
            self.fold = fold
            self.validationImages = validationImages
            self.figures = figures
            self.singlePassFigures = singlePassFigures
        }
    }

    public var folds: Int
    public var images: Int
    /// The cross-validated training options, as `crossval` records them.
    public var settings: String
    /// Validation inference (e.g. "mirroring TTA, 4 passes").
    public var augmentation: String
    /// Figure name → statistic over the folds.
    public var statistics: [String: Statistic]
    public var singlePassStatistics: [String: Statistic]?
    public var foldResults: [Fold]
    /// Options of the final training that differ from `settings` ("iterations=6000 → 8000"); empty when it trained
    /// exactly the cross-validated recipe on all the images.
    public var differences: [String]
    /// The summary as `crossval` printed it (Markdown).
    public var table: String
    /// Folds (1-based) that had not finished when the record was taken (`--crossval-unfinished`): the statistics
    /// are over the others. Absent when every fold finished.
    public var unfinishedFolds: [Int]?

    public init(folds: Int, images: Int, settings: String, augmentation: String, statistics: [String: Statistic],
                singlePassStatistics: [String: Statistic]?, foldResults: [Fold], differences: [String], table: String,
                unfinishedFolds: [Int]? = nil) {
        self.folds = folds
        self.images = images
        self.settings = settings
        self.augmentation = augmentation
        self.statistics = statistics
        self.singlePassStatistics = singlePassStatistics
        self.foldResults = foldResults
        self.differences = differences
        self.table = table
        self.unfinishedFolds = unfinishedFolds
    }

    /// The `key=value` options of `final` that differ from `crossValidated` (both settings lines as `crossval`
    /// writes them), as "key: cross-validated → final"; keys only one line has count too.
    public static func differences(crossValidated: String, final: String) -> [String] {
        func pairs(_ line: String) -> [(String, String)] {
            line.split(separator: " ").map { token in
                let parts = token.split(separator: "=", maxSplits: 1)
                return (String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
            }
        }
        let a = pairs(crossValidated), b = pairs(final)
        let da = Dictionary(a, uniquingKeysWith: { x, _ in x }), db = Dictionary(b, uniquingKeysWith: { x, _ in x })
        var keys: [String] = []
        for (k, _) in a + b where !keys.contains(k) { keys.append(k) }
        return keys.compactMap { k in
            da[k] == db[k] ? nil : "\(k): \(da[k] ?? "–") → \(db[k] ?? "–")"
        }
    }
}

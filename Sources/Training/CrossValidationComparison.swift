import Checkpoints
import Foundation
import Lesions

/// Two cross-validations of the same images and folds compared fold by fold: a recipe change (an "arm") is judged
/// by its differences from the baseline on the folds both have finished, paired, because the folds differ from one
/// another far more than recipes do (0.9.0's baseline: fold mAUPR 0.218–0.495).
extension CrossValidation {
    /// Every `fold-<n>.json` in a cross-validation's work folder, by fold.
    public static func foldResults(in workDirectory: URL) throws(TrainingError) -> [FoldResult] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: workDirectory.path) } catch {
            throw TrainingError(.configuration, "\(workDirectory.path): not a readable folder (\(error.localizedDescription))")
        }
        var results: [FoldResult] = []
        for name in names.sorted() where name.hasPrefix("fold-") && name.hasSuffix(".json") {
            let url = workDirectory.appendingPathComponent(name)
            do { results.append(try JSONDecoder().decode(FoldResult.self, from: Data(contentsOf: url))) } catch {
                throw TrainingError(.configuration, "\(url.path) is not a cross-validation fold result: \(error)")
            }
        }
        guard !results.isEmpty else {
            throw TrainingError(.configuration, "\(workDirectory.path) holds no finished fold (fold-<n>.json)")
        }
        return results.sorted { $0.fold < $1.fold }
    }

    /// One figure of one class (or the fold's mean over its present classes) on the paired folds.
    public struct PairedFigure: Sendable {
        public var figure: Figure
        /// A class code, or nil for the fold's mean over classes (mAUPR, mAP, mIoU).
        public var classCode: String?
        /// (fold, baseline, arm) for every paired fold where the class is present.
        public var values: [(fold: Int, baseline: Double, arm: Double)]

        public var differences: [Double] { values.map { $0.arm - $0.baseline } }
        public var baseline: Statistic { Statistic(values.map { ($0.fold, $0.baseline) }) }
        public var arm: Statistic { Statistic(values.map { ($0.fold, $0.arm) }) }
        /// Mean, sd, min and max of arm − baseline over the folds.
        public var difference: Statistic { Statistic(values.map { ($0.fold, $0.arm - $0.baseline) }) }
        /// Folds where the arm is higher.
        public var armHigher: Int { differences.filter { $0 > 0 }.count }
    }

    public struct Comparison: Sendable {
        /// Folds finished in both, and those finished in one only (not compared).
        public var pairedFolds: [Int]
        public var baselineOnly: [Int]
        public var armOnly: [Int]
        public var folds: Int
        /// Where the arm's options differ from the baseline's ("key: baseline → arm").
        public var settingsDifferences: [String]
        public var validationImages: [Int: [String]]
        /// By figure: the fold means first (classCode nil), then EX, HE, SE, MA.
        public var figures: [Figure: [PairedFigure]]

        public func paired(_ figure: Figure, _ classCode: String?) -> PairedFigure? {
            figures[figure]?.first { $0.classCode == classCode }
        }
    }

    /// Pairs the folds both cross-validations finished; refuses two whose folds hold other images (another image
    /// list or fold count), since then nothing pairs.
    public static func compare(baseline: [FoldResult], arm: [FoldResult]) throws(TrainingError) -> Comparison {
        guard let first = baseline.first ?? arm.first else {
            throw TrainingError(.configuration, "nothing to compare: neither cross-validation has a finished fold")
        }
        let b = Dictionary(baseline.map { ($0.fold, $0) }, uniquingKeysWith: { x, _ in x })
        let a = Dictionary(arm.map { ($0.fold, $0) }, uniquingKeysWith: { x, _ in x })
        for r in baseline + arm where r.folds != first.folds {
            throw TrainingError(.configuration, "the cross-validations have \(first.folds) and \(r.folds) folds: their folds do not pair")
        }
        let paired = Set(b.keys).intersection(a.keys).sorted()
        for n in paired where b[n]!.validationImages != a[n]!.validationImages || b[n]!.trainingImages != a[n]!.trainingImages {
            throw TrainingError(.configuration, "fold \(n) validates \(b[n]!.validationImages.joined(separator: ", ")) in the baseline but \(a[n]!.validationImages.joined(separator: ", ")) in the arm (or trains on other images): their folds do not pair")
        }
        guard !paired.isEmpty else {
            throw TrainingError(.configuration, "no fold is finished in both (baseline: \(b.keys.sorted().map(String.init).joined(separator: ", ")); arm: \(a.keys.sorted().map(String.init).joined(separator: ", ")))")
        }
        var figures: [Figure: [PairedFigure]] = [:]
        for figure in Figure.allCases {
            var rows = [PairedFigure(figure: figure, classCode: nil, values: paired.compactMap { n in
                guard let x = b[n]!.mean(figure), let y = a[n]!.mean(figure) else { return nil }
                return (n, x, y)
            })]
            for c in LesionClass.allCases {
                rows.append(PairedFigure(figure: figure, classCode: c.code, values: paired.compactMap { n in
                    guard let x = b[n]!.classes[c.code].flatMap(figure.value),
                          let y = a[n]!.classes[c.code].flatMap(figure.value) else { return nil }
                    return (n, x, y)
                }))
            }
            figures[figure] = rows
        }
        let settingsA = b[paired[0]]!.settings, settingsB = a[paired[0]]!.settings
        return Comparison(
            pairedFolds: paired, baselineOnly: Set(b.keys).subtracting(a.keys).sorted(),
            armOnly: Set(a.keys).subtracting(b.keys).sorted(), folds: first.folds,
            settingsDifferences: CrossValidationRecord.differences(crossValidated: settingsA, final: settingsB),
            validationImages: Dictionary(uniqueKeysWithValues: paired.map { ($0, b[$0]!.validationImages) }),
            figures: figures)
    }

    /// The comparison as Markdown: per fold the means over classes (baseline, arm, difference), then per class the
    /// paired difference's mean ± sd over folds and on how many folds the arm is higher.
    public static func markdown(_ c: Comparison, baselineName: String = "baseline", armName: String = "arm") -> String {
        func f(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "–" }
        func signed(_ v: Double?) -> String { v.map { String(format: "%+.4f", $0) } ?? "–" }
        func meanSD(_ s: Statistic, sign: Bool = false) -> String {
            guard let m = s.mean else { return "–" }
            return (sign ? signed(m) : f(m)) + (s.standardDeviation.map { " ± " + f($0) } ?? "")
        }
        var out = "## Paired cross-validation: \(armName) against \(baselineName)\n\n"
        out += "- Folds finished in both: \(c.pairedFolds.map(String.init).joined(separator: ", ")) of \(c.folds)"
        if !c.baselineOnly.isEmpty { out += "; only in \(baselineName): \(c.baselineOnly.map(String.init).joined(separator: ", "))" }
        if !c.armOnly.isEmpty { out += "; only in \(armName): \(c.armOnly.map(String.init).joined(separator: ", "))" }
        out += " (unpaired folds are left out).\n"
        out += "- Options where \(armName) differs: "
            + (c.settingsDifferences.isEmpty ? "none" : c.settingsDifferences.joined(separator: "; ")) + ".\n"
        out += "- Differences are \(armName) − \(baselineName) on the same fold's images; over folds: mean ± sample sd. "
            + "With few folds a difference smaller than its sd is not a finding.\n\n"
        out += "### Per fold (mean over the classes present in the fold)\n\n"
        out += "| Fold | Validation images |" + Figure.allCases.map { " \($0.meanName) \(baselineName) | \(armName) | Δ |" }.joined() + "\n"
        out += "|---|---|" + String(repeating: "---:|", count: 3 * Figure.allCases.count) + "\n"
        for n in c.pairedFolds {
            out += "| \(n) | \((c.validationImages[n] ?? []).joined(separator: ", ")) |"
            for figure in Figure.allCases {
                let v = c.paired(figure, nil)?.values.first { $0.fold == n }
                out += " \(f(v?.baseline)) | \(f(v?.arm)) | \(signed(v.map { $0.arm - $0.baseline })) |"
            }
            out += "\n"
        }
        out += "\n### Over the paired folds\n\n"
        out += "| Figure | Class | Folds | \(baselineName) | \(armName) | Δ mean ± sd | Δ per fold | \(armName) higher |\n"
        out += "|---|---|---:|---:|---:|---:|---|---:|\n"
        for figure in Figure.allCases {
            for p in c.figures[figure] ?? [] where !p.values.isEmpty {
                let name = p.classCode ?? "**\(figure.meanName)**"
                out += "| \(figure.rawValue) | \(name) | \(p.values.count) | \(meanSD(p.baseline)) | \(meanSD(p.arm)) | "
                    + "\(meanSD(p.difference, sign: true)) | "
                    + p.values.map { "\($0.fold): \(signed($0.arm - $0.baseline))" }.joined(separator: ", ")
                    + " | \(p.armHigher) of \(p.values.count) |\n"
            }
        }
        return out
    }
}

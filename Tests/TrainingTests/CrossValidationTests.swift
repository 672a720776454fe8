import Foundation
import Lesions
import Logging
import Testing
import TestSupport
import Checkpoints
@testable import Training

private let logger = Logger(label: "test.crossval")

private func temporaryFolder() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("crossval-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

private func figures(_ aupr: Double, _ ap: Double, _ iou: Double, pixels: Int = 100) -> CrossValidation.ClassFigures {
    .init(truthPixels: pixels, imagesWithLesion: pixels > 0 ? 1 : 0, aupr: aupr, averagePrecision: ap, iou: iou)
}

private let absent = CrossValidation.ClassFigures(truthPixels: 0, imagesWithLesion: 0, aupr: 0, averagePrecision: nil, iou: 0)

@Test("Folds: consecutive after sorting, sizes within one, every image validated exactly once and never trained on in its fold")
func foldAssignment() throws {
    let names = (1...14).reversed().map { String(format: "IDRiD_%02d", $0) }
    let folds = try CrossValidation.folds(names, count: 7)
    #expect(folds.count == 7)
    #expect(folds[0] == ["IDRiD_01", "IDRiD_02"])
    #expect(folds[6] == ["IDRiD_13", "IDRiD_14"])
    #expect(folds.flatMap { $0 }.sorted() == names.sorted())
    #expect(Set(folds.flatMap { $0 }).count == names.count)
    for i in folds.indices {
        let training = CrossValidation.trainingImages(folds, fold: i)
        #expect(Set(training).isDisjoint(with: folds[i]))
        #expect(Set(training).union(folds[i]) == Set(names))
    }
    // Uneven: 14 images in 4 folds → 4, 4, 3, 3.
    let uneven = try CrossValidation.folds(names, count: 4)
    #expect(uneven.map(\.count) == [4, 4, 3, 3])
    #expect(uneven.flatMap { $0 } == names.sorted())
    #expect(throws: TrainingError.self) { try CrossValidation.folds(["A", "B"], count: 3) }
    #expect(throws: TrainingError.self) { try CrossValidation.folds(["A", "A", "B"], count: 2) }
    #expect(throws: TrainingError.self) { try CrossValidation.folds(["A", "B"], count: 1) }
}

@Test("Aggregation: mean ± sample sd and min–max per class; a class absent from a fold is left out of its statistics and of that fold's means, and said so")
func aggregationWithAbsentClass() throws {
    func fold(_ n: Int, _ se: CrossValidation.ClassFigures) -> CrossValidation.FoldResult {
        let base = Double(n)
        return .init(fold: n, folds: 3, trainingImages: [], validationImages: ["I\(n)"], settings: "s", augmentation: "1 pass (no TTA)",
                     classes: ["EX": figures(0.5 + base / 10, 0.4 + base / 10, 0.3), "HE": figures(0.6, 0.5, 0.4),
                               "SE": se, "MA": figures(0.2, 0.1, 0.1)])
    }
    let results = [fold(1, figures(0.7, 0.6, 0.5)), fold(2, absent), fold(3, figures(0.3, 0.2, 0.1))]
    #expect(results[1].absentClasses == ["SE"])
    #expect(results[1].classes["SE"]?.aupr == nil)   // not the official code's 0
    // Fold 2's mean is over EX, HE, MA only.
    #expect(abs(results[1].mean(.aupr)! - (0.7 + 0.6 + 0.2) / 3) < 1e-12)
    #expect(abs(results[0].mean(.aupr)! - (0.6 + 0.6 + 0.7 + 0.2) / 4) < 1e-12)

    let s = CrossValidation.summarise(results, folds: 3)
    let se = try #require(s.classes["AUPR"]?["SE"])
    #expect(se.folds == 2 && se.excludedFolds == [2])
    #expect(abs(se.mean! - 0.5) < 1e-12)
    #expect(abs(se.standardDeviation! - (0.08).squareRoot()) < 1e-12)   // (0.2² + 0.2²) / (2 − 1)
    #expect(se.minimum == 0.3 && se.maximum == 0.7)
    let ex = try #require(s.classes["AP"]?["EX"])
    #expect(ex.folds == 3 && ex.excludedFolds.isEmpty)
    #expect(abs(ex.mean! - 0.6) < 1e-12 && abs(ex.standardDeviation! - 0.1) < 1e-12)
    let means = try #require(s.means["mAUPR"])
    #expect(means.folds == 3)
    let foldMeans = results.map { $0.mean(.aupr)! }
    #expect(abs(means.mean! - foldMeans.reduce(0, +) / 3) < 1e-12)
    #expect(s.missingFolds.isEmpty)

    let md = CrossValidation.markdown(s)
    #expect(md.contains("absent"))
    #expect(md.contains("fold 2: SE"))
    #expect(md.contains("0.5000 ± 0.2828 (n=2)"))
    #expect(md.contains("0.3000–0.7000"))

    // Without the plain pass's figures on every fold, no single-pass table.
    #expect(s.singlePassMeans == nil && !md.contains("Without the test-time augmentation"))
    var withSingle = results
    for i in withSingle.indices {
        withSingle[i].singlePassClasses = withSingle[i].classes.mapValues { c in
            var lower = c
            lower.aupr = c.aupr.map { $0 - 0.05 }
            return lower
        }
    }
    let ss = CrossValidation.summarise(withSingle, folds: 3)
    let singleMean = try #require(ss.singlePassMeans?["mAUPR"]?.mean)
    #expect(abs(singleMean - (means.mean! - 0.05)) < 1e-12)
    #expect(ss.singlePassClasses?["AUPR"]?["SE"]?.excludedFolds == [2])
    let smd = CrossValidation.markdown(ss)
    #expect(smd.contains("Without the test-time augmentation") && smd.contains("+0.0500, +0.0500, +0.0500"))

    // One fold only: no sd, and the missing folds are listed.
    let partial = CrossValidation.summarise([results[0]], folds: 3)
    #expect(partial.missingFolds == [2, 3])
    #expect(partial.classes["IoU"]?["EX"]?.standardDeviation == nil)
    #expect(CrossValidation.markdown(partial).contains("Not finished yet: folds 2, 3"))
}

@Test("Resume: a finished fold's JSON is read, not rerun; other folds run and are saved; a result made with other options is refused")
func resumeSkipsFinishedFold() throws {
    let work = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: work) }
    let folds = try CrossValidation.folds(["A", "B", "C", "D"], count: 2)
    var fake = CrossValidation.FoldResult(fold: 1, folds: 2, trainingImages: ["C", "D"], validationImages: ["A", "B"],
                                          settings: "opts", augmentation: "1 pass (no TTA)",
                                          classes: ["EX": figures(0.9, 0.9, 0.9), "HE": figures(0.9, 0.9, 0.9),
                                                    "SE": absent, "MA": figures(0.9, 0.9, 0.9)])
    try CrossValidation.write(fake, to: CrossValidation.resultFile(work, fold: 1))

    var ran: [Int] = []
    let results = try CrossValidation.run(folds: folds, workDirectory: work, settings: "opts", logger: logger) {
        n, training, validation, folder in
        ran.append(n)
        #expect(Set(training).isDisjoint(with: validation))
        #expect(folder.lastPathComponent == "fold-\(n)")
        return .init(fold: n, folds: 2, trainingImages: training, validationImages: validation, settings: "opts",
                     augmentation: "1 pass (no TTA)", classes: ["EX": figures(0.5, 0.5, 0.5), "HE": figures(0.5, 0.5, 0.5),
                                                                "SE": figures(0.5, 0.5, 0.5), "MA": figures(0.5, 0.5, 0.5)])
    }
    #expect(ran == [2])
    #expect(results.map(\.fold) == [1, 2])
    #expect(results[0] == fake)
    #expect(FileManager.default.fileExists(atPath: CrossValidation.resultFile(work, fold: 2).path))

    // Everything finished: nothing runs.
    _ = try CrossValidation.run(folds: folds, workDirectory: work, settings: "opts", logger: logger) { n, _, _, _ in
        Issue.record("fold \(n) ran again")
        throw TrainingError(.configuration, "ran")
    }
    // --fold 2 only, finished: skipped too; --fold 3 does not exist.
    #expect(throws: TrainingError.self) {
        _ = try CrossValidation.run(folds: folds, only: 3, workDirectory: work, settings: "opts", logger: logger) { _, _, _, _ in fake }
    }
    // Other options: refused, naming the file.
    #expect(throws: TrainingError.self) {
        _ = try CrossValidation.run(folds: folds, workDirectory: work, settings: "other", logger: logger) { _, _, _, _ in fake }
    }
    // A fold file of another assignment: refused.
    fake.validationImages = ["A", "C"]
    try CrossValidation.write(fake, to: CrossValidation.resultFile(work, fold: 1))
    #expect(throws: TrainingError.self) {
        _ = try CrossValidation.run(folds: folds, workDirectory: work, settings: "opts", logger: logger) { _, _, _, _ in fake }
    }

    let paths = try CrossValidation.writeSummary(CrossValidation.summarise(results, folds: 2), to: work)
    let decoded = try JSONDecoder().decode(CrossValidation.Summary.self, from: Data(contentsOf: paths.json))
    #expect(decoded.results.count == 2)
    #expect(try String(contentsOf: paths.markdown, encoding: .utf8).contains("| **mean ± sd** |"))
}

@Test("Into the model card: per-fold figures and statistics of both passes; a summary with folds missing, or none, is refused with what to do")
func cardRecord() throws {
    func fold(_ n: Int) -> CrossValidation.FoldResult {
        var r = CrossValidation.FoldResult(fold: n, folds: 2, trainingImages: ["I\(3 - n)"], validationImages: ["I\(n)"], settings: "iterations=10 seed=1 tta=4",
                                           augmentation: "mirroring TTA, 4 passes",
                                           classes: ["EX": figures(0.5 + Double(n) / 10, 0.4, 0.3), "HE": figures(0.6, 0.5, 0.4),
                                                     "SE": n == 2 ? absent : figures(0.7, 0.6, 0.5), "MA": figures(0.2, 0.1, 0.1)])
        r.singlePassClasses = r.classes.mapValues { c in var l = c; l.aupr = c.aupr.map { $0 - 0.1 }; return l }
        return r
    }
    let summary = CrossValidation.summarise([fold(1), fold(2)], folds: 2)
    let record = CrossValidation.record(summary, finalSettings: "iterations=12 seed=1")
    #expect(record.folds == 2 && record.images == 2 && record.settings == "iterations=10 seed=1 tta=4")
    #expect(record.differences == ["iterations: 10 → 12", "tta: 4 → –"])
    #expect(record.foldResults.map(\.fold) == [1, 2] && record.foldResults[1].validationImages == ["I2"])
    #expect(abs(record.foldResults[0].figures["AUPR.EX"]! - 0.6) < 1e-12)
    #expect(record.foldResults[1].figures["AUPR.SE"] == nil)   // absent from fold 2: no figure, not 0
    #expect(abs(record.foldResults[1].figures["mAUPR"]! - (0.7 + 0.6 + 0.2) / 3) < 1e-12)
    #expect(abs(record.foldResults[0].singlePassFigures!["AUPR.MA"]! - 0.1) < 1e-12)
    let ex = try #require(record.statistics["AUPR.EX"])
    #expect(ex.folds == 2 && abs(ex.mean! - 0.65) < 1e-12 && ex.minimum == 0.6 && ex.maximum == 0.7)
    #expect(record.statistics["AUPR.SE"]?.folds == 1)
    #expect(record.statistics["mAUPR"] == summary.means["mAUPR"])
    #expect(abs(record.singlePassStatistics!["AUPR.EX"]!.mean! - 0.55) < 1e-12)
    #expect(record.table == CrossValidation.markdown(summary))

    let work = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: work) }
    #expect { try CrossValidation.finishedSummary(in: work) } throws: { "\($0)".contains("no crossval.json") && "\($0)".contains("crossval --work-dir") }
    _ = try CrossValidation.writeSummary(CrossValidation.summarise([fold(1)], folds: 2), to: work)
    #expect { try CrossValidation.finishedSummary(in: work) } throws: { "\($0)".contains("folds 2 of 2 are not finished") }
    let partial = try CrossValidation.finishedSummary(in: work, allowUnfinished: true)
    #expect(partial.missingFolds == [2] && partial.results.map(\.fold) == [1])
    let partialRecord = CrossValidation.record(partial, finalSettings: nil)
    #expect(partialRecord.unfinishedFolds == [2] && partialRecord.foldResults.map(\.fold) == [1] && partialRecord.folds == 2)
    #expect(partialRecord.table.contains("Not finished yet: fold 2"))
    #expect(record.unfinishedFolds == nil)
    _ = try CrossValidation.writeSummary(CrossValidation.summarise([], folds: 2), to: work)
    #expect { try CrossValidation.finishedSummary(in: work, allowUnfinished: true) } throws: { "\($0)".contains("no fold is finished") }
    _ = try CrossValidation.writeSummary(summary, to: work)
    #expect(try CrossValidation.finishedSummary(in: work) == summary)
}

@Test("The shipped card's cross-validation is what the committed fold results (the models/crossval folder of the same recipe) summarise to: every image of a finished fold validated once, the unfinished folds named")
func shippedCardMatchesFoldFiles() throws {
    let root = SharedFixtures.packageRoot
    let card = try ModelCard.read(root.appendingPathComponent("models/default/metadata.json"))
    let recorded = try #require(card.crossValidation)
    // The folders whose fold files were run with the card's recipe (a rerun of some folds on another machine has
    // the same settings); exactly one of them holds the folds the card records.
    let crossval = root.appendingPathComponent("models/crossval")
    let folders = try FileManager.default.contentsOfDirectory(atPath: crossval.path).sorted()
        .map { crossval.appendingPathComponent($0) }
        .filter { FileManager.default.fileExists(atPath: $0.appendingPathComponent("crossval.json").path) }
    let sameRecipe = try folders.filter { try CrossValidation.finishedSummary(in: $0, allowUnfinished: true).settings == recorded.settings }
    #expect(!sameRecipe.isEmpty, "no folder under models/crossval has the card's settings")
    let matching = try sameRecipe.filter {
        CrossValidation.record(CrossValidation.summarise(try CrossValidation.foldResults(in: $0), folds: recorded.folds),
                               finalSettings: nil).foldResults == recorded.foldResults
    }
    #expect(matching.count == 1, "folders holding the card's folds: \(matching.map(\.lastPathComponent)) of \(sameRecipe.map(\.lastPathComponent))")
    let folder = try #require(matching.first)
    let results = try CrossValidation.foldResults(in: folder)
    let missing = (1...recorded.folds).filter { n in !results.contains { $0.fold == n } }
    #expect(missing == (recorded.unfinishedFolds ?? []))
    // Every image at most once; all 14 when every fold is finished; the card counts the images validated.
    let validated = results.flatMap(\.validationImages)
    #expect(recorded.folds == 5 && recorded.images == validated.count)
    #expect(results.allSatisfy { $0.folds == 5 })
    #expect(Set(validated).count == validated.count)
    #expect(Set(validated).isSubset(of: (1...14).map { String(format: "IDRiD_%02d", $0) }))
    if missing.isEmpty { #expect(validated.count == 14) }
    #expect(Set(results.map(\.settings)).count == 1)
    let summary = CrossValidation.summarise(results, folds: 5)
    #expect(summary.missingFolds == missing)
    #expect(try CrossValidation.finishedSummary(in: folder, allowUnfinished: true) == summary)
    let record = CrossValidation.record(summary, finalSettings: nil)
    #expect(recorded.statistics == record.statistics)
    #expect(recorded.foldResults == record.foldResults)
    #expect(recorded.settings == summary.settings && recorded.table == record.table)
}

@Test("Paired comparison: only folds finished in both are paired, per-class and mean differences per fold with mean ± sd and the folds the arm wins; an absent class pairs nowhere; folds with other images are refused")
func pairedComparison() throws {
    func fold(_ n: Int, ex: Double, se: CrossValidation.ClassFigures, settings: String, images: [String]? = nil) -> CrossValidation.FoldResult {
        .init(fold: n, folds: 3, trainingImages: ["T\(n)"], validationImages: images ?? ["I\(n)"], settings: settings,
              augmentation: "tta", classes: ["EX": figures(ex, ex, ex), "HE": figures(0.3, 0.3, 0.3), "SE": se, "MA": figures(0.1, 0.1, 0.1)])
    }
    let base = "seed=31 vessels=-", armSettings = "seed=31 vessels=hrf"
    let baseline = [fold(1, ex: 0.6, se: figures(0.5, 0.5, 0.5), settings: base), fold(2, ex: 0.5, se: absent, settings: base),
                    fold(3, ex: 0.4, se: figures(0.2, 0.2, 0.2), settings: base)]
    let arm = [fold(1, ex: 0.7, se: figures(0.4, 0.4, 0.4), settings: armSettings), fold(2, ex: 0.4, se: absent, settings: armSettings)]

    // On disk as crossval writes them; a folder without fold files is refused with its name.
    let folderA = try temporaryFolder(), folderB = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: folderA); try? FileManager.default.removeItem(at: folderB) }
    for r in baseline { try CrossValidation.write(r, to: CrossValidation.resultFile(folderA, fold: r.fold)) }
    for r in arm { try CrossValidation.write(r, to: CrossValidation.resultFile(folderB, fold: r.fold)) }
    #expect(try CrossValidation.foldResults(in: folderA) == baseline)
    let empty = try temporaryFolder()
    defer { try? FileManager.default.removeItem(at: empty) }
    #expect(throws: TrainingError.self) { try CrossValidation.foldResults(in: empty) }

    let c = try CrossValidation.compare(baseline: CrossValidation.foldResults(in: folderA), arm: CrossValidation.foldResults(in: folderB))
    #expect(c.pairedFolds == [1, 2] && c.baselineOnly == [3] && c.armOnly.isEmpty)
    #expect(c.settingsDifferences == ["vessels: - → hrf"])
    let ex = try #require(c.paired(.aupr, "EX"))
    #expect(ex.values.map(\.fold) == [1, 2])
    #expect(zip(ex.differences, [0.1, -0.1]).allSatisfy { abs($0 - $1) < 1e-12 })
    #expect(abs(ex.difference.mean!) < 1e-12 && abs(ex.difference.standardDeviation! - (0.02).squareRoot()) < 1e-12)
    #expect(ex.armHigher == 1)
    // SE is absent from fold 2: it pairs on fold 1 only.
    let se = try #require(c.paired(.iou, "SE"))
    #expect(se.values.map(\.fold) == [1] && abs(se.differences[0] + 0.1) < 1e-12 && se.armHigher == 0)
    // The fold means are over the present classes: fold 1 (0.7+0.3+0.4+0.1)/4 − (0.6+0.3+0.5+0.1)/4 = 0; fold 2 −0.1/3.
    let mean = try #require(c.paired(.averagePrecision, nil))
    #expect(abs(mean.differences[0]) < 1e-12 && abs(mean.differences[1] + 0.1 / 3) < 1e-12)

    let md = CrossValidation.markdown(c, baselineName: "w16", armName: "w16-ves")
    #expect(md.contains("only in w16: 3"))
    #expect(md.contains("vessels: - → hrf"))
    #expect(md.contains("1: +0.1000, 2: -0.1000"))
    #expect(md.contains("| AUPR | EX | 2 | 0.5500 ± 0.0707 | 0.5500 ± 0.2121 | "))

    // Other images in a fold, or another fold count: nothing pairs.
    let shifted = [fold(1, ex: 0.7, se: absent, settings: armSettings, images: ["I9"])]
    #expect(throws: TrainingError.self) { try CrossValidation.compare(baseline: baseline, arm: shifted) }
    var other = arm[0]
    other.folds = 5
    #expect(throws: TrainingError.self) { try CrossValidation.compare(baseline: baseline, arm: [other]) }
    #expect(throws: TrainingError.self) { try CrossValidation.compare(baseline: [baseline[2]], arm: arm) }
}

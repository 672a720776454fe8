import Foundation
import Testing
import TestSupport
@testable import Lesions

/// Adds one image where `lesionClass` has these scores and truth, and every other class scores 0 with no truth.
private func add(
    _ e: inout SegmentationEvaluation, _ id: String, _ lesionClass: LesionClass, scores: [Float], truth: [UInt8]?
) throws {
    var planes: [LesionClass: ScorePlane] = [:]
    for c in LesionClass.allCases {
        planes[c] = try ScorePlane(
            width: scores.count, height: 1,
            probabilities: c == lesionClass ? scores : [Float](repeating: 0, count: scores.count))
    }
    try e.add(imageID: id, scores: planes, truth: truth.map { [lesionClass: $0] } ?? [:])
}

private func near(_ a: Double?, _ b: Double, _ tol: Double = 1e-12) -> Bool {
    guard let a else { return false }
    return abs(a - b) <= tol
}

@Test("The official thresholds are numpy's linspace(0, 1, 11) and 0.5 is row 5")
func officialThresholds() {
    #expect(OfficialM2MRF.thresholds[3] == 0.30000000000000004)
    #expect(OfficialM2MRF.thresholds[6] == 0.6000000000000001)
    #expect(OfficialM2MRF.thresholds[10] == 1.0)
    #expect(OfficialM2MRF.thresholds[OfficialM2MRF.operatingIndex] == 0.5)
    #expect(OfficialM2MRF.rowsAbove(0) == 0 && OfficialM2MRF.rowsAbove(1) == 10)
    #expect(OfficialM2MRF.rowsAbove(0.5) == 5 && OfficialM2MRF.rowsAbove(0.50001) == 6)
    #expect(OfficialM2MRF.rowsAbove(Float(51) / 255) == 2, "51/255 equals Float(0.2): not above it")
}

@Test("Official figures on a hand-computed case: IoU 1/3, F1 1/2, AUPR 10/24")
func officialHandComputed() throws {
    var e = SegmentationEvaluation()
    try add(&e, "a", .haemorrhage, scores: [0.05, 0.15, 0.55, 0.95], truth: [0, 1, 1, 0])
    let he = e.report().classes[LesionClass.haemorrhage.rawValue].official
    // Rows: t=0 P4 TP2; t=0.1 P3 TP2; t=0.2…0.5 P2 TP1; t=0.6…0.9 P1 TP0; t=1 P0 → precision 1, recall 0.
    #expect(he.curve.map(\.predicted) == [4, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0])
    #expect(he.curve.map(\.truePositives) == [2, 2, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    #expect(he.curve.last!.precision == 1 && he.curve.last!.recall == 0)
    #expect(near(he.iou, 1.0 / 3) && near(he.f1, 0.5) && near(he.precision, 0.5) && near(he.sensitivity, 0.5))
    // Trapezoids: (1→0.5)·(2/3+1/2)/2 = 7/24, (0.5→0)·(1/2+0)/2 = 3/24.
    #expect(near(he.aupr, 10.0 / 24))
}

@Test("Counts are pooled over the data set, not averaged per image")
func datasetLevel() throws {
    var e = SegmentationEvaluation()
    try add(&e, "hit", .hardExudate, scores: [0.9, 0.0], truth: [1, 0])   // IoU 1 alone
    try add(&e, "miss", .hardExudate, scores: [0, 0, 0, 0], truth: [1, 1, 1, 0]) // IoU 0 alone
    let r = e.report().classes[0]
    #expect(near(r.official.iou, 0.25))
    #expect(near(r.meanImageDice, 0.5), "per-image Dice 1 and 0")
    #expect(r.truthPixels == 4 && r.imagesWithLesion == 2)
}

@Test("A class absent everywhere: recall 0 (NaN→0), AUPR 0, IoU NaN counted 0 in the means")
func classAbsentEverywhere() throws {
    var e = SegmentationEvaluation()
    try add(&e, "a", .softExudate, scores: [0.3, 0.7], truth: nil)
    let r = e.report()
    let se = r.classes[LesionClass.softExudate.rawValue]
    #expect(se.official.aupr == 0)
    #expect(se.official.curve.allSatisfy { $0.recall == 0 })
    #expect(se.official.iou == 0, "one pixel predicted above 0.5 and no truth: TP/(P+FN) = 0/1")
    #expect(se.official.sensitivity == nil)
    #expect(se.averagePrecision == nil && se.presenceAUC == nil)
    // The other classes predict nothing and have no truth: IoU NaN → nil, counted as 0.
    let ex = r.classes[0]
    #expect(ex.official.iou == nil && ex.official.precision == nil && ex.official.aupr == 0)
    #expect(r.official.mIoU == 0 && r.official.mAUPR == 0)
}

@Test("Nothing predicted at any threshold: precision 1 everywhere, recall 0, AUPR 0")
func blankPrediction() throws {
    var e = SegmentationEvaluation()
    try add(&e, "a", .microaneurysm, scores: [0, 0, 0], truth: [1, 0, 1])
    let ma = e.report().classes[LesionClass.microaneurysm.rawValue]
    #expect(ma.official.curve.allSatisfy { $0.predicted == 0 && $0.precision == 1 && $0.recall == 0 })
    #expect(ma.official.aupr == 0 && ma.official.iou == 0 && ma.official.precision == nil)
    #expect(ma.official.f1 == 0)
}

@Test("Truth given as prediction: IoU 1 and AUPR 1 for every class present")
func perfectPrediction() throws {
    var e = SegmentationEvaluation()
    let truth: [UInt8] = [0, 255, 255, 0, 255, 0]
    var planes: [LesionClass: ScorePlane] = [:], masks: [LesionClass: [UInt8]] = [:]
    for c in LesionClass.allCases {
        planes[c] = try ScorePlane(width: 3, height: 2, mask: truth)
        masks[c] = truth
    }
    try e.add(imageID: "a", scores: planes, truth: masks)
    let r = e.report()
    #expect(r.official.mIoU == 1 && r.official.mAUPR == 1 && r.official.mF1 == 1)
    #expect(r.meanAveragePrecision == 1)
}

@Test("Average precision over all distinct scores matches sklearn's definition")
func exactAveragePrecision() throws {
    var e = SegmentationEvaluation()
    // Descending: 0.9 +, 0.8 −, 0.7 +, 0.1 −  → AP = ½·1 + ½·⅔ = 5/6.
    try add(&e, "a", .hardExudate, scores: [0.8, 0.7, 0.1, 0.9], truth: [0, 1, 0, 1])
    #expect(near(e.report().classes[0].averagePrecision, 5.0 / 6))
    // Ties count as one threshold: 0.6 + and 0.6 − → precision ½ at recall 1.
    var t = SegmentationEvaluation()
    try add(&t, "a", .hardExudate, scores: [0.6, 0.6], truth: [1, 0])
    #expect(near(t.report().classes[0].averagePrecision, 0.5))
}

@Test("8-bit maps: counts from the 256-value histogram equal the float path")
func bytesEqualFloats() throws {
    var rng = SplitMix(seed: 11)
    let n = 5000
    let bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    let truth = bytes.map { v -> UInt8 in (Int(v) + Int(rng.next() % 120) > 200) ? 1 : 0 }
    var a = SegmentationEvaluation(), b = SegmentationEvaluation()
    var pa: [LesionClass: ScorePlane] = [:], pb: [LesionClass: ScorePlane] = [:]
    for c in LesionClass.allCases {
        pa[c] = try ScorePlane(width: 100, height: 50, probabilityBytes: bytes)
        pb[c] = try ScorePlane(width: 100, height: 50, probabilities: bytes.map { ScorePlane.score(byte: $0) })
    }
    try a.add(imageID: "x", scores: pa, truth: [.haemorrhage: truth])
    try b.add(imageID: "x", scores: pb, truth: [.haemorrhage: truth])
    #expect(a.report() == b.report())
    // And the official counts equal direct counting at every threshold.
    let he = a.report().classes[1].official
    for (i, t) in OfficialM2MRF.comparisonThresholds.enumerated() {
        let predicted = bytes.filter { ScorePlane.score(byte: $0) > t }.count
        #expect(he.curve[i].predicted == predicted)
    }
}

@Test("Image-level presence AUC uses each image's largest score, ties counted half")
func presenceAUC() throws {
    var e = SegmentationEvaluation()
    try add(&e, "with-1", .haemorrhage, scores: [0.9, 0.1], truth: [1, 0])
    try add(&e, "with-2", .haemorrhage, scores: [0.6, 0.1], truth: [0, 1])
    try add(&e, "without", .haemorrhage, scores: [0.6, 0.2], truth: nil)
    #expect(near(e.report().classes[1].presenceAUC, 0.75))
}

@Test("Overlapping truth counts only for the higher class, as the merged label map does")
func officialOverwrite() throws {
    let ex: [UInt8] = [1, 1, 0], he: [UInt8] = [0, 1, 1], ma: [UInt8] = [0, 0, 1]
    let t = try OfficialM2MRF.overwrittenTruth([.hardExudate: ex, .haemorrhage: he, .microaneurysm: ma])
    #expect(t[.hardExudate] == [1, 0, 0])
    #expect(t[.haemorrhage] == [0, 1, 0])
    #expect(t[.microaneurysm] == [0, 0, 1])
    #expect(t[.softExudate] == nil)
}

@Test("sklearn's auc: trapezoids in either direction; numpy's pairwise sum")
func aucRule() {
    #expect(OfficialM2MRF.auc(x: [0, 0.5, 1], y: [1, 1, 0]) == 0.75)
    #expect(OfficialM2MRF.auc(x: [1, 0.5, 0], y: [0, 1, 1]) == 0.75)
    #expect(OfficialM2MRF.auc(x: [0, 1, 0.5], y: [1, 1, 1]) == nil)
    let values = (0..<300).map { Double($0) * 0.37 }
    #expect(abs(OfficialM2MRF.pairwiseSum(values[...]) - values.reduce(0, +)) < 1e-9)
}

@Test("Bad input is refused and leaves the evaluation as it was")
func badEvaluationInput() throws {
    var e = SegmentationEvaluation()
    #expect(throws: LesionsError.self) {
        try add(&e, "nan", .haemorrhage, scores: [0.2, .nan], truth: nil)
    }
    #expect(throws: LesionsError.self) {
        try add(&e, "big", .haemorrhage, scores: [1.5], truth: nil)
    }
    #expect(throws: LesionsError.self) {
        try add(&e, "short-truth", .haemorrhage, scores: [0.2, 0.3], truth: [1])
    }
    #expect(e.imageIDs.isEmpty && e.report().classes[1].images == 0)
}

@Test("Three random 8-bit images agree with a numpy restatement of the reference's evaluation")
func agreesWithNumpyReference() throws {
    // The same data as a numpy script built with this generator: labels 1…4 on half the pixels, lesion
    // pixels scoring 128…255, others 0…159; SE predicts nothing in the last image. Expected values printed by
    // that script (float32 comparison, np.trapezoid, nanmean(nan_to_num)).
    var rng = SplitMix(seed: 2024)
    let w = 23, h = 17
    var e = SegmentationEvaluation()
    for image in 0..<3 {
        let label = (0..<(w * h)).map { _ -> Int in let r = Int(rng.next() % 10); return r < 5 ? r : 0 }
        var planes: [LesionClass: ScorePlane] = [:], truth: [LesionClass: [UInt8]] = [:]
        for c in LesionClass.allCases {
            var bytes = label.map { l -> UInt8 in
                l == c.labelIndex ? UInt8(128 + rng.next() % 128) : UInt8(rng.next() % 160)
            }
            if image == 2 && c == .softExudate { bytes = [UInt8](repeating: 0, count: w * h) }
            planes[c] = try ScorePlane(width: w, height: h, probabilityBytes: bytes)
            truth[c] = label.map { $0 == c.labelIndex ? 1 : 0 }
        }
        try e.add(imageID: "\(image)", scores: planes, truth: truth)
    }
    let r = e.report()
    #expect(r.classes.map { $0.official.curve[5].predicted } == [327, 336, 225, 341])
    #expect(r.classes.map { $0.official.curve[5].truePositives } == [124, 113, 74, 118])
    let iou = [0.37920489296636084, 0.33630952380952384, 0.26811594202898553, 0.3460410557184751]
    let aupr = [0.8410225851776606, 0.8653262666537004, 0.4944687719298245, 0.9038910645836378]
    let ap = [0.8188374637552933, 0.8747181304020296, 0.5269934001659966, 0.9070727569635364]
    for c in 0..<4 {
        #expect(near(r.classes[c].official.iou, iou[c], 1e-15))
        #expect(near(r.classes[c].official.aupr, aupr[c], 1e-15))
        #expect(near(r.classes[c].averagePrecision, ap[c], 1e-12))
    }
    #expect(near(r.official.mIoU, 0.3324178536308363, 1e-15))
    #expect(near(r.official.mF1, 0.49756206384850304, 1e-15))
    #expect(near(r.official.mPPV, 0.34761109034581217, 1e-15))
    #expect(near(r.official.mS, 0.898, 1e-15))
    #expect(near(r.official.mAUPR, 0.7761771720862058, 1e-15))
}

@Test("Score counts: every pixel once, at its score, split by truth; 8-bit scores each in their own bin")
func scoreCountsSplitByTruth() throws {
    var e = SegmentationEvaluation()
    let bytes: [UInt8] = [0, 0, 26, 26, 128, 255, 255, 7]
    let truth: [UInt8] = [0, 1, 1, 0, 1, 1, 0, 0]
    var planes: [LesionClass: ScorePlane] = [:]
    for c in LesionClass.allCases {
        planes[c] = try ScorePlane(width: 4, height: 2, probabilityBytes: c == .softExudate ? bytes : [UInt8](repeating: 0, count: 8))
    }
    try e.add(imageID: "a", scores: planes, truth: [.softExudate: truth])
    try e.add(imageID: "b", scores: planes, truth: [:])
    let counts = e.scoreCounts(.softExudate)
    #expect(counts.map { Int(($0.score * 255).rounded()) } == [0, 7, 26, 128, 255], "\(counts)")
    #expect(counts.map(\.positives) == [1, 0, 1, 1, 1])
    #expect(counts.map(\.negatives) == [1 + 2, 1 + 1, 1 + 2, 0 + 1, 1 + 2])
    #expect(counts.reduce(0) { $0 + $1.positives + $1.negatives } == 16)
    #expect(e.scoreCounts(.hardExudate).map(\.negatives) == [16])
    for c in counts {
        #expect(abs(Double(c.score) - Double(ScorePlane.score(byte: UInt8((c.score * 255).rounded())))) < 1e-3 * Double(c.score) + 1e-9)
    }
}

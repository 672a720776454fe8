/// Evaluates per-class lesion probabilities against truth masks, one image at a time, without keeping any
/// probability map: every figure comes from counts.
///
/// Per class it accumulates
/// - the official M2MRF counts: pixels by how many of the 11 official thresholds their score is above;
/// - a fine score histogram (the float32 bit pattern's top 20 bits: 260 097 bins on [0, 1], relative width 2⁻¹¹),
///   split by truth, for the average precision over all distinct scores. Every 8-bit probability v/255 has its
///   own bin, so for 8-bit maps and masks the average precision is exact;
/// - counts at the operating threshold (dataset level, and per image for the mean Dice);
/// - each image's largest score and whether the truth has the lesion at all, for the image-level presence AUC.
public struct SegmentationEvaluation: Sendable {
    public let operatingThreshold: Float
    public private(set) var imageIDs: [String] = []
    private var accumulators: [ClassAccumulator]

    public init(operatingThreshold: Float = 0.5) {
        self.operatingThreshold = operatingThreshold
        accumulators = LesionClass.allCases.map { _ in ClassAccumulator() }
    }

    /// Adds one image: a score plane for every lesion class, and the truth masks (non-zero = lesion; a missing
    /// class means the class is absent from the image). Apply `OfficialM2MRF.overwrittenTruth` first to count
    /// overlapping truth pixels as the reference does.
    public mutating func add(
        imageID: String, scores: [LesionClass: ScorePlane], truth: [LesionClass: [UInt8]]
    ) throws {
        guard let first = scores.values.first else { throw LesionsError("\(imageID): no class scores given") }
        for c in LesionClass.allCases {
            guard let plane = scores[c] else { throw LesionsError("\(imageID): no \(c.code) scores given") }
            guard plane.width == first.width && plane.height == first.height else {
                throw LesionsError("\(imageID): the \(c.code) scores are \(plane.width)×\(plane.height), "
                    + "the others \(first.width)×\(first.height)")
            }
            if let t = truth[c], t.count != plane.pixelCount {
                throw LesionsError("\(imageID): the \(c.code) truth has \(t.count) pixels, the scores "
                    + "\(plane.width)×\(plane.height) = \(plane.pixelCount)")
            }
        }
        // Count into scratch first, so a bad score leaves the evaluation unchanged.
        var counted: [ImageCounts] = []
        for c in LesionClass.allCases {
            counted.append(try ImageCounts(scores: scores[c]!, truth: truth[c], operatingThreshold: operatingThreshold,
                                           imageID: imageID, lesionClass: c))
        }
        for c in LesionClass.allCases { accumulators[c.rawValue].add(counted[c.rawValue]) }
        imageIDs.append(imageID)
    }

    /// Per class, the pixels counted at each distinct score, split by truth, scores ascending (for 8-bit planes
    /// the values v/255, each its own bin, so the counts are exact; see `ScoreCount.score`): any monotone reading of the scores — a
    /// calibration — can be scored from them without running the network again.
    public func scoreCounts(_ lesionClass: LesionClass) -> [ScoreCount] {
        let h = accumulators[lesionClass.rawValue].histogram
        return (0..<ScoreBins.count).compactMap { b in
            h[b * 2] == 0 && h[b * 2 + 1] == 0 ? nil
                : ScoreCount(score: ScoreBins.lowerEdge(b), negatives: h[b * 2], positives: h[b * 2 + 1])
        }
    }

    /// The figures so far.
    public func report() -> EvaluationReport {
        let classes = LesionClass.allCases.map { accumulators[$0.rawValue].evaluation($0, operatingThreshold) }
        func mean(_ f: (OfficialClassMetrics) -> Double?) -> Double {
            classes.map { f($0.official) ?? 0 }.reduce(0, +) / Double(classes.count)
        }
        func mean(_ f: (ClassEvaluation) -> Double?) -> Double? {
            let v = classes.compactMap(f)
            return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
        }
        return EvaluationReport(
            images: imageIDs.count,
            operatingThreshold: Double(operatingThreshold),
            officialName: OfficialM2MRF.metricName,
            officialDefinition: OfficialM2MRF.definition,
            official: OfficialMeans(
                mIoU: mean { $0.iou }, mF1: mean { $0.f1 }, mPPV: mean { $0.precision },
                mS: mean { $0.sensitivity }, mAUPR: mean { $0.aupr }),
            meanAveragePrecision: mean { $0.averagePrecision },
            meanPresenceAUC: mean { $0.presenceAUC },
            meanImageDice: mean { $0.meanImageDice },
            classes: classes)
    }
}

/// Pixels of one class at one score. The counts are exact for 8-bit planes (each value v/255 has its own bin); `score`
/// is the bin's lower edge, within 2⁻¹¹ (relative) of the scores it holds — round `score`·255 to recover v.
public struct ScoreCount: Codable, Sendable, Equatable {
    public var score: Float
    /// Pixels without the lesion in the truth.
    public var negatives: Int
    /// Pixels with it.
    public var positives: Int
}

/// Figures for one class.
public struct ClassEvaluation: Codable, Sendable, Equatable {
    public var lesionClass: LesionClass
    public var code: String
    public var truthPixels: Int
    public var images: Int
    public var imagesWithLesion: Int
    /// The reference's figures, under its name.
    public var official: OfficialClassMetrics
    /// Area under the precision–recall curve over all distinct scores (sklearn's average_precision_score);
    /// nil when the truth has no lesion pixel.
    public var averagePrecision: Double?
    /// At the operating threshold, dataset-level pixel counts (F1 equals the dataset-level Dice).
    public var sensitivity: Double?
    public var precision: Double?
    public var f1: Double?
    /// Mean of per-image Dice over the images where truth or prediction has the class.
    public var meanImageDice: Double?
    /// Does the image contain the lesion at all: ROC AUC of each image's largest score; nil unless some images
    /// have the lesion and some do not.
    public var presenceAUC: Double?
}

public struct EvaluationReport: Codable, Sendable, Equatable {
    public var images: Int
    public var operatingThreshold: Double
    public var officialName: String
    public var officialDefinition: String
    public var official: OfficialMeans
    /// Means over the classes where the figure is defined.
    public var meanAveragePrecision: Double?
    public var meanPresenceAUC: Double?
    public var meanImageDice: Double?
    public var classes: [ClassEvaluation]
    /// The optic disc's overlap with its truth, for a model with the disc channel on images with disc masks; never
    /// part of the lesion means above.
    public var disc: DiscOverlap?
    /// Per class code, `SegmentationEvaluation.scoreCounts`, when asked for (nil otherwise; it is not a figure).
    public var scoreCounts: [String: [ScoreCount]]?
}

/// Fine-histogram geometry: bin = float32 bit pattern >> 12; 1.0 (0x3F800000) is the last bin.
enum ScoreBins {
    static let shift: UInt32 = 12
    static let count = Int(Float(1).bitPattern >> shift) + 1

    /// The bin of a score in [0, 1]; nil for anything else (negative, above 1, NaN).
    @inline(__always)
    static func bin(_ s: Float) -> Int? {
        var b = s.bitPattern
        if b > 0x3F80_0000 {
            guard b == 0x8000_0000 else { return nil } // -0.0 is 0
            b = 0
        }
        return Int(b >> shift)
    }

    /// A score representative of a bin (its lower edge), for the presence AUC of byte planes.
    static func lowerEdge(_ bin: Int) -> Float { Float(bitPattern: UInt32(bin) << shift) }
}

/// One class of one image, counted.
struct ImageCounts {
    /// [bin·2 + truth]
    var histogram: [Int: Int] = [:]
    var denseHistogram: [Int]? // float planes fill this directly
    /// [rowsAbove·2 + truth], rowsAbove in 0…11
    var official = [Int](repeating: 0, count: 24)
    var operatingPredicted = 0
    var operatingTruePositives = 0
    var truthPixels = 0
    var maxScore: Float = 0

    init(scores: ScorePlane, truth: [UInt8]?, operatingThreshold: Float, imageID: String, lesionClass: LesionClass) throws {
        let n = scores.pixelCount
        switch scores.values {
        case .probabilities(let p):
            var dense = [Int](repeating: 0, count: ScoreBins.count * 2)
            var official = [Int](repeating: 0, count: 24)
            var opP = 0, opTP = 0, g = 0
            var maxScore: Float = 0
            var bad: Int?
            p.withUnsafeBufferPointer { p in
                dense.withUnsafeMutableBufferPointer { h in
                    official.withUnsafeMutableBufferPointer { o in
                        func count(_ truthAt: (Int) -> Int) {
                            for i in 0..<n {
                                let s = p[i]
                                guard let b = ScoreBins.bin(s) else { bad = i; return }
                                let t = truthAt(i)
                                h[b &* 2 &+ t] &+= 1
                                o[OfficialM2MRF.rowsAbove(s) &* 2 &+ t] &+= 1
                                if s > operatingThreshold { opP &+= 1; opTP &+= t }
                                g &+= t
                                if s > maxScore { maxScore = s }
                            }
                        }
                        if let truth {
                            truth.withUnsafeBufferPointer { tr in count { tr[$0] != 0 ? 1 : 0 } }
                        } else {
                            count { _ in 0 }
                        }
                    }
                }
            }
            if let bad {
                throw LesionsError("\(imageID): \(lesionClass.code) score \(p[bad]) at pixel (\(bad % scores.width), "
                    + "\(bad / scores.width)) is not a probability in [0, 1]")
            }
            denseHistogram = dense
            self.official = official
            operatingPredicted = opP; operatingTruePositives = opTP; truthPixels = g; self.maxScore = maxScore

        case .probabilityBytes(let v), .mask(let v):
            // 256 values × truth, then folded through per-value tables.
            var byValue = [Int](repeating: 0, count: 512)
            v.withUnsafeBufferPointer { v in
                byValue.withUnsafeMutableBufferPointer { h in
                    if let truth {
                        truth.withUnsafeBufferPointer { tr in
                            for i in 0..<n { h[Int(v[i]) &* 2 &+ (tr[i] != 0 ? 1 : 0)] &+= 1 }
                        }
                    } else {
                        for i in 0..<n { h[Int(v[i]) &* 2] &+= 1 }
                    }
                }
            }
            let isMask: Bool
            if case .mask = scores.values { isMask = true } else { isMask = false }
            for value in 0..<256 {
                let s: Float = isMask ? (value != 0 ? 1 : 0) : ScorePlane.score(byte: UInt8(value))
                let b = ScoreBins.bin(s)!
                let k = OfficialM2MRF.rowsAbove(s)
                for t in 0..<2 {
                    let c = byValue[value * 2 + t]
                    guard c > 0 else { continue }
                    histogram[b * 2 + t, default: 0] += c
                    official[k * 2 + t] += c
                    if s > operatingThreshold { operatingPredicted += c; operatingTruePositives += t * c }
                    truthPixels += t * c
                    if s > maxScore { maxScore = s }
                }
            }
        }
    }
}

/// Dataset-level counts of one class.
struct ClassAccumulator: Sendable {
    var histogram = [Int](repeating: 0, count: ScoreBins.count * 2) // [bin·2 + truth]
    var official = [Int](repeating: 0, count: 24)                    // [rowsAbove·2 + truth]
    var operatingPredicted = 0
    var operatingTruePositives = 0
    var truthPixels = 0
    var diceSum = 0.0
    var diceImages = 0
    var presence: [(score: Float, present: Bool)] = []

    mutating func add(_ c: ImageCounts) {
        if let d = c.denseHistogram {
            for i in 0..<d.count where d[i] != 0 { histogram[i] += d[i] }
        }
        for (i, v) in c.histogram { histogram[i] += v }
        for i in 0..<24 { official[i] += c.official[i] }
        operatingPredicted += c.operatingPredicted
        operatingTruePositives += c.operatingTruePositives
        truthPixels += c.truthPixels
        if c.operatingPredicted + c.truthPixels > 0 {
            diceSum += 2 * Double(c.operatingTruePositives) / Double(c.operatingPredicted + c.truthPixels)
            diceImages += 1
        }
        presence.append((c.maxScore, c.truthPixels > 0))
    }

    func evaluation(_ lesionClass: LesionClass, _ operatingThreshold: Float) -> ClassEvaluation {
        let g = truthPixels
        // Predicted at row i = pixels above at least i+1 thresholds.
        var rows: [OfficialThresholdRow] = []
        for i in 0..<11 {
            var p = 0, tp = 0
            for k in (i + 1)...11 { p += official[k * 2] + official[k * 2 + 1]; tp += official[k * 2 + 1] }
            rows.append(OfficialThresholdRow(
                threshold: OfficialM2MRF.thresholds[i], predicted: p, truePositives: tp, falseNegatives: g - tp,
                precision: p == 0 ? 1 : Double(tp) / Double(p),
                recall: g == 0 ? 0 : Double(tp) / Double(g)))
        }
        let r = rows[OfficialM2MRF.operatingIndex]
        let (p, tp, fn) = (Double(r.predicted), Double(r.truePositives), Double(r.falseNegatives))
        func ratio(_ a: Double, _ b: Double) -> Double? { b == 0 ? nil : a / b }
        // Recall never increases with the threshold, so sklearn's auc always has a direction here.
        let aupr = OfficialM2MRF.auc(x: rows.map(\.recall), y: rows.map(\.precision)) ?? .nan
        let official = OfficialClassMetrics(
            iou: ratio(tp, p + fn), f1: ratio(2 * tp, p + tp + fn), precision: ratio(tp, p),
            sensitivity: ratio(tp, tp + fn), aupr: aupr, curve: rows)

        let opP = Double(operatingPredicted), opTP = Double(operatingTruePositives)
        return ClassEvaluation(
            lesionClass: lesionClass, code: lesionClass.code, truthPixels: g, images: presence.count,
            imagesWithLesion: presence.filter(\.present).count, official: official,
            averagePrecision: averagePrecision(),
            sensitivity: ratio(opTP, Double(g)), precision: ratio(opTP, opP), f1: ratio(2 * opTP, opP + Double(g)),
            meanImageDice: diceImages == 0 ? nil : diceSum / Double(diceImages),
            presenceAUC: presenceAUC())
    }

    /// Σ (Rₙ − Rₙ₋₁)·Pₙ over the distinct scores from the highest down, a pixel predicted when score ≥ the bin.
    func averagePrecision() -> Double? {
        guard truthPixels > 0 else { return nil }
        var tp = 0, all = 0
        var ap = 0.0, previousRecall = 0.0
        for b in stride(from: ScoreBins.count - 1, through: 0, by: -1) {
            let pos = histogram[b * 2 + 1], neg = histogram[b * 2]
            if pos == 0 && neg == 0 { continue }
            tp += pos; all += pos + neg
            let recall = Double(tp) / Double(truthPixels)
            ap += (recall - previousRecall) * Double(tp) / Double(all)
            previousRecall = recall
        }
        return ap
    }

    /// Mann–Whitney ROC AUC with ties counted half.
    func presenceAUC() -> Double? {
        let pos = presence.filter(\.present).map(\.score), neg = presence.filter { !$0.present }.map(\.score)
        guard !pos.isEmpty && !neg.isEmpty else { return nil }
        var wins = 0.0
        for a in pos { for b in neg { wins += a > b ? 1 : (a == b ? 0.5 : 0) } }
        return wins / Double(pos.count * neg.count)
    }
}

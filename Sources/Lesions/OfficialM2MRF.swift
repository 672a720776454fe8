/// The evaluation of the official M2MRF code (`my_metrics.sigmoid_metrics` → `LesionDataset._evaluate`),
/// reproduced exactly; see m2mrf-reference.md §5. Papers compare on these figures, so they are reported under
/// this name and never mixed with our other metrics.
public enum OfficialM2MRF {
    public static let metricName = "M2MRF official"
    public static let definition =
        "dataset-level pixel counts; pred = prob > t; IoU/F1/PPV/S at t = 0.5; AUPR = trapezoid over the 11 "
        + "(recall, precision) points at t = 0, 0.1, …, 1 with precision 1 where nothing is predicted; "
        + "means over EX, HE, SE, MA with NaN as 0"

    /// `np.linspace(0, 1, 11)`: i·0.1 in float64 (so 0.30000000000000004), the last one exactly 1.
    public static let thresholds: [Double] = (0...10).map { $0 == 10 ? 1.0 : Double($0) * 0.1 }

    /// The thresholds as the comparison sees them. The reference compares a float32 probability array with a
    /// float64 numpy scalar under numpy < 1.24, whose value-based casting compares in float32: a probability of
    /// exactly Float(0.2) (an 8-bit 51) is not above 0.2.
    public static let comparisonThresholds: [Float] = thresholds.map { Float($0) }

    /// Row of t = 0.5 (`np.argmax(threshs == 0.5)`).
    public static let operatingIndex = 5

    /// Number of thresholds a score is strictly above (0…11): the score counts as predicted at rows 0..<k.
    @inline(__always)
    static func rowsAbove(_ s: Float) -> Int {
        let t = comparisonThresholds
        var k = s > 0 ? min(Int(s * 10), 10) : 0
        while k < 11 && s > t[k] { k += 1 }
        while k > 0 && !(s > t[k - 1]) { k -= 1 }
        return k
    }

    /// `sklearn.metrics.auc(x, y)`: the trapezoid rule in the given order, negated when x decreases.
    /// nil when x is neither non-decreasing nor non-increasing (sklearn raises).
    public static func auc(x: [Double], y: [Double]) -> Double? {
        precondition(x.count == y.count && x.count >= 2)
        let dx = (1..<x.count).map { x[$0] - x[$0 - 1] }
        var direction = 1.0
        if dx.contains(where: { $0 < 0 }) {
            guard dx.allSatisfy({ $0 <= 0 }) else { return nil }
            direction = -1
        }
        // np.trapz: sum(dx * (y[1:] + y[:-1]) / 2.0), summed the way numpy's add.reduce does.
        let terms = (0..<dx.count).map { dx[$0] * (y[$0 + 1] + y[$0]) / 2.0 }
        return direction * pairwiseSum(terms[...])
    }

    /// numpy's pairwise summation of float64 (8 accumulators per block of up to 128, halves above that), so the
    /// AUPR agrees with the reference to the last bit.
    static func pairwiseSum(_ a: ArraySlice<Double>) -> Double {
        let n = a.count, b = a.startIndex
        if n < 8 {
            var s = -0.0
            for v in a { s += v }
            return s
        } else if n <= 128 {
            var r = (0..<8).map { a[b + $0] }
            var i = 8
            while i < n - (n % 8) {
                for j in 0..<8 { r[j] += a[b + i + j] }
                i += 8
            }
            var res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
            while i < n { res += a[b + i]; i += 1 }
            return res
        } else {
            var n2 = n / 2
            n2 -= n2 % 8
            return pairwiseSum(a[b..<(b + n2)]) + pairwiseSum(a[(b + n2)...])
        }
    }

    /// A pixel marked for several classes counts only for the highest label index in the reference's merged
    /// label map (MA > SE > HE > EX): gt_c = (label == c). Applies that to per-class truth masks (nil = absent).
    public static func overwrittenTruth(_ masks: [LesionClass: [UInt8]]) throws -> [LesionClass: [UInt8]] {
        let counts = Set(masks.values.map(\.count))
        guard counts.count <= 1 else {
            throw LesionsError("truth masks of one image differ in size: \(counts.sorted()) pixels")
        }
        var result = masks
        for c in LesionClass.allCases {
            guard var m = masks[c] else { continue }
            for higher in LesionClass.allCases where higher > c {
                guard let h = masks[higher] else { continue }
                for i in 0..<m.count where h[i] != 0 { m[i] = 0 }
            }
            result[c] = m
        }
        return result
    }
}

/// One threshold row of the official curve for one class (dataset-level pixel counts).
public struct OfficialThresholdRow: Codable, Sendable, Equatable {
    public var threshold: Double
    public var predicted: Int
    public var truePositives: Int
    public var falseNegatives: Int
    /// TP/P with NaN → 1, TP/(TP+FN) with NaN → 0: the AUPR's point.
    public var precision: Double
    public var recall: Double
}

/// The official figures of one class. nil where the reference's value is NaN (it shows "nan" and counts 0 in
/// the means).
public struct OfficialClassMetrics: Codable, Sendable, Equatable {
    public var iou: Double?
    public var f1: Double?
    public var precision: Double?
    public var sensitivity: Double?
    public var aupr: Double
    public var curve: [OfficialThresholdRow]
}

/// The official means over the four lesion classes, NaN counted as 0 (`nanmean(nan_to_num(x, nan=0))`).
public struct OfficialMeans: Codable, Sendable, Equatable {
    public var mIoU: Double
    public var mF1: Double
    public var mPPV: Double
    public var mS: Double
    public var mAUPR: Double
}

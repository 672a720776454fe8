import Foundation
import Lesions

/// One connected lesion: bounding box (pixels of the original image; left, top, width, height), area in pixels,
/// centroid, and the network's mean and highest probability over it (0…1).
public struct LesionRecord: Sendable, Equatable {
    public var x: Int, y: Int, width: Int, height: Int
    public var areaPixels: Int64
    public var centroidX: Double, centroidY: Double
    public var meanProbability: Double, maxProbability: Double

    public init(x: Int, y: Int, width: Int, height: Int, areaPixels: Int64, centroidX: Double, centroidY: Double,
                meanProbability: Double, maxProbability: Double) {
        self.x = x; self.y = y; self.width = width; self.height = height
        self.areaPixels = areaPixels
        self.centroidX = centroidX; self.centroidY = centroidY
        self.meanProbability = meanProbability; self.maxProbability = maxProbability
    }
}

/// What one lesion class shows on one image.
public struct Finding: Sendable, Equatable {
    /// "EX", "HE", "SE" or "MA".
    /// Lesions' class; stored as its code (EX, HE, SE, MA).
    public var lesionClass: LesionClass
    public var lesionCount: Int
    public var areaPixels: Int64
    /// Lesion area over field-of-view area, 0…1.
    public var fieldOfViewShare: Double
    /// Area in mm² when the image's pixel spacing is known.
    public var areaMM2: Double?
    public var largestLesionPixels: Int64
    public var maskPath: String?
    public var probabilityMapPath: String?
    public var lesions: [LesionRecord]

    public init(lesionClass: LesionClass, lesionCount: Int, areaPixels: Int64, fieldOfViewShare: Double, areaMM2: Double? = nil,
                largestLesionPixels: Int64, maskPath: String? = nil, probabilityMapPath: String? = nil,
                lesions: [LesionRecord] = []) {
        self.lesionClass = lesionClass
        self.lesionCount = lesionCount
        self.areaPixels = areaPixels
        self.fieldOfViewShare = fieldOfViewShare
        self.areaMM2 = areaMM2
        self.largestLesionPixels = largestLesionPixels
        self.maskPath = maskPath
        self.probabilityMapPath = probabilityMapPath
        self.lesions = lesions
    }
}

/// The optic disc on one image, from a model with the disc channel (sql/0006): found or not, where (pixels of the
/// photograph) and how large. Not a lesion: it is never among the findings.
public struct OpticDiscRecord: Sendable, Equatable {
    public var found: Bool
    public var centreX: Double?
    public var centreY: Double?
    /// Equivalent-circle diameter of the largest disc component, pixels.
    public var diameterPixels: Double?
    public var areaPixels: Int64?
    /// The findings' mm² areas are estimates from this disc's diameter taken as `assumedDiameterMM` (the image had
    /// no pixel spacing), not measurements.
    public var areaMM2FromDisc: Bool
    public var assumedDiameterMM: Double?

    public init(found: Bool, centreX: Double? = nil, centreY: Double? = nil, diameterPixels: Double? = nil,
                areaPixels: Int64? = nil, areaMM2FromDisc: Bool = false, assumedDiameterMM: Double? = nil) {
        self.found = found
        self.centreX = centreX
        self.centreY = centreY
        self.diameterPixels = diameterPixels
        self.areaPixels = areaPixels
        self.areaMM2FromDisc = areaMM2FromDisc
        self.assumedDiameterMM = assumedDiameterMM
    }
}

/// Everything one model version found on one image.
public struct ScreeningResult: Sendable, Equatable {
    public var imageID: Int64
    public var modelVersionID: Int64
    public var screeningRunID: Int64?
    /// Lesions' gradability, stored as `gradable` and `ungradable_reasons`.
    public var gradability: Gradability
    /// Lesions' verdict and the rule that gave it, only for gradable images (stored as `flag`, sql/0008, with
    /// `flagged` beside it for the review queries, and `flag_rule`, `flag_rule_version`).
    public var flag: ScreeningFlag?
    public var rule: ScreeningRule?
    /// One per lesion class, for gradable images; none for ungradable ones.
    public var findings: [Finding]
    /// The optic disc, for a gradable image screened by a model with the disc channel.
    public var disc: OpticDiscRecord?

    public init(imageID: Int64, modelVersionID: Int64, screeningRunID: Int64? = nil, gradability: Gradability,
                flag: ScreeningFlag?, rule: ScreeningRule?, findings: [Finding], disc: OpticDiscRecord? = nil) {
        self.disc = disc
        self.imageID = imageID
        self.modelVersionID = modelVersionID
        self.screeningRunID = screeningRunID
        self.gradability = gradability
        self.flag = flag
        self.rule = rule
        self.findings = findings
    }

    /// Checks what the schema would reject, with a message naming the image.
    public func validate() throws {
        func bad(_ text: String) -> DatabaseError {
            DatabaseError(.invalidInput, "screening result for image \(imageID), model version \(modelVersionID): \(text)")
        }
        var seen = Set<LesionClass>()
        for finding in findings {
            guard seen.insert(finding.lesionClass).inserted else { throw bad("lesion class \(finding.lesionClass) given twice") }
            guard finding.lesionCount >= 0, finding.areaPixels >= 0, (0...1).contains(finding.fieldOfViewShare) else {
                throw bad("\(finding.lesionClass): negative count or area, or field-of-view share outside 0…1")
            }
            guard (finding.lesionCount == 0) == (finding.areaPixels == 0), finding.largestLesionPixels <= finding.areaPixels else {
                throw bad("\(finding.lesionClass): count \(finding.lesionCount), area \(finding.areaPixels) px and largest lesion \(finding.largestLesionPixels) px disagree")
            }
        }
        if let d = disc {
            if d.found != (d.centreX != nil && d.centreY != nil && d.diameterPixels != nil && d.areaPixels != nil) {
                throw bad("the optic disc is \(d.found ? "found without" : "not found but has") a centre, diameter and area")
            }
            if (d.diameterPixels ?? 1) <= 0 || (d.areaPixels ?? 1) <= 0 { throw bad("the optic disc needs a positive diameter and area") }
            if d.areaMM2FromDisc && (!d.found || d.assumedDiameterMM == nil) {
                throw bad("areas estimated from the optic disc need a found disc and its assumed diameter")
            }
            if case .ungradable = gradability { throw bad("an ungradable image cannot carry an optic disc") }
        }
        switch gradability {
        case .gradable:
            if flag == nil || rule == nil { throw bad("a gradable image needs a screening flag and the rule that gave it") }
            if flag == .ungradable { throw bad("a gradable image cannot be flagged ungradable") }
        case .ungradable(let reasons):
            if reasons.isEmpty { throw bad("an ungradable image needs a reason") }
            if flag != nil || rule != nil { throw bad("an ungradable image cannot carry a screening flag or rule") }
        }
    }
}

/// Stores and reads screening results (see FindingsSQL).
public struct ScreeningResults {
    let connection: Connection

    public init(connection: Connection) { self.connection = connection }

    /// Replaces the result for (image, model version): delete and insert in one transaction (the caller's, when
    /// it has one: job completion does).
    public func write(_ result: ScreeningResult, jobID: Int64? = nil) throws {
        try result.validate()
        try connection.transaction { conn in
            try conn.query(FindingsSQL.resultDelete, [result.imageID, result.modelVersionID])
            let inserted = try conn.query(FindingsSQL.resultInsert, [
                result.imageID, result.modelVersionID, result.screeningRunID, jobID, result.gradability.isGradable,
                result.gradability.reasons, result.flag?.rawValue, result.flag.map { $0 == .suspectedMoreThanMildDR },
                result.rule?.name, result.rule.map { String($0.version) },
            ])
            let resultID: Int64 = try inserted.rows[0].decode("id")
            if let d = result.disc {
                try conn.query(FindingsSQL.opticDiscInsert, [resultID, d.found, d.centreX, d.centreY, d.diameterPixels, d.areaPixels,
                                                        d.areaMM2FromDisc, d.assumedDiameterMM])
            }
            guard !result.findings.isEmpty else { return }
            let f = result.findings
            try conn.query(FindingsSQL.findingInsertMany, [
                resultID, f.map(\.lesionClass.code), f.map(\.lesionCount), f.map(\.areaPixels), f.map(\.fieldOfViewShare),
                f.map(\.areaMM2), f.map(\.largestLesionPixels), f.map(\.maskPath), f.map(\.probabilityMapPath),
            ])
            var classes: [String] = [], index: [Int] = [], xs: [Int] = [], ys: [Int] = [], ws: [Int] = [], hs: [Int] = []
            var areas: [Int64] = [], cx: [Double] = [], cy: [Double] = [], mean: [Double] = [], peak: [Double] = []
            for finding in f {
                for (i, lesion) in finding.lesions.enumerated() {
                    classes.append(finding.lesionClass.code); index.append(i)
                    xs.append(lesion.x); ys.append(lesion.y); ws.append(lesion.width); hs.append(lesion.height)
                    areas.append(lesion.areaPixels); cx.append(lesion.centroidX); cy.append(lesion.centroidY)
                    mean.append(lesion.meanProbability); peak.append(lesion.maxProbability)
                }
            }
            if !classes.isEmpty {
                try conn.query(FindingsSQL.lesionInsertMany, [resultID, classes, index, xs, ys, ws, hs, areas, cx, cy, mean, peak])
            }
        }
    }

    /// The stored result for (image, model version), nil when there is none.
    public func fetch(imageID: Int64, modelVersionID: Int64) throws -> ScreeningResult? {
        let head = try connection.query(FindingsSQL.resultGet, [imageID, modelVersionID])
        guard let row = head.rows.first else { return nil }
        let resultID: Int64 = try row.decode("id")
        let verdict = try StoredVerdict(row)
        let lesionRows = try connection.query(FindingsSQL.lesionList, [resultID]).rows
        var lesions: [String: [LesionRecord]] = [:]
        for l in lesionRows {
            lesions[try l.decode("lesion_class"), default: []].append(LesionRecord(
                x: try l.decode("bbox_x"), y: try l.decode("bbox_y"), width: try l.decode("bbox_width"),
                height: try l.decode("bbox_height"), areaPixels: try l.decode("area_px"),
                centroidX: try l.decode("centroid_x"), centroidY: try l.decode("centroid_y"),
                meanProbability: try l.decode("mean_probability"), maxProbability: try l.decode("max_probability")))
        }
        // A class this version does not know (a newer writer's) is left out.
        let findings = try connection.query(FindingsSQL.findingList, [resultID]).rows.compactMap { f -> Finding? in
            let code: String = try f.decode("lesion_class")
            guard let cls = LesionClass(code: code) else { return nil }
            return Finding(lesionClass: cls, lesionCount: try f.decode("lesion_count"), areaPixels: try f.decode("area_px"),
                           fieldOfViewShare: try f.decode("fov_share"), areaMM2: try f.decodeIfPresent("area_mm2"),
                           largestLesionPixels: try f.decode("largest_lesion_px"), maskPath: try f.decodeIfPresent("mask_path"),
                           probabilityMapPath: try f.decodeIfPresent("probability_path"), lesions: lesions[code] ?? [])
        }
        let disc = try connection.query(FindingsSQL.opticDiscGet, [resultID]).rows.first.map(OpticDiscRecord.decode)
        return ScreeningResult(imageID: imageID, modelVersionID: modelVersionID,
                               screeningRunID: try row.decodeIfPresent("screening_run_id"),
                               gradability: verdict.gradability, flag: verdict.flag, rule: verdict.rule,
                               findings: findings, disc: disc)
    }
}

extension OpticDiscRecord {
    /// A row of `optic_discs` (sql/0006).
    static func decode(_ d: Row) throws -> OpticDiscRecord {
        OpticDiscRecord(found: try d.decode("found"), centreX: try d.decodeIfPresent("centre_x"),
                        centreY: try d.decodeIfPresent("centre_y"), diameterPixels: try d.decodeIfPresent("diameter_px"),
                        areaPixels: try d.decodeIfPresent("area_px"), areaMM2FromDisc: try d.decode("area_mm2_from_disc"),
                        assumedDiameterMM: try d.decodeIfPresent("assumed_diameter_mm"))
    }
}

/// Lesions' gradability, verdict and rule as one `screening_results` row stores them (sql/0003, sql/0008): the
/// verdict as its raw value in `flag`, the rule as `flag_rule` and its version as text in `flag_rule_version`.
struct StoredVerdict {
    var gradability: Gradability
    var flag: ScreeningFlag?
    var rule: ScreeningRule?

    init(_ row: Row) throws {
        let reasons = try row.decodeArray("ungradable_reasons").compactMap { $0 }
        gradability = Gradability(gradable: try row.decode("gradable"), reasons: reasons)
        guard let code: String = try row.decodeIfPresent("flag") else { return }
        guard let verdict = ScreeningFlag(rawValue: code) else {
            throw DatabaseError(.decoding, "screening result: unknown screening flag \"\(code)\"")
        }
        let version: String = try row.decode("flag_rule_version")
        guard let number = Int(version) else {
            throw DatabaseError(.decoding, "screening result: rule version \"\(version)\" is not a whole number")
        }
        flag = verdict
        rule = ScreeningRule(name: try row.decode("flag_rule"), version: number)
    }
}

import Foundation
import Lesions

// The report's own input model: plain values, so pages can be rendered from a JSON export, from Store's findings
// queries, or straight from the pipeline, without the renderer knowing where they came from.

/// One screened photograph of one eye.
public struct EyeReport: Codable, Sendable, Equatable {
    public var laterality: Laterality
    public var imageID: String
    /// Path of the original photograph (JPEG/PNG/TIFF).
    public var photograph: String
    /// Path of the lesion overlay image (PNG), absent for ungradable images or before overlays are written.
    public var overlay: String?
    /// Lesions' gradability; its JSON is `{"gradable": …, "reasons": […]}`.
    public var gradability: Gradability
    /// One entry per class the model looked for; classes missing here are shown as "not measured".
    public var findings: [ClassTotals]
    public var flag: Flag
    /// The model version's name as registered (e.g. "m2mrf-hrnetv2-idrid-2026-11-01").
    public var modelVersion: String
    public var screenedAt: Date
    /// The screening run that produced these findings, when known (for `--run` and the exports).
    public var screeningRun: String?
    /// How that run read the photograph, e.g. "8 passes (dihedral TTA: …), whole image, MA also at 1.5×, the mean of
    /// 2 models" (`Format.inference`); nil when not recorded.
    public var inference: String?
    /// The optic disc, when the model has the disc channel (issue #16); nil otherwise.
    public var opticDisc: OpticDisc?

    public init(
        laterality: Laterality, imageID: String, photograph: String, overlay: String? = nil,
        gradability: Gradability, findings: [ClassTotals], flag: Flag, modelVersion: String,
        screenedAt: Date, screeningRun: String? = nil, inference: String? = nil, opticDisc: OpticDisc? = nil
    ) {
        self.opticDisc = opticDisc
        self.laterality = laterality
        self.imageID = imageID
        self.photograph = photograph
        self.overlay = overlay
        self.gradability = gradability
        self.findings = findings
        self.flag = flag
        self.modelVersion = modelVersion
        self.screenedAt = screenedAt
        self.screeningRun = screeningRun
        self.inference = inference
    }

    /// The flag's reason, or when the source gave none (Store keeps only the rule), what the findings show:
    /// "15 haemorrhages, 1 soft exudate beyond microaneurysms", "microaneurysms only (18)", "no lesions found".
    public var flagReason: String {
        if !flag.reason.isEmpty { return flag.reason }
        guard gradability.isGradable else { return "not evaluated: ungradable" }
        guard !findings.isEmpty else { return "no findings recorded" }
        func counted(_ f: ClassTotals) -> String {
            let name = f.lesionClass.name
            return "\(Format.grouped(f.count)) \(f.count == 1 ? String(name.dropLast()) : name)"
        }
        let ordered = findingsInClassOrder
        let beyond = ordered.filter { $0.lesionClass != .microaneurysm && $0.count > 0 }
        if !beyond.isEmpty { return beyond.map(counted).joined(separator: ", ") + " beyond microaneurysms" }
        if let ma = ordered.first(where: { $0.lesionClass == .microaneurysm }), ma.count > 0 {
            return "microaneurysms only (\(Format.grouped(ma.count)))"
        }
        return "no lesions found"
    }

    /// Findings in the official class order (EX, HE, SE, MA), whatever order they arrived in.
    public var findingsInClassOrder: [ClassTotals] { findings.sorted { $0.lesionClass < $1.lesionClass } }
}

extension EyeReport {
    /// Where the optic disc is in the photograph (pixels) and how large; whether the mm² areas are estimates from it.
    public struct OpticDisc: Codable, Sendable, Equatable {
        public var found: Bool
        public var centreX: Double?
        public var centreY: Double?
        public var diameterPixels: Double?
        /// The findings' mm² areas were estimated from the disc diameter taken as `assumedDiameterMM`.
        public var areasEstimatedFromDisc: Bool
        public var assumedDiameterMM: Double?

        public init(found: Bool, centreX: Double? = nil, centreY: Double? = nil, diameterPixels: Double? = nil,
                    areasEstimatedFromDisc: Bool = false, assumedDiameterMM: Double? = nil) {
            self.found = found
            self.centreX = centreX
            self.centreY = centreY
            self.diameterPixels = diameterPixels
            self.areasEstimatedFromDisc = areasEstimatedFromDisc
            self.assumedDiameterMM = assumedDiameterMM
        }

        /// "optic disc at (812, 604), 270 px across" / "optic disc not found", and the estimate's provenance.
        public var summary: String {
            guard found, let x = centreX, let y = centreY, let d = diameterPixels else { return "optic disc not found" }
            var text = "optic disc at (\(Int(x.rounded())), \(Int(y.rounded()))), \(Int(d.rounded())) px across"
            if areasEstimatedFromDisc {
                text += "; areas in mm² are estimates from the optic disc diameter taken as \(String(format: "%.1f", assumedDiameterMM ?? 1.8)) mm (no pixel spacing known)"
            }
            return text
        }
    }
}

// The pieces of an eye's report that are a page's own are nested in `EyeReport`: how a page shows them (an eye not
// recorded, words for a grader, one table row per class), made from Lesions' and Store's vocabulary at the source
// (`EyeReport.Laterality(_:)`), never parsed again. Gradability is Lesions' own.
extension EyeReport {
    /// Which eye a photograph shows, written R/L as in DICOM Image Laterality. Anything else is `unknown`.
    public enum Laterality: String, Codable, Sendable, CaseIterable {
        case right = "R"
        case left = "L"
        case unknown = ""

        public init(from decoder: any Decoder) throws {
            let text = try decoder.singleValueContainer().decode(String.self)
            self = Laterality(code: text)
        }

        /// Accepts what Lesions' `Laterality(parsing:)` accepts (R/L, right/left, OD/OS, any case); everything else is
        /// `unknown`, never an error.
        public init(code: String) {
            self.init(Lesions.Laterality(parsing: code))
        }

        /// The archive's eye, or `unknown` when it was not recorded.
        public init(_ eye: Lesions.Laterality?) {
            switch eye {
            case .right: self = .right
            case .left: self = .left
            case nil: self = .unknown
            }
        }

        public var words: String {
            switch self {
            case .right: "Right eye"
            case .left: "Left eye"
            case .unknown: "Eye not recorded"
            }
        }

        /// Right eye first, as a grader reads a chart facing the patient.
        var order: Int {
            switch self {
            case .right: 0
            case .left: 1
            case .unknown: 2
            }
        }
    }

    /// One row of a page's findings table and of the JSON a report reads: the totals of one lesion class on one
    /// image (count, area, share of the field of view, largest lesion) and its mask. Not Lesions' `ClassFindings`
    /// (every lesion, the specks dropped) nor Store's `Finding` (with the per-lesion rows): what a page shows of them.
    public struct ClassTotals: Codable, Sendable, Equatable {
        public var lesionClass: LesionClass
        /// Connected components (lesions).
        public var count: Int
        /// Total lesion area, pixels of the original photograph.
        public var areaPixels: Int
        /// Lesion area / field-of-view area, a fraction in 0…1.
        public var fieldOfViewShare: Double
        /// Area in mm² on the retina, when the pixel spacing is known.
        public var areaMM2: Double?
        /// Area of the largest lesion, pixels.
        public var largestPixels: Int
        /// The class's binary mask (PNG, photograph geometry), when one was written: overlays are drawn from it.
        public var maskPath: String?

        public init(
            lesionClass: LesionClass, count: Int, areaPixels: Int, fieldOfViewShare: Double, areaMM2: Double? = nil,
            largestPixels: Int, maskPath: String? = nil
        ) {
            self.lesionClass = lesionClass
            self.count = count
            self.areaPixels = areaPixels
            self.fieldOfViewShare = fieldOfViewShare
            self.areaMM2 = areaMM2
            self.largestPixels = largestPixels
            self.maskPath = maskPath
        }

        enum CodingKeys: String, CodingKey {
            case lesionClass = "class", count, areaPixels, fieldOfViewShare, areaMM2, largestPixels, maskPath
        }

        // The class travels as its IDRiD code ("EX"), which people and FHIR mappers read, not as an index.
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let code = try c.decode(String.self, forKey: .lesionClass)
            guard let lesionClass = LesionClass(code: code) else {
                throw DecodingError.dataCorruptedError(
                    forKey: .lesionClass, in: c, debugDescription: "unknown lesion class \"\(code)\"; expected EX, HE, SE or MA")
            }
            self.lesionClass = lesionClass
            count = try c.decode(Int.self, forKey: .count)
            areaPixels = try c.decode(Int.self, forKey: .areaPixels)
            fieldOfViewShare = try c.decode(Double.self, forKey: .fieldOfViewShare)
            areaMM2 = try c.decodeIfPresent(Double.self, forKey: .areaMM2)
            largestPixels = try c.decodeIfPresent(Int.self, forKey: .largestPixels) ?? 0
            maskPath = try c.decodeIfPresent(String.self, forKey: .maskPath)
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(lesionClass.code, forKey: .lesionClass)
            try c.encode(count, forKey: .count)
            try c.encode(areaPixels, forKey: .areaPixels)
            try c.encode(fieldOfViewShare, forKey: .fieldOfViewShare)
            try c.encodeIfPresent(areaMM2, forKey: .areaMM2)
            try c.encode(largestPixels, forKey: .largestPixels)
            try c.encodeIfPresent(maskPath, forKey: .maskPath)
        }
    }

    /// The screening flag of one image and the rule that raised (or did not raise) it.
    /// The flag means "suspected more-than-mild DR, for a grader to review"; it is never a DR grade.
    public struct Flag: Codable, Sendable, Equatable {
        public var raised: Bool
        /// Rule name and version, e.g. "more-than-mild" / "1".
        public var rule: String
        public var ruleVersion: String
        /// What the rule saw, e.g. "3 haemorrhages, 12 hard exudates beyond microaneurysms".
        public var reason: String

        public init(raised: Bool, rule: String, ruleVersion: String, reason: String) {
            self.raised = raised
            self.rule = rule
            self.ruleVersion = ruleVersion
            self.reason = reason
        }

        /// "lesion-presence-v1", "more-than-mild v2": the version is added unless the name already ends in it.
        public var ruleLabel: String {
            guard !ruleVersion.isEmpty, !rule.hasSuffix("-v\(ruleVersion)"), !rule.hasSuffix(" v\(ruleVersion)") else { return rule }
            return rule.isEmpty ? "" : "\(rule) v\(ruleVersion)"
        }

        public static func notEvaluated(_ reason: String) -> Flag {
            Flag(raised: false, rule: "", ruleVersion: "", reason: reason)
        }
    }
}

/// Everything one patient's page shows.
public struct PatientReport: Codable, Sendable, Equatable {
    public var patientID: String
    public var eyes: [EyeReport]

    public init(patientID: String, eyes: [EyeReport]) {
        self.patientID = patientID
        self.eyes = eyes
    }

    /// Right eye first, then left, then unknown; the input order within each.
    public var eyesInReadingOrder: [EyeReport] {
        eyes.enumerated().sorted { ($0.element.laterality.order, $0.offset) < ($1.element.laterality.order, $1.offset) }
            .map(\.element)
    }

    /// The worse eye decides: flagged if any image raised the flag.
    public var outcome: PatientOutcome {
        if eyes.contains(where: { $0.flag.raised }) { return .flagged }
        if eyes.isEmpty || eyes.contains(where: { !$0.gradability.isGradable }) { return .incomplete }
        return .notFlagged
    }

    /// The most recent screening date of this patient's images.
    public var lastScreened: Date? { eyes.map(\.screenedAt).max() }
}

/// The patient-level result, in the order the index page lists patients (flagged first).
public enum PatientOutcome: Int, Sendable, Comparable, CaseIterable {
    /// At least one image raised the screening flag: a grader should review.
    case flagged = 0
    /// No flag, but an image was ungradable (or none was screened): re-image or grade by hand.
    case incomplete = 1
    /// Every image was gradable and none raised the flag.
    case notFlagged = 2

    public static func < (a: PatientOutcome, b: PatientOutcome) -> Bool { a.rawValue < b.rawValue }

    public var words: String {
        switch self {
        case .flagged: "Flagged for grader review"
        case .incomplete: "Screening incomplete"
        case .notFlagged: "No flag raised"
        }
    }

    /// Class name used in the pages' CSS.
    var cssClass: String {
        switch self {
        case .flagged: "flagged"
        case .incomplete: "incomplete"
        case .notFlagged: "clear"
        }
    }
}

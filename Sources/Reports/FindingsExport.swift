import Foundation
import Lesions

/// One row of the findings export: one image × one lesion class (an ungradable image gets one row with empty class
/// columns, so that every screened image appears). The same columns go to CSV and JSON.
///
/// FHIR mapping, row by row:
/// - one `DiagnosticReport` per (`patient_id`, `image_id`): `subject` ← Patient `patient_id`, `effectiveDateTime` ←
///   `screened_at`, `conclusion` ← `flag_reason`, `conclusionCode` ← `flag_raised`, the device/method ←
///   `model_version` and `flag_rule`/`flag_rule_version`; `result` → the Observations below; `imagingStudy`/media ←
///   `image_id`/`image_path`. Ungradable images: a DiagnosticReport whose conclusion is `ungradable_reasons`.
/// - one `Observation` per row with a class: `code` ← `class_code` (display `class_name`), `bodySite` ← `eye`
///   (R/L), `valueQuantity` ← `lesion_count`, `component`s ← `area_px` (pixels), `fov_share` (fraction 0–1),
///   `area_mm2` (mm², empty when the pixel spacing is unknown), `largest_px`; `effectiveDateTime` ← `screened_at`;
///   `derivedFrom`/media ← `mask_path`. `area_mm2_basis` says where the mm² come from ("pixel spacing", or
///   "optic disc estimate" when no spacing was known and the disc diameter was taken as 1.8 mm); `optic_disc` is the
///   disc found by a model with the disc channel (centre and diameter in pixels), empty for other models.
public struct FindingsRow: Codable, Sendable, Equatable {
    public var patientID: String
    public var eye: String
    public var imageID: String
    public var imagePath: String
    public var screeningRun: String
    public var gradable: Bool
    public var ungradableReasons: String
    public var classCode: String
    public var className: String
    public var lesionCount: Int?
    public var areaPx: Int?
    /// Fraction 0…1 of the field of view.
    public var fovShare: Double?
    public var areaMM2: Double?
    public var largestPx: Int?
    /// The class's mask file, when one was written (a FHIR mapper can link it as derived media).
    public var maskPath: String
    public var flagRaised: Bool
    public var flagRule: String
    public var flagRuleVersion: String
    public var flagReason: String
    public var modelVersion: String
    /// ISO 8601 UTC.
    public var screenedAt: String
    /// "pixel spacing", "optic disc estimate (1.8 mm disc)", or empty when there are no mm².
    public var areaMM2Basis: String = ""
    /// The optic disc as the model found it ("optic disc at (x, y), d px across" / "optic disc not found"); empty for
    /// models without the disc channel.
    public var opticDisc: String = ""
    /// How the screening run read the photograph ("1 pass (no TTA), whole image, …, the mean of 2 models'
    /// probabilities", `Format.inference` of the run's stored settings); empty when the run recorded none.
    public var inference: String = ""

    /// Column names, in order; the CSV header and the JSON keys.
    public static let columns = [
        "patient_id", "eye", "image_id", "image_path", "screening_run", "gradable", "ungradable_reasons", "class_code",
        "class_name", "lesion_count", "area_px", "fov_share", "area_mm2", "largest_px", "mask_path", "flag_raised", "flag_rule",
        "flag_rule_version", "flag_reason", "model_version", "screened_at", "area_mm2_basis", "optic_disc",
        "inference",
    ]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case patientID = "patient_id", eye, imageID = "image_id", imagePath = "image_path",
            screeningRun = "screening_run", gradable, ungradableReasons = "ungradable_reasons", classCode = "class_code",
            className = "class_name", lesionCount = "lesion_count", areaPx = "area_px", fovShare = "fov_share",
            areaMM2 = "area_mm2", largestPx = "largest_px", maskPath = "mask_path", flagRaised = "flag_raised", flagRule = "flag_rule",
            flagRuleVersion = "flag_rule_version", flagReason = "flag_reason", modelVersion = "model_version",
            screenedAt = "screened_at", areaMM2Basis = "area_mm2_basis", opticDisc = "optic_disc", inference
    }

    // Absent numbers are written as null, so every JSON row has every key (pandas, jq and FHIR mappers like that).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(patientID, forKey: .patientID)
        try c.encode(eye, forKey: .eye)
        try c.encode(imageID, forKey: .imageID)
        try c.encode(imagePath, forKey: .imagePath)
        try c.encode(screeningRun, forKey: .screeningRun)
        try c.encode(gradable, forKey: .gradable)
        try c.encode(ungradableReasons, forKey: .ungradableReasons)
        try c.encode(classCode, forKey: .classCode)
        try c.encode(className, forKey: .className)
        try c.encode(lesionCount, forKey: .lesionCount)
        try c.encode(areaPx, forKey: .areaPx)
        try c.encode(fovShare, forKey: .fovShare)
        try c.encode(areaMM2, forKey: .areaMM2)
        try c.encode(largestPx, forKey: .largestPx)
        try c.encode(maskPath, forKey: .maskPath)
        try c.encode(flagRaised, forKey: .flagRaised)
        try c.encode(flagRule, forKey: .flagRule)
        try c.encode(flagRuleVersion, forKey: .flagRuleVersion)
        try c.encode(flagReason, forKey: .flagReason)
        try c.encode(modelVersion, forKey: .modelVersion)
        try c.encode(screenedAt, forKey: .screenedAt)
        try c.encode(areaMM2Basis, forKey: .areaMM2Basis)
        try c.encode(opticDisc, forKey: .opticDisc)
        try c.encode(inference, forKey: .inference)
    }

    /// The cells in `columns` order, as CSV text (before quoting).
    var cells: [String] {
        func num(_ v: Int?) -> String { v.map(String.init) ?? "" }
        return [
            patientID, eye, imageID, imagePath, screeningRun, gradable ? "true" : "false", ungradableReasons, classCode,
            className, num(lesionCount), num(areaPx), fovShare.map { Format.fixed($0, digits: 8) } ?? "",
            areaMM2.map { Format.fixed($0, digits: 4) } ?? "", num(largestPx), maskPath, flagRaised ? "true" : "false", flagRule,
            flagRuleVersion, flagReason, modelVersion, screenedAt, areaMM2Basis, opticDisc, inference,
        ]
    }

    /// Columns that carry text from outside (ids, paths, reasons): guarded against spreadsheet formulas.
    static let textColumns: Set<Int> = Set(
        ["patient_id", "image_id", "image_path", "screening_run", "ungradable_reasons", "mask_path", "flag_rule",
         "flag_rule_version", "flag_reason", "model_version"].compactMap { columns.firstIndex(of: $0) })
}

public enum FindingsExport {
    /// Rows for these patients: patients in the given order, eyes right then left, classes EX, HE, SE, MA.
    public static func rows(_ patients: [PatientReport]) -> [FindingsRow] {
        var rows: [FindingsRow] = []
        for patient in patients {
            for eye in patient.eyesInReadingOrder {
                var base = FindingsRow(
                    patientID: patient.patientID, eye: eye.laterality.rawValue, imageID: eye.imageID,
                    imagePath: eye.photograph, screeningRun: eye.screeningRun ?? "", gradable: eye.gradability.isGradable,
                    ungradableReasons: eye.gradability.reasons.joined(separator: "; "), classCode: "", className: "",
                    lesionCount: nil, areaPx: nil, fovShare: nil, areaMM2: nil, largestPx: nil, maskPath: "",
                    flagRaised: eye.flag.raised, flagRule: eye.flag.rule, flagRuleVersion: eye.flag.ruleVersion,
                    flagReason: eye.flagReason, modelVersion: eye.modelVersion, screenedAt: Format.iso8601(eye.screenedAt))
                base.inference = eye.inference ?? ""
                if let disc = eye.opticDisc {
                    base.opticDisc = disc.found
                        ? "optic disc at (\(Int((disc.centreX ?? 0).rounded())), \(Int((disc.centreY ?? 0).rounded()))), \(Int((disc.diameterPixels ?? 0).rounded())) px across"
                        : "optic disc not found"
                }
                let findings = eye.findingsInClassOrder
                if findings.isEmpty || !eye.gradability.isGradable {
                    rows.append(base)
                    continue
                }
                for f in findings {
                    base.classCode = f.lesionClass.code
                    base.className = f.lesionClass.name
                    base.lesionCount = f.count
                    base.areaPx = f.areaPixels
                    base.fovShare = f.fieldOfViewShare
                    base.areaMM2 = f.areaMM2
                    base.areaMM2Basis = f.areaMM2 == nil ? ""
                        : eye.opticDisc?.areasEstimatedFromDisc == true
                            ? "optic disc estimate (\(String(format: "%.1f", eye.opticDisc?.assumedDiameterMM ?? 1.8)) mm disc)" : "pixel spacing"
                    base.largestPx = f.largestPixels
                    base.maskPath = f.maskPath ?? ""
                    rows.append(base)
                }
            }
        }
        return rows
    }

    /// RFC 4180 CSV (comma, CRLF, quotes doubled), UTF-8 with a byte-order mark so that spreadsheets pick UTF-8.
    public static func csv(_ rows: [FindingsRow]) -> String {
        var out = "\u{FEFF}" + FindingsRow.columns.joined(separator: ",") + "\r\n"
        for row in rows {
            out += row.cells.enumerated().map { i, cell in
                csvField(FindingsRow.textColumns.contains(i) ? defuseFormula(cell) : cell)
            }.joined(separator: ",")
            out += "\r\n"
        }
        return out
    }

    /// A JSON array of flat objects, one per row, keys as in `FindingsRow.columns`.
    public static func json(_ rows: [FindingsRow]) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .withoutEscapingSlashes]
        return try encoder.encode(rows)
    }

    static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// A cell that starts with `= + - @` (or tab/CR) is run as a formula by spreadsheets; a leading `'` keeps it text.
    static func defuseFormula(_ text: String) -> String {
        guard let first = text.unicodeScalars.first, "=+-@\t\r".unicodeScalars.contains(first) else { return text }
        return "'" + text
    }
}

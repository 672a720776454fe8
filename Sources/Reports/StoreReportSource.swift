import Foundation
import Lesions
import Store

/// The report's statements over Store's schema (sql/0001, sql/0003), named like Store's own. They read only;
/// they live here because only reports need them (they can move into Store's SQL folder if others do).
enum ReportSQL {
    /// Patients chosen by the selection ($1 patient id, $2 screening run id, $3 screened since; NULL = any), and for
    /// each of their images the newest result under any model version, with the model's name.
    static let patientImages = """
        WITH chosen AS (
            SELECT DISTINCT i.patient_id
            FROM images i JOIN screening_results r ON r.image_id = i.id
            WHERE ($1::text IS NULL OR i.patient_id = $1)
              AND ($2::bigint IS NULL OR r.screening_run_id = $2)
              AND ($3::timestamptz IS NULL OR r.screened_at >= $3)
        )
        SELECT i.patient_id, i.laterality, i.path, r.id AS result_id, r.gradable, r.ungradable_reasons, r.flagged,
               r.flag_rule, r.flag_rule_version, r.screened_at, r.screening_run_id, m.name AS model_version
        FROM images i
        JOIN chosen c ON c.patient_id = i.patient_id
        JOIN LATERAL (
            SELECT * FROM screening_results r WHERE r.image_id = i.id ORDER BY r.screened_at DESC, r.id DESC LIMIT 1
        ) r ON true
        JOIN model_versions m ON m.id = r.model_version_id
        ORDER BY i.patient_id, i.laterality NULLS LAST, i.path
        """

    /// The per-class findings of these results ($1: result ids).
    static let findingsOfResults = """
        SELECT result_id, lesion_class, lesion_count, area_px, fov_share, area_mm2, largest_lesion_px, mask_path
        FROM findings WHERE result_id = ANY($1::bigint[])
        """

    /// The optic discs of these results ($1: result ids; sql/0006).
    static let discsOfResults = """
        SELECT result_id, found, centre_x, centre_y, diameter_px, area_mm2_from_disc, assumed_diameter_mm
        FROM optic_discs WHERE result_id = ANY($1::bigint[])
        """
}

/// Patients and their newest screening results from the database: for every image of a selected patient, the
/// result of the latest screening under any model version. Store keeps the rule, not a reason sentence, so pages
/// say what the findings show (`EyeReport.flagReason`). Overlays are drawn from the per-class masks.
public struct StoreReportSource: ReportSource {
    let connection: Connection

    public init(connection: Connection) { self.connection = connection }

    public func patients(_ selection: PatientSelection) throws -> [PatientReport] {
        var patientID: String? = nil, runID: Int64? = nil, since: Date? = nil
        switch selection {
        case .all: break
        case .patient(let id): patientID = id
        case .run(let text):
            guard let id = Int64(text) else { throw ReportError(.invalidInput, "screening run \"\(text)\" is not a run number") }
            runID = id
        case .since(let date): since = date
        }
        let images = try connection.query(ReportSQL.patientImages, [patientID, runID, since], name: "ReportPatientImages").rows
        let resultIDs: [Int64] = try images.map { try $0.decode("result_id") }
        var findings: [Int64: [EyeReport.ClassFindings]] = [:]
        if !resultIDs.isEmpty {
            for row in try connection.query(ReportSQL.findingsOfResults, [resultIDs], name: "ReportFindingsOfResults").rows {
                let code: String = try row.decode("lesion_class")
                guard let lesionClass = LesionClass(code: code) else { continue }
                findings[try row.decode("result_id"), default: []].append(EyeReport.ClassFindings(
                    lesionClass: lesionClass, count: try row.decode("lesion_count"), areaPixels: try row.decode("area_px"),
                    fieldOfViewShare: try row.decode("fov_share"), areaMM2: try row.decodeIfPresent("area_mm2"),
                    largestPixels: try row.decode("largest_lesion_px"), maskPath: try row.decodeIfPresent("mask_path")))
            }
        }
        var discs: [Int64: EyeReport.OpticDisc] = [:]
        if !resultIDs.isEmpty {
            for row in try connection.query(ReportSQL.discsOfResults, [resultIDs], name: "ReportDiscsOfResults").rows {
                discs[try row.decode("result_id")] = EyeReport.OpticDisc(
                    found: try row.decode("found"), centreX: try row.decodeIfPresent("centre_x"),
                    centreY: try row.decodeIfPresent("centre_y"), diameterPixels: try row.decodeIfPresent("diameter_px"),
                    areasEstimatedFromDisc: try row.decode("area_mm2_from_disc"),
                    assumedDiameterMM: try row.decodeIfPresent("assumed_diameter_mm"))
            }
        }
        var order: [String] = []
        var eyes: [String: [EyeReport]] = [:]
        for row in images {
            let patient: String = try row.decode("patient_id")
            let path: String = try row.decode("path")
            let resultID: Int64 = try row.decode("result_id")
            let flagged: Bool? = try row.decodeIfPresent("flagged")
            let run: Int64? = try row.decodeIfPresent("screening_run_id")
            let eye = EyeReport(
                laterality: EyeReport.Laterality(code: try row.decodeIfPresent("laterality") ?? ""),
                imageID: URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent, photograph: path,
                overlay: Self.pipelineOverlay(findings[resultID] ?? []),
                gradability: EyeReport.Gradability(
                    gradable: try row.decode("gradable"), reasons: try row.decodeArray("ungradable_reasons").compactMap { $0 }),
                findings: findings[resultID] ?? [],
                flag: EyeReport.Flag(
                    raised: flagged ?? false, rule: try row.decodeIfPresent("flag_rule") ?? "",
                    ruleVersion: try row.decodeIfPresent("flag_rule_version") ?? "", reason: ""),
                modelVersion: try row.decode("model_version"), screenedAt: try row.decode("screened_at"),
                screeningRun: run.map(String.init), opticDisc: discs[resultID])
            if eyes[patient] == nil { order.append(patient) }
            eyes[patient, default: []].append(eye)
        }
        if case .patient(let id) = selection, order.isEmpty {
            throw ReportError(.notFound, "patient \"\(id)\" has no screening result in the database")
        }
        return order.map { PatientReport(patientID: $0, eyes: eyes[$0] ?? []) }
    }

    /// The overlay the screening pipeline wrote beside the masks (`<stem>_<CLS>.png` → `<stem>_overlay.jpg`), when it
    /// is there; otherwise the report draws one from the masks.
    static func pipelineOverlay(_ findings: [EyeReport.ClassFindings]) -> String? {
        for f in findings {
            guard let mask = f.maskPath else { continue }
            let url = URL(fileURLWithPath: mask)
            let suffix = "_\(f.lesionClass.code).png"
            guard url.lastPathComponent.hasSuffix(suffix) else { continue }
            let stem = String(url.lastPathComponent.dropLast(suffix.count))
            let overlay = url.deletingLastPathComponent().appendingPathComponent("\(stem)_overlay.jpg")
            if FileManager.default.fileExists(atPath: overlay.path) { return overlay.path }
        }
        return nil
    }
}

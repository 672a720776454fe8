import Foundation
import Lesions
import Store

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
        let images = try ScreeningResults(connection: connection)
            .newestOfPatients(patientID: patientID, screeningRunID: runID, screenedSince: since)
        let patients = Self.patientReports(images)
        if case .patient(let id) = selection, patients.isEmpty {
            throw ReportError(.notFound, "patient \"\(id)\" has no screening result in the database")
        }
        return patients
    }

    /// These images' results under one model version (the local form's folder), patients in the order their first
    /// image comes; images without a result are left out.
    public func patients(imageIDs: [Int64], modelVersionID: Int64) throws -> [PatientReport] {
        Self.patientReports(try ScreeningResults(connection: connection).screenedImages(imageIDs, modelVersionID: modelVersionID))
    }

    /// Store's screened images as patients' eyes, patients in the order their first image comes. Findings of a
    /// lesion class this version of the reports does not know are left out.
    static func patientReports(_ images: [ScreenedImage]) -> [PatientReport] {
        var order: [String] = []
        var eyes: [String: [EyeReport]] = [:]
        for image in images {
            let findings = image.findings.map { f in
                EyeReport.ClassTotals(
                    lesionClass: f.lesionClass, count: f.lesionCount, areaPixels: Int(f.areaPixels),
                    fieldOfViewShare: f.fieldOfViewShare, areaMM2: f.areaMM2, largestPixels: Int(f.largestLesionPixels),
                    maskPath: f.maskPath)
            }
            let eye = EyeReport(
                laterality: EyeReport.Laterality(image.laterality),
                imageID: URL(fileURLWithPath: image.path).deletingPathExtension().lastPathComponent, photograph: image.path,
                overlay: pipelineOverlay(findings),
                gradability: image.gradability,
                findings: findings,
                flag: EyeReport.Flag(raised: image.flag == .suspectedMoreThanMildDR, rule: image.rule?.name ?? "",
                                     ruleVersion: image.rule.map { String($0.version) } ?? "", reason: ""),
                modelVersion: image.modelVersion, screenedAt: image.screenedAt,
                screeningRun: image.screeningRunID.map(String.init),
                inference: image.runSettings.flatMap(Format.inference(settingsJSON:)),
                opticDisc: image.disc.map { d in
                    EyeReport.OpticDisc(found: d.found, centreX: d.centreX, centreY: d.centreY, diameterPixels: d.diameterPixels,
                                        areasEstimatedFromDisc: d.areaMM2FromDisc, assumedDiameterMM: d.assumedDiameterMM)
                })
            if eyes[image.patientID] == nil { order.append(image.patientID) }
            eyes[image.patientID, default: []].append(eye)
        }
        return order.map { PatientReport(patientID: $0, eyes: eyes[$0] ?? []) }
    }

    /// The overlay the screening pipeline wrote beside the masks (`<stem>_<CLS>.png` → `<stem>_overlay.jpg`), when it
    /// is there; otherwise the report draws one from the masks.
    static func pipelineOverlay(_ findings: [EyeReport.ClassTotals]) -> String? {
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

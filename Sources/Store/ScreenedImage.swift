import Foundation
import Lesions

/// An image of the archive with one of its screening results, as reports and exports show it (findings without
/// their per-lesion rows).
public struct ScreenedImage: Sendable, Equatable {
    public let imageID: Int64
    public let path: String
    public let patientID: String
    public let laterality: Laterality?
    public let resultID: Int64
    public let gradability: Gradability
    /// Lesions' verdict and its rule, only for gradable images.
    public let flag: ScreeningFlag?
    public let rule: ScreeningRule?
    public let screenedAt: Date
    public let screeningRunID: Int64?
    /// The model version's name.
    public let modelVersion: String
    /// How the run that wrote the result read the photograph (`screening_runs.settings`, JSON); nil when the run is
    /// unknown or stored no settings (runs before they were recorded).
    public let runSettings: String?
    /// One per lesion class stored, EX, HE, SE, MA.
    public var findings: [Finding]
    /// The optic disc, when the result's model has the disc channel.
    public var disc: OpticDiscRecord?

    static func decode(_ row: Row) throws -> ScreenedImage {
        let verdict = try StoredVerdict(row)
        return ScreenedImage(
            imageID: try row.decode("image_id"), path: try row.decode("path"), patientID: try row.decode("patient_id"),
            laterality: try row.decodeIfPresent("laterality", as: String.self).flatMap(Laterality.init(rawValue:)),
            resultID: try row.decode("result_id"), gradability: verdict.gradability,
            flag: verdict.flag, rule: verdict.rule, screenedAt: try row.decode("screened_at"), screeningRunID: try row.decodeIfPresent("screening_run_id"),
            modelVersion: try row.decode("model_version"),
            runSettings: try row.decodeIfPresent("run_settings", as: String.self).flatMap { $0 == "{}" ? nil : $0 },
            findings: [], disc: nil)
    }
}

extension ScreeningResults {
    /// Every image of the chosen patients with its newest result under any model version, in patient, eye (R, L,
    /// unknown) and path order. A patient is chosen when one of their images has a result matching every condition
    /// given (`patientID`, `screeningRunID`, screened at or after `screenedSince`; nil: any).
    public func newestOfPatients(patientID: String? = nil, screeningRunID: Int64? = nil,
                                 screenedSince: Date? = nil) throws -> [ScreenedImage] {
        let rows = try connection.query(ReportSQL.newestResultsOfPatients, [patientID, screeningRunID, screenedSince]).rows
        return try withFindings(rows.map(ScreenedImage.decode))
    }

    /// These images with their result under this model version, in the order given; images without one are left out.
    public func screenedImages(_ imageIDs: [Int64], modelVersionID: Int64) throws -> [ScreenedImage] {
        guard !imageIDs.isEmpty else { return [] }
        let rows = try connection.query(ReportSQL.resultsOfImages, [imageIDs, modelVersionID]).rows
        return try withFindings(rows.map(ScreenedImage.decode))
    }

    private func withFindings(_ images: [ScreenedImage]) throws -> [ScreenedImage] {
        guard !images.isEmpty else { return [] }
        var byResult: [Int64: [Finding]] = [:]
        for row in try connection.query(ReportSQL.findingsOfResults, [images.map(\.resultID)]).rows {
            // A class this version does not know (a newer writer's) is left out.
            guard let lesionClass = LesionClass(code: try row.decode("lesion_class")) else { continue }
            byResult[try row.decode("result_id"), default: []].append(Finding(
                lesionClass: lesionClass, lesionCount: try row.decode("lesion_count"),
                areaPixels: try row.decode("area_px"), fieldOfViewShare: try row.decode("fov_share"),
                areaMM2: try row.decodeIfPresent("area_mm2"), largestLesionPixels: try row.decode("largest_lesion_px"),
                maskPath: try row.decodeIfPresent("mask_path"), probabilityMapPath: try row.decodeIfPresent("probability_path")))
        }
        var discs: [Int64: OpticDiscRecord] = [:]
        for d in try connection.query(ReportSQL.opticDiscsOfResults, [images.map(\.resultID)]).rows {
            discs[try d.decode("result_id")] = try OpticDiscRecord.decode(d)
        }
        return images.map { image in
            var image = image
            image.findings = byResult[image.resultID] ?? []
            image.disc = discs[image.resultID]
            return image
        }
    }
}

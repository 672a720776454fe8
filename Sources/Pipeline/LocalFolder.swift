import Foundation
import Logging
import Store

/// The nnU-Net-style local form (`screen -i DIR -o DIR`): a folder imported into the embedded database, screened on
/// its own queue, and its findings written beside the masks. Enqueueing is idempotent, so a second run screens only
/// what is not done yet.
public enum LocalFolder {
    public static let queue = "local"

    public struct Imported: Sendable {
        public var imageIDs: [Int64]
        public var enqueued: Int
    }

    public static func importAndEnqueue(_ folder: URL, connection: Connection, modelVersionID: Int64,
                                        logger: Logger) throws -> Imported {
        let importer = ArchiveImporter(connection: connection, pattern: try FileNamePattern(), enqueue: false,
                                       dicom: DicomIntake.tagReader, logger: logger)
        let report = try importer.importDirectory(folder)
        for skipped in report.skipped { logger.warning("not imported: \(skipped)") }
        let imageIDs = report.imageIDs
        // The archive's screening jobs (same key: one job per image and model version), on the local queue; images
        // an archive import queued already come over to it.
        let queue = JobQueue(connection: connection, logger: logger)
        let added = try queue.enqueueScreening(imageIDs: imageIDs, modelVersionID: modelVersionID, queue: Self.queue)
        try queue.moveWaitingScreening(imageIDs: imageIDs, modelVersionID: modelVersionID, to: Self.queue)
        return Imported(imageIDs: imageIDs, enqueued: added)
    }

    /// `findings.csv` (one row per image × class) and `findings.json` for the folder's images.
    public static func writeFindings(imageIDs: [Int64], modelVersionID: Int64, connection: Connection,
                                     to output: URL) throws -> [URL] {
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        let archive = Archive(connection: connection)
        let results = ScreeningResults(connection: connection)
        var csv = "image,patient,eye,gradable,ungradable_reasons,suspected_dr,rule,class,lesion_count,area_px,fov_share,area_mm2,largest_lesion_px,mask,area_mm2_basis\n"
        var json: [[String: Any]] = []
        func field(_ s: String) -> String {
            s.contains(",") || s.contains("\"") || s.contains("\n") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        for id in imageIDs {
            guard let image = try archive.image(id: id) else { continue }
            let stem = URL(fileURLWithPath: image.path).lastPathComponent
            guard let result = try results.fetch(imageID: id, modelVersionID: modelVersionID) else {
                json.append(["image": stem, "path": image.path, "patient": image.patientID, "status": "not screened (see queue list)"])
                continue
            }
            var entry: [String: Any] = ["image": stem, "path": image.path, "patient": image.patientID,
                                        "eye": image.laterality?.rawValue ?? ""]
            switch result.gradability {
            case .gradable:
                entry["gradable"] = true
                entry["suspected_more_than_mild_dr"] = result.flag?.suspected ?? false
                entry["rule"] = result.flag.map { "\($0.rule) v\($0.ruleVersion)" } ?? ""
                // Where the mm² come from: the image's pixel spacing, or (models with the optic-disc channel, no
                // spacing known) an estimate from the disc diameter taken as 1.8 mm.
                let fromDisc = result.disc?.areaMM2FromDisc == true
                let basis = fromDisc ? "estimate from optic disc (\(String(format: "%.1f", result.disc?.assumedDiameterMM ?? 1.8)) mm diameter assumed)" : "pixel spacing"
                if let d = result.disc {
                    var disc: [String: Any] = ["found": d.found]
                    if d.found {
                        disc["centre_x"] = d.centreX ?? 0
                        disc["centre_y"] = d.centreY ?? 0
                        disc["diameter_px"] = d.diameterPixels ?? 0
                        disc["area_px"] = d.areaPixels ?? 0
                    }
                    disc["area_mm2_estimated_from_disc"] = fromDisc
                    if let a = d.assumedDiameterMM { disc["assumed_diameter_mm"] = a }
                    entry["optic_disc"] = disc
                }
                var classes: [String: Any] = [:]
                for f in result.findings {
                    classes[f.lesionClass] = ["count": f.lesionCount, "area_px": f.areaPixels, "fov_share": f.fieldOfViewShare,
                                              "area_mm2": f.areaMM2 as Any? ?? NSNull(), "largest_lesion_px": f.largestLesionPixels,
                                              "area_mm2_basis": f.areaMM2 == nil ? "" : basis, "mask": f.maskPath ?? ""]
                    csv += [stem, image.patientID, image.laterality?.rawValue ?? "", "true", "",
                            "\(result.flag?.suspected ?? false)", result.flag?.rule ?? "", f.lesionClass, "\(f.lesionCount)",
                            "\(f.areaPixels)", String(format: "%.6f", f.fieldOfViewShare), f.areaMM2.map { String(format: "%.4f", $0) } ?? "",
                            "\(f.largestLesionPixels)", f.maskPath ?? "", f.areaMM2 == nil ? "" : basis].map(field).joined(separator: ",") + "\n"
                }
                entry["classes"] = classes
            case .ungradable(let reasons):
                entry["gradable"] = false
                entry["ungradable_reasons"] = reasons
                csv += [stem, image.patientID, image.laterality?.rawValue ?? "", "false", reasons.joined(separator: "; "),
                        "", "", "", "", "", "", "", "", "", ""].map(field).joined(separator: ",") + "\n"
            }
            json.append(entry)
        }
        let csvURL = output.appendingPathComponent("findings.csv")
        let jsonURL = output.appendingPathComponent("findings.json")
        try Data(csv.utf8).write(to: csvURL, options: .atomic)
        try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]).write(to: jsonURL, options: .atomic)
        return [csvURL, jsonURL]
    }
}

import Foundation
import Logging
import Reports
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

    /// What one local-form run did: the run's summary and the findings files written.
    public struct Outcome: Sendable {
        public var imported: Imported
        public var summary: RunSummary
        public var findingsFiles: [URL]
    }

    /// The whole local form: import `folder` and queue its images for the model on the local queue, screen them
    /// (masks under `options.masksDirectory`), and write findings.csv/json of the folder's images into `output`.
    /// Findings of images screened by an earlier run are exported too; images still unscreened (failed) are left out
    /// of the files and named in the queue.
    public static func screen(_ folder: URL, output: URL, model: LoadedModel, options: ScreeningOptions,
                              settings: WorkerSettings, conninfo: String, connection: Connection,
                              shutdown: ShutdownSignal, logger: Logger) throws -> Outcome {
        let imported = try importAndEnqueue(folder, connection: connection, modelVersionID: model.version.id, logger: logger)
        logger.info("local folder", metadata: ["images": "\(imported.imageIDs.count)", "newly queued": "\(imported.enqueued)"])
        let summary = try ScreeningRun.run(conninfo: conninfo, model: model, options: options, settings: settings,
                                           queue: queue, shutdown: shutdown, logger: logger)
        let files = try writeFindings(imageIDs: imported.imageIDs, modelVersionID: model.version.id, connection: connection,
                                      to: output)
        return Outcome(imported: imported, summary: summary, findingsFiles: files)
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

    /// `findings.csv` and `findings.json` for the folder's images under this model version: the one findings export
    /// (`Reports.FindingsExport`, the columns of `fundus-screen report`'s export: one row per image × lesion class,
    /// one row with empty class columns for an ungradable image), so the local form and the reports write one format.
    /// Images without a result (not screened, or failed: see `queue list`) have no row.
    public static func writeFindings(imageIDs: [Int64], modelVersionID: Int64, connection: Connection,
                                     to output: URL) throws -> [URL] {
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        let patients = try StoreReportSource(connection: connection).patients(imageIDs: imageIDs, modelVersionID: modelVersionID)
        let rows = FindingsExport.rows(patients)
        let csvURL = output.appendingPathComponent("findings.csv")
        let jsonURL = output.appendingPathComponent("findings.json")
        try Data(FindingsExport.csv(rows).utf8).write(to: csvURL, options: .atomic)
        try FindingsExport.json(rows).write(to: jsonURL, options: .atomic)
        return [csvURL, jsonURL]
    }
}

import ArgumentParser
import Foundation
import Pipeline
import Store

/// `fundus-screen archive …`: the photographs the screening works on.
struct ArchiveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "archive", abstract: "Manage the archive of fundus photographs.", subcommands: [Import.self])

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import photographs (a folder, a DICOMDIR, or a CSV manifest) and enqueue their screening with the active model.",
            discussion: """
                A manifest has a header line; columns: path (required, relative to the manifest), patient, eye \
                (R/L, right/left, OD/OS), acquired_on, pixel_spacing_mm, sha256, size_bytes, study_uid, instance_uid. \
                DICOM files are recognised by their preamble, with or without .dcm: patient, eye, study date and \
                UIDs come from their tags (Patient ID, Image Laterality or Laterality, Study Date, SOP Instance \
                UID); a SOP Instance UID already in the archive is that image. A DICOMDIR folder (or the DICOMDIR \
                file) imports every DICOM file under it. A DICOM file that cannot be decoded (truncated, no pixel \
                data, JPEG 2000, multi-frame) is skipped with the reason. Patient and eye missing from the manifest \
                and the tags come from the file name via --pattern. Files already in the archive are skipped.
                """)
        @OptionGroup var global: GlobalOptions

        @Argument(help: "Folder of images (searched recursively for .jpg, .jpeg, .png, .tif, .tiff and DICOM files), or a DICOMDIR.")
        var folder: String?

        @Option(help: "CSV manifest instead of a folder.")
        var manifest: String?

        @Option(help: "Regular expression on the file name without extension, with groups (?<patient>…) and (?<eye>…).")
        var pattern: String = FileNamePattern.defaultExpression

        @Option(help: "Priority of the screening jobs: 1 (on demand) … 4; the nightly backlog is 3.")
        var priority: Int = 3

        @Flag(help: "Import only; do not enqueue screening.")
        var noEnqueue = false

        func validate() throws {
            if (folder == nil) == (manifest == nil) { throw ValidationError("give a folder or --manifest FILE.csv (one of them)") }
            if !(1...4).contains(priority) { throw ValidationError("--priority must be 1…4") }
        }

        func run() throws {
            let (connection, logger) = try global.connect("fundus.archive")
            let importer = ArchiveImporter(connection: connection, pattern: try FileNamePattern(pattern), priority: priority,
                                           enqueue: !noEnqueue, dicom: DicomIntake.tagReader, logger: logger)
            let report = try manifest.map { try importer.importManifest(URL(fileURLWithPath: $0)) }
                ?? importer.importDirectory(URL(fileURLWithPath: folder!))
            print("considered \(report.considered), added \(report.added), already present \(report.alreadyPresent), "
                  + "skipped \(report.skipped.count) in \(String(format: "%.2f", report.seconds)) s")
            for line in report.skipped.prefix(20) { print("  skipped \(line)") }
            if report.skipped.count > 20 { print("  … and \(report.skipped.count - 20) more") }
            if noEnqueue {
                print("screening not enqueued (--no-enqueue)")
            } else if let model = report.modelVersion {
                print("enqueued \(report.enqueued) screening jobs for model \(model)")
            } else {
                print("no active model version yet: nothing enqueued now; the first model made active " +
                      "(`fundus-screen screen` activates the shipped one) queues every image")
            }
        }
    }
}

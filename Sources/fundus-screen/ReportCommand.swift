import ArgumentParser
import Foundation
import Reports
import Store

/// `fundus-screen report --patient ID | --run ID | --since TIME | --all -o DIR`: patient pages, the index and the
/// findings exports, from the database (or from a JSON file of patient reports with --findings).
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write per-patient HTML lesion reports, an index page and CSV/JSON findings exports.",
        discussion: """
            Findings come from the database (the newest result of every image of the chosen patients), or from a \
            JSON file of patient reports (--findings). Writing into a folder that already holds reports adds to \
            it: the index and the exports always cover every patient in the folder.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: "Report this patient only.")
    var patient: String?

    @Option(name: .customLong("run"), help: "Report the patients screened in this run (only that run's images).")
    var runID: String?

    @Option(name: .long, help: "Report the patients screened at or after this time (ISO 8601, e.g. 2026-11-23T02:00:00Z).")
    var since: String?

    @Flag(name: .long, help: "Report every patient.")
    var all = false

    @Option(name: [.customShort("o"), .long], help: "Report folder (created if needed).")
    var output: String

    @Option(name: .long, help: "Read patient reports from this JSON file (an array, or {\"patients\": [...]}) instead of the database.")
    var findings: String?

    func validate() throws {
        let chosen = [patient != nil, runID != nil, since != nil, all].filter { $0 }.count
        guard chosen == 1 else { throw ValidationError("Give exactly one of --patient ID, --run ID, --since TIME or --all.") }
        if let since, Self.parseTime(since) == nil {
            throw ValidationError("--since \(since): expected an ISO 8601 time such as 2026-11-23T02:00:00Z")
        }
    }

    static func parseTime(_ text: String) -> Date? {
        let withFraction = ISO8601DateFormatter()
        withFraction.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return ISO8601DateFormatter().date(from: text) ?? withFraction.date(from: text)
    }

    func run() throws {
        let logger = global.makeLogger("fundus-screen.report")
        let selection: PatientSelection =
            if let patient { .patient(patient) }
            else if let runID { .run(runID) }
            else if let since, let start = Self.parseTime(since) { .since(start) }
            else { .all }
        do {
            let patients: [PatientReport]
            if let findings {
                patients = try JSONReportSource(file: URL(fileURLWithPath: findings)).patients(selection)
            } else {
                let location = global.databaseLocation
                let connection = try Database.connect(location, logger: logger)
                defer { connection.close() }
                patients = try StoreReportSource(connection: connection).patients(selection)
            }
            let summary = try ReportWriter(directory: URL(fileURLWithPath: output), logger: logger).write(patients)
            print(
                "wrote \(summary.pagesWritten) patient page(s) and \(summary.imagesCopied) picture(s) to \(output); "
                    + "index lists \(summary.patientsIndexed) patient(s); findings.csv/json have \(summary.exportRows) row(s)")
            if !summary.missingImages.isEmpty {
                let shown = summary.missingImages.prefix(5).joined(separator: "\n  ")
                let more = summary.missingImages.count > 5 ? "\n  … and \(summary.missingImages.count - 5) more (see the log)" : ""
                print("\(summary.missingImages.count) picture(s) missing, their pages show a placeholder:\n  \(shown)\(more)")
            }
        } catch let error as ReportError {
            FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
            throw ExitCode.failure
        }
    }
}

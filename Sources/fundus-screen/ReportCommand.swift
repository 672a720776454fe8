import ArgumentParser
import Foundation
import Reports

/// `fundus-screen report --patient ID | --run ID | --since TIME | --all -o DIR`: patient pages, the index and the
/// findings exports. Not yet in FundusScreen's subcommands: pipelines/nightly.sh runs `report --since` whenever
/// `report --help` works, and without Store's findings queries this command can only read a JSON file.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write per-patient HTML lesion reports, an index page and CSV/JSON findings exports.",
        discussion: """
            Findings are read from a JSON file (--findings) of patient reports. Reading them from the database \
            comes with Store's findings queries. Writing into a folder that already holds reports adds to it: \
            the index and the exports always cover every patient in the folder.
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

    @Option(name: .long, help: "JSON file of patient reports to render (an array, or {\"patients\": [...]}).")
    var findings: String?

    func validate() throws {
        let chosen = [patient != nil, runID != nil, since != nil, all].filter { $0 }.count
        guard chosen == 1 else { throw ValidationError("Give exactly one of --patient ID, --run ID, --since TIME or --all.") }
        if let since, Self.parseTime(since) == nil {
            throw ValidationError("--since \(since): expected an ISO 8601 time such as 2026-11-23T02:00:00Z")
        }
        guard findings != nil else {
            throw ValidationError(
                "Reading findings from the database is not available yet: give --findings FILE.json (a findings export).")
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
        let source = JSONReportSource(file: URL(fileURLWithPath: findings ?? ""))
        do {
            let patients = try source.patients(selection)
            let summary = try ReportWriter(directory: URL(fileURLWithPath: output), logger: logger).write(patients)
            print(
                "wrote \(summary.pagesWritten) patient page(s) and \(summary.imagesCopied) picture(s) to \(output); "
                    + "index lists \(summary.patientsIndexed) patient(s); findings.csv/json have \(summary.exportRows) row(s)")
            if !summary.missingImages.isEmpty {
                print("missing pictures (pages show a placeholder): \(summary.missingImages.joined(separator: ", "))")
            }
        } catch let error as ReportError {
            FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
            throw ExitCode.failure
        }
    }
}

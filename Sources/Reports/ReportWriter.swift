import Foundation
import Logging

/// A report problem a user can act on: which file, what was wrong.
public struct ReportError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable {
        case unreadableInput = "unreadable-input"
        case invalidInput = "invalid-input"
        case unwritableOutput = "unwritable-output"
        case notFound = "not-found"
        case unsupported = "unsupported"
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// What one `write` did.
public struct ReportSummary: Sendable, Equatable {
    /// Patient pages written by this call.
    public var pagesWritten = 0
    /// Photographs and overlays written beside the pages.
    public var imagesCopied = 0
    /// Photographs or overlays that could not be written ("image what: why"); their pages show a placeholder.
    public var missingImages: [String] = []
    /// Patients on the index page: this call's and those reported into the folder before.
    public var patientsIndexed = 0
    /// Rows in findings.csv / findings.json.
    public var exportRows = 0
}

/// Writes a report folder:
/// ```
/// DIR/index.html                   every patient in DIR, flagged first
/// DIR/findings.csv, findings.json  one row per image × class, every patient in DIR
/// DIR/patients/<name>.html         one page per patient
/// DIR/patients/<name>/             that page's pictures, and report.json (the page's data, to rebuild index/exports)
/// ```
/// `<name>` is the patient id made safe for a file name (`SafeName`). Pictures are written beside the page and linked
/// relatively rather than embedded as data: URIs: a 4288×2848 photograph is ~0.4 MB as JPEG and would be ~0.55 MB of
/// base64 text per picture in the page; files beside it keep pages small and fast, let a grader open the picture
/// full-size by clicking it, and the folder still works offline, zipped, or served as is (`ReportPictures`).
/// Every file is written atomically (temporary file, then rename), so a reader never sees half a page.
public struct ReportWriter: Sendable {
    public let directory: URL
    public let logger: Logger

    public init(directory: URL, logger: Logger) {
        self.directory = directory.standardizedFileURL
        self.logger = logger
    }

    var patientsFolder: URL { directory.appendingPathComponent("patients", isDirectory: true) }

    public static func pageName(patientID: String) -> String { SafeName.make(patientID) }

    /// Writes one page per patient (replacing earlier pages of the same patients), then the index and the exports
    /// over every patient the folder holds.
    @discardableResult
    public func write(_ patients: [PatientReport], now: Date = Date()) throws -> ReportSummary {
        var summary = ReportSummary()
        try makeFolder(patientsFolder)
        var seen: [String: String] = [:]
        for patient in patients {
            let name = Self.pageName(patientID: patient.patientID)
            if let other = seen[name], other != patient.patientID {
                throw ReportError(.invalidInput, "patients \"\(other)\" and \"\(patient.patientID)\" map to the same page name \(name)")
            }
            seen[name] = patient.patientID
            try writePatient(patient, name: name, now: now, summary: &summary)
        }
        try writeIndexAndExports(now: now, summary: &summary)
        logger.info(
            "report written",
            metadata: [
                "directory": "\(directory.path)", "pages": "\(summary.pagesWritten)",
                "patients": "\(summary.patientsIndexed)", "rows": "\(summary.exportRows)",
                "missing_images": "\(summary.missingImages.count)",
            ])
        return summary
    }

    func writePatient(_ patient: PatientReport, name: String, now: Date, summary: inout ReportSummary) throws {
        let assets = patientsFolder.appendingPathComponent(name, isDirectory: true)
        // Start the patient's picture folder afresh so pictures of images no longer reported do not linger.
        if FileManager.default.fileExists(atPath: assets.path) {
            do { try FileManager.default.removeItem(at: assets) } catch {
                throw ReportError(.unwritableOutput, "cannot replace \(assets.path): \(error)")
            }
        }
        try makeFolder(assets)
        var usedNames: Set<String> = []
        var placed: [(eye: EyeReport, images: EyeImages)] = []
        for eye in patient.eyesInReadingOrder {
            var stem = SafeName.make(eye.imageID)
            if !eye.laterality.rawValue.isEmpty { stem = eye.laterality.rawValue + "_" + stem }
            var unique = stem
            var n = 2
            while usedNames.contains(unique) { unique = "\(stem)_\(n)"; n += 1 }
            usedNames.insert(unique)

            let photo = picture("photograph", of: eye, summary: &summary) {
                try ReportPictures.photograph(eye.photograph, stem: unique, folder: assets)
            }
            var overlay: String? = nil
            let masks = eye.findings.compactMap { f in f.maskPath.map { (f.lesionClass, $0) } }
            if let source = eye.overlay {
                overlay = picture("overlay", of: eye, summary: &summary) {
                    try ReportPictures.copyOverlay(source, stem: unique, folder: assets)
                }
            } else if eye.gradability.isGradable && !masks.isEmpty {
                overlay = picture("overlay", of: eye, summary: &summary) {
                    try ReportPictures.drawOverlay(photograph: eye.photograph, masks: masks, stem: unique, folder: assets)
                }
            }
            let link = { (file: String) in "\(name)/\(file)" }
            placed.append((eye, EyeImages(photograph: photo.map(link), overlay: overlay.map(link))))
        }
        let html = PatientPage.render(patient: patient, eyes: placed, indexLink: "../index.html", writtenAt: now)
        try writeFile(Data(html.utf8), to: patientsFolder.appendingPathComponent("\(name).html"))
        try writeFile(try Self.encodeReport(patient), to: assets.appendingPathComponent("report.json"))
        summary.pagesWritten += 1
    }

    /// Runs one picture step; a failure is a warning and a placeholder on the page, never a lost report.
    func picture(
        _ what: String, of eye: EyeReport, summary: inout ReportSummary, _ make: () throws -> String
    ) -> String? {
        do {
            let file = try make()
            summary.imagesCopied += 1
            return file
        } catch {
            logger.warning(
                "\(what) not written; the page shows a placeholder",
                metadata: ["image": "\(eye.imageID)", "error": "\(error)"])
            summary.missingImages.append(eye.imageID + " " + what + ": \(error)")
            return nil
        }
    }

    /// Every patient whose report.json is in the folder; unreadable ones are skipped with a warning.
    public func reportedPatients() -> [(name: String, patient: PatientReport)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: patientsFolder.path)) ?? []
        var out: [(String, PatientReport)] = []
        for name in names.sorted() {
            let file = patientsFolder.appendingPathComponent(name).appendingPathComponent("report.json")
            guard FileManager.default.fileExists(atPath: file.path) else { continue }
            do {
                out.append((name, try Self.decodeReport(Data(contentsOf: file))))
            } catch {
                logger.warning("skipping unreadable patient data", metadata: ["path": "\(file.path)", "error": "\(error)"])
            }
        }
        return out
    }

    func writeIndexAndExports(now: Date, summary: inout ReportSummary) throws {
        let all = reportedPatients()
        let entries = all.map { IndexEntry(patient: $0.patient, link: "patients/\($0.name).html") }
        let html = IndexPage.render(
            entries, exports: [("findings.csv", "findings.csv"), ("findings.json", "findings.json")], writtenAt: now)
        // Exports in index order (flagged first), so a spreadsheet opens on the patients that need a grader.
        let order = Dictionary(IndexEntry.ordered(entries).enumerated().map { ($1.link, $0) }, uniquingKeysWith: { a, _ in a })
        let patients = all.sorted { (order["patients/\($0.name).html"] ?? 0) < (order["patients/\($1.name).html"] ?? 0) }
            .map(\.patient)
        let rows = FindingsExport.rows(patients)
        try writeFile(Data(FindingsExport.csv(rows).utf8), to: directory.appendingPathComponent("findings.csv"))
        try writeFile(try FindingsExport.json(rows), to: directory.appendingPathComponent("findings.json"))
        try writeFile(Data(html.utf8), to: directory.appendingPathComponent("index.html"))
        summary.patientsIndexed = entries.count
        summary.exportRows = rows.count
    }

    static func encodeReport(_ patient: PatientReport) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return try encoder.encode(patient)
    }

    static func decodeReport(_ data: Data) throws -> PatientReport {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(PatientReport.self, from: data)
    }

    func makeFolder(_ url: URL) throws {
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw ReportError(.unwritableOutput, "cannot create report folder \(url.path): \(error)")
        }
    }

    /// Refuses any destination outside the report folder (names are sanitised; this is the second lock).
    func writeFile(_ data: Data, to url: URL) throws {
        let path = url.standardizedFileURL.path
        guard path.hasPrefix(directory.path + "/") else {
            throw ReportError(.unwritableOutput, "refusing to write \(path): outside the report folder \(directory.path)")
        }
        do {
            try data.write(to: url, options: .atomic)
        } catch {
            throw ReportError(.unwritableOutput, "cannot write \(path): \(error)")
        }
    }
}

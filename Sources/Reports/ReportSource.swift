import Foundation

/// Which patients a report covers (`--patient ID | --run ID | --since DATE | --all`). A selected patient's page
/// shows all of that patient's images, so both eyes stay side by side even when only one was screened this time.
public enum PatientSelection: Sendable, Equatable {
    case patient(String)
    /// Patients with at least one image screened in this screening run.
    case run(String)
    /// Patients with at least one image screened at or after this time (the nightly run's start).
    case since(Date)
    case all

    func includes(_ patient: PatientReport) -> Bool {
        switch self {
        case .all: true
        case .patient(let id): patient.patientID == id
        case .run(let run): patient.eyes.contains { $0.screeningRun == run }
        case .since(let start): patient.eyes.contains { $0.screenedAt >= start }
        }
    }
}

/// Where the findings come from: a JSON file now, Store's findings queries once they exist.
public protocol ReportSource {
    func patients(_ selection: PatientSelection) throws -> [PatientReport]
}

/// Reads patients from a JSON file: either an array of `PatientReport` or `{"patients": [...]}`.
/// Dates are ISO 8601 (`2026-11-23T06:49:12Z`), lesion classes by code (`"EX"`), eyes as `"R"`/`"L"`.
public struct JSONReportSource: ReportSource {
    public let file: URL

    public init(file: URL) { self.file = file }

    struct Wrapped: Decodable { var patients: [PatientReport] }

    public func load() throws -> [PatientReport] {
        let data: Data
        do { data = try Data(contentsOf: file) } catch {
            throw ReportError(.unreadableInput, "cannot read findings file \(file.path): \(error.localizedDescription)")
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        // Decode the shape the file has, so the error names the real problem.
        let skipped: Set<UInt8> = [0x20, 0x09, 0x0D, 0x0A, 0xEF, 0xBB, 0xBF]  // whitespace, UTF-8 byte-order mark
        let isObject = data.first { !skipped.contains($0) } == UInt8(ascii: "{")
        do {
            return isObject ? try decoder.decode(Wrapped.self, from: data).patients : try decoder.decode([PatientReport].self, from: data)
        } catch {
            throw ReportError(.invalidInput, "findings file \(file.path) is not a list of patient reports: \(Self.explain(error))")
        }
    }

    public func patients(_ selection: PatientSelection) throws -> [PatientReport] {
        let found = Self.merged(try load()).filter(selection.includes)
        switch selection {
        case .patient(let id) where found.isEmpty:
            throw ReportError(.notFound, "patient \"\(id)\" is not in \(file.path)")
        case .run(let run) where found.isEmpty:
            throw ReportError(.notFound, "no image of screening run \"\(run)\" in \(file.path)")
        default:
            // Nothing screened since a time is a normal night, not an error.
            return found
        }
    }

    /// One page per patient: the same id listed twice becomes one patient with all the eyes, in first-seen order.
    static func merged(_ patients: [PatientReport]) -> [PatientReport] {
        var order: [String] = []
        var eyes: [String: [EyeReport]] = [:]
        for p in patients {
            if eyes[p.patientID] == nil { order.append(p.patientID) }
            eyes[p.patientID, default: []] += p.eyes
        }
        return order.map { PatientReport(patientID: $0, eyes: eyes[$0] ?? []) }
    }

    /// DecodingError's description is long; say where and what, as a person would.
    static func explain(_ error: any Error) -> String {
        guard let e = error as? DecodingError else { return "\(error)" }
        func path(_ c: DecodingError.Context) -> String {
            let p = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            return p.isEmpty ? "top level" : p
        }
        switch e {
        case .keyNotFound(let key, let c): return "\(path(c)): missing \"\(key.stringValue)\""
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c):
            return "\(path(c)): \(c.debugDescription)"
        @unknown default: return "\(e)"
        }
    }
}

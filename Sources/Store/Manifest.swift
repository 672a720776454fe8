import Foundation

/// A CSV file read by RFC 4180 rules: comma-separated, fields optionally in double quotes ("" inside quotes is a
/// quote), LF or CRLF line ends, the first record a header. Records remember their line for messages.
public struct CSVTable: Sendable {
    public let header: [String]
    /// Each record's fields and the line it starts on (1-based, header is line 1).
    public let records: [(line: Int, fields: [String])]

    public init(contentsOf url: URL) throws {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw DatabaseError(.invalidInput, "cannot read manifest \(url.path)")
        }
        try self.init(data: data, name: url.path)
    }

    public init(data: Data, name: String) throws {
        var bytes = [UInt8](data)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }  // UTF-8 byte-order mark
        var records: [(line: Int, fields: [String])] = []
        var fields: [String] = []
        var field: [UInt8] = []
        var line = 1, recordLine = 1
        var i = 0
        var inQuotes = false
        var atFieldStart = true
        func endField() {
            fields.append(String(decoding: field, as: UTF8.self))
            field.removeAll(keepingCapacity: true)
            atFieldStart = true
        }
        func endRecord() {
            endField()
            if !(fields.count == 1 && fields[0].isEmpty) { records.append((recordLine, fields)) }
            fields.removeAll(keepingCapacity: true)
        }
        while i < bytes.count {
            let c = bytes[i]
            if inQuotes {
                if c == UInt8(ascii: "\"") {
                    if i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "\"") { field.append(c); i += 1 } else { inQuotes = false }
                } else {
                    if c == UInt8(ascii: "\n") { line += 1 }
                    field.append(c)
                }
            } else if c == UInt8(ascii: "\"") && atFieldStart {
                inQuotes = true
                atFieldStart = false
            } else if c == UInt8(ascii: ",") {
                endField()
            } else if c == UInt8(ascii: "\n") || c == UInt8(ascii: "\r") {
                if c == UInt8(ascii: "\r"), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: "\n") { i += 1 }
                endRecord()
                line += 1
                recordLine = line
            } else {
                field.append(c)
                atFieldStart = false
            }
            i += 1
        }
        if inQuotes { throw DatabaseError(.invalidInput, "\(name) line \(recordLine): a quoted field is never closed") }
        if !field.isEmpty || !fields.isEmpty { endRecord() }
        guard let first = records.first else { throw DatabaseError(.invalidInput, "\(name) is empty: expected a header line") }
        header = first.fields.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        self.records = Array(records.dropFirst())
    }

    /// Index of the first header name among `names`.
    public func column(_ names: [String]) -> Int? {
        for name in names { if let i = header.firstIndex(of: name) { return i } }
        return nil
    }
}

/// How patient and eye are read from an image's file name (without extension) when no manifest column says:
/// a regular expression with named groups `patient` and `eye`.
public struct FileNamePattern: @unchecked Sendable {
    /// `<patient>_<eye>[_anything]`, eye as R/L, OD/OS or right/left: `12_left`, `P0042-OD-2019`.
    public static let defaultExpression = #"^(?<patient>.+?)[_-](?<eye>R|L|OD|OS|right|left)(?:[_-].*)?$"#

    public let expression: String
    private let regex: NSRegularExpression

    public init(_ expression: String = FileNamePattern.defaultExpression) throws {
        guard expression.contains("(?<patient>") else {
            throw DatabaseError(.invalidInput, "file-name pattern \(expression.debugDescription) has no (?<patient>…) group")
        }
        do {
            regex = try NSRegularExpression(pattern: expression, options: [.caseInsensitive])
        } catch {
            throw DatabaseError(.invalidInput, "file-name pattern \(expression.debugDescription) is not a regular expression: \(error)")
        }
        self.expression = expression
    }

    /// Patient and eye from a file name stem; nil when the pattern does not match.
    public func match(_ stem: String) -> (patient: String, eye: Laterality?)? {
        let range = NSRange(stem.startIndex..., in: stem)
        guard let m = regex.firstMatch(in: stem, range: range) else { return nil }
        func group(_ name: String) -> String? {
            let r = m.range(withName: name)
            guard r.location != NSNotFound, let sr = Range(r, in: stem) else { return nil }
            return String(stem[sr])
        }
        guard let patient = group("patient"), !patient.isEmpty else { return nil }
        return (patient, group("eye").flatMap(Laterality.init(parsing:)))
    }
}

/// Calendar dates as the archive stores them.
enum CalendarDate {
    /// `YYYY-MM-DD` or DICOM's `YYYYMMDD` → `YYYY-MM-DD`; nil when it is not a real date.
    static func normalise(_ text: String) -> String? {
        let digits = text.trimmingCharacters(in: .whitespaces).filter { $0 != "-" }
        guard digits.count == 8, digits.allSatisfy(\.isASCII), let value = Int(digits) else { return nil }
        let year = value / 10000, month = (value / 100) % 100, day = value % 100
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard trimmed.count == 8 || trimmed.count == 10 else { return nil }
        let monthDays = [31, (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard year >= 1900, (1...12).contains(month), (1...monthDays[month - 1]).contains(day) else { return nil }
        func pad(_ v: Int, _ w: Int) -> String { let s = String(v); return String(repeating: "0", count: w - s.count) + s }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))"
    }
}

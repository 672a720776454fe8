import Foundation

/// A Swift value sent as a statement parameter in PostgreSQL's text format; `nil` text is SQL NULL.
/// Statements cast their parameters (`$1::bigint[]`), so every parameter travels as text with type OID 0.
public protocol SQLEncodable: Sendable {
    var sqlText: String? { get }
}

/// A value read back from a text-format result column.
public protocol SQLDecodable {
    init?(sqlText: String)
}

/// SQL NULL of no particular type.
public struct SQLNull: SQLEncodable {
    public init() {}
    public var sqlText: String? { nil }
}

extension String: SQLEncodable, SQLDecodable {
    public var sqlText: String? { self }
    public init?(sqlText: String) { self = sqlText }
}

extension Int: SQLEncodable, SQLDecodable {
    public var sqlText: String? { String(self) }
    public init?(sqlText: String) { self.init(sqlText, radix: 10) }
}

extension Int64: SQLEncodable, SQLDecodable {
    public var sqlText: String? { String(self) }
    public init?(sqlText: String) { self.init(sqlText, radix: 10) }
}

extension Int32: SQLEncodable, SQLDecodable {
    public var sqlText: String? { String(self) }
    public init?(sqlText: String) { self.init(sqlText, radix: 10) }
}

extension Double: SQLEncodable, SQLDecodable {
    public var sqlText: String? {
        if isNaN { return "NaN" }
        if isInfinite { return self > 0 ? "Infinity" : "-Infinity" }
        return "\(self)"
    }
    public init?(sqlText: String) {
        switch sqlText {
        case "NaN": self = .nan
        case "Infinity": self = .infinity
        case "-Infinity": self = -.infinity
        default: self.init(sqlText)
        }
    }
}

extension Bool: SQLEncodable, SQLDecodable {
    public var sqlText: String? { self ? "t" : "f" }
    public init?(sqlText: String) {
        switch sqlText {
        case "t", "true": self = true
        case "f", "false": self = false
        default: return nil
        }
    }
}

extension Date: SQLEncodable, SQLDecodable {
    /// UTC with microseconds: `2026-11-23 06:50:00.123456+00`.
    public var sqlText: String? { SQLTimestamp.format(self) }
    public init?(sqlText: String) {
        guard let date = SQLTimestamp.parse(sqlText) else { return nil }
        self = date
    }
}

extension Optional: SQLEncodable where Wrapped: SQLEncodable {
    public var sqlText: String? {
        switch self {
        case .none: return nil
        case .some(let value): return value.sqlText
        }
    }
}

extension Array: SQLEncodable where Element: SQLEncodable {
    /// A one-dimensional array literal, every element quoted: `{"a","b\"c",NULL}`.
    public var sqlText: String? { SQLArray.literal(self.lazy.map { $0.sqlText }) }
}

enum SQLArray {
    static func literal<S: Sequence>(_ elements: S) -> String where S.Element == String? {
        var out = "{"
        var first = true
        for element in elements {
            if !first { out.append(",") }
            first = false
            guard let element else { out.append("NULL"); continue }
            out.append("\"")
            for ch in element.unicodeScalars {
                if ch == "\"" || ch == "\\" { out.append("\\") }
                out.unicodeScalars.append(ch)
            }
            out.append("\"")
        }
        out.append("}")
        return out
    }

    /// Parses a one-dimensional array in PostgreSQL's output syntax (`{a,"b c",NULL}`).
    static func parse(_ text: String) -> [String?]? {
        let chars = Array(text.unicodeScalars)
        guard chars.first == "{", chars.last == "}" else { return nil }
        var items: [String?] = []
        var i = 1
        let end = chars.count - 1
        if end == 1 { return [] }
        while i < end {
            if chars[i] == "\"" {
                var s = String.UnicodeScalarView()
                i += 1
                while i < end, chars[i] != "\"" {
                    if chars[i] == "\\", i + 1 < end { i += 1 }
                    s.append(chars[i])
                    i += 1
                }
                i += 1  // closing quote
                items.append(String(s))
            } else {
                var s = String.UnicodeScalarView()
                while i < end, chars[i] != "," { s.append(chars[i]); i += 1 }
                let word = String(s)
                items.append(word == "NULL" ? nil : word)
            }
            if i < end, chars[i] == "," { i += 1 }
        }
        return items
    }
}

/// Timestamps in the text form the server prints with `DateStyle = ISO` and `TimeZone = UTC` (set on every connection).
enum SQLTimestamp {
    static func format(_ date: Date) -> String {
        let total = date.timeIntervalSince1970
        var seconds = time_t(floor(total))
        var micros = Int(((total - floor(total)) * 1_000_000).rounded())
        if micros == 1_000_000 { seconds += 1; micros = 0 }
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        let micro = String(micros)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2)) "
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))."
            + String(repeating: "0", count: 6 - micro.count) + micro + "+00"
    }

    /// Parses `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM]]` (also a bare date `YYYY-MM-DD`, taken as UTC midnight).
    static func parse(_ text: String) -> Date? {
        let u = Array(text.utf8)
        func number(_ from: Int, _ count: Int) -> Int? {
            guard from + count <= u.count else { return nil }
            var v = 0
            for k in from..<(from + count) {
                let c = u[k]
                guard c >= 48, c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            return v
        }
        guard let year = number(0, 4), u.count >= 10, u[4] == 45, let month = number(5, 2), u[7] == 45,
              let day = number(8, 2) else { return nil }
        var hour = 0, minute = 0, second = 0
        var fraction = 0.0
        var offsetSeconds = 0
        var i = 10
        if u.count > 10 {
            guard u.count >= 19, let h = number(11, 2), let m = number(14, 2), let s = number(17, 2) else { return nil }
            hour = h; minute = m; second = s
            i = 19
            if i < u.count, u[i] == 46 {  // '.'
                i += 1
                var scale = 0.1
                while i < u.count, u[i] >= 48, u[i] <= 57 {
                    fraction += Double(u[i] - 48) * scale
                    scale /= 10
                    i += 1
                }
            }
            if i < u.count, u[i] == 43 || u[i] == 45 {  // '+' or '-'
                let sign = u[i] == 43 ? 1 : -1
                guard let oh = number(i + 1, 2) else { return nil }
                var om = 0
                if i + 3 < u.count, u[i + 3] == 58, let m2 = number(i + 4, 2) { om = m2 }
                offsetSeconds = sign * (oh * 3600 + om * 60)
            }
        }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let epoch = timegm(&parts)
        return Date(timeIntervalSince1970: Double(epoch) - Double(offsetSeconds) + fraction)
    }
}

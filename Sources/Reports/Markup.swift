import Foundation

/// HTML escaping for text and attribute values: the only escape function the pages use.
/// Escapes `& < > " '`, so its output is safe both between tags and inside a quoted attribute.
public func htmlEscape(_ text: String) -> String {
    var out = ""
    out.reserveCapacity(text.utf8.count)
    for scalar in text.unicodeScalars {
        switch scalar {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        // NUL and other C0 controls (but tab, newline, carriage return) are parse errors in HTML; drop them.
        case "\u{0}"..."\u{8}", "\u{B}", "\u{C}", "\u{E}"..."\u{1F}", "\u{7F}": continue
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out
}

/// A piece of HTML. Building pages as `Markup` string interpolations means every interpolated `String`
/// (patient ids, image ids, paths, reasons) goes through `htmlEscape`; only other `Markup` is inserted as is.
/// Forgetting to escape is therefore not possible without writing `Markup(trusted:)`.
public struct Markup: ExpressibleByStringInterpolation, Sendable, CustomStringConvertible {
    public private(set) var html: String

    public init(stringLiteral value: String) { html = value }

    /// Markup the caller vouches for (fixed strings of this module only: the stylesheet).
    init(trusted: String) { html = trusted }

    public init(stringInterpolation: StringInterpolation) { html = stringInterpolation.html }

    public var description: String { html }

    public struct StringInterpolation: StringInterpolationProtocol {
        var html = ""

        public init(literalCapacity: Int, interpolationCount: Int) {
            html.reserveCapacity(literalCapacity + 16 * interpolationCount)
        }

        public mutating func appendLiteral(_ literal: String) { html += literal }

        /// Text: always escaped.
        public mutating func appendInterpolation(_ text: String) { html += htmlEscape(text) }

        /// Numbers need no escaping.
        public mutating func appendInterpolation<N: BinaryInteger>(_ number: N) { html += String(number) }

        public mutating func appendInterpolation(_ markup: Markup) { html += markup.html }

        public mutating func appendInterpolation(_ parts: [Markup]) {
            for part in parts { html += part.html }
        }

        public mutating func appendInterpolation(_ markup: Markup?) {
            if let markup { html += markup.html }
        }
    }
}

extension Array where Element == Markup {
    func joined() -> Markup { Markup(trusted: map(\.html).joined()) }
}

/// File and folder names made from patient and image identifiers, which are not ours to trust.
enum SafeName {
    /// Keeps `[A-Za-z0-9._-]`, replaces the rest with `_`, never starts with a dot or holds `..` (no hidden files),
    /// at most 80 characters. When that changed anything, a hash of the original id is appended so that
    /// `a/b` and `a_b` cannot overwrite each other's pages.
    static func make(_ id: String) -> String {
        var kept = ""
        for scalar in id.unicodeScalars {
            let ok = (scalar >= "a" && scalar <= "z") || (scalar >= "A" && scalar <= "Z")
                || (scalar >= "0" && scalar <= "9") || scalar == "-" || scalar == "_" || scalar == "."
            // No ".." anywhere, even where it could not climb: names should not even look like paths.
            let doubleDot = scalar == "." && kept.unicodeScalars.last == "."
            kept.unicodeScalars.append(ok && !doubleDot ? scalar : "_")
        }
        while kept.hasPrefix(".") { kept.removeFirst() }
        if kept.count > 80 { kept = String(kept.prefix(80)) }
        if kept == id && !kept.isEmpty { return kept }
        return (kept.isEmpty ? "id" : kept) + "-" + fnv1a(id)
    }

    /// FNV-1a 64 of the UTF-8 bytes, as 16 hex digits: stable across runs and machines (unlike `hashValue`).
    static func fnv1a(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

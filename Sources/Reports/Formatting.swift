import Foundation

/// How numbers and dates read on the pages and in the exports. Locale-independent on purpose: a report must read
/// the same on every machine, and the exports must parse in any spreadsheet.
enum Format {
    /// A screening run's stored settings (`screening_runs.settings`, written by the pipeline's `InferenceSettings`)
    /// for people: "8 passes (dihedral TTA: …), whole image, HE at the mean of 1×, 0.75×, MA also at 1.5×, the mean of
    /// 2 models' probabilities". Nil for settings without the passes (runs before they were recorded) or not JSON.
    static func inference(settingsJSON: String) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(settingsJSON.utf8)) as? [String: Any],
              let passes = object["augmentation"] as? String else { return nil }
        var parts = [passes]
        if let tiling = object["tiling"] as? String { parts.append(tiling) }
        if let scales = object["channel_scales"] as? [String: [Double]] {
            for (code, factors) in scales.sorted(by: { $0.key < $1.key }) where !factors.isEmpty {
                let text = factors.map { fixed($0, digits: 2).replacingOccurrences(of: #"\.?0+$"#, with: "", options: .regularExpression) + "×" }
                parts.append(factors.count == 1 ? "\(code) also at \(text[0])" : "\(code) at the mean of \(text.joined(separator: ", "))")
            }
        }
        if let models = object["models"] as? Int, models > 1 { parts.append("the mean of \(models) models' probabilities") }
        return parts.joined(separator: ", ")
    }

    /// 1234567 → "1,234,567".
    static func grouped(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, ch) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
            out.append(ch)
        }
        return n < 0 ? "-" + out : out
    }

    /// A 0…1 fraction as a percentage for people: "1.23 %", "<0.01 %" for tiny non-zero shares, "0 %".
    static func percent(_ fraction: Double) -> String {
        guard fraction.isFinite else { return "–" }
        if fraction == 0 { return "0 %" }
        let p = fraction * 100
        if p < 0.01 { return "<0.01 %" }
        return fixed(p, digits: p < 10 ? 2 : 1) + " %"
    }

    static func squareMillimetres(_ mm2: Double?) -> String {
        guard let mm2, mm2.isFinite else { return "–" }
        if mm2 == 0 { return "0" }
        if mm2 < 0.01 { return "<0.01" }
        return fixed(mm2, digits: 2)
    }

    /// Fixed-point with a dot, whatever the C locale says.
    static func fixed(_ value: Double, digits: Int) -> String {
        guard value.isFinite else { return "" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (value.magnitude * scale).rounded()
        guard scaled < 9e15 else { return String(value) }
        let whole = Int(scaled)
        let intPart = whole / Int(scale)
        let frac = whole % Int(scale)
        var text = String(intPart)
        if digits > 0 {
            let f = String(frac)
            text += "." + String(repeating: "0", count: digits - f.count) + f
        }
        return (value < 0 && whole != 0 ? "-" : "") + text
    }

    private static let utc: Calendar = {
        var c = Calendar(identifier: .gregorian)
        c.timeZone = TimeZone(identifier: "UTC")!
        return c
    }()

    /// "2026-11-23 06:49 UTC" for people.
    static func day(_ date: Date) -> String {
        let c = utc.dateComponents([.year, .month, .day, .hour, .minute], from: date)
        return String(
            format: "%04d-%02d-%02d %02d:%02d UTC", c.year ?? 0, c.month ?? 0, c.day ?? 0, c.hour ?? 0, c.minute ?? 0)
    }

    /// "2026-11-23T06:49:12Z" for machines (ISO 8601, FHIR dateTime).
    static func iso8601(_ date: Date) -> String {
        let c = utc.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02dZ", c.year ?? 0, c.month ?? 0, c.day ?? 0, c.hour ?? 0,
            c.minute ?? 0, c.second ?? 0)
    }
}

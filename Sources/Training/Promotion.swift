import Foundation

/// The figures a training run's validation records with a model version (the `metrics` JSON object of
/// `model_versions`), and what promotion compares.
///
///     {"validation": {"set": "/data/val", "images": 27, "fingerprint": "…"},
///      "mAUPR": 0.67, "mIoU": 0.50, "mAP": 0.61, "classes": {"EX": {…}, …},
///      "baseline": {"model": "idrid-c-2025-01", "mAUPR": 0.66, "mIoU": 0.49, "mAP": 0.60}}
///
/// `baseline` holds the figures of the model that was active when the candidate was validated, measured in the
/// same run on the same images, so the comparison is like for like even when the active model's own figures
/// came from another validation set.
public struct ValidationMetrics: Codable, Sendable, Equatable {
    public struct ValidationSet: Codable, Sendable, Equatable {
        public var set: String
        public var images: Int
        /// Identifies the images (names, in order), so figures from different sets are never compared.
        public var fingerprint: String

        public init(set: String, imageNames: [String]) {
            self.set = set
            self.images = imageNames.count
            self.fingerprint = Self.fingerprint(imageNames)
        }

        /// FNV-1a 64 over the sorted names, hex.
        public static func fingerprint(_ names: [String]) -> String {
            var h: UInt64 = 0xcbf2_9ce4_8422_2325
            for name in names.sorted() {
                for byte in name.utf8 + [0] {
                    h ^= UInt64(byte)
                    h = h &* 0x100_0000_01b3
                }
            }
            return String(h, radix: 16)
        }
    }

    public struct Baseline: Codable, Sendable, Equatable {
        public var model: String
        public var figures: [String: Double]
        public init(model: String, figures: [String: Double]) {
            self.model = model
            self.figures = figures
        }
    }

    public var validation: ValidationSet?
    /// "mAUPR" (official 11-point), "mIoU" (official, t = 0.5), "mAP" (exact average precision), per-class keys
    /// such as "AUPR.EX".
    public var figures: [String: Double]
    public var baseline: Baseline?

    public init(validation: ValidationSet? = nil, figures: [String: Double] = [:], baseline: Baseline? = nil) {
        self.validation = validation
        self.figures = figures
        self.baseline = baseline
    }

    // Flat JSON: the figures at the top level beside "validation" and "baseline".
    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        validation = try c.decodeIfPresent(ValidationSet.self, forKey: Key("validation"))
        figures = [:]
        for key in c.allKeys where key.stringValue != "validation" && key.stringValue != "baseline" {
            if let v = try? c.decode(Double.self, forKey: key) { figures[key.stringValue] = v }
        }
        if let b = try? c.nestedContainer(keyedBy: Key.self, forKey: Key("baseline")) {
            var figures: [String: Double] = [:]
            for key in b.allKeys where key.stringValue != "model" {
                if let v = try? b.decode(Double.self, forKey: key) { figures[key.stringValue] = v }
            }
            baseline = Baseline(model: (try? b.decode(String.self, forKey: Key("model"))) ?? "", figures: figures)
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encodeIfPresent(validation, forKey: Key("validation"))
        for (k, v) in figures where v.isFinite { try c.encode(v, forKey: Key(k)) }
        if let baseline {
            var b = c.nestedContainer(keyedBy: Key.self, forKey: Key("baseline"))
            try b.encode(baseline.model, forKey: Key("model"))
            for (k, v) in baseline.figures where v.isFinite { try b.encode(v, forKey: Key(k)) }
        }
    }

    public var json: String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return (try? e.encode(self)).flatMap { String(data: $0, encoding: .utf8) } ?? "{}"
    }

    /// Parses a registry `metrics` object; an empty or foreign object gives empty figures, never an error.
    public static func parse(_ json: String) -> ValidationMetrics {
        (try? JSONDecoder().decode(ValidationMetrics.self, from: Data(json.utf8))) ?? ValidationMetrics()
    }
}

/// Whether a candidate model version may become the active one.
public struct PromotionDecision: Sendable, Equatable {
    public var promote: Bool
    /// Why, in words for the log and the CLI.
    public var reason: String
}

public enum Promotion {
    /// The figure promotion compares by default: the exact mean average precision over the four classes. Not the
    /// official mAUPR, although papers quote it: its 11-threshold rule credits a class with no prediction above 0.1
    /// about 0.5, so a model that detects nothing of HE, SE and MA outscores one that finds them (our 0.3.0 scored
    /// mAUPR 0.436 with mAP 0.104; 0.4.0, which finds them, mAUPR 0.284 with mAP 0.278). `--metric mAUPR` asks for it.
    public static let defaultMetric = "mAP"

    /// Promote only a model that is strictly better than the active one on `metric`, measured on the same
    /// validation images; `force` overrides a refusal (and says so).
    public static func decide(candidate: (name: String, metrics: ValidationMetrics),
                              active: (name: String, metrics: ValidationMetrics)?,
                              metric: String = defaultMetric, force: Bool = false) -> PromotionDecision {
        func refuse(_ why: String) -> PromotionDecision {
            force ? PromotionDecision(promote: true, reason: "forced: \(why)") : PromotionDecision(promote: false, reason: why + " (use --force to promote anyway)")
        }
        guard let active else { return PromotionDecision(promote: true, reason: "no model is active") }
        if active.name == candidate.name { return PromotionDecision(promote: false, reason: "\(candidate.name) is already active") }
        guard let mine = candidate.metrics.figures[metric] else {
            return refuse("\(candidate.name) has no validation \(metric)")
        }
        let theirs: Double
        if let b = candidate.metrics.baseline, b.model == active.name, let v = b.figures[metric] {
            theirs = v
        } else if let v = active.metrics.figures[metric], let a = active.metrics.validation, let c = candidate.metrics.validation,
                  a.fingerprint == c.fingerprint {
            theirs = v
        } else {
            return refuse("\(active.name) (active) has no \(metric) on the validation images of \(candidate.name)")
        }
        let figures = String(format: "%@ %.4f vs %.4f for %@ (active)", metric, mine, theirs, active.name)
        guard mine > theirs else { return refuse("\(candidate.name) is not better: \(figures)") }
        return PromotionDecision(promote: true, reason: "\(candidate.name) is better: \(figures)")
    }
}

import Foundation

/// `metadata.json`, written beside each of our weight files (in the spirit of a MONAI bundle's metadata): what the
/// model is, what it expects as input, what its outputs mean, how it was trained and how well it did.
public struct ModelCard: Codable, Sendable, Equatable {
    public static let fileName = "metadata.json"

    public var name: String
    public var version: String
    public var architecture: ModelArchitecture
    /// Output channels in order (sigmoid per channel, no background channel).
    public var classes: [String]
    /// Input normalisation (`Normalisation`, this module's one definition).
    public var normalisation: Normalisation
    /// Input scale (`InputScale`, this module's one definition).
    public var inputScale: InputScale
    /// Probability above which a pixel counts as the lesion.
    public var threshold: Double
    public var trainingData: String
    /// e.g. "mIoU", "mAUPR", "IoU.EX", … on the named evaluation set.
    public var metrics: [String: Double]
    public var created: Date
    /// Version → what changed.
    public var changelog: [String: String]
    /// The weight file this card describes (set by `WeightLoader.save`).
    public var weightsFile: String?
    /// Classes read at other input scales (class name → factors): inference runs the network again on the input
    /// resized by each factor other than 1. One factor (written as a number, e.g. "MA": 1.5, "SE": 0.75): the class
    /// is that pass's. Several (a list, e.g. "HE": [1, 0.75]): the mean of the class's probabilities at those scales,
    /// 1 being the model's own pass. Empty: one scale.
    public var channelScales: [String: [Double]] = [:]
    /// Other weight files in the bundle's folder (file names) whose sigmoid probabilities inference averages with this
    /// card's weights, with equal weight (`SegmentationModel.ensemble`); each member's architecture comes from its own
    /// file. The card's normalisation, input scale, threshold and channel_scales hold for every member. Empty: one model.
    public var ensemble: [String] = []
    /// How the weights were trained: command, time, machine (nil for cards written before it was recorded).
    public var training: TrainingRecord?
    /// How each of the `ensemble`'s other networks was trained (weight file name → record), as `training` is for
    /// this card's own weights; members without a record are absent.
    public var ensembleTraining: [String: TrainingRecord] = [:]
    /// The cross-validation that chose the recipe (`train --crossval`).
    public var crossValidation: CrossValidationRecord?
    /// Figures measured after training, by evaluation (e.g. "0.9.0 on IDRiD_21-24 (unseen), mirroring TTA") →
    /// figure ("mAUPR", "AUPR.EX", "IoU.OD", …) → value. Kept through every rewrite of the card (`model crossval`).
    public var evaluation: [String: [String: Double]] = [:]

    /// `channelScales` by output channel index (names not among `classes` are ignored).
    public var channelScaleIndices: [Int: [Double]] {
        var out: [Int: [Double]] = [:]
        for (name, factors) in channelScales {
            if let k = classes.firstIndex(where: { $0.uppercased() == name.uppercased() }) { out[k] = factors }
        }
        return out
    }

    /// A class's reading in words: "1.5×", or "mean of 1×, 0.75×".
    public static func readingText(_ factors: [Double]) -> String {
        factors.count == 1 ? "\(factors[0])×" : "mean of " + factors.map { "\($0)×" }.joined(separator: ", ")
    }

    /// One class's `channel_scales` entry: a number (one factor) or a list of them (the mean over those scales).
    private struct Factors: Codable {
        var values: [Double]
        init(_ values: [Double]) { self.values = values }
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let one = try? c.decode(Double.self) { values = [one] } else { values = try c.decode([Double].self) }
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            if values.count == 1 { try c.encode(values[0]) } else { try c.encode(values) }
        }
    }

    /// The lesion classes, in channel order, of every model.
    public static let lesionClasses = ["EX", "HE", "SE", "MA"]
    /// Name of the optional fifth output channel: the optic disc (not a lesion; issue #16).
    public static let discClass = "OD"
    /// Name of the optional sixth output channel: the retinal vessels (after the disc; issue #16).
    public static let vesselClass = "VESSELS"

    /// Output channel names of a head with `numClasses` channels: the four lesions, then the disc for a fifth, the
    /// vessels for a sixth.
    public static func classNames(numClasses: Int) -> [String] {
        switch numClasses {
        case 4: lesionClasses
        case 5: lesionClasses + [discClass]
        case 6: lesionClasses + [discClass, vesselClass]
        default: (0..<numClasses).map { $0 < 4 ? lesionClasses[$0] : "class\($0)" }
        }
    }

    /// Whether the model has the optic-disc channel (channel 4, after the lesions).
    public var hasDiscChannel: Bool { classes.count > 4 && classes[4].uppercased() == Self.discClass }

    /// `classes` nil: `classNames(numClasses:)` of the architecture.
    public init(name: String, version: String, architecture: ModelArchitecture,
                classes: [String]? = nil, normalisation: Normalisation = .idrid,
                inputScale: InputScale = .idrid, threshold: Double = 0.5, trainingData: String = "",
                metrics: [String: Double] = [:], created: Date = Date(), changelog: [String: String] = [:],
                weightsFile: String? = nil, channelScales: [String: [Double]] = [:]) {
        self.name = name
        self.version = version
        self.architecture = architecture
        self.classes = classes ?? Self.classNames(numClasses: architecture.numClasses)
        self.normalisation = normalisation
        self.inputScale = inputScale
        self.threshold = threshold
        self.trainingData = trainingData
        self.metrics = metrics
        self.created = created
        self.changelog = changelog
        self.weightsFile = weightsFile
        self.channelScales = channelScales
    }

    enum CodingKeys: String, CodingKey {
        case name, version, architecture, classes, normalisation, threshold, metrics, created, changelog
        case inputScale = "input_scale", trainingData = "training_data", weightsFile = "weights_file"
        case channelScales = "channel_scales", training, crossValidation = "cross_validation", evaluation, ensemble
        case ensembleTraining = "ensemble_training"
    }

    // `created` is always an ISO-8601 string, whatever date strategy the coder uses, so the JSON reads the same
    // in the database, in a report, and here.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        version = try c.decode(String.self, forKey: .version)
        architecture = try c.decode(ModelArchitecture.self, forKey: .architecture)
        classes = try c.decodeIfPresent([String].self, forKey: .classes) ?? Self.classNames(numClasses: architecture.numClasses)
        normalisation = try c.decode(Normalisation.self, forKey: .normalisation)
        inputScale = try c.decode(InputScale.self, forKey: .inputScale)
        threshold = try c.decodeIfPresent(Double.self, forKey: .threshold) ?? 0.5
        trainingData = try c.decodeIfPresent(String.self, forKey: .trainingData) ?? ""
        metrics = try c.decodeIfPresent([String: Double].self, forKey: .metrics) ?? [:]
        let text = try c.decode(String.self, forKey: .created)
        guard let date = Self.dateFormat.date(from: text) else {
            throw DecodingError.dataCorruptedError(forKey: .created, in: c, debugDescription: "'\(text)' is not an ISO-8601 date")
        }
        created = date
        changelog = try c.decodeIfPresent([String: String].self, forKey: .changelog) ?? [:]
        weightsFile = try c.decodeIfPresent(String.self, forKey: .weightsFile)
        channelScales = try c.decodeIfPresent([String: Factors].self, forKey: .channelScales)?.mapValues(\.values) ?? [:]
        training = try c.decodeIfPresent(TrainingRecord.self, forKey: .training)
        // Cards of 0.8.0 and before held a sentence here (why no cross-validation was run): not a record.
        crossValidation = (try? c.decodeIfPresent(String.self, forKey: .crossValidation)) != nil
            ? nil : try c.decodeIfPresent(CrossValidationRecord.self, forKey: .crossValidation)
        evaluation = try c.decodeIfPresent([String: [String: Double]].self, forKey: .evaluation) ?? [:]
        ensemble = try c.decodeIfPresent([String].self, forKey: .ensemble) ?? []
        if let bad = ensemble.first(where: { $0.isEmpty || $0.contains("/") || $0 == "." || $0 == ".." || $0 == weightsFile }) {
            throw DecodingError.dataCorruptedError(forKey: .ensemble, in: c, debugDescription: "ensemble: '\(bad)' is not the name of another weight file in the model's folder")
        }
        ensembleTraining = try c.decodeIfPresent([String: TrainingRecord].self, forKey: .ensembleTraining) ?? [:]
        if let bad = ensembleTraining.keys.sorted().first(where: { !ensemble.contains($0) }) {
            throw DecodingError.dataCorruptedError(forKey: .ensembleTraining, in: c, debugDescription: "ensemble_training: '\(bad)' is not one of the ensemble's weight files (\(ensemble.joined(separator: ", ")))")
        }
        if let bad = channelScales.first(where: { $0.value.isEmpty || $0.value.contains { !($0 > 0 && $0 <= 4) } || Set($0.value).count < $0.value.count }) {
            throw DecodingError.dataCorruptedError(forKey: .channelScales, in: c, debugDescription: "channel_scales: \(bad.key) \(bad.value) is not a factor in (0, 4] or a list of different ones")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(version, forKey: .version)
        try c.encode(architecture, forKey: .architecture)
        try c.encode(classes, forKey: .classes)
        try c.encode(normalisation, forKey: .normalisation)
        try c.encode(inputScale, forKey: .inputScale)
        try c.encode(threshold, forKey: .threshold)
        try c.encode(trainingData, forKey: .trainingData)
        try c.encode(metrics, forKey: .metrics)
        try c.encode(Self.dateFormat.string(from: created), forKey: .created)
        try c.encode(changelog, forKey: .changelog)
        try c.encodeIfPresent(weightsFile, forKey: .weightsFile)
        if !channelScales.isEmpty { try c.encode(channelScales.mapValues(Factors.init), forKey: .channelScales) }
        try c.encodeIfPresent(training, forKey: .training)
        try c.encodeIfPresent(crossValidation, forKey: .crossValidation)
        if !evaluation.isEmpty { try c.encode(evaluation, forKey: .evaluation) }
        if !ensemble.isEmpty { try c.encode(ensemble, forKey: .ensemble) }
        if !ensembleTraining.isEmpty { try c.encode(ensembleTraining, forKey: .ensembleTraining) }
    }

    /// Whole seconds, UTC. A new formatter per use: cards are read rarely, and this avoids sharing one across threads.
    private static var dateFormat: ISO8601DateFormatter {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f
    }

    public func encoded() -> Data {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? e.encode(self)) ?? Data()
    }

    public static func decode(_ data: Data, file: String = fileName) throws(CheckpointError) -> ModelCard {
        do { return try JSONDecoder().decode(ModelCard.self, from: data) } catch {
            throw .malformed(file: file, reason: "not a model card: \(Self.describe(error))")
        }
    }

    public static func read(_ url: URL) throws(CheckpointError) -> ModelCard {
        try decode(try readFile(url, mapped: false), file: url.path)
    }

    /// Writes atomically (temporary file, then rename).
    public func write(to url: URL) throws(CheckpointError) {
        do { try encoded().write(to: url, options: .atomic) } catch {
            throw .unreadable(file: url.path, reason: "cannot write: \(error.localizedDescription)")
        }
    }

    /// The card in `metadata.json` beside `weights`, if there is one and it describes that file.
    public static func beside(_ weights: URL) throws(CheckpointError) -> ModelCard? {
        let url = weights.deletingLastPathComponent().appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let card = try read(url)
        if let w = card.weightsFile, w != weights.lastPathComponent { return nil }
        return card
    }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case let DecodingError.keyNotFound(key, ctx):
            "missing '\((ctx.codingPath + [key]).map(\.stringValue).joined(separator: "."))'"
        case let DecodingError.typeMismatch(_, ctx), let DecodingError.valueNotFound(_, ctx), let DecodingError.dataCorrupted(ctx):
            "\(ctx.codingPath.map(\.stringValue).joined(separator: ".")): \(ctx.debugDescription)"
        default: "\(error)"
        }
    }
}

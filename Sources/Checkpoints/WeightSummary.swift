import Foundation

/// What `fundus-screen model inspect` shows about a weight file: format, architecture, sizes, classes, meta.
public struct WeightSummary: Codable, Sendable, Equatable {
    public struct StageSummary: Codable, Sendable, Equatable {
        public var modules: Int
        public var block: String
        public var blocks: [Int]
        public var widths: [Int]
    }

    public var file: String
    public var format: String
    public var architecture: String
    public var variant: String
    /// "one-step down, cascade up", or "3×3 stride-2 convs down, 1×1 conv + bilinear up" for plain HRNet.
    public var fusePaths: String
    public var stages: [StageSummary]
    public var m2mrf: ModelArchitecture.M2MRFSettings?
    public var headChannels: Int
    public var numClasses: Int
    /// Learned values (BN running statistics and counters excluded).
    public var parameters: Int
    public var parameterTensors: Int
    /// BN running_mean / running_var / num_batches_tracked values.
    public var buffers: Int
    public var bufferTensors: Int
    /// Tensor count per element type, e.g. F32: 420, I64: 106.
    public var dtypes: [String: Int]
    public var classes: [String]
    public var meta: [String: String]
    public var card: ModelCard?

    public init(_ w: LoadedWeights, format: WeightFormat) {
        let a = w.architecture
        file = w.source.path
        self.format = format.rawValue
        architecture = a.displayName
        variant = a.variant.rawValue
        fusePaths = a.variant == .plain ? "3×3 stride-2 convs down, 1×1 conv + bilinear up"
            : "\(a.variant.cascadeDown ? "cascade" : "one-step") M2MRF down, \(a.variant.cascadeUp ? "cascade" : "one-step") M2MRF up"
        stages = a.stages.map { StageSummary(modules: $0.modules, block: $0.block.rawValue, blocks: $0.blocks, widths: $0.channels) }
        m2mrf = a.variant.usesM2MRF ? a.m2mrf : nil
        headChannels = a.headChannels
        numClasses = a.numClasses
        var p = 0, pt = 0, b = 0, bt = 0
        var types: [String: Int] = [:]
        for name in w.tensors.names {
            guard let t = w.tensors[name] else { continue }
            types[t.dtype.rawValue, default: 0] += 1
            if Self.isBuffer(name) { b += t.count; bt += 1 } else { p += t.count; pt += 1 }
        }
        parameters = p; parameterTensors = pt; buffers = b; bufferTensors = bt
        dtypes = types
        classes = w.classes
        meta = w.meta
        card = w.card
    }

    /// BN running statistics and batch counters are state, not learned parameters.
    public static func isBuffer(_ name: String) -> Bool {
        name.hasSuffix(".running_mean") || name.hasSuffix(".running_var") || name.hasSuffix(".num_batches_tracked")
    }

    /// Aligned text for a terminal.
    public var text: String {
        func grouped(_ n: Int) -> String {
            let s = String(n)
            var out = ""
            for (i, c) in s.reversed().enumerated() { if i > 0 && i % 3 == 0 { out.append(",") }; out.append(c) }
            return String(out.reversed())
        }
        func millions(_ n: Int) -> String { String(format: "%.2f M", Double(n) / 1e6) }
        var lines: [String] = []
        func row(_ k: String, _ v: String) {
            let line = k.padding(toLength: max(14, k.count + 1), withPad: " ", startingAt: 0) + v
            lines.append(String(line.reversed().drop(while: { $0 == " " }).reversed()))
        }
        row("file", file)
        row("format", format)
        row("architecture", "\(architecture) (variant \(variant): \(fusePaths))")
        for (i, s) in stages.enumerated() {
            row("  stage \(i + 1)", "\(s.modules) module\(s.modules == 1 ? "" : "s"), \(s.block), blocks \(s.blocks), widths \(s.widths)")
        }
        if let m = m2mrf {
            row("  M2MRF", "patch \(m.patchSize)×\(m.patchSize), encode channels rate \(m.encodeChannelsRate), fc channels rate \(m.fcChannelsRate)")
        }
        row("  head", "FCN, \(headChannels) channels → \(numClasses) classes (sigmoid)")
        row("parameters", "\(grouped(parameters)) (\(millions(parameters))) in \(parameterTensors) tensors")
        row("buffers", "\(grouped(buffers)) BN running statistics and counters in \(bufferTensors) tensors")
        row("dtypes", dtypes.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))
        row("classes", classes.joined(separator: ", "))
        if let c = card {
            row("model card", "\(c.name) \(c.version), created \(ISO8601DateFormatter().string(from: c.created))")
            if !c.trainingData.isEmpty { row("  trained on", c.trainingData) }
            row("  input", "\(c.inputScale.longEdge)×\(c.inputScale.shortEdge)\(c.inputScale.keepRatio ? " keep-ratio" : ""), \(c.normalisation.channelOrder) mean \(c.normalisation.mean) std \(c.normalisation.std)")
            row("  threshold", "\(c.threshold)")
            if !c.channelScales.isEmpty {
                row("  scales", c.channelScales.sorted { $0.key < $1.key }.map { "\($0.key) \(ModelCard.readingText($0.value))" }.joined(separator: ", "))
            }
            if !c.ensemble.isEmpty {
                row("  ensemble", "the mean of this file's probabilities and " + c.ensemble.joined(separator: ", ") + "'s (beside it)")
            }
            for (k, v) in c.metrics.sorted(by: { $0.key < $1.key }) { row("  \(k)", String(format: "%.4g", v)) }
            if let t = c.training {
                row("  training", "\(t.iterations) iterations\(t.seconds.map { " in " + Self.duration($0) } ?? "") on \(t.machine)")
                row("  command", t.command)
            }
            for (file, t) in c.ensembleTraining.sorted(by: { $0.key < $1.key }) {
                row("  training", "\(file): \(t.iterations) iterations\(t.seconds.map { " in " + Self.duration($0) } ?? "") on \(t.machine)")
                row("  command", t.command)
            }
            if let cv = c.crossValidation {
                func figure(_ key: String) -> String {
                    guard let s = cv.statistics[key], let m = s.mean else { return "\(key) –" }
                    return "\(key) " + String(format: "%.3f", m) + (s.standardDeviation.map { String(format: " ± %.3f", $0) } ?? "")
                }
                let done = cv.unfinishedFolds.map { "\(cv.folds - $0.count) of \(cv.folds) folds (unfinished: \($0.map(String.init).joined(separator: ", ")))" }
                    ?? "\(cv.folds) folds"
                row("  cross-validation", "\(done) over \(cv.images) images (\(cv.augmentation)): "
                    + ["mAUPR", "mAP", "mIoU"].map(figure).joined(separator: ", "))
                row("  per class AUPR", ["EX", "HE", "SE", "MA"].map { figure("AUPR.\($0)") }.joined(separator: ", "))
                row("  recipe", cv.differences.isEmpty ? "the cross-validated one, trained on all the images" : "differs: " + cv.differences.joined(separator: "; "))
            }
            for (name, figures) in c.evaluation.sorted(by: { $0.key < $1.key }) {
                let shown = ["mAUPR", "mAP", "mIoU", "IoU.OD"].compactMap { k in figures[k].map { "\(k) " + String(format: "%.3f", $0) } }
                row("  evaluation", "\(name): " + (shown.isEmpty ? "\(figures.count) figures" : shown.joined(separator: ", ")))
            }
        }
        if !meta.isEmpty {
            row("meta", "")
            for (k, v) in meta.sorted(by: { $0.key < $1.key }) {
                let shown = v.count > 200 ? String(v.prefix(200)) + "… (\(v.count) characters)" : v
                row("  \(k)", shown.replacingOccurrences(of: "\n", with: " "))
            }
        }
        return lines.joined(separator: "\n")
    }

    /// "42 s", "17 min", "2.3 h".
    static func duration(_ seconds: Double) -> String {
        seconds < 120 ? String(format: "%.0f s", seconds) : seconds < 7200 ? String(format: "%.0f min", seconds / 60) : String(format: "%.1f h", seconds / 3600)
    }

    public var json: String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? e.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

extension WeightLoader {
    /// Loads a file and describes it (what `model inspect` prints).
    public static func summary(_ url: URL) throws(CheckpointError) -> WeightSummary {
        let w = try load(url)
        return WeightSummary(w, format: try sniff(w.source))
    }
}

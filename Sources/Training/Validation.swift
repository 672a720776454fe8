import Checkpoints
import Foundation
import Imaging
import Lesions
import Logging
import Network

/// Validation as the screening sees images and as the official code scores them: each photograph is prepared like a
/// nightly job (field of view, square crop, model scale, normalisation), the network's probabilities are mapped back
/// to the original pixels (8-bit, as the screening writes them), and `SegmentationEvaluation` counts them against the
/// truth masks over every pixel of the original image — the official mAUPR/mIoU plus exact AP. One image at a
/// time: no probability map of the whole set is ever held.
public struct Validator: Sendable {
    public let dataset: LesionDataset
    public let normalisation: Normalisation
    public let scale: InputScale
    /// Mirroring test-time augmentation: the passes' sigmoid probabilities are averaged at every photograph pixel,
    /// after each pass's logits were resized to the photograph (the official sigmoid point; see
    /// `CropTransform.meanSigmoidToOriginal`). `.none` is the official single pass.
    public var augmentation: TestTimeAugmentation = .none
    /// When set, one picture per image is written here, `<image>_truth-vs-model.png`: on the left the photograph with
    /// the truth masks, on the right with the model's masks at 0.5 (what the scores threshold), each class in its
    /// overlay colour and the true optic disc outlined on both; at most `overlayLongSide` pixels a side each.
    public var overlayDirectory: URL?
    public var overlayLongSide = 1200
    /// Put the counts of pixels at each score, per class and split by truth, into the report (`scoreCounts`): to
    /// study a calibration of the scores without running the network again.
    public var recordScoreCounts = false
    let logger: Logger

    public init(_ dataset: LesionDataset, normalisation: Normalisation, scale: InputScale = .idrid, logger: Logger) throws(TrainingError) {
        let partial = dataset.samples.first { !Set(LesionClass.allCases).isSubset(of: $0.annotated) }
        let missing = Set(LesionClass.allCases).subtracting(partial?.annotated ?? dataset.annotated)
        guard missing.isEmpty else {
            throw TrainingError(.dataset, "validation set \(dataset.source)\(partial.map { ": \($0.name)" } ?? "") does not annotate \(missing.sorted().map(\.code).joined(separator: ", ")); validation needs all four classes")
        }
        self.dataset = dataset
        self.normalisation = normalisation
        self.scale = scale
        self.logger = logger
    }

    /// Names of the validation images (what the metrics' fingerprint identifies).
    public var imageNames: [String] { dataset.samples.map(\.name) }

    public func evaluate(_ model: some TrainableModel, label: String = "model") throws -> EvaluationReport {
        try evaluateWithSinglePass(model, label: label).report
    }

    /// `evaluate`, and, when the augmentation's first pass is the plain image and there are more, the figures of that
    /// pass alone (the official single pass) from the same inference: what the augmentation adds, at no extra cost.
    public func evaluateWithSinglePass(_ model: some TrainableModel, label: String = "model") throws
        -> (report: EvaluationReport, singlePass: EvaluationReport?) {
        let alsoSingle = augmentation.passes > 1 && augmentation.mirrors[0] == .none
        var single = SegmentationEvaluation(operatingThreshold: 0.5)
        var evaluation = SegmentationEvaluation(operatingThreshold: 0.5)
        var disc = DiscOverlap()
        var options = PreparationOptions()
        options.modelScale = scale
        let started = Date()
        logger.info("validation: \(label) on \(dataset.samples.count) images, \(augmentation.description) per image")
        for (i, sample) in dataset.samples.enumerated() {
            let prepared = try Preparation.prepare(contentsOf: sample.image, options: options)
            guard let input = prepared.input, let transform = prepared.transform else {
                logger.warning("validation: \(sample.name) is ungradable (\(prepared.analysis.reasons.map(\.rawValue).joined(separator: ", "))); left out")
                continue
            }
            let h = input.height, w = input.width, plane = h * w
            // The one inference of validation: each pass's logits at the input size, in the input's orientation.
            let passes = try augmentation.passes(normalisation.tensor(input), height: h, width: w) { view, vh, vw in
                try model.logits(view, height: vh, width: vw)
            }
            let channels = passes[0].count / plane
            let ow = prepared.decoded.originalWidth, oh = prepared.decoded.originalHeight
            func scorePlane(_ p: Image) throws -> ScorePlane { try ScorePlane(width: p.width, height: p.height, probabilityBytes: p.bytes) }
            func probability(channel k: Int, of passes: [[Float]]) -> Image {
                transform.meanSigmoidToOriginal(channel: k, of: passes, width: w, height: h)
            }
            var scores: [LesionClass: ScorePlane] = [:], predicted: [LesionClass: Image] = [:]
            for lesion in LesionClass.allCases {
                let p = probability(channel: lesion.rawValue, of: passes)
                scores[lesion] = try scorePlane(p)
                if overlayDirectory != nil { predicted[lesion] = Overlay.mask(probability: p, threshold: 0.5) }
            }
            let annotatedTruth = try DatasetSamples.truthMasks(sample, width: ow, height: oh)
            let truth = try OfficialM2MRF.overwrittenTruth(annotatedTruth)
            try evaluation.add(imageID: sample.name, scores: scores, truth: truth)
            if alsoSingle {
                var plain: [LesionClass: ScorePlane] = [:]
                for lesion in LesionClass.allCases { plain[lesion] = try scorePlane(probability(channel: lesion.rawValue, of: [passes[0]])) }
                try single.add(imageID: sample.name, scores: plain, truth: truth)
            }
            // The optic disc, beside the lesions: for a model with the disc channel, on images with a disc mask (its
            // mask read only when it is scored or drawn).
            let truthDisc = channels > OpticDisc.channel || overlayDirectory != nil
                ? try DatasetSamples.auxiliaryMask(sample.discMask, of: sample, width: ow, height: oh) : nil
            if channels > OpticDisc.channel, let truthDisc {
                try disc.add(predicted: scorePlane(probability(channel: OpticDisc.channel, of: passes)), truth: truthDisc)
            }
            if let overlayDirectory {
                let photo = prepared.decoded.scale == 1 ? prepared.decoded.image
                    : try ImageCodec.decode(contentsOf: sample.image, mode: .rgb).image
                let picture = Self.comparison(photo: photo, truth: annotatedTruth, predicted: predicted, disc: truthDisc,
                                              maxLongSide: overlayLongSide)
                let file = overlayDirectory.appendingPathComponent("\(sample.name)_truth-vs-model.png")
                do {
                    try MaskFiles.createFolder(overlayDirectory)
                    try MaskFiles.writeImage(picture, to: file)
                } catch {
                    throw TrainingError(.configuration, "validation picture of \(sample.name): cannot write \(file.path): \(error)")
                }
            }
            logger.info("validation: \(label) \(i + 1)/\(dataset.samples.count) \(sample.name) (\(String(format: "%.0f", Date().timeIntervalSince(started))) s)")
        }
        var report = evaluation.report()
        if disc.images > 0 { report.disc = disc }
        if recordScoreCounts {
            report.scoreCounts = Dictionary(uniqueKeysWithValues: LesionClass.allCases.map { ($0.code, evaluation.scoreCounts($0)) })
        }
        return (report, alsoSingle ? single.report() : nil)
    }

    /// The photograph with the truth (left) and with the model's masks (right), classes in their overlay colours
    /// (EX, HE, SE, MA drawn in that order), the true disc outlined on both.
    public static func comparison(photo: Image, truth: [LesionClass: [UInt8]], predicted: [LesionClass: Image],
                                  disc: [UInt8]?, maxLongSide: Int) -> Image {
        let w = photo.width, h = photo.height
        func layers(_ masks: [LesionClass: Image]) -> [OverlayLayer] {
            var layers = LesionClass.allCases.compactMap { c in
                masks[c].map { OverlayLayer(code: c.code, colour: RGBColour(c.colour), mask: $0) }
            }
            if let disc {
                layers.append(OverlayLayer(code: OpticDisc.code, colour: RGBColour(OpticDisc.colour),
                                           mask: Image(width: w, height: h, channels: 1, pixels: disc), style: .outline))
            }
            return layers
        }
        let left = Overlay.draw(on: photo, layers: layers(truth.mapValues { Image(width: w, height: h, channels: 1, pixels: $0) }),
                                maxLongSide: maxLongSide)
        let right = Overlay.draw(on: photo, layers: layers(predicted), maxLongSide: maxLongSide)
        return Overlay.sideBySide(left, right)
    }

    /// The registry's figures from a report: official means, exact mAP, presence AUC, and per class.
    public static func figures(_ report: EvaluationReport) -> [String: Double] {
        var f: [String: Double] = [
            "mAUPR": report.official.mAUPR, "mIoU": report.official.mIoU, "mF1": report.official.mF1,
            "mPPV": report.official.mPPV, "mS": report.official.mS,
        ]
        if let v = report.meanAveragePrecision { f["mAP"] = v }
        if let v = report.meanPresenceAUC { f["mPresenceAUC"] = v }
        for c in report.classes {
            f["AUPR." + c.code] = c.official.aupr
            if let v = c.official.iou { f["IoU." + c.code] = v }
            if let v = c.averagePrecision { f["AP." + c.code] = v }
        }
        // The disc is reported beside the lesions, never in their means.
        if let d = report.disc {
            if let v = d.iou { f["IoU." + OpticDisc.code] = v }
            if let v = d.dice { f["Dice." + OpticDisc.code] = v }
        }
        return f
    }
}

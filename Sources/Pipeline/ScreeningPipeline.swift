import Checkpoints
import Foundation
import Imaging
import Lesions
import Logging
import Network
import Store
import Tensor

// What happens to one image, top to bottom:
//   claim (Store) → decode, field of view, crop, resize (Imaging) → M2MRF-HRNetV2 (Network)
//   → per class: probabilities back to original pixels, lesions and statistics (Lesions), masks written atomically
//   → findings and job completion in one transaction (Store).

/// How a screening run works on each image.
public struct ScreeningOptions: Sendable {
    /// Masks go to `<masksDirectory>/<patient>/<image stem>_<CLS>.png`, overlays beside them.
    public var masksDirectory: URL
    /// Also write 8-bit probability maps `<stem>_<CLS>_prob.png`.
    public var saveProbabilities = false
    /// Write `<stem>_overlay.jpg` (lesions in their class colours over the photograph, long side ≤ 1600 px).
    public var writeOverlays = true
    public var threshold: Float = 0.5
    /// Lesions smaller than this (pixels of the original image) are dropped as specks.
    public var minimumLesionArea = 1
    public var preparation = PreparationOptions()
    public var normalisation = Normalisation.idrid
    public var rule = ScreeningRule.lesionPresenceV1
    /// Whole image as the official test mode, or overlapping tiles blended with Gaussian weights (for a memory
    /// budget or inputs larger than the model scale). `overlap` is a fraction of the tile side.
    public var tiling: Tiling = .whole
    /// Mirroring test-time augmentation (each pass whole or tiled as `tiling` says); the passes' sigmoid
    /// probabilities are averaged at every photograph pixel, where the official inference takes its sigmoid.
    public var augmentation: TestTimeAugmentation = .none

    public enum Tiling: Sendable, Equatable {
        case whole
        case tiles(size: Int, overlap: Double)
    }

    public init(masksDirectory: URL) { self.masksDirectory = masksDirectory }
}

/// A claimed job and the archive row of its image.
public struct ScreeningJob: Sendable, CustomStringConvertible {
    public let job: Job
    public let image: ArchiveImage
    public var description: String { "job \(job.id) (image \(image.id) \(image.path))" }
}

/// A photograph after the prepare stage.
public struct PreparedImage: Sendable {
    public let photograph: PreparedPhotograph?
    /// Normalised network input [1, 3, H, W]; nil when the image is ungradable.
    public let input: [Float]?
    public let inputSize: (width: Int, height: Int)
    public let ungradableReasons: [String]
}

/// Logits [4, H, W] at the network input size (before the sigmoid), one array per test-time-augmentation pass
/// (each in the input's orientation; one without TTA), with the photograph they belong to.
public struct InferredImage: Sendable {
    public let prepared: PreparedImage
    public let passes: [[Float]]
}

/// The screening stages for one model.
public struct ScreeningStages: Sendable {
    public let model: SegmentationModel
    public let modelVersionID: Int64
    /// The screening run the results belong to (`screening_results.screening_run_id`: what `report --run` selects by
    /// and where the run's inference settings are); nil outside a recorded run.
    public let screeningRunID: Int64?
    public let options: ScreeningOptions
    public let logger: Logger
    /// The finish stage's connection (the finish stage is serial).
    let finishQueue: JobQueue
    let clock: StageClock

    public init(model: SegmentationModel, modelVersionID: Int64, screeningRunID: Int64? = nil, options: ScreeningOptions,
                finishConnection: Connection, worker: String, clock: StageClock, logger: Logger) {
        self.model = model
        self.modelVersionID = modelVersionID
        self.screeningRunID = screeningRunID
        self.options = options
        self.logger = logger
        self.finishQueue = JobQueue(connection: finishConnection, worker: worker, logger: logger)
        self.clock = clock
    }

    public var stages: Stages<ScreeningJob, PreparedImage, InferredImage> {
        Stages(prepare: { job throws(StageError) in try prepare(job) },
               infer: { p throws(StageError) in try infer(p) },
               finish: { job, r throws(StageError) in try finish(job, r) })
    }

    /// Decode, field of view, gradability, crop and resize, normalise. A file that cannot be read is a permanent
    /// failure (retrying cannot fix it); an ungradable photograph is a result, not a failure.
    func prepare(_ job: ScreeningJob) throws(StageError) -> PreparedImage {
        let url = URL(fileURLWithPath: job.image.path)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw StageError(stage: .decode, message: "the file is missing", permanent: true)
        }
        let photo: PreparedPhotograph
        do { photo = try Preparation.prepare(contentsOf: url, options: options.preparation) } catch {
            throw StageError(stage: .decode, message: "\(error)", permanent: Self.isPermanent(error))
        }
        guard photo.analysis.isGradable, let input = photo.input else {
            let reasons = photo.analysis.reasons.map(\.explanation)
            return PreparedImage(photograph: photo, input: nil, inputSize: (0, 0),
                                 ungradableReasons: reasons.isEmpty ? ["no field of view found"] : reasons)
        }
        return PreparedImage(photograph: photo, input: options.normalisation.tensor(input),
                             inputSize: (input.width, input.height), ungradableReasons: [])
    }

    /// Whether a decode failure is the file's own fault. A file that exists but cannot be read now (an I/O error,
    /// too many open files, a share that went away) or memory that ran out may work on the next attempt; bad
    /// bytes, an unknown format or a size above the pixel limit never will.
    static func isPermanent(_ error: any Error) -> Bool {
        guard let error = error as? ImagingError else { return true }
        switch error.code {
        case .unreadable, .outOfMemory: return false
        default: return true
        }
    }

    /// The network, on the one thread the model owns.
    func infer(_ p: PreparedImage) throws(StageError) -> InferredImage {
        guard let input = p.input else { return InferredImage(prepared: p, passes: []) }
        let (w, h) = p.inputSize
        do {
            return InferredImage(prepared: p, passes: try Self.logitPasses(
                model: model, input: input, width: w, height: h, tiling: options.tiling, augmentation: options.augmentation))
        } catch {
            throw StageError(stage: .infer, message: "\(error)", permanent: false)
        }
    }

    /// The one inference of screening: logits [4, h, w] of the planar input [3, h, w], whole or tiled, once per
    /// test-time-augmentation pass (each mapped back to the input's orientation).
    static func logitPasses(model: SegmentationModel, input: [Float], width w: Int, height h: Int, tiling: ScreeningOptions.Tiling,
                            augmentation: TestTimeAugmentation) throws -> [[Float]] {
        try augmentation.passes(input, height: h, width: w) { view, vh, vw in
            guard case .tiles(let size, let overlap) = tiling, size < max(vw, vh) else {
                return try model.upsampledLogits(Tensor(view, shape: [1, 3, vh, vw])).values()
            }
            return try tiledLogits(model: model, input: view, width: vw, height: vh, size: size, overlap: overlap)
        }
    }

    /// Logits [4, h, w] from overlapping tiles of the planar input [3, h, w], blended with Gaussian weights.
    static func tiledLogits(model: SegmentationModel, input: [Float], width w: Int, height h: Int, size: Int,
                                   overlap: Double) throws -> [Float] {
        let tw = min(size, w), th = min(size, h)
        let plan = TilePlan(width: w, height: h, tileWidth: tw, tileHeight: th,
                            overlap: max(0, min(size - 1, Int((Double(size) * overlap).rounded()))))
        var blender = TileBlender(plan: plan, channels: model.architecture.numClasses)
        for (index, tile) in plan.tiles.enumerated() {
            var patch = [Float](repeating: 0, count: 3 * tile.width * tile.height)
            for c in 0..<3 {
                for y in 0..<tile.height {
                    let src = (c * h + tile.y + y) * w + tile.x, dst = (c * tile.height + y) * tile.width
                    for x in 0..<tile.width { patch[dst + x] = input[src + x] }
                }
            }
            let logits = try model.upsampledLogits(Tensor(patch, shape: [1, 3, tile.height, tile.width]))
            blender.add(tile: index, values: logits.values())
        }
        return blender.result()
    }

    /// Masks, statistics, overlay; then findings and completion in one transaction.
    func finish(_ job: ScreeningJob, _ r: InferredImage) throws(StageError) -> RunProgress.Outcome {
        let result: ScreeningResult
        let outcome: RunProgress.Outcome
        if r.prepared.input == nil {
            result = ScreeningResult(imageID: job.image.id, modelVersionID: modelVersionID, screeningRunID: screeningRunID,
                                     gradability: .ungradable(reasons: r.prepared.ungradableReasons), flag: nil, rule: nil,
                                     findings: [])
            outcome = .ungradable
        } else {
            do {
                result = try clock.measure(.masks) { try measureAndWrite(job, r) }
            } catch let e as StageError {
                throw e
            } catch {
                throw StageError(stage: .masks, message: "\(error)", permanent: false)
            }
            outcome = .screened
        }
        do {
            switch try clock.measure(.store, { try finishQueue.completeScreening(job.job.lease, result: result) }) {
            case .completed: return outcome
            case .leaseLost:
                logger.warning("job was taken over by another worker before this one finished; result not stored",
                               metadata: ["job": "\(job.job.id)"])
                return .released
            }
        } catch {
            throw StageError(stage: .store, message: "\(error)", permanent: false)
        }
    }

    func measureAndWrite(_ job: ScreeningJob, _ r: InferredImage) throws -> ScreeningResult {
        guard let photo = r.prepared.photograph, let transform = photo.transform, let fov = photo.analysis.fieldOfView else {
            throw StageError(stage: .masks, message: "no crop transform for a gradable image", permanent: false)
        }
        let (w, h) = r.prepared.inputSize
        let (directory, stem) = Self.maskLocation(patientID: job.image.patientID, imagePath: job.image.path,
                                                  masksDirectory: options.masksDirectory)
        let fovArea = fov.area
        // Probabilities in original pixels as round(p·255), from logits resized to the photograph with the sigmoid
        // last (the official order): a byte above the threshold byte is p > threshold, so the mask, the lesions
        // and the probability map all agree. Outside the field of view is 0: the padded square's corners are not
        // retina. With TTA the passes' probabilities are averaged here, at the photograph's pixels, after the sigmoid.
        func probabilityMap(channel k: Int) -> Image {
            fov.masking(transform.meanSigmoidToOriginal(channel: k, of: r.passes, width: w, height: h))
        }
        func thresholded(_ p: Image) -> Image { Overlay.mask(probability: p, threshold: options.threshold) }
        // The optic disc, when the model has its channel: found or not, centre, equivalent-circle diameter. Without
        // a pixel spacing, lesion areas in mm² are estimated from the disc taken as 1.8 mm across (and say so).
        var disc: DiscFinding?, discMask: Image?
        if model.architecture.numClasses > OpticDisc.channel {
            let p = probabilityMap(channel: OpticDisc.channel)
            let plane = try ScorePlane(width: p.width, height: p.height, probabilityBytes: p.bytes)
            let located = DiscFinding.locate(plane, threshold: options.threshold)
            disc = located.finding
            if options.writeOverlays, located.finding.found {
                // Outlined: the reported disc alone (the channel's largest region, holes filled), not every speck.
                discMask = Image(width: p.width, height: p.height, channels: 1, pixels: located.region)
            }
        }
        // A "disc" of implausible size beside the field of view: no mm² are estimated from it, and one far outside a
        // disc's size (most of the retina, a speck) is not the disc: reported as not found, not outlined.
        if let d = disc, d.found, !d.isPlausible(fieldOfViewDiameter: 2 * fov.radius) {
            let reported = d.reported(fieldOfViewDiameter: 2 * fov.radius)
            logger.notice("optic disc of implausible size: \(reported.found ? "reported" : "reported as not found"); lesion areas in mm² not estimated from it", metadata: [
                "image": "\(job.image.path)", "disc_diameter_px": "\(Int((d.diameterPixels ?? 0).rounded()))",
                "fov_diameter_px": "\(Int((2 * fov.radius).rounded()))",
            ])
            if !reported.found { (disc, discMask) = (reported, nil) }
        }
        let measuredSpacing = job.image.pixelSpacingMM.map { PixelSpacing(millimetres: $0) }
        let discSpacing = measuredSpacing == nil ? disc?.estimatedPixelSpacing(fieldOfViewDiameter: 2 * fov.radius) : nil
        let spacing = measuredSpacing ?? discSpacing
        let measurement = LesionMeasurement(threshold: options.threshold, minimumLesionArea: options.minimumLesionArea,
                                            pixelSpacing: spacing)
        var probability: [LesionClass: Image] = [:]
        var planes: [LesionClass: ScorePlane] = [:]
        for c in LesionClass.allCases {
            let p = probabilityMap(channel: c.rawValue)
            probability[c] = p
            planes[c] = try ScorePlane(width: p.width, height: p.height, probabilityBytes: p.bytes)
        }
        let imageFindings = try measurement.measure(planes, fieldOfViewArea: fovArea)
        planes = [:]
        var findings: [Finding] = []
        var layers: [OverlayLayer] = []
        for c in LesionClass.allCases {
            guard let p = probability[c], let cf = imageFindings.findings(for: c) else { continue }
            let mask = thresholded(p)
            let maskURL = try MaskFiles.write([(c.code, mask)], directory: directory, imageStem: stem)[0]
            var probURL: URL? = nil
            if options.saveProbabilities {
                probURL = try MaskFiles.write([(c.code, p)], directory: directory, imageStem: stem, suffix: "_prob", flat: false)[0]
            }
            probability[c] = nil
            if options.writeOverlays {
                layers.append(OverlayLayer(code: c.code, colour: RGBColour(c.colour), mask: mask))
            }
            findings.append(Finding(
                lesionClass: c, lesionCount: cf.count, areaPixels: Int64(cf.totalArea),
                fieldOfViewShare: min(1, cf.fieldOfViewShare ?? 0), areaMM2: cf.totalAreaSquareMillimetres,
                largestLesionPixels: Int64(cf.largestLesion?.area ?? 0), maskPath: maskURL.path, probabilityMapPath: probURL?.path,
                lesions: cf.lesions.map { l in
                    LesionRecord(x: l.boundingBox.x, y: l.boundingBox.y, width: l.boundingBox.width, height: l.boundingBox.height,
                                 areaPixels: Int64(l.area), centroidX: l.centroidX, centroidY: l.centroidY,
                                 meanProbability: l.meanProbability ?? 1, maxProbability: l.maxProbability ?? 1)
                }))
        }
        if options.writeOverlays {
            if let discMask {
                // The disc's outline in neutral white, so a reader sees it was recognised (and not taken for a lesion).
                layers.append(OverlayLayer(code: OpticDisc.code, colour: RGBColour(OpticDisc.colour), mask: discMask, style: .outline))
            }
            let overlay = Overlay.draw(on: photo.decoded.image, layers: layers, maxLongSide: 1600)
            try MaskFiles.writeImage(overlay, to: directory.appendingPathComponent("\(stem)_overlay.jpg"))
        }
        return ScreeningResult(
            imageID: job.image.id, modelVersionID: modelVersionID, screeningRunID: screeningRunID, gradability: .gradable,
            flag: try options.rule.flag(for: imageFindings), rule: options.rule, findings: findings,
            disc: disc.map { d in
                OpticDiscRecord(found: d.found, centreX: d.centreX, centreY: d.centreY, diameterPixels: d.diameterPixels,
                                areaPixels: d.area.map(Int64.init), areaMM2FromDisc: discSpacing != nil,
                                assumedDiameterMM: discSpacing != nil ? OpticDisc.assumedDiameterMillimetres : nil)
            })
    }

    /// Where an image's masks and overlay go: `<masks>/<safe patient>/<safe stem>_<CLS>.png`, always inside the
    /// masks folder whatever the patient identifier and the file name hold.
    static func maskLocation(patientID: String, imagePath: String, masksDirectory: URL) -> (directory: URL, stem: String) {
        let name = imagePath.split(separator: "/", omittingEmptySubsequences: true).last.map(String.init) ?? imagePath
        let stem = name.lastIndex(of: ".").map { $0 == name.startIndex ? name : String(name[..<$0]) } ?? name
        return (masksDirectory.appendingPathComponent(safeName(patientID), isDirectory: true), safeStem(stem))
    }

    /// A file-name stem as it is, except: control characters (newlines, tabs, escapes) and '/' become '_', a
    /// leading '.' too (no hidden files, nothing that looks like a temporary file), and it is cut to 200 bytes of
    /// UTF-8 so that `<stem>_EX_prob.png` stays within the 255 bytes a file name may have.
    static func safeStem(_ stem: String) -> String {
        var out = String(String.UnicodeScalarView(stem.unicodeScalars.map {
            $0.properties.generalCategory == .control || $0 == "/" || $0 == "\u{FFFD}" ? "_" : $0
        }))
        if out.hasPrefix(".") { out = "_" + out.dropFirst() }
        while out.utf8.count > 200 { out.removeLast() }
        return out.isEmpty ? "_" : out
    }

    /// A folder name from a patient identifier: letters, digits, '-', '_' and '.', never '..' or empty.
    static func safeName(_ s: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        var out = String(s.map { allowed.contains($0) ? $0 : "_" })
        while out.hasPrefix(".") { out = "_" + out.dropFirst() }
        return out.isEmpty ? "_" : String(out.prefix(120))
    }
}

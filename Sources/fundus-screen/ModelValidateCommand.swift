import ArgumentParser
import Checkpoints
import Foundation
import Imaging
import Lesions
import Network
import Tensor
import Store
import Training

/// `fundus-screen model validate`: a model's official figures on an annotated set, without training or registering.
struct ModelValidate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Validate a model on annotated images: official mAUPR/mIoU (M2MRF metric) and exact AP, per class.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "A model bundle folder or weight file (.safetensors, .pth), or a training checkpoint (a work folder's iter_*.safetensors).") var model: String
    @Option(help: "Validation set: a folder or db:validation (all four classes annotated). A model with the optic-disc channel is also scored on the set's OD masks (IoU.OD, Dice.OD).") var val: String
    @Option(help: "Only these images, by stem: comma-separated, ranges allowed (IDRiD_11-IDRiD_14).") var valImages: String?
    @Flag(inversion: .prefixedNo, help: ArgumentHelp(
        "Test-time augmentation (on by default): the eight symmetries of the square (--dihedral, the default) or the four mirrorings (--no-dihedral), sigmoid probabilities averaged at the photograph's pixels.",
        discussion: "--no-tta: the official single pass. On IDRiD_21–24 (unseen) mirroring raised the 0.7 candidate's mAUPR 0.412 → 0.437 and exact mAP 0.379 → 0.410 at 3.7× the time per image."))
    var tta = true
    @Flag(inversion: .prefixedNo, help: ArgumentHelp(
        "With TTA: the image, its three mirrorings, the transposed image and its three mirrorings (the eight symmetries of the square, 8 passes; the training's online flips and 90° rotations). On by default with TTA; --no-dihedral: the four mirrorings (4 passes, half the time).",
        discussion: "Chosen on the shipped recipe's five rebuilt fold models, each on its held-out images (models/crossval/README.md, w16-disc-ves-6k-rerun)."))
    var dihedral: Bool?
    @Flag(help: "Convolutions in bf16 (f32 accumulation): to measure what bf16 inference costs in the official figures.")
    var bf16 = false
    @Option(help: "Read this class from a second pass at another input scale, e.g. MA=1.5 or SE=0.75, MA=1 for one scale, or as the mean of its probabilities at several, e.g. HE=1+0.75 (repeatable; the model card's channel_scales otherwise).")
    var classScale: [String] = []

    @Option(help: ArgumentHelp("Average this model's sigmoid probabilities with the main model's (repeatable; equal weights; the main model's card sets normalisation, scale and channel_scales for all): to measure an ensemble before writing it into a card's `ensemble`.", valueName: "weights"))
    var ensemble: [String] = []
    @Flag(help: "Leave out the models the card's `ensemble` names: the card's own weight file alone (with any --ensemble given here).")
    var oneModel = false

    @Option(help: ArgumentHelp("Write one picture per image here, <image>_truth-vs-model.png: the photograph with the truth masks (left) and with the model's masks at 0.5 (right), in the overlay colours, the true disc outlined on both.", valueName: "dir"))
    var overlays: String?

    @Option(help: ArgumentHelp("Write the evaluation here as JSON: every figure, and per class the pixels at each score split by truth (scoreCounts), from which any monotone reading of the scores (a calibration, other thresholds) can be scored without running the network again.", valueName: "file"))
    var reportJSON: String?

    func validate() throws {
        if dihedral == true && !tta { throw ValidationError("--dihedral adds passes to test-time augmentation: not with --no-tta") }
    }

    func run() throws {
        let logger = global.makeLogger("fundus-screen.model")
        EngineThreads.configureProcessForEngine()
        let data = try TrainingData.parse(val)
        let connection: Connection? = if case .annotations = data { try Database.connect(global.databaseLocation, logger: logger) } else { nil }
        let loaded = try WeightLoader.load(URL(fileURLWithPath: model))
        let hasDisc = loaded.architecture.numClasses > OpticDisc.channel
        var set = try data.open(disc: hasDisc, connection: connection, logger: logger)
        if let valImages { set = try set.selecting(LesionDataset.expandSelection(valImages)) }
        let network = try ModelWeights.inferenceModel(loaded)
        if oneModel { network.ensemble = [] }
        for file in ensemble {
            let member = try ModelWeights.model(from: URL(fileURLWithPath: file))
            guard member.architecture.numClasses >= ModelCard.lesionClasses.count else {
                throw ValidationError("--ensemble \(file): \(member.architecture.numClasses) output channels, a lesion model has at least 4")
            }
            network.ensemble.append(member)
        }
        network.bf16Inference = bf16
        network.channelScales = loaded.card?.channelScaleIndices ?? [:]  // again: the --ensemble members follow it
        for (code, factors) in try ClassScales.parse(classScale) {
            network.channelScales[LesionClass(code: code)!.rawValue] = factors
        }
        let card = loaded.card
        let normalisation = card?.normalisation
            ?? .idrid
        var validator = try Validator(set, normalisation: normalisation, scale: card?.inputScale ?? .idrid, logger: logger)
        validator.augmentation = .chosen(tta: tta, dihedral: dihedral ?? true)
        if let overlays {
            // Before any inference: a folder that cannot be made is said at once, not after the first image.
            do { try MaskFiles.createFolder(URL(fileURLWithPath: overlays)) } catch { throw ValidationError("--overlays: \(error)") }
            validator.overlayDirectory = URL(fileURLWithPath: overlays)
        }
        if let reportJSON {
            // Before any inference: a file that cannot be written is said at once, not after the last image.
            let folder = URL(fileURLWithPath: reportJSON).deletingLastPathComponent().path
            guard FileManager.default.isWritableFile(atPath: folder) else {
                throw ValidationError("--report-json: cannot write \(reportJSON): \(folder) is not a writable folder")
            }
            validator.recordScoreCounts = true
        }
        let started = Date()
        let report = try validator.evaluate(NetworkModel(network), label: card?.name ?? model)
        let f = Validator.figures(report)
        func v(_ key: String) -> String { f[key].map { String(format: "%.4f", $0) } ?? "–" }
        let seconds = Date().timeIntervalSince(started)
        print("\(card?.name ?? model) on \(set.source) (\(set.samples.count) images, \(validator.augmentation.description) per image\(bf16 ? ", bf16 convolutions" : "")\(network.ensemble.isEmpty ? "" : ", mean of \(network.ensemble.count + 1) models"), "
              + String(format: "%.1f s per image)", seconds / Double(max(1, set.samples.count))))
        print("  official: mAUPR \(v("mAUPR"))  mIoU \(v("mIoU"))  mF1 \(v("mF1"))   exact mAP \(v("mAP"))")
        for c in ["EX", "HE", "SE", "MA"] {
            print("  \(c): AUPR \(v("AUPR." + c))  IoU \(v("IoU." + c))  AP \(v("AP." + c))")
        }
        if hasDisc {
            if let d = report.disc {
                print("  OD (optic disc, \(d.images) images with a disc mask; not in the lesion means): IoU \(v("IoU.OD"))  Dice \(v("Dice.OD"))")
            } else {
                print("  OD: the model has the optic-disc channel, but no validation image has an OD mask")
            }
        }
        if let reportJSON {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            do { try encoder.encode(report).write(to: URL(fileURLWithPath: reportJSON)) } catch {
                throw ValidationError("--report-json: cannot write \(reportJSON): \(error)")
            }
            print("report with score counts: \(reportJSON)")
        }
        if let overlays { print("truth beside the model's masks: \(overlays)/<image>_truth-vs-model.png") }
    }
}

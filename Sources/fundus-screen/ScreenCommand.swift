import ArgumentParser
import Checkpoints
import Foundation
import Imaging
import Logging
import Network
import Pipeline
import Store
import Tensor

/// `fundus-screen screen`: the nightly job. Against the configured database it screens what the queue holds;
/// with `-i DIR -o DIR` it is the local form: import the folder, screen it, write masks and findings there.
struct ScreenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "screen",
        abstract: "Screen queued images (or a folder with -i/-o): masks on disk, findings in the database.",
        discussion: """
        Workers on several machines can run `screen` against one database (--database or DATABASE_URL): \
        they share the queue with no other coordination. SIGINT/SIGTERM: stop claiming, finish the images in \
        flight, hand back the rest, exit. A second signal exits at once (leases hand the jobs to other workers).
        """
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .long, help: "Model version name or weight file/folder (default: the active model; the shipped one on a new database).")
    var model: String?

    @Option(name: .long, help: "Folder for masks and overlays (default ./masks; with -o: the output folder).")
    var masks: String?

    @Flag(name: .long, help: "Also write 8-bit probability maps (<image>_<CLS>_prob.png).")
    var saveProbabilities = false

    @Flag(name: .long, help: "Do not write overlay images.")
    var noOverlays = false

    @Flag(name: .long, help: "Whole image through the network, as the official test mode (the default).")
    var whole = false

    @Option(name: .long, help: "Tiles of this side (pixels at the model scale) instead of the whole image.")
    var tile: Int?

    @Option(name: .long, help: "Tile overlap as a fraction of the tile side.")
    var overlap: Double = 0.25

    @Flag(name: .long, help: "Test-time augmentation: also run the horizontal, vertical and both-axes flips and average the sigmoid probabilities at the photograph's pixels (4 network passes per image).")
    var tta = false
    @Flag(help: "With --tta: also the transposed image and its three mirrorings (8 network passes per image).")
    var dihedral = false
    @Flag(name: .long, help: "Every class from the one pass at the model's scale, ignoring the model card's channel_scales (the shipped model reads microaneurysms from a second pass at 1.5×: this is about twice as fast and finds fewer of them).")
    var oneScale = false
    @Flag(name: .long, help: "Only the card's own weight file, leaving out the models its `ensemble` names (an ensemble card averages two or more networks' probabilities: this is about that many times faster and scores lower).")
    var oneModel = false

    @Option(name: .long, help: "Images in flight at once (memory ≈ this × 160 MB for 4288×2848 photographs).")
    var concurrency: Int = 3

    @Option(name: .long, help: "Stop after this many images.")
    var limit: Int?

    @Option(name: .long, help: "Queue to take jobs from.")
    var queue: String = JobQueue.screeningQueue

    @Flag(name: .long, help: "Keep waiting for new jobs instead of exiting when the queue is empty.")
    var daemon = false

    @Option(name: .long, help: "Seconds without a heartbeat after which another worker takes a job over (its worker presumed dead).")
    var lease: Double = 60

    @Option(name: .long, help: ArgumentHelp(
        "Refuse photographs declaring more pixels than this, before decoding them (decompression bombs).",
        discussion: "Default: $FUNDUS_MAX_PIXELS, else 100000000 (100 megapixels). Refused images fail permanently with the reason."))
    var maxPixels: Int?

    @Option(name: .customShort("i"), help: "Local form: a folder of photographs to import and screen.")
    var input: String?

    @Option(name: .customShort("o"), help: "Local form: output folder for masks, findings.csv and findings.json.")
    var output: String?

    func validate() throws {
        if (input == nil) != (output == nil) { throw ValidationError("-i and -o go together") }
        if concurrency < 1 { throw ValidationError("--concurrency must be at least 1") }
        if whole && tile != nil { throw ValidationError("--whole and --tile exclude each other") }
        if dihedral && !tta { throw ValidationError("--dihedral adds passes to --tta: give both") }
        if let tile, tile < 32 { throw ValidationError("--tile must be at least 32 pixels") }
        if !(0..<0.9).contains(overlap) { throw ValidationError("--overlap must be in [0, 0.9)") }
        if !(lease >= 1) { throw ValidationError("--lease must be at least 1 second") }
        if let maxPixels, maxPixels < 1 { throw ValidationError("--max-pixels must be positive") }
        do { _ = try DecodeOptions.maxPixelsSetting(environment: ProcessInfo.processInfo.environment) } catch {
            throw ValidationError("\(error)")
        }
    }

    func run() throws {
        let logger = global.makeLogger("fundus-screen.screen")
        EngineThreads.configureProcessForEngine()
        let location = global.databaseLocation
        let conninfo = try Database.conninfo(for: location, logger: logger)
        let connection = try Database.connect(location, logger: logger)
        let loaded = try ModelResolver.resolve(model.map { .named($0) } ?? .active, connection: connection, logger: logger)

        let masksDir = URL(fileURLWithPath: masks ?? output ?? "masks")
        var options = ScreeningOptions(masksDirectory: masksDir)
        options.saveProbabilities = saveProbabilities
        options.writeOverlays = !noOverlays
        if let maxPixels { options.preparation.decode.maxPixels = maxPixels }
        if let tile { options.tiling = .tiles(size: tile, overlap: overlap) }
        options.augmentation = .chosen(tta: tta, dihedral: dihedral)
        if oneScale { loaded.model.channelScales = [:] }
        if oneModel { loaded.model.ensemble = [] }
        let scales = loaded.model.channelScales.sorted { $0.key < $1.key }.map { k, f in
            "\(k < ModelCard.lesionClasses.count ? ModelCard.lesionClasses[k] : "channel \(k)") " + (f.count == 1 ? "also at \(f[0])×" : "at the \(ModelCard.readingText(f))")
        }
        let inference = "\(options.augmentation.description) per image" + (tile.map { ", each in tiles of \($0) px" } ?? ", whole image")
            + (scales.isEmpty ? "" : "; " + scales.joined(separator: ", "))
            + (loaded.model.ensemble.isEmpty ? "" : "; the mean of \(loaded.model.ensemble.count + 1) models' probabilities (the card's ensemble)")
        logger.info("inference: \(inference)")
        var settings = WorkerSettings()
        settings.slots = concurrency
        settings.limit = limit
        settings.exitWhenEmpty = !daemon
        settings.leaseSeconds = lease
        let shutdown = ShutdownSignal()
        shutdown.install()
        if let input, let output {
            let outcome = try LocalFolder.screen(URL(fileURLWithPath: input), output: URL(fileURLWithPath: output), model: loaded,
                                                 options: options, settings: settings, conninfo: conninfo,
                                                 connection: connection, shutdown: shutdown, logger: logger)
            print(outcome.summary.text)
            print("findings: \(outcome.findingsFiles.map(\.path).joined(separator: ", "))")
        } else {
            let summary = try ScreeningRun.run(conninfo: conninfo, model: loaded, options: options, settings: settings,
                                               queue: queue, shutdown: shutdown, logger: logger)
            print(summary.text)
        }
    }
}

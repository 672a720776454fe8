import Checkpoints
import Foundation
import Imaging
import Logging
import Network
import Store

/// Which model a run uses: the registry's active version unless told otherwise; on a database with no model at all,
/// the model that ships with the project is registered and made active.
public enum ModelSelection: Sendable {
    case active
    /// A registered version's name, or a weight file / model folder on disk.
    case named(String)
}

/// The model that ships with fundus-screen: `$FUNDUS_MODEL`, else `models/default` beside the binary's checkout.
public enum ShippedModel {
    public static func locate(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL? {
        if let path = environment["FUNDUS_MODEL"], !path.isEmpty { return URL(fileURLWithPath: path) }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        for base in [cwd] + (0..<5).map({ _ in dir = dir.deletingLastPathComponent(); return dir }) {
            let candidate = base.appendingPathComponent("models/default")
            if FileManager.default.fileExists(atPath: candidate.appendingPathComponent(ModelCard.fileName).path) {
                return candidate
            }
        }
        return nil
    }
}

/// A model version ready to run: its registry row, the network with its weights, and how to feed it.
public struct LoadedModel: Sendable {
    public let version: ModelVersion
    public let model: SegmentationModel
    public let normalisation: Normalisation
    public let scale: InputScale
    public let threshold: Float
}

public enum ModelResolver {
    /// Finds (or registers) the model version and loads its weights. `shippedModel`: what a database with no active
    /// model registers and activates (which queues the whole archive for it).
    public static func resolve(_ selection: ModelSelection, connection: Connection,
                               shippedModel: @autoclosure () -> URL? = ShippedModel.locate(),
                               logger: Logger) throws -> LoadedModel {
        let registry = ModelRegistry(connection: connection)
        let version: ModelVersion
        switch selection {
        case .active:
            if let active = try registry.active() {
                version = active
            } else {
                guard let shipped = shippedModel() else {
                    throw ScreeningRunError("no active model in the registry and no shipped model found (models/default); " +
                                            "register one with `fundus-screen train` or point FUNDUS_MODEL at a model folder")
                }
                let activation = try registry.activate(id: registerFile(shipped, registry: registry, logger: logger).id)
                version = activation.version
                logger.notice("no active model: registered and activated the shipped model",
                              metadata: ["model": "\(version.name)", "images queued": "\(activation.queued)"])
            }
        case .named(let name):
            if let found = try registry.find(name: name) {
                version = found
            } else if FileManager.default.fileExists(atPath: name) {
                version = try registerFile(URL(fileURLWithPath: name), registry: registry, logger: logger)
            } else {
                throw ScreeningRunError("no model version named '\(name)' in the registry, and no such file")
            }
        }
        return try load(version)
    }

    /// Registers a weight file or model folder as a candidate (or returns the version already registered for it).
    static func registerFile(_ url: URL, registry: ModelRegistry, logger: Logger) throws -> ModelVersion {
        let loaded = try WeightLoader.load(url)
        let path = loaded.source.standardizedFileURL.path
        // An ensemble's checksum covers its members: the hash of the files' hashes, in the card's order.
        let files = ModelWeights.files(of: loaded)
        if let missing = files.dropFirst().first(where: { !FileManager.default.fileExists(atPath: $0.path) }) {
            throw ScreeningRunError("\(path): its card's ensemble names \(missing.lastPathComponent), which is not in " +
                                    "\(missing.deletingLastPathComponent().path)")
        }
        let checksum = files.count == 1 ? try SHA256.hex(fileAt: URL(fileURLWithPath: path))
            : SHA256.hex(Data(try files.map { try SHA256.hex(fileAt: $0) }.joined(separator: "\n").utf8))
        // A bundle whose version is its name (what `train` writes) is registered under that name, not "x-x".
        let name = loaded.card.map { $0.version == $0.name ? $0.name : "\($0.name)-\($0.version)" }
            ?? url.deletingPathExtension().lastPathComponent
        if let existing = try registry.find(name: name) {
            guard existing.checksum == checksum else {
                throw ScreeningRunError("\(path): a model version named '\(name)' is registered already with other weights " +
                                        "(\(existing.weightsPath), sha256 \(existing.checksum.prefix(12))…); give this model " +
                                        "another name or version in its metadata.json, or use the registered one by name")
            }
            return existing
        }
        let metrics = loaded.card.map { card in
            String(decoding: (try? JSONEncoder().encode(card.metrics)) ?? Data("{}".utf8), as: UTF8.self)
        } ?? "{}"
        logger.info("registering model", metadata: ["name": "\(name)", "weights": "\(path)"])
        return try registry.register(name: name, architecture: loaded.architecture.displayName, weightsPath: path,
                                     checksum: checksum, metricsJSON: metrics)
    }

    static func load(_ version: ModelVersion) throws -> LoadedModel {
        let loaded = try WeightLoader.load(URL(fileURLWithPath: version.weightsPath))
        let model = try ModelWeights.inferenceModel(loaded)
        let card = loaded.card
        return LoadedModel(version: version, model: model, normalisation: card?.normalisation ?? .idrid,
                           scale: card?.inputScale ?? .idrid,
                           threshold: Float(card?.threshold ?? 0.5))
    }
}

public struct ScreeningRunError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}

/// What a run did, for the summary printed at its end.
public struct RunSummary: Sendable {
    public var screened = 0
    public var ungradable = 0
    public var failed = 0
    public var released = 0
    public var seconds = 0.0
    public var stages: [(stage: Stage, wall: Double, cpu: Double, count: Int)] = []
    public var processCPUSeconds = 0.0
    public var modelVersion = ""

    public var text: String {
        var lines = ["screened \(screened), ungradable \(ungradable), failed \(failed)" +
                     (released > 0 ? ", handed back \(released)" : "") +
                     String(format: " in %.1f s (%.2f images/s) with model %@", seconds,
                            seconds > 0 ? Double(screened + ungradable) / seconds : 0, modelVersion)]
        for s in stages {
            lines.append(String(format: "  %-14@ %8.2f s wall  %8.2f s cpu %5.1f%%  (%d, %.2f s each)", s.stage.rawValue as NSString,
                                s.wall, s.cpu, processCPUSeconds > 0 ? 100 * s.cpu / processCPUSeconds : 0,
                                s.count, s.count > 0 ? s.wall / Double(s.count) : 0))
        }
        lines.append(String(format: "  process CPU %.1f s over %.1f s wall (%.0f%% of one core)", processCPUSeconds, seconds,
                            seconds > 0 ? 100 * processCPUSeconds / seconds : 0))
        return lines.joined(separator: "\n")
    }
}

/// One worker process screening what the queue holds.
public enum ScreeningRun {
    public static func run(conninfo: String, model: LoadedModel, options: ScreeningOptions, settings: WorkerSettings,
                           queue: String = JobQueue.screeningQueue, shutdown: ShutdownSignal, logger: Logger) throws -> RunSummary {
        let worker = JobQueue.defaultWorkerName()
        let connect = { try Connection(conninfo: conninfo, logger: logger) }
        let bookkeeping = try connect()
        let runs = ScreeningRuns(connection: bookkeeping)
        var options = options
        options.normalisation = model.normalisation
        options.preparation.modelScale = model.scale
        options.threshold = model.threshold
        let runID = try runs.start(modelVersionID: model.version.id, worker: worker,
                                   settingsJSON: InferenceSettings(options: options, model: model.model).json)
        let pending = try JobQueue(connection: bookkeeping, worker: worker, logger: logger).counts()
            .filter { $0.queue == queue && ($0.state == .available || $0.state == .retryable) }.map(\.jobs).reduce(0, +)
        let total = settings.limit.map { min($0, pending) } ?? pending
        logger.info("screening", metadata: [
            "model": "\(model.version.name)", "queue": "\(queue)", "pending": "\(pending)", "worker": "\(worker)",
            "images in flight": "\(settings.slots)",
            "memory budget": "≈\(settings.slots * 160) MB (\(settings.slots) × a 4288×2848 photograph's working set)",
        ])
        let clock = StageClock()
        let progress = RunProgress(total: total, logger: logger)
        let stages = ScreeningStages(model: model.model, modelVersionID: model.version.id, screeningRunID: runID, options: options,
                                     finishConnection: try connect(), worker: worker, clock: clock, logger: logger)
        let source = try QueueJobSource(makeConnection: connect, queue: queue, worker: worker,
                                        modelVersionID: model.version.id, leaseSeconds: settings.leaseSeconds, logger: logger)
        // A worker killed mid-write leaves its temporary file beside the mask it was writing; the mask itself is
        // either the old one or absent (the write renames into place), and the job comes back to be redone.
        StaleTemporaryFiles.remove(under: options.masksDirectory, logger: logger)
        let cpu0 = StageClock.processCPUSeconds()
        let workerRun = StagedWorker(source: source, stages: stages.stages, settings: settings, logger: logger,
                                     progress: progress, clock: clock, shutdown: shutdown)
        workerRun.run()
        StaleTemporaryFiles.remove(under: options.masksDirectory, ownWritesFinished: true, logger: logger)
        var summary = RunSummary()
        summary.screened = progress.count(.screened)
        summary.ungradable = progress.count(.ungradable)
        summary.failed = progress.count(.failed)
        summary.released = progress.count(.released)
        summary.seconds = progress.elapsed
        summary.processCPUSeconds = StageClock.processCPUSeconds() - cpu0
        summary.stages = clock.snapshot().map { ($0.stage, $0.totals.wallSeconds, $0.totals.cpuSeconds, $0.totals.count) }
        // The network runs on the model's engine thread and its OpenMP team, not on the infer stage's thread (whose
        // own CPU time is the hand-over only): charge infer with what the process spent beyond the other stages'
        // threads (claim, prepare, finish; masks and store are inside finish).
        let others = summary.stages.filter { [.claim, .prepare, .finish].contains($0.stage) }.map(\.cpu).reduce(0, +)
        if let i = summary.stages.firstIndex(where: { $0.stage == .infer }) {
            summary.stages[i].cpu = max(0, summary.processCPUSeconds - others)
        }
        summary.modelVersion = model.version.name
        try runs.finish(id: runID, imagesScreened: summary.screened + summary.ungradable)
        return summary
    }
}

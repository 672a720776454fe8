import Checkpoints
import Foundation
import Imaging
import Logging
import Store
import TestSupport
@testable import Pipeline

/// What the screening-run tests share: a small archive on disk (IDRiD photographs, a truncated JPEG, a black
/// frame), the tiny parity checkpoint as the model, and checks of the database rows and mask files.
enum ScreeningFixture {
    static var tinyModel: URL { SharedFixtures.parity.appendingPathComponent("tiny_m2mrf_C.pth") }

    /// The tiny checkpoint as a model folder whose card asks for a 512×512 network input (the IDRiD scale would be
    /// 960×960): the pipeline is the same, a debug build just spends less time in the network.
    static func tinyModelFolder(in folder: URL) throws -> URL {
        try modelFolder(of: tinyModel, name: "tiny_m2mrf_C-test", inputSide: 512,
                        trainingData: "none: parity fixture with random weights", in: folder)
    }

    /// The weights of `weights` as `<folder>/model`, with a card asking for a square `inputSide` network input.
    static func modelFolder(of weights: URL, name: String, inputSide: Int, trainingData: String, in folder: URL) throws -> URL {
        let loaded = try WeightLoader.load(weights)
        let card = ModelCard(name: name, version: "1", architecture: loaded.architecture,
                             inputScale: InputScale(longEdge: inputSide, shortEdge: inputSide), trainingData: trainingData)
        let directory = folder.appendingPathComponent("model")
        try WeightLoader.save(tensors: loaded.tensors, card: card, to: directory)
        return directory
    }

    /// What a run test starts from: a new folder (removed afterwards) holding an archive of `idrid` IDRiD photographs
    /// (with the corrupt file and the black frame when asked) and the masks folder's place; a private database with
    /// the tiny model resolved in it.
    struct RunSetting {
        let folder: URL, archive: Archive, masks: URL
        let db: TestDatabase, connection: Connection
        let modelFolder: URL, model: LoadedModel
    }

    static func withRunSetting(_ prefix: String, idrid: Int, corrupt: Bool = false, black: Bool = false,
                               _ body: (RunSetting) async throws -> Void) async throws {
        let folder = try makeFolder(prefix)
        defer { try? FileManager.default.removeItem(at: folder) }
        let archive = try Self.archive(in: folder, idrid: idrid, corrupt: corrupt, black: black)
        try await withTestDatabase { db in
            let connection = try db.connect()
            let modelFolder = try tinyModelFolder(in: folder)
            let model = try ModelResolver.resolve(.named(modelFolder.path), connection: connection, logger: logger)
            try await body(RunSetting(folder: folder, archive: archive, masks: folder.appendingPathComponent("masks"), db: db,
                                      connection: connection, modelFolder: modelFolder, model: model))
        }
    }

    /// One screening run of `model` over the queued jobs, on a thread of its own (two slots, polling every 0.2 s),
    /// masks under `masks`, until the queue is empty.
    static func run(_ db: TestDatabase, model: LoadedModel, masks: URL) async throws -> RunSummary {
        var settings = WorkerSettings()
        settings.slots = 2
        settings.pollInterval = 0.2
        let fixed = settings
        let logger = self.logger
        return try await onThreads(1) { _ in
            try ScreeningRun.run(conninfo: db.conninfo, model: model, options: ScreeningOptions(masksDirectory: masks),
                                 settings: fixed, shutdown: ShutdownSignal(), logger: logger)
        }[0]
    }

    static let logger: Logger = {
        var logger = Logger(label: "fundus.pipeline-test")
        logger.logLevel = .notice
        return logger
    }()

    /// A new empty folder under /tmp; the caller removes it.
    static func makeFolder(_ prefix: String) throws -> URL {
        var pattern = Array("/tmp/\(prefix)XXXXXX".utf8CString)
        guard let made = mkdtemp(&pattern) else { throw ScreeningRunError("cannot make a temporary folder") }
        return URL(fileURLWithPath: String(cString: made))
    }

    struct Archive {
        let folder: URL
        /// IDRiD photographs copied in.
        let good: [URL]
        /// The first half of an IDRiD JPEG: not an image any more.
        let corrupt: URL?
        /// A black 1200×800 PNG: a photograph with no field of view.
        let black: URL?
        var all: [URL] { good + [corrupt, black].compactMap { $0 } }
    }

    static func archive(in folder: URL, idrid count: Int, corrupt: Bool, black: Bool) throws -> Archive {
        let dir = folder.appendingPathComponent("archive")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let sources = SharedFixtures.idridImageFiles()
        guard sources.count >= count + 1 else {
            throw ScreeningRunError("need \(count + 1) IDRiD photographs in \(SharedFixtures.idridImages.path), found \(sources.count)")
        }
        var good: [URL] = []
        for source in sources.prefix(count) {
            let target = dir.appendingPathComponent(source.lastPathComponent)
            try FileManager.default.copyItem(at: source, to: target)
            good.append(target)
        }
        var corruptURL: URL? = nil
        if corrupt {
            let bytes = try Data(contentsOf: sources[count])
            corruptURL = dir.appendingPathComponent("truncated_scan.jpg")
            try bytes.prefix(bytes.count / 2).write(to: corruptURL!)
        }
        var blackURL: URL? = nil
        if black {
            blackURL = dir.appendingPathComponent("black_frame.png")
            let image = Image(width: 1200, height: 800, channels: 3, pixels: [UInt8](repeating: 0, count: 1200 * 800 * 3))
            try ImageCodec.encodePNG(image).write(to: blackURL!)
        }
        return Archive(folder: dir, good: good, corrupt: corruptURL, black: blackURL)
    }

    /// Imports the folder and enqueues screening of every image with the model version (the nightly path).
    @discardableResult
    static func importAndEnqueue(_ archive: Archive, connection: Connection, modelVersionID: Int64) throws -> [String: Int64] {
        let importer = ArchiveImporter(connection: connection, pattern: try FileNamePattern(), enqueue: false, logger: logger)
        let report = try importer.importDirectory(archive.folder)
        guard report.added == archive.all.count else {
            throw ScreeningRunError("imported \(report.added) of \(archive.all.count) files: \(report.skipped)")
        }
        let ids = try Store.Archive(connection: connection).ids(forPaths: archive.all.map { $0.standardizedFileURL.path })
        try JobQueue(connection: connection, logger: logger).enqueueScreening(imageIDs: ids.values.sorted(),
                                                                                modelVersionID: modelVersionID)
        return ids
    }

    /// One row per job: state, attempt, errors, last error, rescues.
    struct JobRow {
        let id: Int64
        let imageID: Int64
        let state: String
        let attempt: Int
        let errorCount: Int
        let lastError: String?
        let rescues: Int
    }

    static func jobs(_ connection: Connection) throws -> [JobRow] {
        try connection.query("""
            SELECT id, image_id, state::text AS state, attempt, cardinality(errors) AS error_count,
                   (errors[cardinality(errors)]) ->> 'message' AS last_error,
                   coalesce((metadata ->> 'rescues')::int, 0) AS rescues
            FROM jobs ORDER BY id
            """).rows.map { r in
            JobRow(id: try r.decode("id"), imageID: try r.decode("image_id"), state: try r.decode("state"),
                   attempt: try r.decode("attempt"), errorCount: try r.decode("error_count"),
                   lastError: try r.decodeIfPresent("last_error"), rescues: try r.decode("rescues"))
        }
    }

    /// Jobs by state.
    static func jobStates(_ connection: Connection) throws -> [String: Int] {
        var out: [String: Int] = [:]
        for row in try jobs(connection) { out[row.state, default: 0] += 1 }
        return out
    }

    /// Result rows per image, and findings per result: both must be exactly one and four.
    static func resultCounts(_ connection: Connection) throws -> (perImage: [Int64: Int], findingsPerResult: [Int64: Int], jobOfImage: [Int64: Int64?]) {
        var perImage: [Int64: Int] = [:]
        var jobOfImage: [Int64: Int64?] = [:]
        for r in try connection.query("SELECT image_id, job_id FROM screening_results").rows {
            let image: Int64 = try r.decode("image_id")
            perImage[image, default: 0] += 1
            jobOfImage[image] = try r.decodeIfPresent("job_id", as: Int64.self)
        }
        var findings: [Int64: Int] = [:]
        for r in try connection.query("""
            SELECT s.image_id, count(f.lesion_class) AS n FROM screening_results s
            LEFT JOIN findings f ON f.result_id = s.id GROUP BY s.id, s.image_id
            """).rows {
            findings[try r.decode("image_id")] = try r.decode("n")
        }
        return (perImage, findings, jobOfImage)
    }

    /// Every file under the masks folder, relative paths.
    static func files(under directory: URL) -> [String] {
        (FileManager.default.enumerator(atPath: directory.path)?.allObjects as? [String] ?? [])
            .filter { !isDirectory(directory.appendingPathComponent($0)) }.sorted()
    }

    static func isDirectory(_ url: URL) -> Bool {
        var d: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &d) && d.boolValue
    }

    /// Problems with the masks of a gradable photograph: four complete 0/255 PNGs of the photograph's size, an overlay.
    static func maskProblems(masks: URL, photograph: URL, width: Int, height: Int) -> [String] {
        let stem = photograph.deletingPathExtension().lastPathComponent
        let dir = masks.appendingPathComponent(ScreeningStages.safeName(stem))
        var problems: [String] = []
        for code in ["EX", "HE", "SE", "MA"] {
            let url = dir.appendingPathComponent("\(stem)_\(code).png")
            do {
                let decoded = try ImageCodec.decode(contentsOf: url, mode: .label)
                if decoded.image.width != width || decoded.image.height != height {
                    problems.append("\(url.lastPathComponent) is \(decoded.image.width)×\(decoded.image.height)")
                }
                if decoded.warnings != 0 { problems.append("\(url.lastPathComponent): \(decoded.warnings) decoder warnings") }
                if decoded.image.bytes.contains(where: { $0 != 0 && $0 != 255 }) {
                    problems.append("\(url.lastPathComponent) holds values other than 0 and 255")
                }
            } catch {
                problems.append("\(url.lastPathComponent): \(error)")
            }
        }
        if !FileManager.default.fileExists(atPath: dir.appendingPathComponent("\(stem)_overlay.jpg").path) {
            problems.append("\(stem)_overlay.jpg missing")
        }
        return problems
    }

    /// Files under the masks folder that are neither a finished mask nor an overlay (temporary files of writes).
    static func strayFiles(under masks: URL) -> [String] {
        files(under: masks).filter { path in
            let name = (path as NSString).lastPathComponent
            return !(name.range(of: #"^[^.].*_(EX|HE|SE|MA)\.png$"#, options: .regularExpression) != nil
                     || name.range(of: #"^[^.].*_overlay\.jpg$"#, options: .regularExpression) != nil)
        }
    }

    /// The `fundus-screen` binary `swift build --build-tests` made beside these tests.
    static var binary: URL? {
        for config in ["debug", "release"] {
            let url = SharedFixtures.packageRoot.appendingPathComponent(".build/\(config)/fundus-screen")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return nil
    }

    /// Waits (polling) until `condition` holds or `timeout` seconds pass; returns whether it held.
    static func wait(timeout: Double, interval: Double = 0.1, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try condition() { return true }
            Thread.sleep(forTimeInterval: interval)
        }
        return try condition()
    }
}

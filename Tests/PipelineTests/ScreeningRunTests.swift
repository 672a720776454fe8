import Checkpoints
import Foundation
import Lesions
import Imaging
import Logging
import Store
import Testing
import TestSupport
@testable import Pipeline

/// Whole screening runs against a private PostgreSQL with the tiny parity checkpoint as the model (issue 7).
/// Serialised: each one keeps both cores busy.
@Suite("Screening runs", .serialized,
       .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
struct ScreeningRunTests {
    let logger = ScreeningFixture.logger

    @Test("One run: good photographs get masks and findings, a corrupt file is discarded naming it, a black frame is ungradable with its reason")
    func oneRunMixedArchive() async throws {
        try await ScreeningFixture.withRunSetting("fundus-run-", idrid: 2, corrupt: true, black: true) { s in
            let (archive, masks, db, connection, model) = (s.archive, s.masks, s.db, s.connection, s.model)
            let ids = try ScreeningFixture.importAndEnqueue(archive, connection: connection, modelVersionID: model.version.id)
            let summary = try await ScreeningFixture.run(db, model: model, masks: masks)
            #expect(summary.screened == 2)
            #expect(summary.ungradable == 1)
            #expect(summary.failed == 1)

            let jobs = try ScreeningFixture.jobs(connection)
            let byImage = Dictionary(uniqueKeysWithValues: jobs.map { ($0.imageID, $0) })
            let results = ScreeningResults(connection: connection)
            for photo in archive.good {
                let id = try #require(ids[photo.path])
                let job = try #require(byImage[id])
                // Untouched by the bad files beside it: one attempt, no error.
                #expect(job.state == "completed" && job.attempt == 1 && job.errorCount == 0, "\(photo.lastPathComponent): \(job)")
                let result = try #require(try results.fetch(imageID: id, modelVersionID: model.version.id))
                #expect(result.gradability == .gradable)
                #expect(result.flag != nil)
                #expect(result.findings.map(\.lesionClass) == LesionClass.allCases)
                for f in result.findings {
                    #expect(f.lesions.count == f.lesionCount, "\(photo.lastPathComponent) \(f.lesionClass)")
                    #expect(f.maskPath.map { FileManager.default.fileExists(atPath: $0) } == true)
                }
                #expect(ScreeningFixture.maskProblems(masks: masks, photograph: photo, width: 4288, height: 2848) == [])
            }

            let corruptFile = try #require(archive.corrupt)
            let corruptID = try #require(ids[corruptFile.path])
            let corrupt = try #require(byImage[corruptID])
            #expect(corrupt.state == "discarded")
            #expect(corrupt.attempt == 1, "a file that cannot be decoded is not retried")
            let message = try #require(corrupt.lastError)
            #expect(message.contains(corruptFile.path), "the message names the file: \(message)")
            #expect(message.contains("decode"), "the message says which stage: \(message)")

            let blackFile = try #require(archive.black)
            let blackID = try #require(ids[blackFile.path])
            #expect(byImage[blackID]?.state == "completed")
            let black = try #require(try results.fetch(imageID: blackID, modelVersionID: model.version.id))
            guard case .ungradable(let reasons) = black.gradability else {
                Issue.record("the black frame was recorded as gradable")
                return
            }
            #expect(reasons.contains { $0.contains("field of view") }, "reasons: \(reasons)")
            #expect(black.findings.isEmpty && black.flag == nil)

            // No masks for the bad files, nothing half-written anywhere.
            #expect(!FileManager.default.fileExists(atPath: masks.appendingPathComponent("truncated_scan").path))
            #expect(!FileManager.default.fileExists(atPath: masks.appendingPathComponent("black_frame").path))
            #expect(ScreeningFixture.strayFiles(under: masks) == [])
            let run = try connection.query("SELECT id, state::text AS state, images_screened, settings::text AS settings FROM screening_runs").rows
            #expect(run.count == 1)
            #expect(run.first?["state"] == "finished" && run.first?["images_screened"] == "3")
            // Every result names the run that wrote it (what `report --run` selects by).
            let runIDs = try connection.query("SELECT DISTINCT screening_run_id::text AS run FROM screening_results").rows.map { $0["run"] }
            #expect(runIDs == [run.first?["id"]], "results' runs \(runIDs), the run \(String(describing: run.first?["id"]))")
            // The run says how it read the photographs (what the results link to): one model, one pass, whole image.
            let stored = try #require(run.first?["settings"])
            let settings = try JSONDecoder().decode(InferenceSettings.self, from: Data(stored.utf8))
            #expect(settings == InferenceSettings(options: {
                var o = ScreeningOptions(masksDirectory: masks)
                o.threshold = model.threshold
                return o
            }(), model: model.model), "\(stored)")
            #expect(settings.models == 1 && settings.augmentation == "1 pass (no TTA)" && settings.tiling == "whole image")
            #expect(settings.flagRule == "lesion-presence-v1 v1" && settings.threshold == 0.5)
        }
    }

    @Test("A worker killed with SIGKILL mid-run: a second one finishes every job exactly once, no partial masks")
    func killedWorker() async throws {
        let binary = try #require(ScreeningFixture.binary, "no .build/debug/fundus-screen: run `swift build --build-tests` first")
        try await ScreeningFixture.withRunSetting("fundus-kill-", idrid: 3) { s in
            let (folder, archive, masks, db, connection) = (s.folder, s.archive, s.masks, s.db, s.connection)
            let (modelFolder, model) = (s.modelFolder, s.model)
            try ScreeningFixture.importAndEnqueue(archive, connection: connection, modelVersionID: model.version.id)
            let arguments = ["screen", "--database", db.conninfo, "--model", modelFolder.path,
                             "--masks", masks.path, "--lease", "3", "--concurrency", "2", "--log-level", "notice"]

            let first = try Worker(binary: binary, arguments: arguments, log: folder.appendingPathComponent("first.log"))
            // Kill once one image is done and another is in flight: mid-run, with work held.
            let midRun = try ScreeningFixture.wait(timeout: 150) {
                let states = try ScreeningFixture.jobStates(connection)
                return states["completed", default: 0] >= 1 && states["running", default: 0] >= 1 || !first.isRunning
            }
            #expect(midRun && first.isRunning, "the first worker did not reach mid-run: \(first.logTail())")
            first.kill()
            #expect(first.status == SIGKILL)
            let heldByDead = try ScreeningFixture.jobs(connection).filter { $0.state == "running" }.map(\.id)
            #expect(!heldByDead.isEmpty)
            // What a kill during a mask write leaves: the atomic write's temporary file (never the mask itself).
            let patient = masks.appendingPathComponent("IDRiD_02")
            try FileManager.default.createDirectory(at: patient, withIntermediateDirectories: true)
            let leftover = patient.appendingPathComponent(".IDRiD_02_HE.png.\(first.pid).12345.tmp")
            try Data(repeating: 7, count: 1000).write(to: leftover)
            try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-60)], ofItemAtPath: leftover.path)

            let second = try Worker(binary: binary, arguments: arguments, log: folder.appendingPathComponent("second.log"))
            let finished = ScreeningFixture.wait(timeout: 240, interval: 0.5) { !second.isRunning }
            if !finished { second.kill() }
            #expect(finished && second.status == 0, "second worker: \(second.logTail())")

            let jobs = try ScreeningFixture.jobs(connection)
            #expect(jobs.count == 3)
            for job in jobs {
                #expect(job.state == "completed", "\(job)")
            }
            for id in heldByDead {
                let job = try #require(jobs.first { $0.id == id })
                #expect(job.rescues == 1 && job.attempt == 2, "the killed worker's job \(id) was rescued once: \(job)")
            }
            let counts = try ScreeningFixture.resultCounts(connection)
            #expect(counts.perImage.count == 3 && counts.perImage.values.allSatisfy { $0 == 1 }, "\(counts.perImage)")
            #expect(counts.findingsPerResult.values.allSatisfy { $0 == 4 }, "\(counts.findingsPerResult)")
            for job in jobs {
                #expect(counts.jobOfImage[job.imageID] == .some(job.id), "result of image \(job.imageID) comes from its job")
            }
            for photo in archive.good {
                #expect(ScreeningFixture.maskProblems(masks: masks, photograph: photo, width: 4288, height: 2848) == [])
            }
            #expect(ScreeningFixture.strayFiles(under: masks) == [], "temporary files left: \(second.logTail())")
        }
    }

    @Test("Restarting PostgreSQL during a run does not stop it: every job is completed once")
    func databaseRestart() async throws {
        try await ScreeningFixture.withRunSetting("fundus-restart-", idrid: 3) { s in
            let (archive, masks, db, connection, model) = (s.archive, s.masks, s.db, s.connection, s.model)
            try ScreeningFixture.importAndEnqueue(archive, connection: connection, modelVersionID: model.version.id)
            var settings = WorkerSettings()
            settings.slots = 2
            settings.pollInterval = 0.5
            settings.leaseSeconds = 5
            let fixed = settings
            let logger = self.logger
            let outcome = try await onThreads(2) { role -> String in
                if role == 0 {
                    let summary = try ScreeningRun.run(conninfo: db.conninfo, model: model,
                                                       options: ScreeningOptions(masksDirectory: masks),
                                                       settings: fixed, shutdown: ShutdownSignal(), logger: logger)
                    return "screened \(summary.screened)"
                }
                // Restart (fast shutdown: every connection is cut) once the run has finished an image.
                let watcher = try db.connect()
                let midRun = try ScreeningFixture.wait(timeout: 150) {
                    try ScreeningFixture.jobStates(watcher)["completed", default: 0] >= 1
                }
                watcher.close()
                guard midRun else { return "no image finished" }
                try db.server.stop()
                Thread.sleep(forTimeInterval: 1)
                try db.server.start()
                return "restarted"
            }
            #expect(outcome[1] == "restarted")
            #expect(outcome[0] == "screened 3")
            let states = try ScreeningFixture.jobStates(connection)
            #expect(states == ["completed": 3], "\(states)")
            let counts = try ScreeningFixture.resultCounts(connection)
            #expect(counts.perImage.count == 3 && counts.perImage.values.allSatisfy { $0 == 1 })
            #expect(counts.findingsPerResult.values.allSatisfy { $0 == 4 })
            #expect(ScreeningFixture.strayFiles(under: masks) == [])
            #expect(connection.reconnects >= 1, "the test's own connection saw the restart too")
        }
    }
}

/// A `fundus-screen` child process with its output in a log file.
final class Worker: @unchecked Sendable {
    let process = Process()
    let log: URL

    init(binary: URL, arguments: [String], log: URL) throws {
        self.log = log
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.executableURL = binary
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// SIGKILL, then wait until it is gone (reaped, so its pid is free).
    func kill() {
        _ = Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Exit status, or the signal that ended it.
    var status: Int32 {
        process.waitUntilExit()
        return process.terminationStatus
    }

    func logTail(_ characters: Int = 3000) -> String {
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return String(text.suffix(characters))
    }
}

@Test("Stale temporary files: a dead writer's are removed, a live writer's fresh ones and real masks stay")
func staleTemporaryFiles() throws {
    let folder = try ScreeningFixture.makeFolder("fundus-tmp-")
    defer { try? FileManager.default.removeItem(at: folder) }
    let patient = folder.appendingPathComponent("P1")
    try FileManager.default.createDirectory(at: patient, withIntermediateDirectories: true)
    // A pid that is no process: above the kernel's default pid_max.
    let deadPid: Int32 = 4_194_305
    let own = getpid()
    let old = Date().addingTimeInterval(-60)
    func make(_ name: String, modified: Date? = nil) throws -> URL {
        let url = patient.appendingPathComponent(name)
        try Data([1, 2, 3]).write(to: url)
        if let modified { try FileManager.default.setAttributes([.modificationDate: modified], ofItemAtPath: url.path) }
        return url
    }
    let dead = try make(".P1_EX.png.\(deadPid).77.tmp", modified: old)
    let deadFresh = try make(".P1_HE.png.\(deadPid).78.tmp")
    let mine = try make(".P1_SE.png.\(own).79.tmp", modified: old)
    let mask = try make("P1_MA.png", modified: old)
    let notOurs = try make(".notes.tmp", modified: old)
    let exists = { (u: URL) in FileManager.default.fileExists(atPath: u.path) }

    #expect(StaleTemporaryFiles.remove(under: folder, logger: ScreeningFixture.logger) == 1)
    #expect(!exists(dead) && exists(deadFresh) && exists(mine) && exists(mask) && exists(notOurs))
    // At the end of a run this process writes nothing any more: its own leftovers go too.
    #expect(StaleTemporaryFiles.remove(under: folder, ownWritesFinished: true, logger: ScreeningFixture.logger) == 1)
    #expect(!exists(mine) && exists(deadFresh))
    // Whatever the writer, nothing survives the maximum age.
    #expect(StaleTemporaryFiles.remove(under: folder, maximumAge: 0, logger: ScreeningFixture.logger) == 1)
    #expect(!exists(deadFresh) && exists(mask) && exists(notOurs))
    #expect(StaleTemporaryFiles.writerProcess(".IDRiD_01_EX.png.1234.4000000000.tmp") == 1234)
    #expect(StaleTemporaryFiles.writerProcess("IDRiD_01_EX.png") == nil)
}

@Test("Architecture names users type map to the shipped families")
func architectureNames() throws {
    #expect(try FreshModel.architecture(named: "w18-small-C") == .w18Small(variant: .C))
    #expect(try FreshModel.architecture(named: "W48-plain") == .w48(variant: .plain))
    #expect(try FreshModel.architecture(named: "tiny-d") == .tinyFixture(variant: .D))
    #expect(throws: ScreeningRunError.self) { try FreshModel.architecture(named: "resnet-C") }
    #expect(throws: ScreeningRunError.self) { try FreshModel.architecture(named: "w18-small-E") }
}

@Test("A lease sets the heartbeat to at most a third of it")
func leaseAndHeartbeat() {
    var settings = WorkerSettings()
    #expect(settings.leaseSeconds == 60 && settings.heartbeatInterval == 5)
    settings.leaseSeconds = 3
    #expect(settings.heartbeatInterval == 1)
}

@Test("model init writes a folder the loader reads back: the architecture, and every class starting at the prior")
func freshModelFolder() throws {
    let folder = try ScreeningFixture.makeFolder("fundus-init-")
    defer { try? FileManager.default.removeItem(at: folder) }
    let architecture = try FreshModel.architecture(named: "tiny-C")
    let weights = try FreshModel.create(architecture: architecture, name: "untrained-tiny", prior: 0.01, to: folder)
    #expect(weights.lastPathComponent == "untrained-tiny.safetensors")
    let loaded = try WeightLoader.load(folder)
    #expect(loaded.architecture == architecture)
    #expect(loaded.card?.trainingData.contains("mean nothing") == true)
    let bias = try #require(loaded.tensors["decode_head.conv_seg.bias"]).floats()
    #expect(bias.count == 4 && bias.allSatisfy { abs($0 - Float(log(0.01 / 0.99))) < 1e-5 })
    #expect(throws: ScreeningRunError.self) { try FreshModel.create(architecture: architecture, name: "x", prior: 1.5, to: folder) }
}

import Foundation
import Lesions
import Logging
import Reports
import Store
import Testing
import TestSupport
@testable import Pipeline

/// The local form (`screen -i DIR -o DIR`) shares the queue's enqueue path and the reports' findings export (issue 20).
@Suite("The local form: one enqueue path, one findings export")
struct LocalFolderTests {
    let logger = ScreeningFixture.logger

    func folderOfPhotographs(_ names: [String]) throws -> URL {
        let folder = try ScreeningFixture.makeFolder("fundus-local-")
        for (i, name) in names.enumerated() {
            try FreshDatabaseTests.syntheticPhotograph(seed: i, width: 64, height: 48).write(to: folder.appendingPathComponent(name))
        }
        return folder
    }

    @Test("The local form and the queue form of one (image, model version) make one job, on the local queue")
    func oneJobPerImageAndModel() async throws {
        let folder = try folderOfPhotographs(["P1_R.jpg", "P1_L.jpg"])
        defer { try? FileManager.default.removeItem(at: folder) }
        try await withTestDatabase { db in
            let c = try db.connect()
            let model = try ModelRegistry(connection: c)
                .register(name: "v1", architecture: "a", weightsPath: "/w/v1", checksum: String(repeating: "a", count: 64))
            let first = try LocalFolder.importAndEnqueue(folder, connection: c, modelVersionID: model.id, logger: logger)
            #expect(first.imageIDs.count == 2 && first.enqueued == 2)
            // The queue's own enqueue (an archive import, a re-screen) of the same pairs adds nothing ...
            let queue = JobQueue(connection: c, logger: logger)
            #expect(try queue.enqueueScreening(imageIDs: first.imageIDs, modelVersionID: model.id) == 0)
            #expect(try queue.enqueueRescreen(modelVersionID: model.id) == 0)
            // ... and neither does the local form again.
            #expect(try LocalFolder.importAndEnqueue(folder, connection: c, modelVersionID: model.id, logger: logger).enqueued == 0)
            let jobs = try c.query("SELECT image_id, queue, unique_key FROM jobs ORDER BY image_id").rows
            #expect(jobs.count == 2)
            #expect(try jobs.map { try $0.decode("unique_key", as: String.self) }
                    == first.imageIDs.sorted().map { "\($0)/\(model.id)" })
            #expect(try jobs.allSatisfy { try $0.decode("queue", as: String.self) == LocalFolder.queue })
        }
    }

    @Test("findings.csv and findings.json are the reports' findings export: its columns, one row per image × class")
    func findingsAreTheOneExport() async throws {
        let folder = try folderOfPhotographs(["P1_R.jpg", "P1_L.jpg", "P2_R.jpg"])
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = folder.appendingPathComponent("out")
        try await withTestDatabase { db in
            let c = try db.connect()
            let model = try ModelRegistry(connection: c)
                .register(name: "v1", architecture: "a", weightsPath: "/w/v1", checksum: String(repeating: "a", count: 64))
            let ids = try LocalFolder.importAndEnqueue(folder, connection: c, modelVersionID: model.id, logger: logger).imageIDs
            let archive = Archive(connection: c)
            let byName = Dictionary(uniqueKeysWithValues: try ids.map {
                (URL(fileURLWithPath: try #require(try archive.image(id: $0)).path).lastPathComponent, $0)
            })
            let results = ScreeningResults(connection: c)
            let findings = LesionClass.allCases.enumerated().map { i, lesion in
                Finding(lesionClass: lesion, lesionCount: i, areaPixels: Int64(i * 10), fieldOfViewShare: Double(i) * 0.001,
                        largestLesionPixels: Int64(i == 0 ? 0 : 10), maskPath: "/masks/P1_R_\(lesion.code).png")
            }
            try results.write(ScreeningResult(imageID: byName["P1_R.jpg"]!, modelVersionID: model.id, gradability: .gradable,
                                              flag: .suspectedMoreThanMildDR, rule: .lesionPresenceV1, findings: findings))
            try results.write(ScreeningResult(imageID: byName["P1_L.jpg"]!, modelVersionID: model.id,
                                              gradability: .ungradable(reasons: ["too dark"]), flag: nil, rule: nil, findings: []))
            // P2_R.jpg is not screened: no row.

            let files = try LocalFolder.writeFindings(imageIDs: ids, modelVersionID: model.id, connection: c, to: output)
            #expect(files.map(\.lastPathComponent) == ["findings.csv", "findings.json"])
            let csv = try String(contentsOf: files[0], encoding: .utf8)
            let lines = csv.split(separator: "\r\n", omittingEmptySubsequences: true).map(String.init)
            // The columns users read, in order (the same as `fundus-screen report`'s findings.csv).
            #expect(Array(try Data(contentsOf: files[0]).prefix(3)) == [0xEF, 0xBB, 0xBF], "UTF-8 with a byte-order mark")
            #expect(lines.first?.trimmingCharacters(in: ["\u{FEFF}"]) == FindingsRow.columns.joined(separator: ","))
            #expect(FindingsRow.columns == [
                "patient_id", "eye", "image_id", "image_path", "screening_run", "gradable", "ungradable_reasons", "class_code",
                "class_name", "lesion_count", "area_px", "fov_share", "area_mm2", "largest_px", "mask_path", "flag_raised",
                "flag_rule", "flag_rule_version", "flag_reason", "model_version", "screened_at", "area_mm2_basis", "optic_disc",
                "inference",
            ])
            #expect(lines.count == 1 + 4 + 1, "four classes of P1_R, one row for the ungradable P1_L, none for P2_R")
            let cells = lines.dropFirst().map(Self.fields)
            func column(_ name: String) -> Int { FindingsRow.columns.firstIndex(of: name)! }
            let right = cells.filter { $0[column("eye")] == "R" }
            #expect(right.map { $0[column("class_code")] } == ["EX", "HE", "SE", "MA"])
            #expect(right.map { $0[column("lesion_count")] } == ["0", "1", "2", "3"])
            #expect(right.allSatisfy { $0[column("patient_id")] == "P1" && $0[column("flag_raised")] == "true"
                && $0[column("model_version")] == "v1" && $0[column("gradable")] == "true" })
            let left = try #require(cells.first { $0[column("eye")] == "L" })
            #expect(left[column("gradable")] == "false" && left[column("ungradable_reasons")] == "too dark")
            #expect(left[column("class_code")] == "")

            let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: files[1])) as? [[String: Any]])
            #expect(json.count == 5)
            #expect(json.allSatisfy { Set($0.keys) == Set(FindingsRow.columns) })
        }
    }

    /// The fields of one CSV line (RFC 4180: quoted fields, doubled quotes).
    static func fields(_ line: String) -> [String] {
        var fields: [String] = [], field = "", quoted = false
        var chars = Array(line)[...]
        while let c = chars.popFirst() {
            if quoted {
                if c == "\"" {
                    if chars.first == "\"" { field.append("\""); chars.removeFirst() } else { quoted = false }
                } else { field.append(c) }
            } else if c == "\"" { quoted = true
            } else if c == "," { fields.append(field); field = ""
            } else { field.append(c) }
        }
        fields.append(field)
        return fields
    }

    @Test("The local form end to end: a folder screened with a real (tiny) model, masks in the output, every screened image in findings.csv, a broken file failing alone; a second run screens nothing again",
          .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
    func localFormEndToEnd() async throws {
        let root = try ScreeningFixture.makeFolder("fundus-local-")
        defer { try? FileManager.default.removeItem(at: root) }
        let folder = try ScreeningFixture.archive(in: root, idrid: 1, corrupt: true, black: false).folder
        let output = root.appendingPathComponent("out")
        try await withTestDatabase { db in
            let c = try db.connect()
            let modelFolder = try ScreeningFixture.tinyModelFolder(in: root)
            let model = try ModelResolver.resolve(.named(modelFolder.path), connection: c, logger: logger)
            var settings = WorkerSettings()
            settings.slots = 2
            settings.pollInterval = 0.2
            let fixed = settings
            let logger = self.logger
            func run() async throws -> LocalFolder.Outcome {
                try await onThreads(1) { _ in
                    try LocalFolder.screen(folder, output: output, model: model, options: ScreeningOptions(masksDirectory: output),
                                           settings: fixed, conninfo: db.conninfo, connection: try db.connect(),
                                           shutdown: ShutdownSignal(), logger: logger)
                }[0]
            }
            let first = try await run()
            #expect(first.imported.imageIDs.count == 2 && first.imported.enqueued == 2)
            #expect(first.summary.screened == 1 && first.summary.failed == 1,
                    "the photograph screened, the broken file failed alone: \(first.summary.text)")
            #expect(first.findingsFiles.map(\.lastPathComponent) == ["findings.csv", "findings.json"])
            let csv = try String(contentsOf: first.findingsFiles[0], encoding: .utf8)
            #expect(csv.contains("IDRiD_") && !csv.contains("truncated_scan"))
            let written = try FileManager.default.subpathsOfDirectory(atPath: output.path)
            #expect(written.contains { $0.hasSuffix("_EX.png") }, "masks in the output folder: \(written)")
            // Idempotent: the same folder again imports nothing new and screens nothing again.
            let second = try await run()
            #expect(second.imported.enqueued == 0 && second.summary.screened == 0)
            #expect(try String(contentsOf: second.findingsFiles[0], encoding: .utf8) == csv)
        }
    }
}

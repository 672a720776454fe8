import Foundation
import Testing
@testable import Store
import TestSupport

/// The built `fundus-screen` binary (from `swift build --build-tests`), or nil.
private let binary: String? = {
    let path = SharedFixtures.packageRoot.appendingPathComponent(".build/debug/fundus-screen").path
    return FileManager.default.isExecutableFile(atPath: path) ? path : nil
}()

@Suite("fundus-screen db, queue: the embedded database from the command line")
struct CommandLineTests {
    func run(_ arguments: [String], state: URL) throws -> (Int32, String) {
        let output = state.deletingLastPathComponent().appendingPathComponent("out-\(UUID().uuidString).txt")
        defer { try? FileManager.default.removeItem(at: output) }
        var environment = ProcessInfo.processInfo.environment
        for key in DatabaseLocation.libpqVariables + ["DATABASE_URL"] { environment.removeValue(forKey: key) }
        let status = try ChildProcess.run(binary!, arguments + ["--state-dir", state.path], environment: environment,
                                          directory: "/", output: output.path)
        return (status, (try? String(contentsOf: output, encoding: .utf8)) ?? "")
    }

    @Test("db migrate twice applies nothing the second time; SIGKILL of the server is recovered by the next command",
          .enabled(if: binary != nil, "build the binary first: swift build --build-tests"))
    func migrateTwiceAndRecover() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("fundus-cli-\(UUID().uuidString.prefix(8))")
        let state = folder.appendingPathComponent("state")
        defer {
            _ = try? run(["db", "stop"], state: state)
            try? FileManager.default.removeItem(at: folder)
        }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)

        let (first, firstOutput) = try run(["db", "migrate"], state: state)
        #expect(first == 0, "\(firstOutput)")
        for migration in Migration.all { #expect(firstOutput.contains("applied \(migration.label)")) }
        let (second, secondOutput) = try run(["db", "migrate"], state: state)
        #expect(second == 0)
        #expect(secondOutput.contains("database is up to date"))
        #expect(!secondOutput.contains("applied 0"))
        let (_, status) = try run(["db", "status"], state: state)
        for migration in Migration.all { #expect(status.contains("applied  \(migration.label)")) }

        let server = try Database.embeddedServer(stateDirectory: state, logger: TestPostgres.defaultLogger)
        guard case .running(let pid, _) = server.status() else { Issue.record("server not left running"); return }
        #expect(kill(pid, SIGKILL) == 0)
        let (recovered, queueOutput) = try run(["queue", "status"], state: state)
        #expect(recovered == 0, "\(queueOutput)")
        #expect(queueOutput.contains("no jobs"))
        let (_, stopOutput) = try run(["db", "stop"], state: state)
        #expect(stopOutput.contains("stopped"))
    }
}

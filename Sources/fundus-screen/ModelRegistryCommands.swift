import ArgumentParser
import Foundation
import Store
import Training

/// `fundus-screen model list`: the registry, newest last, with each version's validation figures.
struct ModelList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List model versions with their status and validation figures.")
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let versions = try global.modelRegistry().list()
        if versions.isEmpty { print("no model versions registered"); return }
        func row(_ cells: [String]) -> String {
            zip(cells, [5, 10, 28, 26, 8, 8, 8]).map { $0.padding(toLength: max($1, $0.count), withPad: " ", startingAt: 0) }.joined(separator: " ")
        }
        print(row(["id", "status", "name", "architecture", "mAUPR", "mIoU", "mAP"]))
        for v in versions {
            let m = ValidationMetrics.parse(v.metricsJSON).figures
            func f(_ k: String) -> String { m[k].map { String(format: "%.4f", $0) } ?? "–" }
            print(row(["\(v.id)", v.status.rawValue, v.name, v.architecture, f("mAUPR"), f("mIoU"), f("mAP")]))
        }
    }
}

/// `fundus-screen model promote ID`: make a candidate active when it validates better than the active model.
struct ModelPromote: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "promote",
        abstract: "Make a model version active if its validation metric beats the active one's (the next screening run uses it).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Model version id or name.") var id: String
    @Flag(help: "Promote even if it is not better.") var force = false
    @Option(help: "Figure to compare (mAUPR, mIoU, mAP, …).") var metric: String = Promotion.defaultMetric

    func run() throws {
        let rollout = ModelRollout(registry: try global.modelRegistry(), metric: metric)
        let (decision, version, queued) = try rollout.promote(id, force: force)
        guard decision.promote else {
            print("refused: \(decision.reason)")
            throw ExitCode(3)
        }
        print("promoted \(version.name) (id \(version.id)): \(decision.reason)")
        print("queued \(queued) images for it; new imports are queued for it from now on " +
              "(`fundus-screen queue rescreen --model \(version.id)` queues the rest of the archive)")
    }
}

/// `fundus-screen model rollback`: re-activate the model that was active before the current one.
struct ModelRollback: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rollback", abstract: "Re-activate the previously active model version.")
    @OptionGroup var global: GlobalOptions

    func run() throws {
        let (from, to, queued) = try ModelRollout(registry: try global.modelRegistry()).rollback()
        print("rolled back from \(from?.name ?? "none") to \(to.name) (id \(to.id)); queued \(queued) images for it")
    }
}

extension GlobalOptions {
    /// The model registry of the database these options name, logging as the model commands do.
    func modelRegistry() throws -> ModelRegistry {
        ModelRegistry(connection: try connect("fundus-screen.model").0)
    }
}

import ArgumentParser

/// `fundus-screen model …`: weight files and model versions.
struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Inspect weight files, run the network on tensors, and manage model versions.",
        subcommands: [ModelInspect.self]
    )
}

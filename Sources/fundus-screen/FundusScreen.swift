import ArgumentParser
import Foundation
import Imaging
import Logging
import Tensor

@main
struct FundusScreen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fundus-screen",
        abstract: "Screen archives of colour fundus photographs for diabetic-retinopathy lesions (EX, HE, SE, MA).",
        version: "0.1.0 (\(ImageFormat.libraryVersions))",
        subcommands: [
            ScreenCommand.self, ArchiveCommand.self, QueueCommand.self, ReportCommand.self, EvaluateCommand.self,
            TrainCommand.self, CrossvalCommand.self, AnnotationsCommand.self, ModelCommand.self, ImageCommand.self, DatabaseCommand.self, BenchCommand.self,
        ]
    )

    /// ArgumentParser's entry point, after telling malloc to keep freed tensor buffers (`TensorMemory.keepFreedMemory`:
    /// training steps and inference 10–12 % faster on this project's 2-core machine).
    static func main() async {
        TensorMemory.keepFreedMemory()
        await main(nil)
    }
}

/// Options every command that touches the database or state folder shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "libpq connection string or URI. Default: DATABASE_URL, PG* variables, else the embedded server.")
    var database: String?

    @Option(name: .long, help: "State folder for the embedded PostgreSQL and run files (default ./.fundus-screen or $FUNDUS_STATE_DIR).")
    var stateDir: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func makeLogger(_ label: String) -> Logger {
        LoggingBootstrap.once()
        var logger = Logger(label: label)
        logger.logLevel = logLevel
        return logger
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

enum LoggingBootstrap {
    private static let done: Void = {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
    }()
    static func once() { _ = done }
}

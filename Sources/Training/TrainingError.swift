import Foundation

/// What stopped a training run, a dataset scan or a promotion, naming the file and what was expected.
/// `code` is stable (scripts may match on it), `message` is for people.
public struct TrainingError: Error, CustomStringConvertible, Equatable {
    public enum Code: String, Sendable {
        case dataset, checkpoint, optimiser, configuration, model, registry
        /// Stopped on request (SIGINT/SIGTERM) after writing a checkpoint: the same command resumes.
        case interrupted
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

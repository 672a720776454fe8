import Foundation

/// DCMTK's command-line tools (Debian `dcmtk`, installed by scripts/setup.sh) for making real DICOM files in tests:
/// `img2dcm` wraps a JPEG without recompressing it, `dcmdjpeg` decompresses, `dcmcjpeg` compresses, `dcmodify`
/// edits tags, `dcmmkdir` writes a DICOMDIR. Tests that need them are enabled only when they are there.
public enum DicomTools {
    public static func path(_ tool: String) -> String? {
        let dirs = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map(String.init)
        return (dirs + ["/usr/bin"]).map { "\($0)/\(tool)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    public static var available: Bool {
        ["img2dcm", "dcmdjpeg", "dcmcjpeg", "dcmodify", "dcmmkdir"].allSatisfy { path($0) != nil }
    }

    public static let skipReason = "DCMTK's tools (img2dcm, dcmdjpeg, dcmcjpeg, dcmodify, dcmmkdir) are not installed: run scripts/setup.sh (Debian package dcmtk)"

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Runs a tool; throws with its output when it fails.
    public static func run(_ tool: String, _ arguments: [String]) throws {
        guard let executable = path(tool) else { throw Failure(description: "\(tool) is not installed") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(description: "\(tool) \(arguments.joined(separator: " ")) exited \(process.terminationStatus): \(text)")
        }
    }

    /// `img2dcm` of a JPEG: JPEG baseline transfer syntax, the JPEG's bytes as they were. `tags`: `(gggg,eeee)=value`.
    public static func wrap(jpeg: URL, to output: URL, tags: [String] = []) throws {
        try run("img2dcm", ["-q", jpeg.path, output.path] + tags.flatMap { ["-k", $0] })
    }
}

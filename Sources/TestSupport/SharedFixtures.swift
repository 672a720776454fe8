import Foundation

/// Where `../shared` (design notes, parity fixtures, real IDRiD data) lies beside the project checkout.
/// Tests that read it are enabled only when it is there, and say why when they skip: a user's clone has none,
/// CI always has it. `FUNDUS_SHARED` overrides the location.
public enum SharedFixtures {
    /// The package root, found from this source file's path (Sources/TestSupport/SharedFixtures.swift).
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public static let root: URL = {
        if let env = ProcessInfo.processInfo.environment["FUNDUS_SHARED"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        return packageRoot.deletingLastPathComponent().appendingPathComponent("shared")
    }()

    public static var available: Bool { FileManager.default.fileExists(atPath: root.path) }

    /// The reason printed by a skipped test: `.enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason))`.
    public static let skipReason = "../shared is absent (set FUNDUS_SHARED or place shared/ beside the checkout)"

    public static var parity: URL { root.appendingPathComponent("fixtures/parity") }
    public static var idridImages: URL { root.appendingPathComponent("data/idrid/images") }
    public static var idridMasks: URL { root.appendingPathComponent("data/idrid/masks") }
    public static var otherRetina: URL { root.appendingPathComponent("data/other/retina.jpg") }

    /// IDRiD_01 … IDRiD_14 image files present in shared/data.
    public static func idridImageFiles() -> [URL] {
        let dir = idridImages
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".jpg") }.sorted().map { dir.appendingPathComponent($0) }
    }
}

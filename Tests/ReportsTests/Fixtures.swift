import Foundation
import Lesions
@testable import Reports

/// Made-up patients for the tests: numbers are plausible, not measured.
enum Fixture {
    static let date = Date(timeIntervalSince1970: 1_795_000_000)  // 2026-11-18

    static func findings(ex: Int = 0, he: Int = 0, se: Int = 0, ma: Int = 0) -> [EyeReport.ClassTotals] {
        [(LesionClass.hardExudate, ex), (.haemorrhage, he), (.softExudate, se), (.microaneurysm, ma)].map { c, n in
            EyeReport.ClassTotals(
                lesionClass: c, count: n, areaPixels: n * 300, fieldOfViewShare: Double(n * 300) / 8_000_000,
                areaMM2: nil, largestPixels: n == 0 ? 0 : 900)
        }
    }

    static func eye(
        _ laterality: EyeReport.Laterality, image: String, photograph: String = "/nonexistent/photo.jpg", overlay: String? = nil,
        he: Int = 0, ma: Int = 0, gradable: Bool = true, run: String? = "run-1"
    ) -> EyeReport {
        let raised = gradable && he > 0
        return EyeReport(
            laterality: laterality, imageID: image, photograph: photograph, overlay: overlay,
            gradability: gradable ? .gradable : .ungradable("no field of view found"),
            findings: gradable ? findings(he: he, ma: ma) : [],
            flag: EyeReport.Flag(
                raised: raised, rule: "more-than-mild", ruleVersion: "1",
                reason: raised ? "\(he) haemorrhages beyond microaneurysms" : "microaneurysms only"),
            modelVersion: "m2mrf-test", screenedAt: date, screeningRun: run)
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("reports-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Writes `bytes` to a file in `dir` and returns its path.
    static func file(_ name: String, in dir: URL, bytes: [UInt8] = [0xFF, 0xD8, 0xFF, 0xD9]) throws -> String {
        let url = dir.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }
}

import Foundation
import Imaging
import Testing
@testable import Pipeline

/// Masks and overlays are written at `<masks>/<patient>/<stem>_<CLS>.png`, with the patient identifier and the file
/// name taken from the archive: whatever those hold, the files land inside the masks folder.
@Suite("Hostile names at the mask writer")
struct HostileNamesTests {
    let masks = URL(fileURLWithPath: "/srv/masks")

    @Test("Patient identifiers and file names with '../', '/', newlines, quotes, NUL or 300 bytes stay inside the masks folder")
    func maskLocationsStayInside() throws {
        let patients = ["../../etc", "..", ".", "", "a/../../b", "/abs/olute", "P\n1", "P'\"1", "x\u{0}y", "../" + String(repeating: "x", count: 300)]
        let paths = ["/archive/../../etc/passwd.jpg", "/archive/...jpg", "/archive/..", "/archive/a\nb_R.jpg", "/archive/.hidden.png",
                     "/archive/\u{1b}[31mred.tif", "/archive/" + String(repeating: "é", count: 300) + ".jpg", "/archive/P1_R.jpg",
                     "/archive/a\u{FFFD}b.jpg", "", "/"]
        for patient in patients {
            for path in paths {
                let (directory, stem) = ScreeningStages.maskLocation(patientID: patient, imagePath: path, masksDirectory: masks)
                for suffix in ["_EX.png", "_MA_prob.png", "_overlay.jpg"] {
                    let file = directory.appendingPathComponent(stem + suffix).standardizedFileURL
                    #expect(file.path.hasPrefix(masks.path + "/"), "\(patient.debugDescription) \(path.debugDescription) → \(file.path)")
                    #expect(file.deletingLastPathComponent().deletingLastPathComponent().path == masks.path)
                    #expect(file.lastPathComponent.utf8.count <= 255)
                    #expect(!file.lastPathComponent.hasPrefix("."), "no hidden files, nothing that looks like a temporary file")
                    #expect(!file.path.unicodeScalars.contains { $0.properties.generalCategory == .control })
                }
            }
        }
    }

    @Test("Ordinary names are kept as they are (IDRiD's <image>_<CLS>.png convention)")
    func ordinaryNamesUnchanged() {
        let (directory, stem) = ScreeningStages.maskLocation(patientID: "IDRiD_01", imagePath: "/data/IDRiD_01.jpg", masksDirectory: masks)
        #expect(directory.path == "/srv/masks/IDRiD_01")
        #expect(stem == "IDRiD_01")
        #expect(ScreeningStages.maskLocation(patientID: "P 1", imagePath: "/data/P 1 (copy).v2.jpg", masksDirectory: masks).stem == "P 1 (copy).v2")
    }

    @Test("A mask written for a hostile name really lands inside the folder")
    func writesInside() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("fundus-masks-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let (directory, stem) = ScreeningStages.maskLocation(patientID: "../../escaped", imagePath: "/a/../..\n.jpg", masksDirectory: root)
        let mask = Image(width: 4, height: 3, channels: 1, pixels: [UInt8](repeating: 255, count: 12))
        let written = try MaskFiles.write([("EX", mask)], directory: directory, imageStem: stem)
        #expect(written.count == 1)
        #expect(written[0].standardizedFileURL.path.hasPrefix(root.standardizedFileURL.path + "/"))
        #expect(FileManager.default.fileExists(atPath: written[0].path))
        #expect(!FileManager.default.fileExists(atPath: root.deletingLastPathComponent().appendingPathComponent("escaped").path))
    }
}

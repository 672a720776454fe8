import Foundation
import Testing
@testable import Reports

@Suite("JSON findings input")
struct SourceTests {
    static let json = """
        {"patients": [
          {"patientID": "P1", "eyes": [
            {"laterality": "R", "imageID": "I1", "photograph": "/a/I1.jpg", "overlay": "/a/I1_overlay.png",
             "gradability": {"gradable": true, "reasons": []},
             "findings": [{"class": "HE", "count": 2, "areaPixels": 900, "fieldOfViewShare": 0.0001, "largestPixels": 600},
                          {"class": "ex", "count": 0, "areaPixels": 0, "fieldOfViewShare": 0, "areaMM2": 0.0}],
             "flag": {"raised": true, "rule": "more-than-mild", "ruleVersion": "1", "reason": "2 haemorrhages"},
             "modelVersion": "m1", "screenedAt": "2026-11-23T07:10:00Z", "screeningRun": "r1"}]},
          {"patientID": "P2", "eyes": [
            {"laterality": "OS", "imageID": "I2", "photograph": "/a/I2.jpg",
             "gradability": {"gradable": false, "reasons": ["too dark"]}, "findings": [],
             "flag": {"raised": false, "rule": "", "ruleVersion": "", "reason": ""},
             "modelVersion": "m1", "screenedAt": "2026-11-23T07:11:00Z", "screeningRun": "r2"}]},
          {"patientID": "P1", "eyes": [
            {"laterality": "x", "imageID": "I3", "photograph": "/a/I3.jpg",
             "gradability": {"gradable": true, "reasons": []}, "findings": [],
             "flag": {"raised": false, "rule": "", "ruleVersion": "", "reason": ""},
             "modelVersion": "m1", "screenedAt": "2026-11-23T07:12:00Z", "screeningRun": "r2"}]}
        ]}
        """

    func source(_ text: String) throws -> (JSONReportSource, URL) {
        let dir = try Fixture.temporaryDirectory()
        let file = dir.appendingPathComponent("findings.json")
        try Data(text.utf8).write(to: file)
        return (JSONReportSource(file: file), dir)
    }

    @Test("Reads patients, merges repeated ids, selects by patient and by run")
    func selections() throws {
        let (src, dir) = try source(Self.json)
        defer { try? FileManager.default.removeItem(at: dir) }
        let all = try src.patients(.all)
        #expect(all.map(\.patientID) == ["P1", "P2"])
        #expect(all[0].eyes.map(\.imageID) == ["I1", "I3"])
        #expect(all[0].eyes[0].findings[1].lesionClass == .hardExudate && all[0].eyes[0].findings[1].areaMM2 == 0)
        #expect(all[0].eyes[1].laterality == .unknown && all[1].eyes[0].laterality == .left)
        #expect(try src.patients(.patient("P2")).map(\.patientID) == ["P2"])
        // A selected patient's page keeps all of the patient's images.
        let run2 = try src.patients(.run("r2"))
        #expect(run2.map(\.patientID) == ["P1", "P2"] && run2[0].eyes.map(\.imageID) == ["I1", "I3"])
        #expect(try src.patients(.run("r1")).map(\.patientID) == ["P1"])
        let sevenEleven = try #require(ISO8601DateFormatter().date(from: "2026-11-23T07:11:00Z"))
        #expect(try src.patients(.since(sevenEleven)).map(\.patientID) == ["P1", "P2"])
        #expect(try src.patients(.since(sevenEleven.addingTimeInterval(61))).isEmpty)
        #expect(throws: ReportError.self) { try src.patients(.run("r9")) }
        #expect(throws: ReportError.self) { try src.patients(.patient("nobody")) }
    }

    @Test("Bad input says which file and where")
    func errors() throws {
        let (src, dir) = try source(#"[{"patientID": "P1", "eyes": [{"laterality": "R"}]}]"#)
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            _ = try src.load()
            Issue.record("expected an error")
        } catch let error as ReportError {
            #expect(error.code == .invalidInput)
            #expect(error.message.contains(src.file.path))
            #expect(error.message.contains("[0].eyes[0]"))
        }
        let (bad, dir2) = try source(Self.json.replacingOccurrences(of: "\"HE\"", with: "\"OD\""))
        defer { try? FileManager.default.removeItem(at: dir2) }
        #expect(throws: ReportError.self) { try bad.load() }
        let missing = JSONReportSource(file: dir.appendingPathComponent("none.json"))
        #expect { try missing.load() } throws: { ($0 as? ReportError)?.code == .unreadableInput }
    }

    @Test("A patient report survives a JSON round trip")
    func roundTrip() throws {
        let (src, dir) = try source(Self.json)
        defer { try? FileManager.default.removeItem(at: dir) }
        for patient in try src.patients(.all) {
            #expect(try ReportWriter.decodeReport(ReportWriter.encodeReport(patient)) == patient)
        }
    }
}

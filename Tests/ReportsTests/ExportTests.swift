import Foundation
import Testing
@testable import Reports

@Suite("Findings exports: one row per image × class, in a shape spreadsheets and FHIR mappers take")
struct ExportTests {
    static let patients = [
        PatientReport(patientID: "P1", eyes: [
            Fixture.eye(.left, image: "P1-L", he: 3, ma: 1),
            Fixture.eye(.right, image: "P1-R", ma: 2),
        ]),
        PatientReport(patientID: "P2", eyes: [Fixture.eye(.right, image: "P2-R", gradable: false)]),
    ]

    @Test("Rows: right eye first, classes EX HE SE MA, an ungradable image as one row without class")
    func rows() {
        let rows = FindingsExport.rows(Self.patients)
        #expect(rows.count == 4 + 4 + 1)
        #expect(rows.prefix(4).map(\.imageID) == ["P1-R", "P1-R", "P1-R", "P1-R"])
        #expect(rows.prefix(4).map(\.classCode) == ["EX", "HE", "SE", "MA"])
        #expect(rows[5].classCode == "HE" && rows[5].lesionCount == 3 && rows[5].flagRaised && rows[5].eye == "L")
        let last = rows[8]
        #expect(last.patientID == "P2" && !last.gradable && last.classCode == "" && last.lesionCount == nil)
        #expect(last.ungradableReasons == "no field of view found")
        #expect(rows.allSatisfy { $0.modelVersion == "m2mrf-test" && $0.screenedAt == "2026-11-18T11:06:40Z" })
        #expect(rows.allSatisfy { $0.inference == "" }, "runs that recorded no settings say nothing")
    }

    @Test("Every row of an image names how its run read the photograph (the patient page's \"Read with\")")
    func inference() throws {
        var eye = Fixture.eye(.right, image: "P9-R", he: 1)
        eye.inference = "1 pass (no TTA), whole image, the mean of 2 models' probabilities"
        let rows = FindingsExport.rows([PatientReport(patientID: "P9", eyes: [eye])])
        #expect(rows.count == 4 && rows.allSatisfy { $0.inference == eye.inference })
        let lines = FindingsExport.csv(rows).components(separatedBy: "\r\n")
        #expect(lines[1].hasSuffix(",\"1 pass (no TTA), whole image, the mean of 2 models' probabilities\""))
        let objects = try #require(try JSONSerialization.jsonObject(with: FindingsExport.json(rows)) as? [[String: Any]])
        #expect(objects.allSatisfy { $0["inference"] as? String == eye.inference })
    }

    @Test("CSV: header as documented, RFC 4180 quoting, formulas defused")
    func csv() {
        var patient = PatientReport(patientID: "=HYPERLINK(\"http://x\")", eyes: [Fixture.eye(.right, image: "a,b", he: 1)])
        patient.eyes[0].flag.reason = "line one\nline \"two\""
        let text = FindingsExport.csv(FindingsExport.rows([patient]))
        let lines = text.components(separatedBy: "\r\n")
        #expect(lines[0] == "\u{FEFF}" + FindingsRow.columns.joined(separator: ","))
        #expect(lines[1].hasPrefix("\"'=HYPERLINK(\"\"http://x\"\")\",R,\"a,b\","))
        #expect(text.contains("\"line one\nline \"\"two\"\"\""))
        #expect(lines[1].contains(",EX,hard exudates,0,0,0.00000000,,0,,true,more-than-mild,1,"))
        #expect(text.hasSuffix("\r\n"))
    }

    @Test("JSON: an array of flat objects with every column, nulls for absent numbers")
    func json() throws {
        let rows = FindingsExport.rows(Self.patients)
        let data = try FindingsExport.json(rows)
        let objects = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        #expect(objects.count == rows.count)
        for object in objects { #expect(Set(object.keys) == Set(FindingsRow.columns)) }
        #expect(objects[8]["lesion_count"] is NSNull)
        #expect(objects[1]["class_code"] as? String == "HE")
        let decoded = try JSONDecoder().decode([FindingsRow].self, from: data)
        #expect(decoded == rows)
    }

    @Test("Numbers read the same on every machine")
    func formatting() {
        #expect(Format.grouped(1_234_567) == "1,234,567")
        #expect(Format.grouped(12) == "12")
        #expect(Format.grouped(-1000) == "-1,000")
        #expect(Format.percent(0.0134) == "1.34 %")
        #expect(Format.percent(0.00000001) == "<0.01 %")
        #expect(Format.percent(0.25) == "25.0 %")
        #expect(Format.percent(0) == "0 %")
        #expect(Format.squareMillimetres(nil) == "–")
        #expect(Format.squareMillimetres(1.005) == "1.00" || Format.squareMillimetres(1.005) == "1.01")
        #expect(Format.fixed(0.5, digits: 3) == "0.500")
        #expect(Format.fixed(-2.25, digits: 1) == "-2.3" || Format.fixed(-2.25, digits: 1) == "-2.2")
        #expect(Format.day(Fixture.date) == "2026-11-18 11:06 UTC")
    }
}

@Suite("Flag reasons")
struct FlagReasonTests {
    @Test("Without a stored reason, the page says what the findings show")
    func derivedReason() {
        var eye = Fixture.eye(.right, image: "a", he: 1, ma: 4)
        #expect(eye.flagReason == "1 haemorrhages beyond microaneurysms")  // the fixture's own reason
        eye.flag.reason = ""
        #expect(eye.flagReason == "1 haemorrhage beyond microaneurysms")
        eye.findings = Fixture.findings(ex: 2, he: 1500, se: 1, ma: 3)
        #expect(eye.flagReason == "2 hard exudates, 1,500 haemorrhages, 1 soft exudate beyond microaneurysms")
        eye.findings = Fixture.findings(ma: 3)
        #expect(eye.flagReason == "microaneurysms only (3)")
        eye.findings = Fixture.findings()
        #expect(eye.flagReason == "no lesions found")
        eye.gradability = .ungradable("too dark")
        #expect(eye.flagReason == "not evaluated: ungradable")
    }
}

@Test("Rule labels carry the version once")
func ruleLabels() {
    #expect(EyeReport.Flag(raised: true, rule: "lesion-presence-v1", ruleVersion: "1", reason: "").ruleLabel == "lesion-presence-v1")
    #expect(EyeReport.Flag(raised: true, rule: "more-than-mild", ruleVersion: "2", reason: "").ruleLabel == "more-than-mild v2")
    #expect(EyeReport.Flag(raised: false, rule: "", ruleVersion: "", reason: "").ruleLabel == "")
}

import Foundation
import Testing
@testable import Lesions

/// Findings with the given lesion counts (single-pixel lesions on a row) in class order EX, HE, SE, MA.
private func findings(_ counts: [Int]) throws -> ImageFindings {
    var planes: [LesionClass: ScorePlane] = [:]
    for c in LesionClass.allCases {
        var mask = [UInt8](repeating: 0, count: 20)
        for i in 0..<counts[c.rawValue] { mask[i * 2] = 1 }
        planes[c] = try ScorePlane(width: 20, height: 1, mask: mask)
    }
    return try LesionMeasurement().measure(planes)
}

@Test("lesion-presence-v1: any EX, HE or SE flags suspected more-than-mild DR; MA alone does not")
func ruleV1() throws {
    let rule = ScreeningRule.lesionPresenceV1
    #expect(rule.name == "lesion-presence-v1" && rule.version == 1)
    #expect(try rule.flag(for: findings([0, 0, 0, 0])) == .noLesionsFound)
    #expect(try rule.flag(for: findings([0, 0, 0, 5])) == .microaneurysmsOnly)
    #expect(try rule.flag(for: findings([1, 0, 0, 0])) == .suspectedMoreThanMildDR)
    #expect(try rule.flag(for: findings([0, 1, 0, 3])) == .suspectedMoreThanMildDR)
    #expect(try rule.flag(for: findings([0, 0, 1, 0])) == .suspectedMoreThanMildDR)
    #expect(throws: LesionsError.self) { try ScreeningRule(name: "made-up", version: 9).flag(for: findings([0, 0, 0, 0])) }
}

@Test("No flag names a severe or proliferative grade")
func noGrades() {
    for flag in ScreeningFlag.allCases {
        for word in ["severe", "proliferative", "PDR"] {
            #expect(!flag.rawValue.localizedCaseInsensitiveContains(word) && !flag.summary.localizedCaseInsensitiveContains(word))
        }
    }
}

@Test("The worse eye decides for the patient; an ungradable eye outranks reassuring flags")
func patientFlag() throws {
    let right = try EyeResult(laterality: .right, images: [.gradable("P1-R", findings([0, 0, 0, 2]))])
    let left = try EyeResult(laterality: .left, images: [.gradable("P1-L", findings([0, 3, 0, 0]))])
    let p = try PatientResult(patientID: "P1", right: right, left: left)
    #expect(p.flag == .suspectedMoreThanMildDR && p.decidingEye == .left)
    #expect(p.rule == .lesionPresenceV1)
    #expect(left.lesionCounts == [0, 3, 0, 0])

    let blurred = try EyeResult(laterality: .left, images: [.ungradable("P2-L", reason: "no field of view found")])
    #expect(blurred.flag == .ungradable && blurred.lesionCounts.isEmpty)
    #expect(blurred.ungradableReasons == ["P2-L: no field of view found"])
    let p2 = try PatientResult(patientID: "P2", right: right, left: blurred)
    #expect(p2.flag == .ungradable && p2.decidingEye == .left)

    let oneEye = try PatientResult(patientID: "P3", right: nil, left: left)
    #expect(oneEye.flag == .suspectedMoreThanMildDR)
    #expect(throws: LesionsError.self) { try PatientResult(patientID: "P4", right: nil, left: nil) }
}

@Test("An eye with several photographs takes its worst gradable one")
func eyeWithSeveralImages() throws {
    let eye = try EyeResult(laterality: .right, images: [
        .gradable("macula", findings([0, 0, 0, 1])),
        .ungradable("blurred", reason: "too dark"),
        .gradable("disc", findings([2, 0, 0, 0])),
    ])
    #expect(eye.flag == .suspectedMoreThanMildDR && eye.decidingImageID == "disc")
    #expect(eye.imageIDs == ["macula", "blurred", "disc"])
}

@Test("Results encode with the rule's name and version beside the flag")
func resultCodable() throws {
    let eye = try EyeResult(laterality: .right, images: [.gradable("a", findings([0, 0, 0, 1]))])
    let p = try PatientResult(patientID: "P9", right: eye, left: nil)
    let json = String(decoding: try JSONEncoder().encode(p), as: UTF8.self)
    #expect(json.contains("\"lesion-presence-v1\"") && json.contains("\"microaneurysms-only\"") && json.contains("\"R\""))
    #expect(try JSONDecoder().decode(PatientResult.self, from: Data(json.utf8)) == p)
}

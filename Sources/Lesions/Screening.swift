/// The outcome of screening one eye or one patient, for a grader to act on.
///
/// Lesion masks cannot establish severe or proliferative disease (that needs venous beading, IRMA, new vessels),
/// so no flag names a grade; the worst flag only asks for review.
public enum ScreeningFlag: String, Codable, Sendable, CaseIterable, Comparable {
    case noLesionsFound = "no-lesions-found"
    case microaneurysmsOnly = "microaneurysms-only"
    /// No gradable image: it needs a new photograph or a human look, so it ranks above the reassuring flags.
    case ungradable = "ungradable"
    case suspectedMoreThanMildDR = "suspected-more-than-mild-dr"

    /// Worse is larger; the worse eye decides for the patient.
    public var rank: Int {
        switch self {
        case .noLesionsFound: 0
        case .microaneurysmsOnly: 1
        case .ungradable: 2
        case .suspectedMoreThanMildDR: 3
        }
    }

    public var summary: String {
        switch self {
        case .noLesionsFound: "no lesions found"
        case .microaneurysmsOnly: "microaneurysms only"
        case .ungradable: "ungradable"
        case .suspectedMoreThanMildDR: "suspected more-than-mild DR: refer to a grader"
        }
    }

    public static func < (a: ScreeningFlag, b: ScreeningFlag) -> Bool { a.rank < b.rank }
}

/// A named, versioned rule from lesion findings to a flag. The name and version are stored beside every result,
/// so a changed rule never silently re-labels old findings.
public struct ScreeningRule: Codable, Sendable, Equatable, Hashable {
    public var name: String
    public var version: Int

    public init(name: String, version: Int) { self.name = name; self.version = version }

    /// SCREENING.md: any haemorrhage, hard exudate or soft exudate (beyond microaneurysms alone) marks
    /// "suspected more-than-mild DR"; microaneurysms alone are reported as such. Lesions are counted after the
    /// minimum-lesion-area filter of the findings.
    public static let lesionPresenceV1 = ScreeningRule(name: "lesion-presence-v1", version: 1)

    public func flag(for findings: ImageFindings) throws -> ScreeningFlag {
        guard self == .lesionPresenceV1 else {
            throw LesionsError("unknown screening rule \(name) version \(version)")
        }
        let beyondMicroaneurysms: [LesionClass] = [.hardExudate, .haemorrhage, .softExudate]
        for c in LesionClass.allCases where findings.findings(for: c) == nil {
            throw LesionsError("rule \(name) needs findings for \(c.code), which were not measured")
        }
        if beyondMicroaneurysms.contains(where: { findings.findings(for: $0)!.count > 0 }) {
            return .suspectedMoreThanMildDR
        }
        return findings.findings(for: .microaneurysm)!.count > 0 ? .microaneurysmsOnly : .noLesionsFound
    }
}

/// Which eye, written R/L as DICOM Image Laterality. The one definition: the archive (Store), the reports and the
/// eye results all use it.
public enum Laterality: String, Codable, Sendable, CaseIterable {
    case right = "R"
    case left = "L"

    /// Reads R/L, right/left, OD/OS (oculus dexter/sinister), RE/LE, any case; nil for anything else (B, U, empty).
    public init?(parsing text: String) {
        switch text.trimmingCharacters(in: .whitespaces).uppercased() {
        case "R", "RIGHT", "OD", "RE": self = .right
        case "L", "LEFT", "OS", "LE": self = .left
        default: return nil
        }
    }
}

/// One photograph's contribution to an eye's result: its findings, or why it could not be graded.
public struct ImageAssessment: Sendable, Equatable {
    public var imageID: String
    public var findings: ImageFindings?
    public var ungradableReason: String?

    public static func gradable(_ imageID: String, _ findings: ImageFindings) -> ImageAssessment {
        ImageAssessment(imageID: imageID, findings: findings, ungradableReason: nil)
    }

    public static func ungradable(_ imageID: String, reason: String) -> ImageAssessment {
        ImageAssessment(imageID: imageID, findings: nil, ungradableReason: reason)
    }
}

/// One eye: the flag of its worst gradable photograph, or ungradable when none could be graded.
public struct EyeResult: Codable, Sendable, Equatable {
    public var laterality: Laterality?
    public var imageIDs: [String]
    public var flag: ScreeningFlag
    public var rule: ScreeningRule
    /// The photograph that decided the flag (nil when every photograph was ungradable).
    public var decidingImageID: String?
    /// Lesion counts of the deciding photograph in class order EX, HE, SE, MA (empty when ungradable).
    public var lesionCounts: [Int]
    /// Reasons of the ungradable photographs, "image: reason".
    public var ungradableReasons: [String]

    public init(laterality: Laterality?, images: [ImageAssessment], rule: ScreeningRule = .lesionPresenceV1) throws {
        guard !images.isEmpty else {
            throw LesionsError("an eye result needs at least one photograph (eye \(laterality?.rawValue ?? "?"))")
        }
        self.laterality = laterality
        self.rule = rule
        imageIDs = images.map(\.imageID)
        ungradableReasons = images.compactMap { i in i.ungradableReason.map { "\(i.imageID): \($0)" } }
        var best: (flag: ScreeningFlag, image: ImageAssessment)?
        for image in images {
            guard let f = image.findings else { continue }
            let flag = try rule.flag(for: f)
            if best == nil || flag > best!.flag { best = (flag, image) }
        }
        if let best {
            flag = best.flag
            decidingImageID = best.image.imageID
            lesionCounts = LesionClass.allCases.map { best.image.findings!.findings(for: $0)?.count ?? 0 }
        } else {
            flag = .ungradable
            decidingImageID = nil
            lesionCounts = []
        }
    }
}

/// One patient: both eyes side by side; the worse eye decides.
public struct PatientResult: Codable, Sendable, Equatable {
    public var patientID: String
    public var right: EyeResult?
    public var left: EyeResult?
    public var flag: ScreeningFlag
    public var rule: ScreeningRule
    /// The eye whose flag is the patient's (the right eye on a tie).
    public var decidingEye: Laterality?

    public init(patientID: String, right: EyeResult?, left: EyeResult?) throws {
        let eyes = [right, left].compactMap { $0 }
        guard let first = eyes.first else {
            throw LesionsError("patient \(patientID) has no eye results")
        }
        guard eyes.allSatisfy({ $0.rule == first.rule }) else {
            throw LesionsError("patient \(patientID): the eyes were flagged by different rules")
        }
        self.patientID = patientID
        self.right = right
        self.left = left
        rule = first.rule
        var worst = first
        for eye in eyes.dropFirst() where eye.flag > worst.flag { worst = eye }
        flag = worst.flag
        decidingEye = worst.laterality
    }
}

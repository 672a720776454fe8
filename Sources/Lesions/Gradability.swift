/// Whether a photograph could be read for lesions. Ungradable is a normal outcome (no field of view, too dark, too
/// blurred, too small), with the reasons in words a grader understands. The one definition: the pipeline decides
/// it, Store stores it (`gradable`, `ungradable_reasons`), the reports show it.
public enum Gradability: Sendable, Equatable, Hashable {
    case gradable
    /// `reasons` may be empty only where none was recorded (a report read from elsewhere); Store requires one.
    case ungradable(reasons: [String])

    /// Gradable when `gradable`, else ungradable for `reasons`.
    public init(gradable: Bool, reasons: [String] = []) {
        self = gradable ? .gradable : .ungradable(reasons: reasons)
    }

    public static func ungradable(_ reasons: String...) -> Gradability { .ungradable(reasons: reasons) }

    public var isGradable: Bool {
        switch self {
        case .gradable: true
        case .ungradable: false
        }
    }

    /// Why not; empty when gradable.
    public var reasons: [String] {
        switch self {
        case .gradable: []
        case .ungradable(let reasons): reasons
        }
    }
}

/// As reports' JSON carries it: `{"gradable": false, "reasons": ["too dark"]}`.
extension Gradability: Codable {
    enum CodingKeys: String, CodingKey { case gradable, reasons }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(gradable: try c.decode(Bool.self, forKey: .gradable),
                  reasons: try c.decode([String].self, forKey: .reasons))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(isGradable, forKey: .gradable)
        try c.encode(reasons, forKey: .reasons)
    }
}

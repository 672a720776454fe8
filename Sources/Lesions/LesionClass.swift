/// The four lesion classes of diabetic retinopathy that the model segments, in the order used everywhere:
/// network channels, masks, tables, metrics (SCREENING.md).
public enum LesionClass: Int, CaseIterable, Codable, Sendable, Comparable {
    case hardExudate = 0
    case haemorrhage = 1
    case softExudate = 2
    case microaneurysm = 3

    /// IDRiD code: EX, HE, SE, MA (file names `<image>_<CODE>.png`).
    public var code: String {
        switch self {
        case .hardExudate: "EX"
        case .haemorrhage: "HE"
        case .softExudate: "SE"
        case .microaneurysm: "MA"
        }
    }

    public var name: String {
        switch self {
        case .hardExudate: "hard exudates"
        case .haemorrhage: "haemorrhages"
        case .softExudate: "soft exudates"
        case .microaneurysm: "microaneurysms"
        }
    }

    /// Overlay colour (RGB) as in the M2MRF paper's figures: EX red, HE green, SE yellow, MA blue.
    /// Overlays and reports share this table.
    public var colour: (red: UInt8, green: UInt8, blue: UInt8) {
        switch self {
        case .hardExudate: (230, 25, 25)
        case .haemorrhage: (25, 200, 60)
        case .softExudate: (245, 215, 30)
        case .microaneurysm: (40, 90, 240)
        }
    }

    /// Index in the official merged label map (0 = background; later classes overwrite earlier ones: MA > SE > HE > EX).
    public var labelIndex: Int { rawValue + 1 }

    public init?(code: String) {
        guard let c = LesionClass.allCases.first(where: { $0.code == code.uppercased() }) else { return nil }
        self = c
    }

    public static func < (a: LesionClass, b: LesionClass) -> Bool { a.rawValue < b.rawValue }
}

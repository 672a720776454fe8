/// One lesion class's per-pixel scores for one image: a row-major buffer of `width × height` values.
///
/// Lesions takes plain buffers, never image types, so that it needs nothing else of ours. Three encodings arrive:
/// float probabilities from the network (sigmoid outputs in [0, 1]), 8-bit probability maps as written to disk
/// (`v → v/255`, computed in Float as the reference reads them), and binary masks (any non-zero value is a lesion,
/// score 1; zero is score 0).
public struct ScorePlane: Sendable {
    public enum Values: Sendable {
        case probabilities([Float])
        case probabilityBytes([UInt8])
        case mask([UInt8])
    }

    public let width: Int
    public let height: Int
    public let values: Values

    public init(width: Int, height: Int, probabilities: [Float]) throws {
        try Self.checkSize(width, height, probabilities.count)
        self.width = width; self.height = height; values = .probabilities(probabilities)
    }

    /// 8-bit probability map: score = Float(v) / 255.
    public init(width: Int, height: Int, probabilityBytes: [UInt8]) throws {
        try Self.checkSize(width, height, probabilityBytes.count)
        self.width = width; self.height = height; values = .probabilityBytes(probabilityBytes)
    }

    /// Binary mask: non-zero = lesion (score 1), zero = background (score 0).
    public init(width: Int, height: Int, mask: [UInt8]) throws {
        try Self.checkSize(width, height, mask.count)
        self.width = width; self.height = height; values = .mask(mask)
    }

    public var pixelCount: Int { width * height }

    /// True when scores carry a probability (mean/max probability of a lesion mean something).
    public var hasProbabilities: Bool {
        if case .mask = values { return false }
        return true
    }

    /// The score of an 8-bit probability value: the reference divides in float32.
    @inline(__always)
    public static func score(byte v: UInt8) -> Float { Float(v) / 255 }

    private static func checkSize(_ width: Int, _ height: Int, _ count: Int) throws {
        guard width > 0, height > 0 else {
            throw LesionsError("a score plane needs a positive size, got \(width)×\(height)")
        }
        guard count == width * height else {
            throw LesionsError("a \(width)×\(height) score plane needs \(width * height) values, got \(count)")
        }
    }
}

/// What went wrong, in words a user can act on (which buffer, what size was expected).
public struct LesionsError: Error, CustomStringConvertible, Sendable, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// How an image is resized before the network (mmseg's `img_scale` with `keep_ratio=True`): the long side fits into
/// `longEdge` and the short side into `shortEdge`. The one definition, with the official presets: the model card
/// carries it (`ModelCard.inputScale`, JSON `input_scale`), training records it, Imaging resizes to it
/// (`resizedSize(width:height:)`, m2mrf-reference.md §4).
public struct InputScale: Codable, Sendable, Equatable {
    public var longEdge: Int
    public var shortEdge: Int
    public var keepRatio: Bool

    public init(longEdge: Int, shortEdge: Int, keepRatio: Bool = true) {
        self.longEdge = longEdge
        self.shortEdge = shortEdge
        self.keepRatio = keepRatio
    }

    /// IDRiD's scale of the official configs: 4288×2848 → 1440×956.
    public static let idrid = InputScale(longEdge: 1440, shortEdge: 960)
    /// DDR's scale of the official configs.
    public static let ddr = InputScale(longEdge: 1024, shortEdge: 1024)

    /// mmseg keep-ratio rule: factor = min(L/long, S/short) with L, S the larger and the smaller of the two edges
    /// (whichever way round they were given), each side int(side·factor + 0.5). IDRiD 4288×2848 → 1440×956; a square
    /// → 960×960 at the IDRiD scale.
    public func resizedSize(width: Int, height: Int) -> (width: Int, height: Int) {
        let long = Double(max(width, height)), short = Double(min(width, height))
        let factor = min(Double(max(longEdge, shortEdge)) / long, Double(min(longEdge, shortEdge)) / short)
        return (Int(Double(width) * factor + 0.5), Int(Double(height) * factor + 0.5))
    }
}

import Foundation

/// One tile of a plan: a rectangle of the input, in pixels (always inside it).
public typealias Tile = PixelRegion

/// Overlapping tiles over an image of any size, as nnU-Net and MONAI's sliding window place them: along each
/// axis, the fewest tiles whose overlap is at least `overlap` pixels, spread evenly from edge to edge. An axis
/// shorter than the tile gets one tile of the image's length, so a tile at least as large as the image gives a
/// single tile that is the whole image.
public struct TilePlan: Sendable, Equatable, Codable {
    public let width: Int
    public let height: Int
    public let tileWidth: Int
    public let tileHeight: Int
    public let tiles: [Tile]

    public init(width: Int, height: Int, tileWidth: Int, tileHeight: Int, overlap: Int) {
        precondition(width > 0 && height > 0 && tileWidth > 0 && tileHeight > 0 && overlap >= 0)
        let tw = min(tileWidth, width), th = min(tileHeight, height)
        func starts(_ size: Int, _ tile: Int) -> [Int] {
            guard size > tile else { return [0] }
            let step = max(1, tile - min(overlap, tile - 1))
            let count = Int((Double(size - tile) / Double(step)).rounded(.up)) + 1
            return (0..<count).map { Int((Double($0) * Double(size - tile) / Double(count - 1)).rounded()) }
        }
        let xs = starts(width, tw), ys = starts(height, th)
        self.width = width
        self.height = height
        self.tileWidth = tw
        self.tileHeight = th
        self.tiles = ys.flatMap { y in xs.map { x in Tile(x: x, y: y, width: tw, height: th) } }
    }
}

/// How a tile's pixels are weighted when overlapping tiles are blended.
public enum TileWeighting: Sendable, Equatable {
    /// Every pixel 1: a plain average where tiles overlap.
    case uniform
    /// A Gaussian centred on the tile with σ = `sigmaScale` × the tile's size on each axis (nnU-Net: 1/8),
    /// normalised to a maximum of 1, floored at the smallest positive value so that edges still count.
    case gaussian(sigmaScale: Double)

    public static let nnUNet = TileWeighting.gaussian(sigmaScale: 1.0 / 8)
}

/// Blends per-class maps of tiles (probabilities or logits) into one map over the plan's whole image:
/// Σ w·p / Σ w per pixel. Accumulates in double, so where one tile alone covers a pixel its value comes back
/// exactly; a single-tile plan gives exactly the whole-image result.
public struct TileBlender: Sendable {
    public let plan: TilePlan
    public let channels: Int
    /// Weight of each tile pixel, row-major tileHeight × tileWidth.
    public let weights: [Float]
    private var sums: [Double]
    private var weightSums: [Double]

    public init(plan: TilePlan, channels: Int, weighting: TileWeighting = .nnUNet) {
        self.plan = plan
        self.channels = channels
        self.weights = TileBlender.weights(width: plan.tileWidth, height: plan.tileHeight, weighting: weighting)
        self.sums = [Double](repeating: 0, count: channels * plan.width * plan.height)
        self.weightSums = [Double](repeating: 0, count: plan.width * plan.height)
    }

    static func weights(width: Int, height: Int, weighting: TileWeighting) -> [Float] {
        guard case .gaussian(let scale) = weighting else { return [Float](repeating: 1, count: width * height) }
        func axis(_ n: Int) -> [Double] {
            let sigma = max(Double(n) * scale, 1e-6), centre = Double(n) / 2
            return (0..<n).map { i in
                let d = Double(i) + 0.5 - centre
                return exp(-d * d / (2 * sigma * sigma))
            }
        }
        let ax = axis(width), ay = axis(height)
        var w = [Float](repeating: 0, count: width * height)
        for y in 0..<height { for x in 0..<width { w[y * width + x] = Float(ay[y] * ax[x]) } }
        let peak = w.max() ?? 1
        w = w.map { $0 / peak }
        let floor = w.filter { $0 > 0 }.min() ?? 1
        return w.map { $0 > 0 ? $0 : floor }
    }

    /// Adds the output of tile `index`: planar [channels, tileHeight, tileWidth].
    public mutating func add(tile index: Int, values: [Float]) {
        let tile = plan.tiles[index], tw = tile.width, th = tile.height
        precondition(values.count == channels * tw * th, "tile \(index) needs \(channels)x\(th)x\(tw) values, got \(values.count)")
        let W = plan.width, H = plan.height
        for y in 0..<th {
            for x in 0..<tw {
                let w = Double(weights[y * tw + x]), p = (tile.y + y) * W + tile.x + x
                weightSums[p] += w
                for c in 0..<channels { sums[c * W * H + p] += w * Double(values[(c * th + y) * tw + x]) }
            }
        }
    }

    /// The blended map, planar [channels, height, width]; 0 where no tile was added.
    public func result() -> [Float] {
        let n = plan.width * plan.height
        var out = [Float](repeating: 0, count: channels * n)
        for c in 0..<channels {
            for p in 0..<n where weightSums[p] > 0 { out[c * n + p] = Float(sums[c * n + p] / weightSums[p]) }
        }
        return out
    }
}

// Test-time augmentation by the symmetries of the image (nnU-Net's "mirroring" TTA, 2-D, optionally with the
// transpositions that make the eight symmetries of the square): the network sees the image and its horizontal,
// vertical and both-axes flips (and, with `dihedral`, the transposed image and its three flips, i.e. the 90° and 270°
// rotations among them); each output is mapped back to the image's orientation. The caller averages the passes'
// sigmoid probabilities where it turns logits into probabilities: for the official metric and the screening that is
// at every photograph pixel, after each pass's logits were resized to the photograph
// (`CropTransform.meanSigmoidToOriginal`), so one pass gives exactly the plain result.

/// One symmetry of a planar [planes, H, W] array: a mirroring, then (for the `transposed…` cases) a transposition
/// (x ↔ y, so the result is [planes, W, H]).
public enum Mirror: String, Sendable, CaseIterable, Codable {
    case none
    /// Left–right (x → W−1−x).
    case horizontal
    /// Top–bottom (y → H−1−y).
    case vertical
    /// Both axes (a 180° rotation).
    case both
    /// Rows become columns (the main diagonal's reflection).
    case transposed
    /// Left–right, then transposed (a 90° rotation, counter-clockwise as displayed).
    case horizontalTransposed
    /// Top–bottom, then transposed (a 90° rotation, clockwise as displayed).
    case verticalTransposed
    /// Both axes, then transposed (the anti-diagonal's reflection).
    case bothTransposed

    var flipX: Bool { self == .horizontal || self == .both || self == .horizontalTransposed || self == .bothTransposed }
    var flipY: Bool { self == .vertical || self == .both || self == .verticalTransposed || self == .bothTransposed }
    /// Whether the result is transposed: [planes, W, H] for an input of [planes, H, W].
    public var transposes: Bool { self == .transposed || self == .horizontalTransposed || self == .verticalTransposed || self == .bothTransposed }

    /// The planar array [planes, height, width] mirrored, then transposed where the case says ([planes, width,
    /// height] then).
    public func apply(_ values: [Float], height: Int, width: Int) -> [Float] {
        let flipped = Self.flip(values, height: height, width: width, x: flipX, y: flipY)
        return transposes ? Self.transpose(flipped, height: height, width: width) : flipped
    }

    /// The inverse of `apply` for an input that was [planes, height, width]: `values` is what the network returned
    /// for the transformed view ([planes, width, height] where the case transposes), brought back to [planes,
    /// height, width] in the input's orientation.
    public func invert(_ values: [Float], height: Int, width: Int) -> [Float] {
        let untransposed = transposes ? Self.transpose(values, height: width, width: height) : values
        return Self.flip(untransposed, height: height, width: width, x: flipX, y: flipY)
    }

    static func flip(_ values: [Float], height: Int, width: Int, x flipX: Bool, y flipY: Bool) -> [Float] {
        let plane = height * width
        precondition(plane > 0 && values.count % plane == 0, "\(values.count) values are not planes of \(height)×\(width)")
        if !flipX && !flipY { return values }
        var out = [Float](repeating: 0, count: values.count)
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for p in 0..<(values.count / plane) {
                    for y in 0..<height {
                        let from = p * plane + (flipY ? height - 1 - y : y) * width
                        let to = p * plane + y * width
                        if flipX {
                            for x in 0..<width { dst[to + x] = src[from + width - 1 - x] }
                        } else {
                            for x in 0..<width { dst[to + x] = src[from + x] }
                        }
                    }
                }
            }
        }
        return out
    }

    /// [planes, height, width] → [planes, width, height], out[p][x][y] = in[p][y][x]; in blocks of 32 × 32 so both
    /// sides stay in cache.
    static func transpose(_ values: [Float], height: Int, width: Int) -> [Float] {
        let plane = height * width
        precondition(plane > 0 && values.count % plane == 0, "\(values.count) values are not planes of \(height)×\(width)")
        var out = [Float](repeating: 0, count: values.count)
        let block = 32
        values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for p in 0..<(values.count / plane) {
                    let base = p * plane
                    for y0 in stride(from: 0, to: height, by: block) {
                        for x0 in stride(from: 0, to: width, by: block) {
                            for y in y0..<min(y0 + block, height) {
                                for x in x0..<min(x0 + block, width) { dst[base + x * height + y] = src[base + y * width + x] }
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}

/// Which symmetries inference runs; `passes` network runs per image.
public struct TestTimeAugmentation: Sendable, Equatable, Codable {
    public var mirrors: [Mirror]

    public init(mirrors: [Mirror]) {
        precondition(!mirrors.isEmpty, "test-time augmentation needs at least one pass")
        self.mirrors = mirrors
    }

    /// One plain pass.
    public static let none = TestTimeAugmentation(mirrors: [.none])
    /// nnU-Net-style mirroring: the image, its horizontal, vertical and both-axes flips (4 passes).
    public static let mirroring = TestTimeAugmentation(mirrors: [.none, .horizontal, .vertical, .both])
    /// The eight symmetries of the square: the mirroring's four passes and the same four transposed (8 passes).
    public static let dihedral = TestTimeAugmentation(mirrors: Mirror.allCases)

    /// What the commands' `--tta` / `--no-tta` and `--dihedral` ask for: one pass, the four mirrorings, or all eight.
    public static func chosen(tta: Bool, dihedral: Bool) -> TestTimeAugmentation {
        tta ? (dihedral ? .dihedral : .mirroring) : .none
    }

    public var passes: Int { mirrors.count }

    /// "1 pass (no TTA)" / "4 passes (mirroring TTA: none, horizontal, vertical, both)" / "8 passes (dihedral TTA: …)".
    public var description: String {
        if passes == 1 && mirrors[0] == .none { return "1 pass (no TTA)" }
        let kind = mirrors.contains(where: \.transposes) ? "dihedral" : "mirroring"
        return "\(passes) passes (\(kind) TTA: \(mirrors.map(\.rawValue).joined(separator: ", ")))"
    }

    /// Runs `infer` on the planar input [channels, height, width] once per symmetry and returns each output (planar
    /// [planes, height, width] at the input's size, e.g. logits resized to the input) mapped back to the input's
    /// orientation, in the order of `mirrors`. `infer` gets the view and its height and width (swapped for a
    /// transposed view); it may tile: it sees an ordinary image.
    public func passes(_ input: [Float], height: Int, width: Int,
                       infer: (_ view: [Float], _ height: Int, _ width: Int) throws -> [Float]) rethrows -> [[Float]] {
        try mirrors.map { mirror in
            let view = mirror.apply(input, height: height, width: width)
            let output = mirror.transposes ? try infer(view, width, height) : try infer(view, height, width)
            return mirror.invert(output, height: height, width: width)
        }
    }
}

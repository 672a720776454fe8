// Test-time augmentation by mirroring (nnU-Net's "mirroring" TTA, 2-D): the network sees the image and its
// horizontal, vertical and both-axes flips; each output is flipped back to the image's orientation. The caller
// averages the passes' sigmoid probabilities where it turns logits into probabilities: for the official metric and
// the screening that is at every photograph pixel, after each pass's logits were resized to the photograph
// (`CropTransform.meanSigmoidToOriginal`), so one pass gives exactly the plain result.

/// A mirroring of a planar [planes, H, W] array.
public enum Mirror: String, Sendable, CaseIterable, Codable {
    case none
    /// Left–right (x → W−1−x).
    case horizontal
    /// Top–bottom (y → H−1−y).
    case vertical
    /// Both axes (a 180° rotation).
    case both

    /// The planar array [planes, height, width] mirrored; every mirror is its own inverse.
    public func apply(_ values: [Float], height: Int, width: Int) -> [Float] {
        let plane = height * width
        precondition(plane > 0 && values.count % plane == 0, "\(values.count) values are not planes of \(height)×\(width)")
        if self == .none { return values }
        let flipX = self == .horizontal || self == .both, flipY = self == .vertical || self == .both
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
}

/// Which mirrorings inference runs; `passes` network runs per image.
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

    public var passes: Int { mirrors.count }

    /// "1 pass (no TTA)" / "4 passes (mirroring TTA: none, horizontal, vertical, both)".
    public var description: String {
        passes == 1 && mirrors[0] == .none ? "1 pass (no TTA)"
            : "\(passes) passes (mirroring TTA: \(mirrors.map(\.rawValue).joined(separator: ", ")))"
    }

    /// Runs `infer` on the planar input [channels, height, width] once per mirroring and returns each output
    /// (planar [planes, height, width] at the input's size, e.g. logits resized to the input) flipped back to the
    /// input's orientation, in the order of `mirrors`. `infer` may tile: it sees an ordinary image.
    public func passes(_ input: [Float], height: Int, width: Int,
                       infer: ([Float]) throws -> [Float]) rethrows -> [[Float]] {
        try mirrors.map { mirror in
            let output = try infer(mirror.apply(input, height: height, width: width))
            return mirror.apply(output, height: height, width: width)
        }
    }
}

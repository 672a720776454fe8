import Checkpoints
import Foundation
import Imaging
import Network
import Tensor
import Testing
import TestSupport
@testable import Pipeline

/// Mirrors a planar [planes, h, w] array by explicit index arithmetic (independent of `Mirror.apply`).
private func mirrored(_ v: [Float], planes: Int, h: Int, w: Int, x flipX: Bool, y flipY: Bool) -> [Float] {
    var out = v
    for p in 0..<planes {
        for y in 0..<h {
            for x in 0..<w {
                out[(p * h + y) * w + x] = v[(p * h + (flipY ? h - 1 - y : y)) * w + (flipX ? w - 1 - x : x)]
            }
        }
    }
    return out
}

/// Mirrors, then (if `t`) transposes a planar [planes, h, w] array into [planes, w, h], by explicit index arithmetic.
private func symmetric(_ v: [Float], planes: Int, h: Int, w: Int, x flipX: Bool, y flipY: Bool, transpose t: Bool) -> [Float] {
    let m = mirrored(v, planes: planes, h: h, w: w, x: flipX, y: flipY)
    guard t else { return m }
    var out = m
    for p in 0..<planes {
        for y in 0..<h {
            for x in 0..<w { out[(p * w + x) * h + y] = m[(p * h + y) * w + x] }
        }
    }
    return out
}

/// The eight symmetries with their explicit description (mirror x, mirror y, then transpose).
private let symmetries: [(Mirror, Bool, Bool, Bool)] = [
    (.none, false, false, false), (.horizontal, true, false, false), (.vertical, false, true, false), (.both, true, true, false),
    (.transposed, false, false, true), (.horizontalTransposed, true, false, true), (.verticalTransposed, false, true, true),
    (.bothTransposed, true, true, true),
]

/// A transform whose map is the photograph itself (square = image, no scaling): bilinear taps are the identity.
private func identity(width: Int, height: Int) -> CropTransform {
    CropTransform(originalWidth: width, originalHeight: height, scale: 1, region: PixelRegion(x: 0, y: 0, width: width, height: height))
}

@Test("Mirror: each mirroring matches explicit index arithmetic and is its own inverse")
func mirrorArithmetic() {
    let (h, w) = (3, 5)
    let v = (0..<(2 * h * w)).map { Float($0) }
    for (mirror, fx, fy) in [(Mirror.none, false, false), (.horizontal, true, false), (.vertical, false, true), (.both, true, true)] {
        #expect(mirror.apply(v, height: h, width: w) == mirrored(v, planes: 2, h: h, w: w, x: fx, y: fy))
        #expect(mirror.apply(mirror.apply(v, height: h, width: w), height: h, width: w) == v)
    }
    #expect(TestTimeAugmentation.mirroring.passes == 4)
    #expect(TestTimeAugmentation.none.passes == 1)
}

@Test("Mirror: the eight symmetries match explicit index arithmetic on a non-square array, invert exactly, and are distinct")
func dihedralArithmetic() {
    let (h, w) = (3, 5)
    let v = (0..<(2 * h * w)).map { Float($0) }
    var seen: [[Float]] = []
    for (mirror, fx, fy, t) in symmetries {
        let view = mirror.apply(v, height: h, width: w)
        #expect(view == symmetric(v, planes: 2, h: h, w: w, x: fx, y: fy, transpose: t), "\(mirror)")
        #expect(mirror.transposes == t)
        #expect(mirror.invert(view, height: h, width: w) == v, "\(mirror)")
        seen.append(view)
    }
    #expect(Set(seen.map { $0.map(\.bitPattern) }).count == 8)
    // The rotations among them, written out: a 90° rotation (counter-clockwise as displayed) of [[0 1 2] [3 4 5]]
    // is [[2 5] [1 4] [0 3]].
    #expect(Mirror.horizontalTransposed.apply([0, 1, 2, 3, 4, 5], height: 2, width: 3) == [2, 5, 1, 4, 0, 3])
    #expect(Mirror.verticalTransposed.apply([0, 1, 2, 3, 4, 5], height: 2, width: 3) == [3, 0, 4, 1, 5, 2])
    #expect(TestTimeAugmentation.dihedral.passes == 8)
    #expect(TestTimeAugmentation.dihedral.mirrors.prefix(4) == TestTimeAugmentation.mirroring.mirrors[...])
    #expect(TestTimeAugmentation.dihedral.description.hasPrefix("8 passes (dihedral TTA"))
    #expect(TestTimeAugmentation.mirroring.description.hasPrefix("4 passes (mirroring TTA"))
    #expect(TestTimeAugmentation.chosen(tta: false, dihedral: false) == .none)
    #expect(TestTimeAugmentation.chosen(tta: true, dihedral: false) == .mirroring)
    #expect(TestTimeAugmentation.chosen(tta: true, dihedral: true) == .dihedral)
}

@Test("TTA on a flip-equivariant network (per-pixel): every pass equals the plain one; the probability map equals the plain one within one 8-bit step")
func ttaOfEquivariantNetwork() {
    let (h, w) = (7, 9)
    var rng = SystemRandomNumberGenerator()
    let input = (0..<(3 * h * w)).map { _ in Float.random(in: -3...3, using: &rng) }
    // Four logit planes, each a function of the pixel's own three channels only: flips commute with it.
    func network(_ x: [Float], _: Int, _: Int) -> [Float] {
        let plane = h * w
        var out = [Float](repeating: 0, count: 4 * plane)
        for c in 0..<4 {
            let weight = Float(c + 1), bias = Float(c)
            for i in 0..<plane {
                let r = x[i] * weight, g = x[plane + i], b: Float = 0.5 * x[2 * plane + i]
                out[c * plane + i] = r - g + b - bias
            }
        }
        return out
    }
    let plain = network(input, h, w)
    let passes = TestTimeAugmentation.mirroring.passes(input, height: h, width: w, infer: network)
    #expect(passes.count == 4)
    for p in passes { #expect(p == plain) }
    // Mapped back to an (upscaled) photograph: the mean of equal sigmoids is the plain sigmoid.
    let t = CropTransform(originalWidth: 20, originalHeight: 15, scale: 1, region: PixelRegion(x: -2, y: 0, width: 15, height: 15))
    for c in 0..<4 {
        let slice = Array(plain[(c * h * w)..<((c + 1) * h * w)])
        let plainBytes = t.sigmoidToOriginal(slice, width: w, height: h).bytes
        let ttaBytes = t.meanSigmoidToOriginal(passes.map { Array($0[(c * h * w)..<((c + 1) * h * w)]) }, width: w, height: h).bytes
        #expect(zip(plainBytes, ttaBytes).allSatisfy { abs(Int($0) - Int($1)) <= 1 })
        // One pass is exactly the official map.
        #expect(t.meanSigmoidToOriginal([slice], width: w, height: h).bytes == plainBytes)
    }
}

@Test("TTA of the tiny M2MRF model (whole and tiled; mirroring and dihedral) equals the mean of the sigmoids of explicitly mirrored and transposed runs, each mapped back",
      .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)))
func ttaOfTinyModel() throws {
    let loaded = try WeightLoader.load(SharedFixtures.parity.appendingPathComponent("tiny_m2mrf_C.pth"))
    let model = try SegmentationModel(architecture: loaded.architecture, weights: loaded.tensors)
    let (w, h) = (96, 64), plane = w * h
    var rng = SystemRandomNumberGenerator()
    let input = (0..<(3 * w * h)).map { _ in Float.random(in: -2...2, using: &rng) }

    for (tiling, augmentation) in [(ScreeningOptions.Tiling.whole, TestTimeAugmentation.mirroring), (.tiles(size: 48, overlap: 0.25), .mirroring),
                                   (.whole, .dihedral), (.tiles(size: 48, overlap: 0.25), .dihedral)] {
        let passes = try ScreeningStages.logitPasses(model: model, input: input, width: w, height: h, tiling: tiling,
                                                     augmentation: augmentation)
        let plain = try ScreeningStages.logitPasses(model: model, input: input, width: w, height: h, tiling: tiling,
                                                    augmentation: .none)
        #expect(passes.count == augmentation.passes && plain.count == 1)
        #expect(passes[0] == plain[0])
        // The explicit runs: mirror (and transpose) the input, run the network as the screening would on the view's
        // own size (64 wide and 96 high when transposed), map the logits back by explicit index arithmetic.
        var explicit: [[Float]] = []
        for (_, fx, fy, t) in symmetries.prefix(augmentation.passes) {
            let view = symmetric(input, planes: 3, h: h, w: w, x: fx, y: fy, transpose: t)
            let (vh, vw) = t ? (w, h) : (h, w)
            let logits: [Float]
            switch tiling {
            case .whole: logits = try model.upsampledLogits(Tensor(view, shape: [1, 3, vh, vw])).values()
            case .tiles(let size, let overlap):
                logits = try ScreeningStages.tiledLogits(model: model, input: view, width: vw, height: vh, size: size, overlap: overlap)
            }
            // Back: transpose [4, vh, vw] → [4, h, w] (a transposition undoes itself), then the same mirroring.
            let untransposed = t ? symmetric(logits, planes: 4, h: vh, w: vw, x: false, y: false, transpose: true) : logits
            explicit.append(mirrored(untransposed, planes: 4, h: h, w: w, x: fx, y: fy))
        }
        for (a, b) in zip(passes, explicit) { #expect(a == b) }
        // The symmetries see different views: the passes differ (else the test would prove nothing).
        #expect(passes[1] != passes[0])
        if augmentation.passes == 8 { #expect(passes[4] != passes[0] && passes[5] != passes[4]) }

        // The probability map: mean of the passes' sigmoids, as round(p̄·255), on the identity geometry.
        let t = identity(width: w, height: h)
        for c in 0..<4 {
            let range = (c * plane)..<((c + 1) * plane)
            let bytes = t.meanSigmoidToOriginal(passes.map { Array($0[range]) }, width: w, height: h).bytes
            let expected = (0..<plane).map { i -> Int in
                let p = explicit.map { 1 / (1 + exp(-Double($0[range.lowerBound + i]))) }.reduce(0, +) / Double(explicit.count)
                return Int((p * 255).rounded())
            }
            #expect(zip(bytes, expected).allSatisfy { abs(Int($0) - $1) <= 1 })
            #expect(zip(bytes, expected).filter { Int($0) != $1 }.count <= plane / 100)
        }
    }
}

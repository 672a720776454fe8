import Foundation
import ReferenceModel
import Testing
import TestSupport
@testable import Checkpoints
@testable import Network
@testable import Tensor

// Whole networks of the shipped sizes against an independent reference: the engine's float32 backward must equal
// the finite differences of a Double-precision re-implementation of the forward (Tests/ReferenceModel, which shares
// no code with the engine), parameter tensor by parameter tensor, on every kind of parameter.
//
// The reference replays the engine's ReLU decisions (which activations were > 0). Without that, the comparison
// measures rounding luck, not the backward: an activation within float32 rounding of zero goes one way in the
// engine and the other in exact arithmetic, and a single such ReLU moves the gradient of every layer before it by
// up to ~1e-2 (on these networks the free-running exact gradients differ from the engine's by 5e-3 to 1.7e-2;
// rescaling all weights by 1 + 1e-6·N(0,1) moves the exact gradient of wide_hrnet by a median 6e-3). With the
// decisions replayed, the function is the engine's piecewise-linear piece, computed in Double, and the worst
// directional error is about 4e-4 (tensors whose gradient is ~1e-7), typically 1e-5; a wrongly routed or missing
// gradient term shows as an error of order 1.

/// A deterministic generator for weights, inputs, labels and directions: TestSupport's SplitMix from a spread seed,
/// with normal deviates.
struct GradientCheckRandom {
    var generator: TestSupport.SplitMix
    init(_ seed: UInt64) { generator = TestSupport.SplitMix(seed: seed &* 0x9E3779B97F4A7C15 &+ 0x632BE59BD9B4E019) }
    /// Uniform in [0, 1).
    mutating func uniform() -> Double { generator.nextDouble() }
    /// Standard normal (Box–Muller).
    mutating func normal() -> Double {
        let u = max(uniform(), 1e-300), v = uniform()
        return (-2 * Foundation.log(u)).squareRoot() * Foundation.cos(2 * Double.pi * v)
    }

    /// Labels for `n` images of H × W: a square blob of each lesion class 1…4 per image, centred uniformly, of
    /// half-side `radius` + up to `spread` more, so that every class has pixels in most images.
    mutating func blobLabels(n: Int, height H: Int, width W: Int, radius: Int, spread: Double) -> [Int32] {
        var labels = [Int32](repeating: 0, count: n * H * W)
        for b in 0..<n {
            for cls in 1...4 {
                let cy = Int(uniform() * Double(H)), cx = Int(uniform() * Double(W)), rad = radius + Int(uniform() * spread)
                for y in max(0, cy - rad)..<min(H, cy + rad) { for x in max(0, cx - rad)..<min(W, cx + rad) {
                    labels[(b * H + y) * W + x] = Int32(cls)
                } }
            }
        }
        return labels
    }
}

/// The engine model's parameters as the reference wants them (mmseg names, plain row-major Doubles).
func referenceModel(of model: SegmentationModel) -> ReferenceModel {
    var values: [String: [Double]] = [:], shapes: [String: [Int]] = [:]
    for name in model.parameterNames {
        let t = model.parameter(name)!
        values[name] = t.values().map(Double.init)
        shapes[name] = t.shape
    }
    let variant = RefVariant(rawValue: model.architecture.variant.rawValue)!
    return ReferenceModel(parameters: values, shapes: shapes, variant: variant)
}

/// Random weights everywhere a fixture has them: BN affine parameters and every bias too, not only the
/// initialisation's ones and zeros (so that no gradient is trivially zero or trivially symmetric).
func randomiseWeights(_ model: SegmentationModel, seed: UInt64) {
    var r = GradientCheckRandom(seed)
    for name in model.parameterNames {
        let t = model.parameter(name)!
        let n = t.count
        if name.hasSuffix("running_mean") || name.hasSuffix("running_var") { continue }
        if name.contains(".bn") || name.hasSuffix(".1.weight") || name.hasSuffix(".1.bias")
            || name.contains("downsample.1") || name.contains(".bn.") {
            // BatchNorm affine: weight around 1, bias around 0.
            let isWeight = name.hasSuffix(".weight")
            for i in 0..<n { t.data[i] = Float(isWeight ? 1 + 0.2 * r.normal() : 0.1 * r.normal()) }
        } else if name.hasSuffix(".bias") {
            for i in 0..<n { t.data[i] = Float(0.05 * r.normal()) }
        }
    }
    model.invalidateInferenceWeights()
}

struct WholeNetworkCase: CustomStringConvertible, Sendable {
    var name: String
    var architecture: ModelArchitecture
    var height: Int
    var width: Int
    var seed: UInt64
    /// Branches whose blocks are recomputed in backward (gradient checkpointing); 0: every activation kept.
    var checkpointBranches = 0
    var description: String {
        "\(name) \(height)×\(width) seed \(seed)" + (checkpointBranches > 0 ? ", \(checkpointBranches) branches checkpointed" : "")
    }
}

/// The shipped architecture (models/default: HRNetV2-W16-small, M2MRF-C), a W48-shaped M2MRF-C (the paper's widths
/// 48/96/192/384 and head 720, one block per branch to keep the Double reference quick), and plain HRNet at the
/// shipped widths; odd sizes, two seeds for the shipped one. Inputs near 100 px, so that the 1/32 branch is 3×3
/// or more: on 1×1 or 2×2 maps BatchNorm over a batch of two normalises two values to ±1 and the function is
/// degenerate (its gradient is ill-conditioned in any precision).
let wholeNetworkCases: [WholeNetworkCase] = {
    let w48 = ModelArchitecture(variant: .C, stages: [
        .init(modules: 1, block: .bottleneck, blocks: [1], channels: [64]),
        .init(modules: 1, block: .basic, blocks: [1, 1], channels: [48, 96]),
        .init(modules: 2, block: .basic, blocks: [1, 1, 1], channels: [48, 96, 192]),
        .init(modules: 1, block: .basic, blocks: [1, 1, 1, 1], channels: [48, 96, 192, 384]),
    ])
    return [
        WholeNetworkCase(name: "shipped W16-small-C", architecture: .small(width: 16, variant: .C), height: 97, width: 101, seed: 1),
        WholeNetworkCase(name: "shipped W16-small-C", architecture: .small(width: 16, variant: .C), height: 105, width: 99, seed: 2),
        WholeNetworkCase(name: "W48-shaped M2MRF-C", architecture: w48, height: 99, width: 97, seed: 3),
        WholeNetworkCase(name: "W48-shaped M2MRF-C", architecture: w48, height: 101, width: 99, seed: 5, checkpointBranches: 4),
        WholeNetworkCase(name: "W16-small plain HRNet", architecture: .small(width: 16, variant: .plain), height: 97, width: 107, seed: 4),
    ]
}()

/// Directional finite differences of the Double reference against the engine's gradient for `names`: for each
/// tensor a random Gaussian direction v, central difference with a step of 1e-6 of the tensor's scale.
/// Returns (name, engine g·v, exact derivative, relative error) per tensor; the error is
/// |g·v − fd| / max(|fd|, ½‖g‖σ_v, 1e-4·largest |fd|) — the middle term is the typical size of g·v for a random v,
/// so that a direction which happens to be nearly orthogonal to the gradient does not blow the ratio up.
func directionalCheck(reference: ReferenceModel, gradients: [String: [Double]], names: [String],
                      input: RefTensor, labels: [Int32], seed: UInt64) -> [(String, Double, Double, Double)] {
    var r = GradientCheckRandom(seed &+ 1000)
    var ref = reference
    var raw: [(String, Double, Double, Double)] = []  // name, g·v, fd, ½‖g‖σ
    for name in names {
        let theta = ref.parameters[name]!
        let rms = (theta.reduce(0) { $0 + $1 * $1 } / Double(theta.count)).squareRoot()
        let sigma = rms > 1e-6 ? rms : 0.05
        let v = (0..<theta.count).map { _ in r.normal() * sigma }
        let h = 1e-6
        ref.parameters[name] = zip(theta, v).map { $0 + h * $1 }
        let up = ref.loss(input, labels: labels)
        ref.parameters[name] = zip(theta, v).map { $0 - h * $1 }
        let down = ref.loss(input, labels: labels)
        ref.parameters[name] = theta
        let fd = (up - down) / (2 * h)
        let g = gradients[name]!
        let gv = zip(g, v).reduce(0) { $0 + $1.0 * $1.1 }
        let gNorm = g.reduce(0) { $0 + $1 * $1 }.squareRoot()
        raw.append((name, gv, fd, 0.5 * gNorm * sigma))
    }
    let largest = raw.map { abs($0.2) }.max() ?? 0
    return raw.map { name, gv, fd, typical in
        (name, gv, fd, abs(gv - fd) / max(abs(fd), typical, 1e-4 * largest, 1e-12))
    }
}

/// About `count` tensors spread evenly over the network's parameter list, plus one of each kind that must be
/// covered (fuse down and up paths, new-branch transitions, M2MRF linear layers, the head).
func sampledParameters(_ names: [String], count: Int) -> [String] {
    var chosen = Set<String>()
    let step = max(1, names.count / count)
    for i in stride(from: step / 2, to: names.count, by: step) { chosen.insert(names[i]) }
    let kinds = ["branches.0.0.conv2.weight", "branches.2.0.bn1.bias", "fuse_layers.1.0.", "fuse_layers.0.1.", "fuse_layers.3.1.0.", "transition1.1", "transition3.3",
                 "sample.sample_fc.weight", "sample.sample_fc1.bias", "layer1.0.conv3", "decode_head.convs.0.conv",
                 "decode_head.conv_seg.weight", "conv1.weight"]
    for kind in kinds { if let n = names.first(where: { $0.contains(kind) }) { chosen.insert(n) } }
    return names.filter { chosen.contains($0) }
}

@Test("Whole networks (shipped W16-small-C, W48-shaped, plain; odd sizes; several seeds): every sampled parameter's gradient equals the finite differences of an independent Double-precision forward taking the same ReLU decisions",
      arguments: wholeNetworkCases.indices)
func wholeNetworkGradients(_ k: Int) throws {
    let c = wholeNetworkCases[k]
    let model = try SegmentationModel(architecture: c.architecture)
    randomiseWeights(model, seed: c.seed)
    model.checkpointBranches = c.checkpointBranches
    var r = GradientCheckRandom(c.seed &+ 77)
    let n = 2, H = c.height, W = c.width
    let input = (0..<(n * 3 * H * W)).map { _ in Float(r.normal()) }
    let labels = r.blobLabels(n: n, height: H, width: W, radius: 2, spread: 5)
    // The reference is taken before the step (which moves BN running statistics, not used in training mode).
    var reference = referenceModel(of: model)
    model.thread.run { model.engine.reluDecisions = [] }
    let (loss, grads) = try model.trainingStep(input: Tensor(input, shape: [n, 3, H, W]), labels: labels)
    let decisions = model.thread.run { () -> [[Bool]] in
        defer { model.engine.reluDecisions = nil }
        return model.engine.reluDecisions ?? []
    }
    let refInput = RefTensor(n: n, c: 3, h: H, w: W, data: input.map(Double.init))
    let exactLoss = reference.loss(refInput, labels: labels)
    #expect(abs(Double(loss) - exactLoss) / exactLoss < 1e-5, "\(c): loss \(loss), Double reference \(exactLoss)")
    let names = sampledParameters(model.trainableNames, count: 8)
    let g = Dictionary(uniqueKeysWithValues: names.map { ($0, grads[$0]!.values().map(Double.init)) })
    // The check: the same piecewise-linear piece as the engine's pass (its ReLU decisions replayed), everything else
    // in Double. Its finite differences are the exact gradient of the function the engine differentiated.
    reference.reluDecisions = decisions
    let replayLoss = reference.loss(refInput, labels: labels)
    #expect(abs(Double(loss) - replayLoss) / replayLoss < 1e-5, "\(c): loss \(loss), replayed \(replayLoss)")
    let rows = directionalCheck(reference: reference, gradients: g, names: names, input: refInput, labels: labels,
                                seed: c.seed)
    var worst = (0.0, "")
    for (name, gv, fd, e) in rows {
        if e > worst.0 { worst = (e, name) }
        #expect(e < 1e-3, "\(c): \(name): engine g·v \(gv), exact \(fd), relative error \(e)")
    }
    print("\(c): loss \(loss) (Double \(exactLoss)); \(rows.count) tensors, \(decisions.count) ReLU layers replayed: "
          + "worst directional error \(worst.0) at \(worst.1)")
}

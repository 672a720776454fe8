import Foundation
import ReferenceModel
import Testing
import TestSupport
@testable import Checkpoints
@testable import Network
@testable import Tensor

// The wide parity fixtures (the shipped model's widths, ../shared/fixtures/parity/README.md) against the official
// numbers, and — where a gradient differs from them — against exact arithmetic.
//
// Why both: a float32 pass and the exact function take different decisions at ReLUs whose input lies within
// rounding of zero, and one different decision moves the gradient of every layer before it by up to ~1e-2. Scaling
// every weight of wide_hrnet by (1 + 1e-6·N(0,1)) moves its exact gradient by a median of 6e-3 (by 2e-6 at 1e-7).
// The official float32 pass decides one such activation (stage4.0.fuse_layers.3.1.0, channel 16, exact value
// +7.2e-6) the other way from exact arithmetic; its gradients upstream of it are off by up to 7e-3. Which ties a
// float32 pass breaks which way depends on the CPU's kernels (tiny_m2mrf_C passed on the Zen 4 machines and has one
// such tie on this Intel one). So a gradient that differs from the fixture is accepted only where exact arithmetic
// explains the difference (see checkGradientsAgainstFixture).

let wideCases: [(String, ModelArchitecture.Variant)] = [("wide_m2mrf_C", .C), ("wide_hrnet", .plain)]

/// ‖ours − ref‖ / max(‖ref‖, 1e-4 · the largest ‖ref‖): the README's metric (gradients whose true value is zero
/// are compared on the scale of the largest gradient).
func fixtureErrors(_ grads: [String: Tensor], _ file: TensorFile) -> [String: Double] {
    var norms: [String: Double] = [:]
    for key in file.names where key.hasPrefix("grad.") {
        norms[String(key.dropFirst(5))] = file[key]!.floats().reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    }
    let largest = norms.values.max() ?? 0
    var errors: [String: Double] = [:]
    for (name, norm) in norms {
        let want = file["grad." + name]!.floats(), ours = grads[name]!.values()
        let diff = zip(ours, want).reduce(0.0) { $0 + (Double($1.0) - Double($1.1)) * (Double($1.0) - Double($1.1)) }
        errors[name] = diff.squareRoot() / max(norm, 1e-4 * largest)
    }
    return errors
}

@Test("Wide fixtures (shipped widths): eval-mode logits and probabilities match the official code",
      .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)), arguments: wideCases.indices)
func wideEvalParity(_ k: Int) throws {
    let (name, variant) = wideCases[k]
    let file = try fixture(name)
    let model = try ModelWeights.model(from: SharedFixtures.parity.appendingPathComponent(name + ".pth"))
    #expect(model.architecture.variant == variant)
    #expect(model.architecture.stages[1].channels == [16, 32], "\(name): \(model.architecture)")
    let input = file["input"]!
    let (logits, probs) = try model.logitsAndProbabilities(Tensor(input.floats(), shape: input.shape))
    let eL = Tensor.relativeError(logits.values(), file["logits"]!.floats())
    let eP = Tensor.relativeError(probs.values(), file["probs"]!.floats())
    #expect(eL < 1e-4, "\(name): logits relative error \(eL)")
    #expect(eP < 1e-4, "\(name): probs relative error \(eP)")
}

@Test("Wide fixtures: loss and every gradient match the official code to 1e-3, or differ only through ReLU decisions taken at activations within rounding of zero, with our backward exact for ours",
      .enabled(if: SharedFixtures.available, Comment(rawValue: SharedFixtures.skipReason)), arguments: wideCases.indices)
func wideGradientParity(_ k: Int) throws {
    let (name, variant) = wideCases[k]
    let model = try ModelWeights.model(from: SharedFixtures.parity.appendingPathComponent(name + ".pth"))
    #expect(model.architecture.variant == variant)
    try checkGradientsAgainstFixture(name, model: model)
}

/// The fixture's loss and gradients against ours. A gradient that differs from the fixture by more than 1e-3 (the
/// README's metric) is accepted only when exact arithmetic explains it: (a) with our pass's ReLU decisions replayed,
/// the Double reference's derivative equals ours (our backward is exact for the function our pass computed), and
/// (b) every ReLU our float32 pass decided differently from exact arithmetic had an exact input within 1e-4 of its
/// layer's scale of zero (a tie that rounding decides — the fixture's own float32 pass has such ties too).
func checkGradientsAgainstFixture(_ name: String, model: SegmentationModel) throws {
    let file = try fixture(name)
    var reference = referenceModel(of: model)
    let input = file["train.input"]!
    let labels = file["train.labels"]!.ints().map { Int32($0) }
    model.thread.run { model.engine.reluDecisions = [] }
    let (loss, grads) = try model.trainingStep(input: Tensor(input.floats(), shape: input.shape), labels: labels)
    let decisions = model.thread.run { () -> [[Bool]] in
        defer { model.engine.reluDecisions = nil }
        return model.engine.reluDecisions ?? []
    }
    let wantLoss = file["train.loss"]!.floats()[0]
    #expect(abs(loss - wantLoss) / wantLoss < 1e-4, "\(name): loss \(loss) vs \(wantLoss)")
    let errors = fixtureErrors(grads, file)
    #expect(Set(errors.keys) == Set(model.trainableNames), "\(name): gradients for other parameters than ours")
    let off = errors.filter { $0.value > 1e-3 }.map(\.key).sorted()
    print("\(name): loss \(loss) vs \(wantLoss); \(off.count) of \(errors.count) gradients differ from the fixture by "
          + "more than 1e-3 (worst \(errors.values.max() ?? 0))")
    guard !off.isEmpty else { return }

    let s = input.shape
    let refInput = RefTensor(n: s[0], c: s[1], h: s[2], w: s[3], data: input.floats().map(Double.init))
    // (b) Where did our pass decide a ReLU differently from exact arithmetic, and how near zero was it?
    let exactInputs = reference.preActivations(refInput, labels: labels)
    #expect(exactInputs.count == decisions.count, "\(name): \(exactInputs.count) ReLUs in the reference, \(decisions.count) in ours")
    var flips: [(layer: Int, margin: Double)] = []
    for (layer, (exact, ours)) in zip(exactInputs, decisions).enumerated() {
        #expect(exact.count == ours.count, "\(name): ReLU \(layer) has \(exact.count) values in the reference, \(ours.count) in ours")
        let rms = (exact.reduce(0) { $0 + $1 * $1 } / Double(max(exact.count, 1))).squareRoot()
        for (v, d) in zip(exact, ours) where (v > 0) != d { flips.append((layer, abs(v) / max(rms, 1e-30))) }
    }
    let widest = flips.map(\.margin).max() ?? 0
    #expect(widest < 1e-4, "\(name): our pass decided a ReLU differently from exact arithmetic \(widest) of its layer's scale from zero")
    print("\(name): our float32 pass takes \(flips.count) ReLU decision(s) differently from exact arithmetic, the "
          + "farthest \(widest) of its layer's scale from zero (layers \(Set(flips.map(\.layer)).sorted()))")

    // (a) With our decisions replayed, exact arithmetic reproduces our gradient: one random direction over all the
    // differing tensors, and the worst one alone.
    reference.reluDecisions = decisions
    var r = GradientCheckRandom(99)
    let worst = off.max { errors[$0]! < errors[$1]! }!
    for group in [off, [worst]] {
        var v: [String: [Double]] = [:]
        for n in group {
            let theta = reference.parameters[n]!
            let rms = (theta.reduce(0) { $0 + $1 * $1 } / Double(theta.count)).squareRoot()
            v[n] = theta.map { _ in r.normal() * max(rms, 1e-3) }
        }
        var m = reference
        let h = 1e-6
        for n in group { m.parameters[n] = zip(reference.parameters[n]!, v[n]!).map { $0 + h * $1 } }
        let up = m.loss(refInput, labels: labels)
        for n in group { m.parameters[n] = zip(reference.parameters[n]!, v[n]!).map { $0 - h * $1 } }
        let down = m.loss(refInput, labels: labels)
        let exact = (up - down) / (2 * h)
        func dot(_ g: (String) -> [Float]) -> Double {
            group.reduce(0.0) { acc, n in acc + zip(g(n), v[n]!).reduce(0.0) { $0 + Double($1.0) * $1.1 } }
        }
        let ours = dot { grads[$0]!.values() }, theirs = dot { file["grad." + $0]!.floats() }
        let e = abs(ours - exact) / abs(exact)
        #expect(e < 1e-3, "\(name), \(group.count) tensors: ours \(ours), exact with our ReLU decisions \(exact)")
        print("\(name), \(group.count == 1 ? worst : "\(group.count) differing tensors"): directional derivative with "
              + "our ReLU decisions: exact \(exact), ours \(ours) (error \(e)); the fixture's \(theirs)")
    }
}

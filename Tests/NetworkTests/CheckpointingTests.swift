import Testing
@testable import Checkpoints
@testable import Network
@testable import Tensor

// Gradient checkpointing (`SegmentationModel.checkpointBranches`) runs the branch blocks twice instead of keeping
// their activations. It must change nothing but memory: the same loss, the same gradients, BatchNorm's running
// statistics and batch counts moved once. (Its gradients are also checked against the independent Double
// reference by the whole-network gradient test's checkpointed case.)

@Test("Checkpointed branches: a training step gives the same loss, gradients, running statistics and batch counts as keeping every activation",
      arguments: [(ModelArchitecture.small(width: 16, variant: .C), 1), (.small(width: 16, variant: .C), 4), (.small(width: 16, variant: .plain), 2)])
func checkpointedBranchesChangeNothing(_ architecture: ModelArchitecture, _ branches: Int) throws {
    let kept = try SegmentationModel(architecture: architecture)
    kept.checkpointBranches = 0
    randomiseWeights(kept, seed: 11)
    let recomputed = try SegmentationModel(architecture: architecture)
    for name in kept.parameterNames {
        let from = kept.parameter(name)!, to = recomputed.parameter(name)!
        to.data.update(from: from.data, count: from.storageCount)
    }
    recomputed.invalidateInferenceWeights()
    recomputed.checkpointBranches = branches
    var r = GradientCheckRandom(12)
    let n = 2, H = 97, W = 103
    let input = Tensor((0..<(n * 3 * H * W)).map { _ in Float(r.normal()) }, shape: [n, 3, H, W])
    let labels = r.blobLabels(n: n, height: H, width: W, radius: 3, spread: 6)
    let (lossKept, gradsKept) = try kept.trainingStep(input: input, labels: labels)
    let (lossRecomputed, gradsRecomputed) = try recomputed.trainingStep(input: input, labels: labels)
    #expect(lossKept == lossRecomputed)
    var worst = 0.0
    for name in kept.trainableNames {
        let a = gradsKept[name]!.values(), b = gradsRecomputed[name]!.values()
        let scale = max(a.map { abs(Double($0)) }.max() ?? 0, 1e-12)
        let diff = zip(a, b).map { abs(Double($0) - Double($1)) }.max() ?? 0
        worst = max(worst, diff / scale)
        #expect(diff <= 1e-6 * scale, "\(name): gradients differ by \(diff) (largest \(scale))")
    }
    for name in kept.parameterNames where name.hasSuffix("running_mean") || name.hasSuffix("running_var") {
        #expect(kept.parameter(name)!.values() == recomputed.parameter(name)!.values(), "\(name) moved differently")
    }
    #expect(kept.store.batchesTracked == recomputed.store.batchesTracked)
    print("checkpointed \(branches) branch(es) of \(architecture.variant): loss \(lossRecomputed), worst gradient difference \(worst) of the largest")
}

@Test("Activations in nChw8c from convolution to convolution (AVX2's layout, forced on any CPU): a training step and an inference give the same loss, gradients, running statistics and logits as reordering to nChw16c around every convolution",
      arguments: [ModelArchitecture.small(width: 16, variant: .C), .tinyFixture(variant: .A)])
func nativeBlocks8ChangeNothing(_ architecture: ModelArchitecture) throws {
    func model(native: Bool) throws -> SegmentationModel {
        let m = try SegmentationModel(architecture: architecture)
        randomiseWeights(m, seed: 21)
        m.engine.kernelLayouts = true
        m.engine.forceBlocks8 = true
        m.engine.nativeBlocks8 = native
        return m
    }
    let native = try model(native: true), reordered = try model(native: false)
    var r = GradientCheckRandom(22)
    let n = 2, H = 67, W = 75
    let input = Tensor((0..<(n * 3 * H * W)).map { _ in Float(r.normal()) }, shape: [n, 3, H, W])
    let labels = r.blobLabels(n: n, height: H, width: W, radius: 3, spread: 6)
    let (lossNative, gradsNative) = try native.trainingStep(input: input, labels: labels)
    let (lossReordered, gradsReordered) = try reordered.trainingStep(input: input, labels: labels)
    #expect(lossNative == lossReordered)
    for name in native.trainableNames {
        #expect(gradsNative[name]!.values() == gradsReordered[name]!.values(), "\(name): gradients differ")
    }
    for name in native.parameterNames where name.hasSuffix("running_mean") || name.hasSuffix("running_var") {
        #expect(native.parameter(name)!.values() == reordered.parameter(name)!.values(), "\(name) moved differently")
    }
    #expect(try native.predict(input).values() == reordered.predict(input).values())
    // The native run did keep nChw8c: fewer reorders.
    native.engine.profiling = true
    reordered.engine.profiling = true
    _ = try native.trainingStep(input: input, labels: labels)
    _ = try reordered.trainingStep(input: input, labels: labels)
    let a = native.engine.profile["reorder activations"] ?? 0, b = reordered.engine.profile["reorder activations"] ?? 0
    print("\(architecture.variant): reorders \(a) s native nChw8c, \(b) s reordered")
}

@Test("Gradient checkpointing by default only where a step's activations are large: not for the small W16 at 2 × 384², yes for W48 at 2 × 512² and for W16 on whole 960² crops")
func automaticCheckpointing() {
    let small = ModelArchitecture.small(width: 16, variant: .C), w48 = ModelArchitecture.w48(variant: .C)
    #expect(SegmentationModel.automaticCheckpointBranches(small, batch: 2, height: 384, width: 384) == 0)
    #expect(SegmentationModel.automaticCheckpointBranches(w48, batch: 2, height: 512, width: 512) == 2)
    #expect(SegmentationModel.automaticCheckpointBranches(small, batch: 2, height: 960, width: 960) == 2)
    #expect(SegmentationModel.automaticCheckpointBranches(w48, batch: 1, height: 128, width: 128) == 0)
}

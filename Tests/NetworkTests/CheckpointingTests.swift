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

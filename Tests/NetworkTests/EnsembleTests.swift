import Foundation
import Testing
@testable import Checkpoints
@testable import Network
@testable import Tensor

// `SegmentationModel.ensemble`: the probabilities are the mean of the members' own probabilities, each member a model
// that runs on its own (the reference here: fresh models with the same weights, run one by one).

@Test("An ensemble's probabilities are the mean of its models' own, channel by channel; a channel only the main model has stays its own")
func ensembleMeanOfProbabilities() throws {
    var five = ModelArchitecture.small(width: 16, variant: .C)
    five.numClasses = 5
    func main() throws -> SegmentationModel { try model(five, seed: 31) }
    func member() throws -> SegmentationModel { try model(.small(width: 16, variant: .C), seed: 32) }
    var r = GradientCheckRandom(33)
    let n = 2, H = 64, W = 80
    let input = Tensor((0..<(n * 3 * H * W)).map { _ in Float(r.normal()) }, shape: [n, 3, H, W])
    let a = try main().probabilities(input).values(), b = try member().probabilities(input).values()
    let ensemble = try main()
    ensemble.ensemble = [try member()]
    let mean = try ensemble.probabilities(input).values()
    #expect(mean.count == a.count)
    let plane = H * W
    var gaps = [Double](repeating: 0, count: 5), spread = 0.0
    for s in 0..<n {
        for k in 0..<5 {
            for i in 0..<plane {
                let j = (s * 5 + k) * plane + i
                let expected = k < 4 ? (Double(a[j]) + Double(b[(s * 4 + k) * plane + i])) / 2 : Double(a[j])
                gaps[k] = max(gaps[k], abs(Double(mean[j]) - expected))
                if k < 4 { spread = max(spread, abs(Double(a[j]) - Double(b[(s * 4 + k) * plane + i]))) }
            }
        }
    }
    for k in 0..<5 { #expect(gaps[k] < 2e-6, "channel \(k) differs from the mean of the models' probabilities by \(gaps[k])") }
    #expect(spread > 1e-2, "the two models agree everywhere (\(spread)): the test would not see a missing member")
    // upsampledLogits is the same inference before the sigmoid.
    let logits = try ensemble.upsampledLogits(input).values()
    let sigmoidGap = zip(mean, logits).map { abs(Double($0) - 1 / (1 + exp(-Double($1)))) }.max() ?? 1
    #expect(sigmoidGap < 1e-6, "probabilities differ from sigmoid(logits) by \(sigmoidGap)")
}

@Test("Channel scales and bf16 set on an ensemble reach its members: each member reads a class at the main model's scale")
func ensembleMembersFollowChannelScales() throws {
    func main() throws -> SegmentationModel { try model(.small(width: 16, variant: .C), seed: 41) }
    func member() throws -> SegmentationModel { try model(.small(width: 16, variant: .C), seed: 42) }
    var r = GradientCheckRandom(43)
    let H = 72, W = 96
    let input = Tensor((0..<(3 * H * W)).map { _ in Float(r.normal()) }, shape: [1, 3, H, W])
    let scales: [Int: [Double]] = [3: [1.5], 1: [1, 0.75]]
    let alone = try main(), partner = try member()
    alone.channelScales = scales
    partner.channelScales = scales
    let a = try alone.probabilities(input).values(), b = try partner.probabilities(input).values()
    let ensemble = try main()
    ensemble.ensemble = [try member()]
    ensemble.channelScales = scales  // after the member joined: it follows
    #expect(ensemble.ensemble[0].channelScales == scales)
    let mean = try ensemble.probabilities(input).values()
    var gap = 0.0
    for i in mean.indices {
        let expected = (Double(a[i]) + Double(b[i])) / 2
        gap = max(gap, abs(Double(mean[i]) - expected))
    }
    #expect(gap < 2e-6, "the ensemble with channel scales differs from the mean of its members' by \(gap)")
    ensemble.bf16Inference = true
    #expect(ensemble.ensemble[0].bf16Inference)
}

@Test("A card's ensemble: absent means one model, round-trips, a path or the card's own weight file is refused")
func cardEnsemble() throws {
    var card = ModelCard(name: "d", version: "0.11.0", architecture: .small(width: 16, variant: .C),
                         created: Date(timeIntervalSince1970: 1_790_000_000), weightsFile: "main.safetensors")
    #expect(card.ensemble.isEmpty)
    #expect(!String(decoding: card.encoded(), as: UTF8.self).contains("ensemble"))
    card.ensemble = ["partner.safetensors"]
    #expect(try ModelCard.decode(card.encoded()) == card)
    for bad in ["../partner.safetensors", "", "main.safetensors", "a/b.safetensors"] {
        var wrong = card
        wrong.ensemble = [bad]
        #expect(throws: CheckpointError.self, "'\(bad)'") { try ModelCard.decode(wrong.encoded()) }
    }
    // Each member's training: round-trips; a record for a file that is not a member is refused.
    #expect(!String(decoding: card.encoded(), as: UTF8.self).contains("ensemble_training"))
    card.ensembleTraining = ["partner.safetensors": TrainingRecord(command: "fundus-screen train --seed 42", seconds: 14_107.6,
                                                                   iterations: 16_000, machine: "AMD EPYC, 2 cores")]
    #expect(try ModelCard.decode(card.encoded()) == card)
    var stray = card
    stray.ensembleTraining["other.safetensors"] = stray.ensembleTraining["partner.safetensors"]
    #expect(throws: CheckpointError.self) { try ModelCard.decode(stray.encoded()) }
}

@Test("A bundle whose card names an ensemble loads with its members (their own architectures); a missing member names the file")
func bundleWithEnsembleLoads() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ensemble-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: dir) }
    var six = ModelArchitecture.small(width: 16, variant: .C)
    six.numClasses = 6
    var five = six
    five.numClasses = 5
    let main = try model(six, seed: 51), partner = try model(five, seed: 52)
    var card = ModelCard(name: "bundle", version: "1", architecture: six, channelScales: ["MA": [1.5], "VESSELS": [0.5]])
    card.ensemble = ["partner.safetensors"]
    let weights = try WeightLoader.save(tensors: main.exportWeights(), card: card, to: dir)
    try Safetensors.write(partner.exportWeights(), to: dir.appendingPathComponent("partner.safetensors"))
    let loaded = try WeightLoader.load(dir)
    #expect(loaded.source.lastPathComponent == weights.lastPathComponent)
    let ensemble = try ModelWeights.inferenceModel(loaded)
    #expect(ensemble.ensemble.count == 1)
    #expect(ensemble.ensemble[0].architecture.numClasses == 5)
    #expect(ensemble.channelScales == [3: [1.5], 5: [0.5]])
    #expect(ensemble.ensemble[0].channelScales == [3: [1.5]], "the member has no sixth channel")
    #expect(ModelWeights.files(of: loaded).map(\.lastPathComponent) == [weights.lastPathComponent, "partner.safetensors"])
    try FileManager.default.removeItem(at: dir.appendingPathComponent("partner.safetensors"))
    let error = #expect(throws: NetworkError.self) { try ModelWeights.inferenceModel(try WeightLoader.load(dir)) }
    #expect(error?.description.contains("partner.safetensors") == true, "\(String(describing: error))")
}

/// A model with random weights (and random BN affine parameters and biases) that has run nothing yet.
private func model(_ architecture: ModelArchitecture, seed: UInt64) throws -> SegmentationModel {
    let model = try SegmentationModel(architecture: architecture)
    randomiseWeights(model, seed: seed)
    return model
}

@Test("`model time` counts an ensemble's other networks: the work per image of a card with one partner is twice its network's")
func benchmarkCountsEnsembleMembers() throws {
    let architecture = ModelArchitecture.small(width: 16, variant: .C)
    let one = try NetworkBenchmark.run(architecture: architecture, height: 64, width: 64, runs: 1)
    let two = try NetworkBenchmark.run(architecture: architecture, height: 64, width: 64, runs: 1, ensemble: [architecture])
    #expect(one.gflopPerImage > 0)
    #expect(abs(two.gflopPerImage - 2 * one.gflopPerImage) < 1e-9 * one.gflopPerImage,
            "work per image \(two.gflopPerImage) GFLOP with a partner, \(one.gflopPerImage) alone")
    #expect(two.model.contains("1 more network"))
}

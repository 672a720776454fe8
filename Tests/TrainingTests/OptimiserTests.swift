import Foundation
import Testing
@testable import Training

@Test("The RNG is reproducible from its seed and its saved state continues the same stream")
func rngReproducible() throws {
    var a = TrainingRNG(seed: 42), b = TrainingRNG(seed: 42), c = TrainingRNG(seed: 43)
    let first = (0..<5).map { _ in a.next() }
    #expect(first == (0..<5).map { _ in b.next() })
    #expect(first != (0..<5).map { _ in c.next() })
    let saved = try JSONEncoder().encode(a)
    var restored = try JSONDecoder().decode(TrainingRNG.self, from: saved)
    #expect((0..<100).map { _ in a.next() } == (0..<100).map { _ in restored.next() })
    #expect(throws: DecodingError.self) { try JSONDecoder().decode(TrainingRNG.self, from: Data(#"["0","0","0","0"]"#.utf8)) }
}

@Test("RNG draws stay in range and are roughly uniform")
func rngRanges() {
    var rng = TrainingRNG(seed: 7)
    var counts = [Int](repeating: 0, count: 6)
    for _ in 0..<60_000 { counts[rng.below(6)] += 1 }
    #expect(counts.allSatisfy { abs($0 - 10_000) < 500 })
    for _ in 0..<1000 {
        let u = rng.uniform(0.5, 2.0)
        #expect(u >= 0.5 && u < 2.0)
        let i = rng.integer(-18, 18)
        #expect(i >= -18 && i < 18)
    }
    #expect(rng.permutation(10).sorted() == Array(0..<10))
}

@Test("Poly schedule: lr0 at the first step, (lr0 − min)·(1 − it/max)^0.9 + min after, min at the end")
func polySchedule() {
    let s = PolySchedule(baseLearningRate: 0.01, minimumLearningRate: 1e-4, power: 0.9, maxIterations: 40_000)
    #expect(s.learningRate(at: 0) == 0.01)
    #expect(abs(s.learningRate(at: 20_000) - (0.0099 * pow(0.5, 0.9) + 1e-4)) < 1e-15)
    // 0.5^0.9 = 0.535887…, so lr(20000) ≈ 0.0054053
    #expect(abs(s.learningRate(at: 20_000) - 0.005405285) < 1e-8)
    #expect(s.learningRate(at: 40_000) == 1e-4)
}

@Test("SGD matches PyTorch's update: d = g + wd·p, buf = m·buf + d (d at first), p −= lr·buf")
func sgdByHand() throws {
    var params = ModelState()
    params["w"] = NamedTensor(shape: [2], values: [1.0, -2.0])
    var sgd = SGD(momentum: 0.9, weightDecay: 5e-4)
    // Step 1 at lr 0.01, g = [0.5, 0.1]:
    //   d = [0.5 + 0.0005, 0.1 − 0.001] = [0.5005, 0.099]; buf = d; p = [1 − 0.005005, −2 − 0.00099] = [0.994995, −2.00099]
    try sgd.step(&params, gradients: ["w": [0.5, 0.1]], learningRate: 0.01)
    #expect(abs(params["w"]!.values[0] - 0.994995) < 1e-6)
    #expect(abs(params["w"]!.values[1] - -2.00099) < 1e-6)
    // Step 2 at lr 0.005, g = [0.25, −0.3]:
    //   d0 = 0.25 + 5e-4·0.994995 = 0.2504974975; buf0 = 0.9·0.5005 + d0 = 0.7009474975; p0 = 0.994995 − 0.005·buf0 = 0.9914902625
    //   d1 = −0.3 + 5e-4·(−2.00099) = −0.301000495; buf1 = 0.9·0.099 − 0.301000495 = −0.211900495; p1 = −2.00099 + 0.005·0.211900495 = −1.9999304975
    try sgd.step(&params, gradients: ["w": [0.25, -0.3]], learningRate: 0.005)
    #expect(abs(params["w"]!.values[0] - 0.9914902625) < 1e-6)
    #expect(abs(params["w"]!.values[1] - -1.9999304975) < 1e-6)
    #expect(abs(sgd.momentumBuffers["w"]![0] - 0.7009474975) < 1e-6)
}

@Test("SGD refuses a gradient of the wrong size or for an unknown tensor, changing nothing")
func sgdRefuses() {
    var params = ModelState()
    params["w"] = NamedTensor(shape: [2], values: [1, 2])
    var sgd = SGD()
    #expect(throws: TrainingError.self) { try sgd.step(&params, gradients: ["w": [1]], learningRate: 0.01) }
    #expect(throws: TrainingError.self) { try sgd.step(&params, gradients: ["v": [1, 1]], learningRate: 0.01) }
    #expect(params["w"]!.values == [1, 2])
    #expect(sgd.momentumBuffers.isEmpty)
}

@Test("Gradient accumulation averages micro-batches into the gradient of the large batch")
func accumulation() throws {
    var acc = GradientAccumulator()
    try acc.add(["w": [1, 2]], loss: 0.5)
    try acc.add(["w": [3, 6]], loss: 0.7)
    let (g, loss) = acc.mean()
    #expect(g["w"] == [2, 4])
    #expect(abs(loss - 0.6) < 1e-6)
    #expect(throws: TrainingError.self) { try acc.add(["w": [1]], loss: 0) }
}

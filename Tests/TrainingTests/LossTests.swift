import Foundation
import Network
import Testing
@testable import Training

private func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }

@Test("bdice with all four classes annotated is the official mean over images of the mean over classes")
func bdiceOfficial() throws {
    // One image, 1×2 pixels: labels [1 (EX), 4 (MA)]; logits chosen per class and pixel.
    let logits: [Float] = [2, -1, /*HE*/ 0, 0, /*SE*/ -3, -3, /*MA*/ -1, 1]
    let (loss, _) = try BinaryDiceLoss.evaluate(logits: logits, labels: [1, 4], annotated: [true, true, true, true],
                                                batch: 1, height: 1, width: 2)
    var expected = 0.0
    let gts: [[Double]] = [[1, 0], [0, 0], [0, 0], [0, 1]]
    for c in 0..<4 {
        let p = (0..<2).map { sigmoid(Double(logits[c * 2 + $0])) }
        let pg = zip(p, gts[c]).map(*).reduce(0, +)
        expected += 1 - (2 * pg + 1e-5) / (p.reduce(0, +) + gts[c].reduce(0, +) + 1e-5)
    }
    expected /= 4
    #expect(abs(Double(loss) - expected) < 1e-6)
}

@Test("A class an image does not annotate gets no loss and no gradient")
func bdicePartial() throws {
    let logits: [Float] = (0..<32).map { Float($0 % 5) - 2 }
    let labels: [UInt8] = [0, 1, 2, 3, 4, 0, 1, 2]
    let full = try BinaryDiceLoss.evaluate(logits: logits, labels: labels, annotated: [Bool](repeating: true, count: 8),
                                           batch: 2, height: 2, width: 2)
    let partial = try BinaryDiceLoss.evaluate(logits: logits, labels: labels,
                                              annotated: [true, true, false, true, true, true, true, true],
                                              batch: 2, height: 2, width: 2)
    #expect(partial.gradient[8..<12].allSatisfy { $0 == 0 })   // image 0, SE
    #expect(partial.gradient[0..<4] != full.gradient[0..<4])   // image 0 now averages over 3 classes
    #expect(partial.gradient[16..<32] == full.gradient[16..<32])   // image 1 is fully annotated in both
    #expect(partial.loss != full.loss)
}

@Test("bdice (+BCE) gradient agrees with finite differences")
func bdiceGradient() throws {
    let n = 2, h = 3, w = 2
    let (logits, labels) = randomBatch(seed: 3, n: n, h: h, w: w, spread: 2)
    let annotated = [true, false, true, true, true, true, true, true]
    let (_, g) = try BinaryDiceLoss.evaluate(logits: logits, labels: labels, annotated: annotated, batch: n, height: h, width: w, bceWeight: 0.5)
    try expectFiniteDifferences(logits, g, at: stride(from: 0, to: logits.count, by: 5)) {
        try BinaryDiceLoss.evaluate(logits: $0, labels: labels, annotated: annotated, batch: n, height: h, width: w, bceWeight: 0.5).loss
    }
}

@Test("BCE with a positive weight: finite differences, PyTorch's pos_weight formula on one pixel, weight 1 is plain BCE")
func bcePositiveWeight() throws {
    let n = 2, h = 2, w = 3
    let (logits, labels) = randomBatch(seed: 4, n: n, h: h, w: w, spread: 3)
    let annotated = [true, true, true, true, true, false, true, true]
    let (_, g) = try BinaryDiceLoss.evaluate(logits: logits, labels: labels, annotated: annotated, batch: n, height: h, width: w,
                                             bceWeight: 0.5, batchDice: true, bcePositiveWeight: 8)
    try expectFiniteDifferences(logits, g, at: 0..<logits.count) {
        try BinaryDiceLoss.evaluate(logits: $0, labels: labels, annotated: annotated, batch: n, height: h, width: w,
                                    bceWeight: 0.5, batchDice: true, bcePositiveWeight: 8).loss
    }
    let plain = try BinaryDiceLoss.evaluate(logits: logits, labels: labels, annotated: annotated, batch: n, height: h, width: w, bceWeight: 0.5)
    let one = try BinaryDiceLoss.evaluate(logits: logits, labels: labels, annotated: annotated, batch: n, height: h, width: w,
                                          bceWeight: 0.5, bcePositiveWeight: 1)
    #expect(plain.loss == one.loss && plain.gradient == one.gradient)
    // One 1×1 image annotated for EX only, an EX pixel with logit x = −1: dice 1 − (2p + ε)/(p + 1 + ε) plus
    // BCE pos_weight 3: 3·log(1 + e^1) (PyTorch: −pw·y·log σ(x) − (1 − y)·log(1 − σ(x))).
    let x = -1.0, p = 1 / (1 + exp(1.0)), e = BinaryDiceLoss.smooth
    let single = try BinaryDiceLoss.evaluate(logits: [Float(x), 0, 0, 0], labels: [1], annotated: [true, false, false, false],
                                             batch: 1, height: 1, width: 1, bceWeight: 1, bcePositiveWeight: 3)
    #expect(abs(Double(single.loss) - ((1 - (2 * p + e) / (p + 1 + e)) + 3 * log(1 + exp(1.0)))) < 1e-5)
}

/// Seeded logits uniform in (−spread, spread) for [n, 4, h, w] and labels 0…4 for [n, h, w], drawn in that order.
private func randomBatch(seed: UInt64, n: Int, h: Int, w: Int, spread: Double) -> (logits: [Float], labels: [UInt8]) {
    var rng = TrainingRNG(seed: seed)
    let logits = (0..<(n * 4 * h * w)).map { _ in Float(rng.uniform(-spread, spread)) }
    let labels = (0..<(n * h * w)).map { _ in UInt8(rng.below(5)) }
    return (logits, labels)
}

/// Central differences (step 1e-2) of `loss` at the given logits agree with the analytic `gradient` within 2e-3.
private func expectFiniteDifferences(_ logits: [Float], _ gradient: [Float], at indices: some Sequence<Int>,
                                     _ loss: ([Float]) throws -> Float) throws {
    let eps: Float = 1e-2
    for i in indices {
        var plus = logits, minus = logits
        plus[i] += eps
        minus[i] -= eps
        let numeric = (try loss(plus) - loss(minus)) / (2 * eps)
        #expect(abs(numeric - gradient[i]) < 2e-3, "logit \(i): numeric \(numeric), analytic \(gradient[i])")
    }
}

@Test("Batch dice: finite differences, one image equals per-image dice, and a hand-computed batch")
func batchDiceGradient() throws {
    let n = 2, h = 2, w = 3
    let (logits, labels) = randomBatch(seed: 5, n: n, h: h, w: w, spread: 2)
    let annotated = [true, true, false, true, true, false, false, true]   // SE nowhere, HE only in image 0
    let (_, g) = try BinaryDiceLoss.evaluate(logits: logits, labels: labels, annotated: annotated, batch: n, height: h, width: w,
                                             bceWeight: 0.25, batchDice: true)
    #expect(g[(1 * 4 + 1) * h * w ..< (1 * 4 + 3) * h * w].allSatisfy { $0 == 0 })   // image 1: HE and SE not annotated
    try expectFiniteDifferences(logits, g, at: 0..<logits.count) {
        try BinaryDiceLoss.evaluate(logits: $0, labels: labels, annotated: annotated, batch: n, height: h, width: w,
                                    bceWeight: 0.25, batchDice: true).loss
    }
    // One image: the batch is the image.
    let one = Array(logits[0..<(4 * h * w)]), oneLabels = Array(labels[0..<(h * w)])
    let perImage = try BinaryDiceLoss.evaluate(logits: one, labels: oneLabels, annotated: [true, true, true, true], batch: 1, height: h, width: w)
    let batch = try BinaryDiceLoss.evaluate(logits: one, labels: oneLabels, annotated: [true, true, true, true], batch: 1, height: h, width: w, batchDice: true)
    #expect(perImage.loss == batch.loss && perImage.gradient == batch.gradient)
    // Two 1×1 images, EX only: logits 0 (p = ½) everywhere, EX in image 0 only. Per image: image 0 has
    // 1 − (1 + ε)/(1.5 + ε), image 1 has 1 − ε/(0.5 + ε) ≈ 1; over the batch: 1 − (1 + ε)/(2 + ε).
    let flags = [true, false, false, false, true, false, false, false]
    let l0 = try BinaryDiceLoss.evaluate(logits: [Float](repeating: 0, count: 8), labels: [1, 0], annotated: flags, batch: 2, height: 1, width: 1, batchDice: true)
    let e = BinaryDiceLoss.smooth
    #expect(abs(Double(l0.loss) - (1 - (1 + e) / (2 + e))) < 1e-6)
    // Image 1's false positive now has a gradient of the same size as image 0's missing half.
    #expect(l0.gradient[4] > 0 && l0.gradient[0] < 0)
    let official = try BinaryDiceLoss.evaluate(logits: [Float](repeating: 0, count: 8), labels: [1, 0], annotated: flags, batch: 2, height: 1, width: 1)
    #expect(abs(Double(official.loss) - ((1 - (1 + e) / (1.5 + e)) + (1 - e / (0.5 + e))) / 2) < 1e-6)
}

@Test("Label values outside 0…4 and mis-sized buffers are refused")
func bdiceRefuses() {
    #expect(throws: NetworkError.self) {
        try BinaryDiceLoss.evaluate(logits: [0, 0, 0, 0], labels: [255], annotated: [true, true, true, true], batch: 1, height: 1, width: 1)
    }
    #expect(throws: NetworkError.self) {
        try BinaryDiceLoss.evaluate(logits: [0, 0, 0], labels: [0], annotated: [true, true, true, true], batch: 1, height: 1, width: 1)
    }
}

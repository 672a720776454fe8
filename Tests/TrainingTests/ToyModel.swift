import Foundation
import Network
@testable import Training

/// A per-pixel linear classifier, logits[n, c, y, x] = Σ_k W[c, k]·image[n, k, y, x] + b[c], trained with the real
/// bdice loss: small, differentiable, and deterministic, so it stands in for the network in optimiser, checkpoint
/// and loop tests.
struct ToyPixelModel: TrainableModel {
    var parameters = ModelState()

    init(seed: UInt64) {
        var rng = TrainingRNG(seed: seed)
        parameters["head.weight"] = NamedTensor(shape: [4, 3], values: (0..<12).map { _ in Float(rng.uniform(-0.5, 0.5)) })
        parameters["head.bias"] = NamedTensor(shape: [4], values: [-1, -1, -1, -1])
        parameters["head.steps"] = NamedTensor(shape: [1], values: [0]) // a buffer, like BN's num_batches_tracked
    }

    var state: ModelState { parameters }

    mutating func load(_ state: ModelState) throws {
        guard Set(state.names) == Set(parameters.names) else { throw TrainingError(.model, "toy model: wrong tensors \(state.names)") }
        parameters = state
    }

    mutating func updateParameters(_ body: (inout ModelState) throws -> Void) rethrows { try body(&parameters) }

    func logits(_ batch: TrainingBatch) -> [Float] {
        let hw = batch.height * batch.width
        let w = parameters["head.weight"]!.values, b = parameters["head.bias"]!.values
        var out = [Float](repeating: 0, count: batch.count * 4 * hw)
        for n in 0..<batch.count {
            for c in 0..<4 {
                for i in 0..<hw {
                    var v = b[c]
                    for k in 0..<3 { v += w[c * 3 + k] * batch.images[(n * 3 + k) * hw + i] }
                    out[(n * 4 + c) * hw + i] = v
                }
            }
        }
        return out
    }

    mutating func trainingStep(_ batch: TrainingBatch, loss settings: LossSettings) throws -> TrainingStepResult {
        let hw = batch.height * batch.width
        let (loss, dLogits) = try BinaryDiceLoss.evaluate(logits: logits(batch), labels: batch.labels, annotated: batch.annotated,
                                                          batch: batch.count, height: batch.height, width: batch.width,
                                                          bceWeight: settings.bceWeight, batchDice: settings.batchDice,
                                                          bcePositiveWeight: settings.bcePositiveWeight)
        var dw = [Float](repeating: 0, count: 12), db = [Float](repeating: 0, count: 4)
        for n in 0..<batch.count {
            for c in 0..<4 {
                for i in 0..<hw {
                    let d = dLogits[(n * 4 + c) * hw + i]
                    db[c] += d
                    for k in 0..<3 { dw[c * 3 + k] += d * batch.images[(n * 3 + k) * hw + i] }
                }
            }
        }
        parameters.modify("head.steps") { $0[0] += 1 }
        return TrainingStepResult(loss: loss, gradients: ["head.weight": dw, "head.bias": db])
    }

    func probabilities(_ image: [Float], height: Int, width: Int) throws -> [Float] {
        let batch = TrainingBatch(count: 1, height: height, width: width, images: image,
                                  labels: [UInt8](repeating: 0, count: height * width), annotated: [Bool](repeating: true, count: 4))
        return logits(batch).map { 1 / (1 + exp(-$0)) }
    }
}

extension TrainingConfiguration {
    /// A test's short run: `iterations` optimiser steps (on `schedule`, else the default poly schedule over them),
    /// crops of `crop` from images resized to `scale`, a checkpoint every `checkpointInterval` steps.
    static func short(iterations: Int, schedule: PolySchedule? = nil, crop: (height: Int, width: Int),
                      scale: (long: Int, short: Int), checkpointInterval: Int) -> TrainingConfiguration {
        var c = TrainingConfiguration()
        c.iterations = iterations
        c.schedule = schedule ?? PolySchedule(maxIterations: iterations)
        (c.cropHeight, c.cropWidth) = crop
        (c.scaleLong, c.scaleShort) = scale
        c.checkpointInterval = checkpointInterval
        return c
    }
}

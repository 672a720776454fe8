import Checkpoints
import Foundation
import Network
import Tensor

/// The engine's M2MRF-HRNetV2 as the training loop sees it. Parameters are copied out to the optimiser and back
/// once per step (a few hundred MB for W48; small beside a forward and backward pass on the CPU).
public struct NetworkModel: TrainableModel {
    public let network: SegmentationModel

    public init(_ network: SegmentationModel) { self.network = network }

    public var state: ModelState { ModelState(from: network.exportWeights()) }

    public mutating func load(_ state: ModelState) throws {
        var file = TensorFile()
        state.add(to: &file)
        try network.load(file, file: "training state")
    }

    public mutating func updateParameters(_ body: (inout ModelState) throws -> Void) rethrows {
        var parameters = ModelState()
        for name in network.trainableNames {
            guard let t = network.parameter(name) else { continue }
            parameters[name] = NamedTensor(shape: t.shape, values: t.values())
        }
        try body(&parameters)
        for name in parameters.names {
            guard let t = network.parameter(name), let v = parameters[name]?.values, v.count == t.count else { continue }
            v.withUnsafeBufferPointer { t.data.update(from: $0.baseAddress!, count: v.count) }
        }
        network.invalidateInferenceWeights()
    }


    public mutating func trainingStep(_ batch: TrainingBatch, loss: LossSettings) throws -> TrainingStepResult {
        guard batch.channels == network.architecture.numClasses else {
            throw TrainingError(.model, "the batch is annotated for \(batch.channels) channels, the network has \(network.architecture.numClasses) outputs")
        }
        let input = Tensor(batch.images, shape: [batch.count, 3, batch.height, batch.width])
        // The one loss (Network's BinaryDiceLoss) on the logits the engine resized to the crop; classes an image is
        // not annotated for are left out.
        let (value, gradients) = try network.trainingStep(input: input) { logits in
            let (l, g) = try BinaryDiceLoss.evaluate(logits: logits.values(), labels: batch.labels, annotated: batch.annotated,
                                                     batch: batch.count, height: batch.height, width: batch.width,
                                                     bceWeight: loss.bceWeight, batchDice: loss.batchDice,
                                                     bcePositiveWeight: loss.bcePositiveWeight)
            return (l, Tensor(g, shape: logits.shape))
        }
        return TrainingStepResult(loss: value, gradients: gradients.mapValues { $0.values() })
    }

    public func logits(_ image: [Float], height: Int, width: Int) throws -> [Float] {
        try network.upsampledLogits(Tensor(image, shape: [1, 3, height, width])).values()
    }

    public func probabilities(_ image: [Float], height: Int, width: Int) throws -> [Float] {
        try network.probabilities(Tensor(image, shape: [1, 3, height, width])).values()
    }
}

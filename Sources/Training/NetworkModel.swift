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
        // The engine's step computes the official bdice over all four classes. Partially-labelled batches and the
        // BCE term need its loss to take per-(image, class) weights; until it does, refuse rather than teach
        // "no lesion" for classes nobody annotated.
        guard loss.bceWeight == 0 else {
            throw TrainingError(.model, "the BCE term is not available with the M2MRF network yet (the engine's training step computes bdice only)")
        }
        guard batch.annotated.allSatisfy({ $0 }) else {
            throw TrainingError(.model, "partially-labelled images need the engine's training step to mask classes; train on data annotated for all four classes")
        }
        let input = Tensor(batch.images, shape: [batch.count, 3, batch.height, batch.width])
        let (value, gradients) = try network.trainingStep(input: input, labels: batch.labels.map { Int32($0) })
        return TrainingStepResult(loss: value, gradients: gradients.mapValues { $0.values() })
    }

    public func probabilities(_ image: [Float], height: Int, width: Int) throws -> [Float] {
        try network.probabilities(Tensor(image, shape: [1, 3, height, width])).values()
    }
}

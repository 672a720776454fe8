import Foundation

/// A batch as the network trains on it: normalised images [N, 3, H, W] (RGB, zero where padded), the merged label
/// maps [N, H, W] (0 background, 1…4 = EX, HE, SE, MA, 5 = optic disc), and per image which of the model's C output
/// channels its dataset annotates ([N, C], row-major; C = 4, or 5 with the optic disc).
public struct TrainingBatch: Sendable, Equatable {
    public var count: Int
    public var height: Int
    public var width: Int
    public var images: [Float]
    public var labels: [UInt8]
    public var annotated: [Bool]

    public init(count: Int, height: Int, width: Int, images: [Float], labels: [UInt8], annotated: [Bool]) {
        precondition(images.count == count * 3 * height * width && labels.count == count * height * width
                     && count > 0 && annotated.count % count == 0 && annotated.count / count >= 4,
                     "batch buffers do not fit \(count)×\(height)×\(width)")
        self.count = count
        self.height = height
        self.width = width
        self.images = images
        self.labels = labels
        self.annotated = annotated
    }

    /// Output channels the annotated flags are given for (4, or 5 with the optic disc).
    public var channels: Int { annotated.count / count }
}

/// What the loss adds beyond the official bdice (see `BinaryDiceLoss`).
public struct LossSettings: Sendable, Equatable {
    public var bceWeight: Float
    /// Dice sums over the whole batch per class instead of per image (see `BinaryDiceLoss.evaluate`).
    public var batchDice: Bool
    /// Weight of the lesion pixels in the BCE term (PyTorch's `pos_weight`; 1 = plain BCE).
    public var bcePositiveWeight: Float
    public init(bceWeight: Float = 0, batchDice: Bool = false, bcePositiveWeight: Float = 1) {
        self.bceWeight = bceWeight
        self.batchDice = batchDice
        self.bcePositiveWeight = bcePositiveWeight
    }
}

/// The mean loss of a batch and its gradient for every trainable tensor, by name.
public struct TrainingStepResult: Sendable {
    public var loss: Float
    public var gradients: [String: [Float]]
    public init(loss: Float, gradients: [String: [Float]]) {
        self.loss = loss
        self.gradients = gradients
    }
}

/// What the training loop needs from a network. The engine's M2MRF-HRNetV2 model conforms through an adapter;
/// tests use a tiny per-pixel model.
public protocol TrainableModel {
    /// Every tensor that defines the model, parameters and buffers (BN running statistics), by mmseg name.
    var state: ModelState { get }
    /// Replaces every tensor; refuses a state that does not fit this network.
    mutating func load(_ state: ModelState) throws
    /// Lets the optimiser change parameters in place.
    mutating func updateParameters(_ body: (inout ModelState) throws -> Void) rethrows
    /// Forward and backward on one batch in training mode (BN batch statistics, running stats updated):
    /// the loss of `BinaryDiceLoss` (bdice over annotated classes, plus BCE when asked) and its gradients.
    mutating func trainingStep(_ batch: TrainingBatch, loss: LossSettings) throws -> TrainingStepResult
    /// Inference on one normalised image [3, H, W]: per-channel probabilities [C, H, W] (sigmoid) at the same size.
    func probabilities(_ image: [Float], height: Int, width: Int) throws -> [Float]
    /// The same pass before the sigmoid: logits [C, H, W] resized to the input size (validation maps these to the
    /// photograph and applies the sigmoid last, as the official inference does).
    func logits(_ image: [Float], height: Int, width: Int) throws -> [Float]
}

extension TrainableModel {
    /// Logits recovered from probabilities, for models that only give those (clamped away from 0 and 1).
    public func logits(_ image: [Float], height: Int, width: Int) throws -> [Float] {
        try probabilities(image, height: height, width: width).map { p in
            let q = min(max(p, 1e-7), 1 - 1e-7)
            return logf(q / (1 - q))
        }
    }
}

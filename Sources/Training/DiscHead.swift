import Checkpoints
import Foundation
import Lesions
import Network

/// Growing a four-lesion model into one that also learns the optic disc (issue #16): the head's final 1×1 conv
/// (`decode_head.conv_seg`) gains a fifth output channel, initialised as the official code initialises the classifier
/// (weights normal with std 0.01, bias 0); the four lesion channels' weights and biases are copied exactly, so the
/// expanded model's first four outputs are the original model's.
public enum DiscHead {
    public static let weightName = "decode_head.conv_seg.weight"
    public static let biasName = "decode_head.conv_seg.bias"
    /// Standard deviation of the new channel's weights (mmseg `normal_init(conv_seg, std=0.01)`).
    public static let initialStd = 0.01

    /// The weights and architecture with the disc channel added. `seed` decides the new weights.
    public static func expand(_ tensors: TensorFile, architecture: ModelArchitecture,
                              seed: UInt64) throws(TrainingError) -> (tensors: TensorFile, architecture: ModelArchitecture) {
        let lesions = LesionClass.allCases.count
        guard architecture.numClasses == lesions else {
            throw TrainingError(.configuration, "only a model with the \(lesions) lesion classes can gain the optic-disc channel; this one has \(architecture.numClasses) output channels")
        }
        guard let weight = tensors[weightName], let bias = tensors[biasName] else {
            throw TrainingError(.configuration, "the weights have no \(weightName) / \(biasName) to add the optic-disc channel to")
        }
        let inputs = architecture.headChannels
        guard weight.shape == [lesions, inputs, 1, 1], bias.shape == [lesions] else {
            throw TrainingError(.configuration, "\(weightName) is \(weight.shape) and \(biasName) \(bias.shape); expected [\(lesions), \(inputs), 1, 1] and [\(lesions)]")
        }
        var rng = TrainingRNG(seed: seed ^ 0x0D15C0D15C)
        var newRow = [Float](repeating: 0, count: inputs)
        for i in 0..<inputs {
            // Box–Muller on (0, 1] uniforms.
            let u1 = 1 - rng.unit(), u2 = rng.unit()
            newRow[i] = Float(initialStd * (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
        }
        var out = tensors
        out.set(weightName, StoredTensor(floats: weight.floats() + newRow, shape: [lesions + 1, inputs, 1, 1]))
        out.set(biasName, StoredTensor(floats: bias.floats() + [0], shape: [lesions + 1]))
        var expanded = architecture
        expanded.numClasses = lesions + 1
        // Weight files that carry their architecture must carry the expanded one.
        if out.metadata[ModelWeights.architectureKey] != nil, let json = try? JSONEncoder().encode(expanded) {
            out.metadata[ModelWeights.architectureKey] = String(decoding: json, as: UTF8.self)
        }
        return (out, expanded)
    }
}

import Checkpoints
import Foundation
import Lesions
import Network

/// Growing a four-lesion model into one that also learns the optic disc (issue #16), and the vessels: the head's
/// final 1×1 conv (`decode_head.conv_seg`) gains a fifth (and sixth) output channel, initialised as the official code
/// initialises the classifier (weights normal with std 0.01, bias 0); the existing channels' weights and biases are
/// copied exactly, so the expanded model's first outputs are the original model's.
public enum DiscHead {
    public static let weightName = "decode_head.conv_seg.weight"
    public static let biasName = "decode_head.conv_seg.bias"
    /// Standard deviation of the new channel's weights (mmseg `normal_init(conv_seg, std=0.01)`).
    public static let initialStd = 0.01

    /// The weights and architecture with the disc channel added. `seed` decides the new weights.
    public static func expand(_ tensors: TensorFile, architecture: ModelArchitecture,
                              seed: UInt64) throws(TrainingError) -> (tensors: TensorFile, architecture: ModelArchitecture) {
        guard architecture.numClasses == LesionClass.allCases.count else {
            throw TrainingError(.configuration, "only a model with the \(LesionClass.allCases.count) lesion classes can gain the optic-disc channel; this one has \(architecture.numClasses) output channels")
        }
        return try expand(tensors, architecture: architecture, to: OpticDisc.channel + 1, seed: seed)
    }

    /// The weights and architecture grown to `channels` outputs (5: the disc; 6: the disc and the vessels) from a
    /// model with the four lesion channels or more and fewer than `channels`: each new channel initialised as above
    /// (its weights decided by `seed` and its index, so the disc channel is the same whether the vessels come with
    /// it or later), every existing channel copied exactly.
    public static func expand(_ tensors: TensorFile, architecture: ModelArchitecture, to channels: Int,
                              seed: UInt64) throws(TrainingError) -> (tensors: TensorFile, architecture: ModelArchitecture) {
        let have = architecture.numClasses
        guard have >= LesionClass.allCases.count, have < channels, channels <= RetinalVessels.channel + 1 else {
            throw TrainingError(.configuration, "a model with \(have) output channels cannot grow to \(channels) (the lesions, then the optic disc, then the vessels: 4 to 6)")
        }
        guard let weight = tensors[weightName], let bias = tensors[biasName] else {
            throw TrainingError(.configuration, "the weights have no \(weightName) / \(biasName) to add output channels to")
        }
        let inputs = architecture.headChannels
        guard weight.shape == [have, inputs, 1, 1], bias.shape == [have] else {
            throw TrainingError(.configuration, "\(weightName) is \(weight.shape) and \(biasName) \(bias.shape); expected [\(have), \(inputs), 1, 1] and [\(have)]")
        }
        var weights = weight.floats(), biases = bias.floats()
        for channel in have..<channels {
            // The disc channel's stream is the one it always had; later channels get their own.
            var rng = TrainingRNG(seed: seed ^ 0x0D15C0D15C ^ (UInt64(channel - OpticDisc.channel) << 40))
            for _ in 0..<inputs {
                // Box–Muller on (0, 1] uniforms.
                let u1 = 1 - rng.unit(), u2 = rng.unit()
                weights.append(Float(initialStd * (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)))
            }
            biases.append(0)
        }
        var out = tensors
        out.set(weightName, StoredTensor(floats: weights, shape: [channels, inputs, 1, 1]))
        out.set(biasName, StoredTensor(floats: biases, shape: [channels]))
        var expanded = architecture
        expanded.numClasses = channels
        // Weight files that carry their architecture must carry the expanded one.
        if out.metadata[ModelWeights.architectureKey] != nil, let json = try? JSONEncoder().encode(expanded) {
            out.metadata[ModelWeights.architectureKey] = String(decoding: json, as: UTF8.self)
        }
        return (out, expanded)
    }
}

import Checkpoints
import Foundation
import Network

/// A model folder (`<name>.safetensors` + `metadata.json`) with freshly initialised weights: the starting point of
/// training from scratch, and a stand-in of the shipped architecture for timing when no trained model is at hand.
/// Its findings mean nothing.
public enum FreshModel {
    /// Architectures by the names users type: `w18-small-C`, `w18-C`, `w32-D`, `w48-C`, `w48-plain`, `tiny-C`.
    public static func architecture(named text: String) throws -> ModelArchitecture {
        guard let architecture = ModelArchitecture.named(text) else {
            throw ScreeningRunError("architecture '\(text)': expected <family>-<variant>: \(ModelArchitecture.namesHelp)")
        }
        return architecture
    }

    /// Writes the folder and returns the weight file. `prior`: every class starts at this probability (the
    /// classifier's bias set to its logit, as detection heads are initialised), so an untrained model marks few
    /// pixels instead of half of them; nil keeps the reference initialisation (bias 0, probability ≈ 0.5).
    @discardableResult
    public static func create(architecture: ModelArchitecture, name: String, version: String = "0.0.0-untrained",
                              prior: Double? = 0.01, to directory: URL) throws -> URL {
        let model = try SegmentationModel(architecture: architecture)
        var weights = model.exportWeights()
        if let prior {
            guard prior > 0, prior < 1 else { throw ScreeningRunError("prior \(prior) is not a probability between 0 and 1") }
            let bias = Float(log(prior / (1 - prior)))
            weights.set("decode_head.conv_seg.bias", StoredTensor(floats: [Float](repeating: bias, count: architecture.numClasses),
                                                                   shape: [architecture.numClasses]))
        }
        let card = ModelCard(name: name, version: version, architecture: architecture,
                             trainingData: "none: freshly initialised weights; findings mean nothing",
                             changelog: [version: "initialised by fundus-screen model init" +
                                         (prior.map { " (class prior \($0))" } ?? "")])
        return try WeightLoader.save(tensors: weights, card: card, to: directory)
    }
}

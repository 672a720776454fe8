import Checkpoints
import Foundation

/// Where a model's architecture and weights come from.
public enum ModelWeights {
    /// The metadata key under which exported safetensors files carry their `ModelArchitecture` (JSON).
    public static let architectureKey = "fundus.architecture"

    /// Reads a weight file and the architecture it describes: a PyTorch `.pth` of the official code or a
    /// safetensors file (architecture from its model card or inferred from names and shapes), via `WeightLoader`.
    public static func read(_ url: URL) throws(NetworkError) -> (architecture: ModelArchitecture, tensors: TensorFile) {
        let loaded: LoadedWeights
        do { loaded = try WeightLoader.load(url) } catch { throw .badInput(error.description) }
        return (loaded.architecture, loaded.tensors)
    }

    /// Builds the model a weight file describes, with its weights.
    public static func model(from url: URL) throws(NetworkError) -> SegmentationModel {
        let (architecture, tensors) = try read(url)
        return try SegmentationModel(architecture: architecture, weights: tensors, weightsFile: url.path)
    }
}

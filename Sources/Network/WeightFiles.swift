import Checkpoints
import Foundation

/// Where a model's architecture and weights come from.
public enum ModelWeights {
    /// The metadata key under which exported safetensors files carry their `ModelArchitecture` (JSON).
    public static let architectureKey = "fundus.architecture"

    /// Reads a weight file and the architecture it describes.
    /// - safetensors written by `SegmentationModel.exportWeights()` (architecture in the metadata);
    /// - PyTorch `.pth` checkpoints of the official code go through the Checkpoints reader.
    public static func read(_ url: URL) throws(NetworkError) -> (architecture: ModelArchitecture, tensors: TensorFile) {
        if url.pathExtension == "pth" {
            throw .badInput("\(url.path): reading .pth checkpoints needs the Checkpoints .pth reader, which this build lacks")
        }
        let file: TensorFile
        do { file = try Safetensors.read(url) } catch { throw .badInput(error.description) }
        guard let json = file.metadata[architectureKey],
              let architecture = try? JSONDecoder().decode(ModelArchitecture.self, from: Data(json.utf8)) else {
            throw .badInput("\(url.path) does not say which architecture it holds (no '\(architectureKey)' metadata)")
        }
        return (architecture, file)
    }

    /// Builds the model a weight file describes, with its weights.
    public static func model(from url: URL) throws(NetworkError) -> SegmentationModel {
        let (architecture, tensors) = try read(url)
        return try SegmentationModel(architecture: architecture, weights: tensors, weightsFile: url.path)
    }
}

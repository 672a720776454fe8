import Checkpoints
import Foundation

/// Where a model's architecture and weights come from.
public enum ModelWeights {
    /// The metadata key under which exported safetensors files also carry their `ModelArchitecture` (JSON), for
    /// readers without architecture inference; `WeightLoader` infers it from names and shapes.
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

    /// The network a loaded weight file describes, ready for inference: its weights, its card's `channel_scales`,
    /// and the card's `ensemble` members (weight files in the same folder) loaded with the same channel scales.
    public static func inferenceModel(_ loaded: LoadedWeights) throws(NetworkError) -> SegmentationModel {
        let model = try SegmentationModel(architecture: loaded.architecture, weights: loaded.tensors,
                                          weightsFile: loaded.source.path)
        for url in files(of: loaded).dropFirst() {
            do { model.ensemble.append(try self.model(from: url)) } catch {
                throw .badInput("\(loaded.source.path): ensemble member '\(url.lastPathComponent)': \(error)")
            }
        }
        model.channelScales = loaded.card?.channelScaleIndices ?? [:]  // after the members joined: they follow
        return model
    }

    /// Every file whose bytes make up a loaded model: the weight file, then its card's ensemble members.
    public static func files(of loaded: LoadedWeights) -> [URL] {
        [loaded.source] + (loaded.card?.ensemble ?? []).map { loaded.source.deletingLastPathComponent().appendingPathComponent($0) }
    }
}

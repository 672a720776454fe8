import Checkpoints
import Foundation
import Network

/// How a screening run read its photographs, stored with the run (`screening_runs.settings`, which every result
/// links to): the model version alone does not say whether test-time augmentation, tiles, a second input scale or
/// the card's ensemble were used, and each changes the masks and findings.
public struct InferenceSettings: Codable, Sendable, Equatable {
    /// "1 pass (no TTA)", "8 passes (dihedral TTA: …)".
    public var augmentation: String
    /// "whole image" or "tiles of 512 px, overlap 0.25".
    public var tiling: String
    /// Classes read at other input scales (class code → factors), as the card's `channel_scales`; empty with --one-scale.
    public var channelScales: [String: [Double]]
    /// Networks whose probabilities are averaged: 1, or 1 + the card's ensemble members (1 with --one-model).
    public var models: Int
    public var threshold: Float
    public var minimumLesionArea: Int
    /// The screening rule that sets the flag, "name v<version>".
    public var flagRule: String
    public var maxPixels: Int

    public init(options: ScreeningOptions, model: SegmentationModel) {
        augmentation = options.augmentation.description
        switch options.tiling {
        case .whole: tiling = "whole image"
        case .tiles(let size, let overlap): tiling = "tiles of \(size) px, overlap \(overlap)"
        }
        let names = ModelCard.classNames(numClasses: model.architecture.numClasses)
        channelScales = Dictionary(uniqueKeysWithValues: model.channelScales.map { k, f in
            (k < names.count ? names[k] : "channel \(k)", f)
        })
        models = 1 + model.ensemble.count
        threshold = options.threshold
        minimumLesionArea = options.minimumLesionArea
        flagRule = "\(options.rule.name) v\(options.rule.version)"
        maxPixels = options.preparation.decode.maxPixels
    }

    enum CodingKeys: String, CodingKey {
        case augmentation, tiling, models, threshold
        case channelScales = "channel_scales", minimumLesionArea = "minimum_lesion_area", flagRule = "flag_rule"
        case maxPixels = "max_pixels"
    }

    /// The JSON object stored in `screening_runs.settings` (keys sorted).
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }
}

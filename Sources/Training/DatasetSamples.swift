import Foundation
import Imaging
import Lesions
import Logging

/// Loads the samples of a `LesionDataset` for training: decode the photograph and its masks, merge the masks into
/// the official label map, and crop both to the field of view as the screening does (a square of the field's
/// diameter, zero outside the photograph), so the network trains on what it will see at inference.
/// A photograph whose field of view cannot be found is used whole, with a warning.
public struct DatasetSamples: TrainingSampleSource {
    public let dataset: LesionDataset
    public let fieldOfViewCrop: Bool
    /// Output channels of the model trained: 4 (the lesions), 5 (and the optic disc) or 6 (and the vessels).
    public let channels: Int
    let logger: Logger

    public init(_ dataset: LesionDataset, fieldOfViewCrop: Bool = true, channels: Int = 4, logger: Logger) {
        self.dataset = dataset
        self.fieldOfViewCrop = fieldOfViewCrop
        self.channels = channels
        self.logger = logger
    }

    public var count: Int { dataset.samples.count }

    public func load(_ index: Int) throws -> LabelledImage {
        let sample = dataset.samples[index]
        let decoded = try ImageCodec.decode(contentsOf: sample.image, mode: .rgb)
        let photo = decoded.image
        let masks = try Self.truthMasks(sample, width: photo.width, height: photo.height)
        let disc = channels > OpticDisc.channel ? try Self.auxiliaryMask(sample.discMask, of: sample, width: photo.width, height: photo.height) : nil
        let vessels = channels > RetinalVessels.channel ? try Self.auxiliaryMask(sample.vesselMask, of: sample, width: photo.width, height: photo.height) : nil
        let labels = Image(width: photo.width, height: photo.height, channels: 1,
                           pixels: LabelMap.merge(masks, disc: disc, vessels: vessels, pixels: photo.pixelCount))
        var image = photo, labelImage = labels
        if fieldOfViewCrop {
            let analysis = FieldOfViewDetector.analyse(decoded)
            if let fov = analysis.fieldOfView {
                let transform = CropTransform(fieldOfView: fov, scale: decoded.scale)
                image = transform.crop(photo)
                labelImage = Resize.crop(labels, region: transform.region)
            } else {
                logger.warning("training: \(sample.image.lastPathComponent): no field of view found; using the whole photograph")
            }
        }
        let annotated = sample.annotatedChannels(channels)
        return LabelledImage(name: sample.name, width: image.width, height: image.height, rgb: image.bytes,
                             labels: labelImage.bytes, annotated: annotated)
    }

    /// The optic-disc or vessel mask `url` of `sample`, grey, at the photograph's size; nil when the sample has none.
    public static func auxiliaryMask(_ url: URL?, of sample: LabelledSample, width: Int, height: Int) throws -> [UInt8]? {
        guard let url else { return nil }
        let mask = try ImageCodec.decode(contentsOf: url, mode: .label).image
        guard mask.width == width && mask.height == height else {
            throw TrainingError(.dataset, "\(url.path) is \(mask.width)×\(mask.height), its photograph \(sample.image.lastPathComponent) \(width)×\(height)")
        }
        return mask.bytes
    }

    /// Per-class truth masks (non-zero = lesion) at the photograph's size; annotated classes without a file are
    /// absent. A mask of another size than its photograph is an error naming both.
    public static func truthMasks(_ sample: LabelledSample, width: Int, height: Int) throws -> [LesionClass: [UInt8]] {
        func decodeMask(_ url: URL) throws -> [UInt8] {
            let mask = try ImageCodec.decode(contentsOf: url, mode: .label).image
            guard mask.width == width && mask.height == height else {
                throw TrainingError(.dataset, "\(url.path) is \(mask.width)×\(mask.height), its photograph \(sample.image.lastPathComponent) \(width)×\(height)")
            }
            return mask.bytes
        }
        var masks: [LesionClass: [UInt8]] = [:]
        switch sample.labels {
        case let .masks(files):
            for (lesion, url) in files { masks[lesion] = try decodeMask(url) }
        case let .indexMap(url, values):
            let map = try decodeMask(url)
            for (lesion, value) in values {
                masks[lesion] = map.map { Int($0) == value ? 255 : 0 }
            }
        }
        return masks
    }
}

import Checkpoints
import Foundation

/// Options of the path from a photograph file to the network's input.
public struct PreparationOptions: Sendable {
    public var decode = DecodeOptions()
    public var thresholds = GradabilityThresholds()
    public var modelScale = InputScale.idrid
    /// Long side of the field-of-view analysis image.
    public var analysisSize = 640

    public init(decode: DecodeOptions = DecodeOptions(), thresholds: GradabilityThresholds = GradabilityThresholds(),
                modelScale: InputScale = .idrid, analysisSize: Int = 640) {
        self.decode = decode
        self.thresholds = thresholds
        self.modelScale = modelScale
        self.analysisSize = analysisSize
    }
}

/// A photograph decoded, its field of view found, and (when gradable) its square crop resized to the model scale.
public struct PreparedPhotograph: Sendable {
    public var decoded: DecodedImage
    public var analysis: FieldOfViewAnalysis
    /// Square crop geometry; nil when no field of view was found.
    public var transform: CropTransform?
    /// RGB8 network input (the square at `modelScale`); nil when ungradable.
    public var input: Image?
    /// Seconds per stage: decode, field of view, resize.
    public var seconds: (decode: Double, fieldOfView: Double, resize: Double)
}

public enum Preparation {
    /// Decode → field of view and gradability → square crop resized to the model scale (one pass, no
    /// intermediate crop). Normalise `input` with `Normalisation.tensor` for the network.
    public static func prepare(contentsOf url: URL, options: PreparationOptions = PreparationOptions()) throws -> PreparedPhotograph {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let decoded = try ImageCodec.decode(contentsOf: url, mode: .rgb, options: options.decode)
        let t1 = DispatchTime.now().uptimeNanoseconds
        let analysis = FieldOfViewDetector.analyse(decoded, thresholds: options.thresholds, analysisSize: options.analysisSize)
        let t2 = DispatchTime.now().uptimeNanoseconds
        var transform: CropTransform? = nil
        var input: Image? = nil
        if let fov = analysis.fieldOfView {
            let t = CropTransform(fieldOfView: fov, scale: decoded.scale)
            transform = t
            if analysis.isGradable {
                let size = options.modelScale.resizedSize(width: t.side, height: t.side)
                input = t.networkInput(decoded.image, width: size.width, height: size.height)
            }
        }
        let t3 = DispatchTime.now().uptimeNanoseconds
        return PreparedPhotograph(decoded: decoded, analysis: analysis, transform: transform, input: input,
                                  seconds: (Double(t1 - t0) / 1e9, Double(t2 - t1) / 1e9, Double(t3 - t2) / 1e9))
    }
}

import Foundation

/// The optic disc (OD) as an optional fifth output channel of the network (issue #16): not a lesion, so not a
/// `LesionClass` — lesion statistics and metrics stay over EX, HE, SE, MA — but learned so that the bright disc and
/// the peripapillary reflex stop being taken for hard exudates, and reported in the findings.
public enum OpticDisc {
    /// IDRiD code (mask folder `masks/OD`, files `<image>_OD.tif`) and the model card's class name.
    public static let code = "OD"
    public static let name = "optic disc"
    /// Output channel of a model that has the disc: after the four lesion classes.
    public static let channel = LesionClass.allCases.count
    /// Value in the merged training label map: after the lesions' 1…4, with the lowest precedence (lesion pixels
    /// overwrite the disc).
    public static let labelIndex = LesionClass.allCases.count + 1
    /// Taken optic disc diameter when no pixel spacing is known (a typical adult disc is about 1.5–2 mm across).
    public static let assumedDiameterMillimetres = 1.8
    /// Disc diameter over field-of-view diameter that a real disc has (about 0.1–0.2 in 45°–50° photographs), with
    /// margin. Lesion areas are estimated only from a disc inside it.
    public static let plausibleDiameterShare: ClosedRange<Double> = 0.05...0.3
    /// Wider: a component outside it is not reported as the disc at all (a channel marking most of the retina, a
    /// speck). Between the two, the disc is reported (its centre is usually right: the shipped model's IDRiD_06 disc
    /// region runs into the bright retina beside it, 0.34 of the field) but no area is estimated from it.
    public static let reportableDiameterShare: ClosedRange<Double> = 0.03...0.5
    /// Overlay outline colour: neutral white, so it is never read as a lesion colour.
    public static let colour: (red: UInt8, green: UInt8, blue: UInt8) = (255, 255, 255)

    /// Whether a model's class list (model card `classes`) has the disc channel, at `channel`.
    public static func isPresent(in classes: [String]) -> Bool {
        classes.count > channel && classes[channel].uppercased() == code
    }
}

/// Where the optic disc is in one photograph: the largest 8-connected component of the disc channel above the
/// threshold with its holes filled, in the pixels of the plane measured (the photograph's).
public struct DiscFinding: Codable, Sendable, Equatable {
    /// False when no pixel of the disc channel is above the threshold; the other figures are then nil.
    public var found: Bool
    /// Centre of the largest component (mean pixel position, 0-based pixel centres).
    public var centreX: Double?
    public var centreY: Double?
    /// Equivalent-circle diameter of the largest component: 2·√(area/π), pixels.
    public var diameterPixels: Double?
    /// Pixels of the largest component, its holes filled.
    public var area: Int?
    public var boundingBox: BoundingBox?

    public init(found: Bool, centreX: Double? = nil, centreY: Double? = nil, diameterPixels: Double? = nil,
                area: Int? = nil, boundingBox: BoundingBox? = nil) {
        self.found = found
        self.centreX = centreX
        self.centreY = centreY
        self.diameterPixels = diameterPixels
        self.area = area
        self.boundingBox = boundingBox
    }

    public static let notFound = DiscFinding(found: false)

    /// The disc in a plane: the largest component with score > `threshold` (ties: the first in raster order), its
    /// holes filled (`ConnectedComponents.largestComponentMaskFillingHoles`).
    public static func measure(_ plane: ScorePlane, threshold: Float = 0.5) -> DiscFinding {
        locate(plane, threshold: threshold).finding
    }

    /// `measure`, and the region measured as a 0/255 mask of the plane's size (row-major; all zero when not found):
    /// what an overlay outlines.
    public static func locate(_ plane: ScorePlane, threshold: Float = 0.5) -> (finding: DiscFinding, region: [UInt8]) {
        let region = ConnectedComponents(plane, threshold: threshold).largestComponentMaskFillingHoles()
        var area = 0, sumX = 0.0, sumY = 0.0
        var x0 = Int.max, x1 = -1, y0 = Int.max, y1 = -1
        for y in 0..<plane.height {
            let base = y * plane.width
            for x in 0..<plane.width where region[base + x] != 0 {
                area += 1; sumX += Double(x); sumY += Double(y)
                x0 = min(x0, x); x1 = max(x1, x); y0 = min(y0, y); y1 = max(y1, y)
            }
        }
        guard area > 0 else { return (.notFound, region) }
        let finding = DiscFinding(found: true, centreX: sumX / Double(area), centreY: sumY / Double(area),
                                  diameterPixels: 2 * (Double(area) / Double.pi).squareRoot(), area: area,
                                  boundingBox: BoundingBox(x: x0, y: y0, width: x1 - x0 + 1, height: y1 - y0 + 1))
        return (finding, region)
    }

    /// Pixel spacing estimated from the disc, taking its diameter as `OpticDisc.assumedDiameterMillimetres`;
    /// nil when no disc was found.
    public var estimatedPixelSpacing: PixelSpacing? {
        guard found, let d = diameterPixels, d > 0 else { return nil }
        return PixelSpacing(millimetres: OpticDisc.assumedDiameterMillimetres / d)
    }

    /// `estimatedPixelSpacing`, only when the disc's size is plausible beside the field of view
    /// (`OpticDisc.plausibleDiameterShare` of its diameter); nil otherwise.
    public func estimatedPixelSpacing(fieldOfViewDiameter: Double?) -> PixelSpacing? {
        guard let spacing = estimatedPixelSpacing else { return nil }
        guard let f = fieldOfViewDiameter, f > 0 else { return spacing }
        return isPlausible(fieldOfViewDiameter: f) ? spacing : nil
    }

    /// What a report says of the disc: this finding when its diameter is within `OpticDisc.reportableDiameterShare`
    /// of the field of view's, else "not found" — a region across most of the retina (a disc channel that did not
    /// learn the disc, or another camera's picture) or a speck is not the disc, and is not reported or outlined as one.
    public func reported(fieldOfViewDiameter f: Double) -> DiscFinding {
        guard found, let d = diameterPixels, f > 0 else { return self }
        return OpticDisc.reportableDiameterShare.contains(d / f) ? self : DiscFinding(found: false)
    }

    /// Whether the diameter lies within `OpticDisc.plausibleDiameterShare` of the field of view's.
    public func isPlausible(fieldOfViewDiameter f: Double) -> Bool {
        guard found, let d = diameterPixels, f > 0 else { return false }
        return OpticDisc.plausibleDiameterShare.contains(d / f)
    }
}

/// Overlap of a predicted disc with the truth disc, summed over images: IoU and Dice over every pixel.
public struct DiscOverlap: Codable, Sendable, Equatable {
    public var intersection = 0
    public var predicted = 0
    public var truth = 0
    public var images = 0

    public init() {}

    /// Adds one image: `probabilities` scored against the threshold (strict), `truth` non-zero = disc.
    public mutating func add(predicted plane: ScorePlane, truth mask: [UInt8], threshold: Float = 0.5) throws {
        guard mask.count == plane.pixelCount else {
            throw LesionsError("the disc truth has \(mask.count) pixels, the prediction \(plane.width)×\(plane.height)")
        }
        let isDisc: (Int) -> Bool
        switch plane.values {
        case .probabilities(let p): isDisc = { p[$0] > threshold }
        case .probabilityBytes(let v): isDisc = { ScorePlane.score(byte: v[$0]) > threshold }
        case .mask(let m): isDisc = { m[$0] != 0 && Float(1) > threshold }
        }
        for i in 0..<mask.count {
            let p = isDisc(i), g = mask[i] != 0
            if p { predicted += 1 }
            if g { truth += 1 }
            if p && g { intersection += 1 }
        }
        images += 1
    }

    /// nil when neither prediction nor truth has a disc pixel.
    public var iou: Double? {
        let union = predicted + truth - intersection
        return union > 0 ? Double(intersection) / Double(union) : nil
    }

    public var dice: Double? {
        predicted + truth > 0 ? 2 * Double(intersection) / Double(predicted + truth) : nil
    }
}

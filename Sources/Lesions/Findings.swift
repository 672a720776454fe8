/// Physical size of one pixel, as DICOM Pixel Spacing: the distance between rows and between columns, in mm.
public struct PixelSpacing: Codable, Sendable, Equatable {
    public var rowSpacingMillimetres: Double
    public var columnSpacingMillimetres: Double

    public init(rowSpacingMillimetres: Double, columnSpacingMillimetres: Double) {
        self.rowSpacingMillimetres = rowSpacingMillimetres
        self.columnSpacingMillimetres = columnSpacingMillimetres
    }

    /// Square pixels of `millimetres` on a side.
    public init(millimetres: Double) { self.init(rowSpacingMillimetres: millimetres, columnSpacingMillimetres: millimetres) }

    public var pixelAreaSquareMillimetres: Double { rowSpacingMillimetres * columnSpacingMillimetres }
}

/// Pixel rectangle: columns x..<x+width, rows y..<y+height of the image the lesion was found in.
public struct BoundingBox: Codable, Sendable, Equatable {
    public var x: Int
    public var y: Int
    public var width: Int
    public var height: Int
    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x; self.y = y; self.width = width; self.height = height
    }
}

/// One lesion: an 8-connected component of one class's mask.
public struct Lesion: Codable, Sendable, Equatable {
    public var lesionClass: LesionClass
    public var boundingBox: BoundingBox
    /// Pixels.
    public var area: Int
    /// Mean pixel position (column, row), 0-based pixel centres.
    public var centroidX: Double
    public var centroidY: Double
    /// Mean and largest probability over the lesion's pixels; nil when the input was a binary mask.
    public var meanProbability: Double?
    public var maxProbability: Double?
    /// nil when the pixel spacing is unknown.
    public var areaSquareMillimetres: Double?
}

/// One class in one image: the lesions and their totals.
public struct ClassFindings: Codable, Sendable, Equatable {
    public var lesionClass: LesionClass
    /// Lesions kept (at least the minimum lesion area).
    public var count: Int
    /// Pixels in kept lesions.
    public var totalArea: Int
    /// totalArea / field-of-view area; nil when the field of view is unknown.
    public var fieldOfViewShare: Double?
    public var totalAreaSquareMillimetres: Double?
    /// The largest kept lesion (nil when there is none).
    public var largestLesion: Lesion?
    /// Components below the minimum lesion area, dropped as specks, and their pixels.
    public var droppedSpecks: Int
    public var droppedSpeckArea: Int
    /// Kept lesions, largest first (ties: top-most, then left-most).
    public var lesions: [Lesion]

    public var isPresent: Bool { count > 0 }
}

/// All four classes of one image, with the parameters that produced them.
public struct ImageFindings: Codable, Sendable, Equatable {
    public var width: Int
    public var height: Int
    /// Probability above which a pixel is a lesion (strict, as the reference).
    public var threshold: Float
    /// Components smaller than this many pixels are dropped as specks.
    public var minimumLesionArea: Int
    public var fieldOfViewArea: Int?
    public var pixelSpacing: PixelSpacing?
    /// In `LesionClass` order; only the classes that were measured.
    public var classes: [ClassFindings]

    public func findings(for lesionClass: LesionClass) -> ClassFindings? {
        classes.first { $0.lesionClass == lesionClass }
    }
}

/// How lesions are measured: the same parameters for a whole run, with the spacing per archive or per image.
public struct LesionMeasurement: Sendable, Equatable {
    public var threshold: Float
    public var minimumLesionArea: Int
    public var pixelSpacing: PixelSpacing?

    public init(threshold: Float = 0.5, minimumLesionArea: Int = 1, pixelSpacing: PixelSpacing? = nil) {
        self.threshold = threshold
        self.minimumLesionArea = minimumLesionArea
        self.pixelSpacing = pixelSpacing
    }

    /// Measures every class given. All planes must have the same size; `fieldOfViewArea` (pixels) gives the
    /// share of the field of view, `pixelSpacing` (overriding the run's) the areas in mm².
    public func measure(
        _ planes: [LesionClass: ScorePlane], fieldOfViewArea: Int? = nil, pixelSpacing: PixelSpacing? = nil
    ) throws -> ImageFindings {
        guard let first = planes.values.first else { throw LesionsError("no class planes to measure") }
        for (c, p) in planes where p.width != first.width || p.height != first.height {
            throw LesionsError("the \(c.code) plane is \(p.width)×\(p.height), the others \(first.width)×\(first.height)")
        }
        guard minimumLesionArea >= 1 else {
            throw LesionsError("the minimum lesion area must be at least 1 pixel, got \(minimumLesionArea)")
        }
        if let fov = fieldOfViewArea, fov <= 0 {
            throw LesionsError("the field-of-view area must be positive, got \(fov) pixels")
        }
        let spacing = pixelSpacing ?? self.pixelSpacing
        let classes = planes.keys.sorted().map { c in
            measureClass(c, planes[c]!, fieldOfViewArea: fieldOfViewArea, spacing: spacing)
        }
        return ImageFindings(
            width: first.width, height: first.height, threshold: threshold, minimumLesionArea: minimumLesionArea,
            fieldOfViewArea: fieldOfViewArea, pixelSpacing: spacing, classes: classes)
    }

    /// One class: components, then per-lesion sums over their runs (no per-pixel label image).
    public func measureClass(
        _ lesionClass: LesionClass, _ plane: ScorePlane, fieldOfViewArea: Int? = nil, spacing: PixelSpacing? = nil
    ) -> ClassFindings {
        let components = ConnectedComponents(plane, threshold: threshold)
        let n = components.count
        var area = [Int](repeating: 0, count: n)
        var sumX = [Double](repeating: 0, count: n), sumY = [Double](repeating: 0, count: n)
        var minX = [Int32](repeating: .max, count: n), maxX = [Int32](repeating: .min, count: n)
        var minY = [Int32](repeating: .max, count: n), maxY = [Int32](repeating: .min, count: n)
        var sumP = [Double](repeating: 0, count: n), maxP = [Float](repeating: 0, count: n)

        for (r, run) in components.runs.enumerated() {
            let c = Int(components.componentOfRun[r])
            let len = run.length
            area[c] += len
            // Σx over start..<end = len·(start+end−1)/2
            sumX[c] += Double(len) * Double(Int(run.start) + Int(run.end) - 1) / 2
            sumY[c] += Double(len) * Double(run.row)
            minX[c] = min(minX[c], run.start); maxX[c] = max(maxX[c], run.end - 1)
            minY[c] = min(minY[c], run.row); maxY[c] = max(maxY[c], run.row)
            let base = Int(run.row) * plane.width
            let range = (base + Int(run.start))..<(base + Int(run.end))
            switch plane.values {
            case .probabilities(let p):
                for i in range { sumP[c] += Double(p[i]); maxP[c] = max(maxP[c], p[i]) }
            case .probabilityBytes(let v):
                for i in range {
                    let s = ScorePlane.score(byte: v[i])
                    sumP[c] += Double(s); maxP[c] = max(maxP[c], s)
                }
            case .mask:
                break
            }
        }

        var lesions: [Lesion] = []
        var dropped = 0, droppedArea = 0
        for c in 0..<n {
            if area[c] < minimumLesionArea { dropped += 1; droppedArea += area[c]; continue }
            let a = Double(area[c])
            lesions.append(Lesion(
                lesionClass: lesionClass,
                boundingBox: BoundingBox(
                    x: Int(minX[c]), y: Int(minY[c]), width: Int(maxX[c] - minX[c]) + 1, height: Int(maxY[c] - minY[c]) + 1),
                area: area[c], centroidX: sumX[c] / a, centroidY: sumY[c] / a,
                meanProbability: plane.hasProbabilities ? sumP[c] / a : nil,
                maxProbability: plane.hasProbabilities ? Double(maxP[c]) : nil,
                areaSquareMillimetres: spacing.map { a * $0.pixelAreaSquareMillimetres }))
        }
        lesions.sort {
            ($0.area, -$0.boundingBox.y, -$0.boundingBox.x) > ($1.area, -$1.boundingBox.y, -$1.boundingBox.x)
        }
        let total = lesions.reduce(0) { $0 + $1.area }
        return ClassFindings(
            lesionClass: lesionClass, count: lesions.count, totalArea: total,
            fieldOfViewShare: fieldOfViewArea.map { Double(total) / Double($0) },
            totalAreaSquareMillimetres: spacing.map { Double(total) * $0.pixelAreaSquareMillimetres },
            largestLesion: lesions.first, droppedSpecks: dropped, droppedSpeckArea: droppedArea, lesions: lesions)
    }
}

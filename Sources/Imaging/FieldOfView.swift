import Foundation

/// The circular field of view of a fundus photograph, in original pixels. Continuous coordinates: pixel (i, j)
/// covers [i, i+1) × [j, j+1), so a pixel's centre is (i + 0.5, j + 0.5).
public struct FieldOfView: Sendable, Codable, Equatable {
    public var centreX: Double
    public var centreY: Double
    public var radius: Double
    /// The image it was found in (original pixels).
    public var imageWidth: Int
    public var imageHeight: Int
    /// True when the photograph has no dark surround at all (the field fills the frame): the circle is then
    /// assumed centred with half the long side as radius, so the square crop is the whole image.
    public var assumed: Bool

    public init(centreX: Double, centreY: Double, radius: Double, imageWidth: Int, imageHeight: Int, assumed: Bool = false) {
        self.centreX = centreX
        self.centreY = centreY
        self.radius = radius
        self.imageWidth = imageWidth
        self.imageHeight = imageHeight
        self.assumed = assumed
    }

    /// The circle's bounding box clipped to the image: the visible field (IDRiD's is clipped at top and bottom).
    public var boundingBox: PixelRegion {
        let x0 = max(0, Int((centreX - radius).rounded())), x1 = min(imageWidth, Int((centreX + radius).rounded()))
        let y0 = max(0, Int((centreY - radius).rounded())), y1 = min(imageHeight, Int((centreY + radius).rounded()))
        return PixelRegion(x: x0, y: y0, width: max(0, x1 - x0), height: max(0, y1 - y0))
    }

    public var diameter: Double { 2 * radius }

    /// Whether the centre of original pixel (x, y) lies inside the circle.
    public func contains(x: Int, y: Int) -> Bool {
        let dx = Double(x) + 0.5 - centreX, dy = Double(y) + 0.5 - centreY
        return dx * dx + dy * dy <= radius * radius
    }
}

/// Why a photograph cannot be screened. Ungradable is a normal outcome, reported with its reasons.
public enum UngradableReason: String, Sendable, Codable, CaseIterable {
    case noFieldOfView = "no-field-of-view"
    case tooDark = "too-dark"
    case overExposed = "over-exposed"
    case tooSmall = "too-small"
    case outOfFocus = "out-of-focus"

    public var explanation: String {
        switch self {
        case .noFieldOfView: "no circular field of view found"
        case .tooDark: "too dark inside the field of view"
        case .overExposed: "over-exposed (washed out) inside the field of view"
        case .tooSmall: "field of view too small"
        case .outOfFocus: "out of focus"
        }
    }
}

/// Thresholds of the gradability decision. The defaults were set on the IDRiD images of shared/data (all
/// gradable) and on darkened, brightened, blurred and shrunk copies of them (see FieldOfViewTests).
public struct GradabilityThresholds: Sendable, Codable, Equatable {
    /// Field diameter below this many original pixels: too small. 500 px puts the smallest microaneurysms
    /// (a few dozen pixels at IDRiD's ~3500 px field) at about one pixel.
    public var minimumDiameter: Double = 500
    /// Mean luminance (0.299 R + 0.587 G + 0.114 B, 0…255) inside the field below this: too dark.
    public var minimumMeanLuminance: Double = 20
    /// Mean luminance above this: over-exposed.
    public var maximumMeanLuminance: Double = 200
    /// Share of the field with luminance ≥ 245 above this: over-exposed.
    public var maximumSaturatedShare: Double = 0.2
    /// Sharpness (RMS of the green channel's Laplacian over its mean, ×100, at a scale where the field is
    /// about 512 px across) below this: out of focus. Measured: the 14 sharp IDRiD images 4.9…14.6, retina.jpg 6.1;
    /// IDRiD copies blurred over ~16 px (full size) 1.5…4.9. The default 2.0 flags strong defocus only; the
    /// measure rises with noise in dark photographs, so a dark blurred image can pass.
    public var minimumSharpness: Double = 2.0
    /// The field must cover at least this share of the image area and the detected region must fill at least
    /// `minimumFill` of the fitted circle (clipped to the image); else no field of view.
    public var minimumAreaShare: Double = 0.05
    public var minimumFill: Double = 0.8

    public init() {}
}

/// Measures behind the gradability decision.
public struct ImageQuality: Sendable, Codable, Equatable {
    public var meanLuminance: Double
    public var saturatedShare: Double
    public var sharpness: Double
    /// RMS distance of the edge points from the fitted circle, original pixels.
    public var fitResidual: Double
    /// Edge points the circle was fitted to.
    public var edgePoints: Int
}

/// Field of view and gradability of one photograph.
public struct FieldOfViewAnalysis: Sendable {
    public var fieldOfView: FieldOfView?
    public var quality: ImageQuality
    public var reasons: [UngradableReason]
    public var isGradable: Bool { reasons.isEmpty }
}

public enum FieldOfViewDetector {
    /// Finds the field of view of a decoded photograph and decides gradability.
    ///
    /// Method: box-average the image down so its long side is at most `analysisSize`; threshold the brightest
    /// channel just above the surround's level (backgrounds are dark, not black); keep the largest connected
    /// region; take its left/right edge on every row and top/bottom edge on every column, at sub-pixel
    /// positions, leaving out edges that lie on the image border (IDRiD's field is cut off there); fit a circle
    /// by least squares, dropping outliers (burnt-in text, notches) in a few rounds.
    public static func analyse(_ decoded: DecodedImage, thresholds: GradabilityThresholds = GradabilityThresholds(),
                               analysisSize: Int = 640) -> FieldOfViewAnalysis {
        analyse(decoded.image, scale: decoded.scale, originalWidth: decoded.originalWidth,
                originalHeight: decoded.originalHeight, thresholds: thresholds, analysisSize: analysisSize)
    }

    /// `image` pixel i covers original pixels [i·scale, (i+1)·scale).
    public static func analyse(_ image: Image, scale: Int = 1, originalWidth: Int? = nil, originalHeight: Int? = nil,
                               thresholds: GradabilityThresholds = GradabilityThresholds(),
                               analysisSize: Int = 640) -> FieldOfViewAnalysis {
        let ow = originalWidth ?? image.width * scale, oh = originalHeight ?? image.height * scale
        let rgb = image.rgb()
        let k = max(1, (max(image.width, image.height) + analysisSize - 1) / analysisSize)
        let (aw, ah, planes) = Resize.boxPlanes(rgb, factor: k)
        let unit = Double(k * scale)  // original pixels per analysis pixel
        var quality = ImageQuality(meanLuminance: 0, saturatedShare: 0, sharpness: 0, fitResidual: 0, edgePoints: 0)
        guard aw >= 8, ah >= 8 else {
            return FieldOfViewAnalysis(fieldOfView: nil, quality: quality, reasons: [.noFieldOfView, .tooSmall])
        }
        let n = aw * ah
        var bright = [Float](repeating: 0, count: n)
        var luminance = [Float](repeating: 0, count: n)
        for i in 0..<n {
            bright[i] = max(planes[0][i], planes[1][i], planes[2][i])
            luminance[i] = 0.299 * planes[0][i] + 0.587 * planes[1][i] + 0.114 * planes[2][i]
        }
        // Percentiles from a histogram of quarter levels (a sort of the whole analysis image costs more).
        var histogram = [Int](repeating: 0, count: 1024)
        for v in bright { histogram[min(1023, Int(v * 4))] += 1 }
        func percentile(_ q: Double) -> Double {
            let target = Int(q * Double(n))
            var seen = 0
            for (bin, count) in histogram.enumerated() {
                seen += count
                if seen > target { return Double(bin) / 4 }
            }
            return 255
        }
        let low = percentile(0.02), high = percentile(0.9)
        let threshold = Float(low + max(10, 0.1 * (high - low)))

        let fov: FieldOfView?
        if low > 40, percentile(0.005) > 30 {
            // No dark surround: the field fills the frame.
            fov = FieldOfView(centreX: Double(ow) / 2, centreY: Double(oh) / 2, radius: Double(max(ow, oh)) / 2,
                              imageWidth: ow, imageHeight: oh, assumed: true)
        } else {
            let region = largestRegion(bright, width: aw, height: ah, threshold: threshold)
            let points = edgePoints(bright, region: region, width: aw, height: ah, threshold: threshold)
            quality.edgePoints = points.count
            if let fit = fitCircle(points), fit.r > 2 {
                quality.fitResidual = fit.rms * unit
                let candidate = FieldOfView(centreX: fit.x * unit, centreY: fit.y * unit, radius: fit.r * unit,
                                            imageWidth: ow, imageHeight: oh)
                // The region must fill the circle (within the image) and the circle be a fair share of the image.
                var inside = 0, filled = 0
                for y in 0..<ah {
                    let dy = Double(y) + 0.5 - fit.y
                    for x in 0..<aw {
                        let dx = Double(x) + 0.5 - fit.x
                        if dx * dx + dy * dy <= fit.r * fit.r {
                            inside += 1
                            if region[y * aw + x] { filled += 1 }
                        }
                    }
                }
                let fill = inside > 0 ? Double(filled) / Double(inside) : 0
                let share = Double(inside) / Double(n)
                fov = (fill >= thresholds.minimumFill && share >= thresholds.minimumAreaShare
                       && fit.rms < 0.05 * fit.r) ? candidate : nil
            } else {
                fov = nil
            }
        }
        guard let fov else {
            // A photograph too dark to show its field is reported as that too.
            let dark = high < thresholds.minimumMeanLuminance
            return FieldOfViewAnalysis(fieldOfView: nil, quality: quality, reasons: dark ? [.noFieldOfView, .tooDark] : [.noFieldOfView])
        }

        // Exposure inside 90 % of the radius (the rim is vignetted).
        let cx = fov.centreX / unit, cy = fov.centreY / unit, r = 0.9 * fov.radius / unit
        var sum = 0.0, saturated = 0, count = 0
        for y in 0..<ah {
            let dy = Double(y) + 0.5 - cy
            for x in 0..<aw {
                let dx = Double(x) + 0.5 - cx
                guard dx * dx + dy * dy <= r * r else { continue }
                let l = luminance[y * aw + x]
                sum += Double(l)
                if l >= 245 { saturated += 1 }
                count += 1
            }
        }
        quality.meanLuminance = count > 0 ? sum / Double(count) : 0
        quality.saturatedShare = count > 0 ? Double(saturated) / Double(count) : 0
        quality.sharpness = sharpness(rgb, scale: scale, fieldOfView: fov)

        var reasons: [UngradableReason] = []
        if quality.meanLuminance < thresholds.minimumMeanLuminance { reasons.append(.tooDark) }
        if quality.meanLuminance > thresholds.maximumMeanLuminance || quality.saturatedShare > thresholds.maximumSaturatedShare {
            reasons.append(.overExposed)
        }
        if fov.diameter < thresholds.minimumDiameter { reasons.append(.tooSmall) }
        if !reasons.contains(.tooDark), !reasons.contains(.overExposed), quality.sharpness < thresholds.minimumSharpness {
            reasons.append(.outOfFocus)
        }
        return FieldOfViewAnalysis(fieldOfView: fov, quality: quality, reasons: reasons)
    }

    /// Sharpness: RMS Laplacian of the green channel over its mean (×100) inside 80 % of the radius, measured
    /// after box-averaging so that the field is about 512 px across (comparable between cameras and sizes).
    static func sharpness(_ image: Image, scale: Int, fieldOfView fov: FieldOfView) -> Double {
        let diameter = fov.diameter / Double(scale)  // image pixels
        let k = max(1, Int((diameter / 512).rounded()))
        let box = fov.boundingBox
        let region = PixelRegion(x: box.x / scale, y: box.y / scale,
                                 width: max(1, box.width / scale), height: max(1, box.height / scale))
        let green = Resize.boxPlane(image, channel: 1, factor: k, region: region)
        let w = green.width, h = green.height, g = green.plane
        let unit = Double(k * scale)
        let cx = (fov.centreX - Double(region.x * scale)) / unit, cy = (fov.centreY - Double(region.y * scale)) / unit
        let r = 0.8 * fov.radius / unit
        var sumSquares = 0.0, sumGreen = 0.0, count = 0
        guard w >= 3, h >= 3 else { return 0 }
        for y in 1..<(h - 1) {
            let dy = Double(y) + 0.5 - cy
            for x in 1..<(w - 1) {
                let dx = Double(x) + 0.5 - cx
                guard dx * dx + dy * dy <= r * r else { continue }
                let i = y * w + x
                let lap = 4 * g[i] - g[i - 1] - g[i + 1] - g[i - w] - g[i + w]
                sumSquares += Double(lap * lap)
                sumGreen += Double(g[i])
                count += 1
            }
        }
        guard count > 0, sumGreen > 0 else { return 0 }
        return 100 * (sumSquares / Double(count)).squareRoot() / (sumGreen / Double(count))
    }

    /// The largest 4-connected region of pixels above `threshold`.
    static func largestRegion(_ values: [Float], width w: Int, height h: Int, threshold: Float) -> [Bool] {
        var label = [Int32](repeating: 0, count: w * h)
        var best: Int32 = 0, bestSize = 0, next: Int32 = 0
        var stack: [Int] = []
        for start in 0..<(w * h) where values[start] > threshold && label[start] == 0 {
            next += 1
            var size = 0
            label[start] = next
            stack.append(start)
            while let p = stack.popLast() {
                size += 1
                let x = p % w, y = p / w
                func visit(_ q: Int) {
                    if label[q] == 0 && values[q] > threshold {
                        label[q] = next
                        stack.append(q)
                    }
                }
                if x > 0 { visit(p - 1) }
                if x < w - 1 { visit(p + 1) }
                if y > 0 { visit(p - w) }
                if y < h - 1 { visit(p + w) }
            }
            if size > bestSize {
                bestSize = size
                best = next
            }
        }
        return label.map { $0 == best && best != 0 }
    }

    /// Sub-pixel edge points (analysis coordinates) of `region`: first/last pixel of each row and column, the
    /// crossing of `threshold` interpolated between the outside and inside pixel centres. Edges on the image
    /// border are left out: there the field is cut by the frame, not by its circle.
    static func edgePoints(_ v: [Float], region: [Bool], width w: Int, height h: Int, threshold t: Float) -> [(Double, Double)] {
        func crossing(_ outside: Float, _ inside: Float) -> Double {
            let d = inside - outside
            return d > 0 ? Double(min(max((t - outside) / d, 0), 1)) : 0.5
        }
        var points: [(Double, Double)] = []
        for y in 0..<h {
            guard let first = (0..<w).first(where: { region[y * w + $0] }),
                  let last = (0..<w).last(where: { region[y * w + $0] }) else { continue }
            let yc = Double(y) + 0.5
            if first > 0 {
                points.append((Double(first) - 0.5 + crossing(v[y * w + first - 1], v[y * w + first]), yc))
            }
            if last < w - 1 {
                points.append((Double(last) + 1.5 - crossing(v[y * w + last + 1], v[y * w + last]), yc))
            }
        }
        for x in 0..<w {
            guard let first = (0..<h).first(where: { region[$0 * w + x] }),
                  let last = (0..<h).last(where: { region[$0 * w + x] }) else { continue }
            let xc = Double(x) + 0.5
            if first > 0 {
                points.append((xc, Double(first) - 0.5 + crossing(v[(first - 1) * w + x], v[first * w + x])))
            }
            if last < h - 1 {
                points.append((xc, Double(last) + 1.5 - crossing(v[(last + 1) * w + x], v[last * w + x])))
            }
        }
        return points
    }

    /// Least-squares circle (Kåsa: x² + y² + D x + E y + F = 0), refitted three times without the points whose
    /// distance from the circle is more than 3 × the median distance (and > 1 px).
    static func fitCircle(_ all: [(Double, Double)]) -> (x: Double, y: Double, r: Double, rms: Double)? {
        var points = all
        var result: (x: Double, y: Double, r: Double, rms: Double)? = nil
        for _ in 0..<4 {
            guard points.count >= 12, let fit = kasa(points) else { return result }
            let distances = points.map { abs(((($0.0 - fit.x) * ($0.0 - fit.x) + ($0.1 - fit.y) * ($0.1 - fit.y))).squareRoot() - fit.r) }
            let rms = (distances.reduce(0) { $0 + $1 * $1 } / Double(distances.count)).squareRoot()
            result = (fit.x, fit.y, fit.r, rms)
            let median = distances.sorted()[distances.count / 2]
            let limit = max(1.0, 3 * median)
            let kept = zip(points, distances).filter { $0.1 <= limit }.map(\.0)
            if kept.count == points.count { break }
            points = kept
        }
        return result
    }

    static func kasa(_ points: [(Double, Double)]) -> (x: Double, y: Double, r: Double)? {
        // Normal equations of [x y 1]·[D E F]ᵀ = −(x² + y²), centred for conditioning.
        let n = Double(points.count)
        let mx = points.reduce(0) { $0 + $1.0 } / n, my = points.reduce(0) { $0 + $1.1 } / n
        var a = [[Double]](repeating: [0, 0, 0], count: 3), b = [0.0, 0, 0]
        for (px, py) in points {
            let x = px - mx, y = py - my, z = -(x * x + y * y)
            let row = [x, y, 1.0]
            for i in 0..<3 {
                for j in 0..<3 { a[i][j] += row[i] * row[j] }
                b[i] += row[i] * z
            }
        }
        guard let s = solve3(a, b) else { return nil }
        let cx = -s[0] / 2, cy = -s[1] / 2, r2 = cx * cx + cy * cy - s[2]
        guard r2 > 0 else { return nil }
        return (cx + mx, cy + my, r2.squareRoot())
    }

    static func solve3(_ a: [[Double]], _ b: [Double]) -> [Double]? {
        var m = a, v = b
        for col in 0..<3 {
            guard let pivot = (col..<3).max(by: { abs(m[$0][col]) < abs(m[$1][col]) }), abs(m[pivot][col]) > 1e-12 else { return nil }
            m.swapAt(col, pivot)
            v.swapAt(col, pivot)
            for row in 0..<3 where row != col {
                let f = m[row][col] / m[col][col]
                for j in 0..<3 { m[row][j] -= f * m[col][j] }
                v[row] -= f * v[col]
            }
        }
        return (0..<3).map { v[$0] / m[$0][$0] }
    }
}

// The circle's geometry in the photograph's pixels: which pixels are retina. Screening counts lesion areas against
// `area` and keeps probabilities only inside the circle.
extension FieldOfView {
    /// First and last column of `row` whose pixel centre lies inside the circle (x1 < x0 when none).
    public func chord(row y: Int, width: Int) -> (Int, Int) {
        let dy = Double(y) + 0.5 - centreY
        let half2 = radius * radius - dy * dy
        guard half2 > 0 else { return (1, 0) }
        let half = half2.squareRoot()
        let x0 = max(0, Int((centreX - half - 0.5).rounded(.up)))
        let x1 = min(width - 1, Int((centreX + half - 0.5).rounded(.down)))
        return (x0, x1)
    }

    /// Pixels of the photograph inside the circle (clipped by the frame as IDRiD photographs are), at least 1.
    public var area: Int {
        var area = 0
        for y in 0..<imageHeight {
            let (x0, x1) = chord(row: y, width: imageWidth)
            if x1 >= x0 { area += x1 - x0 + 1 }
        }
        return max(area, 1)
    }

    /// The one-channel image with every pixel outside the circle set to 0.
    public func masking(_ image: Image) -> Image {
        var pixels = image.bytes
        let w = image.width
        for y in 0..<image.height {
            let (x0, x1) = chord(row: y, width: w)
            let row = y * w
            if x1 < x0 {
                for x in 0..<w { pixels[row + x] = 0 }
                continue
            }
            for x in 0..<x0 { pixels[row + x] = 0 }
            for x in (x1 + 1)..<max(x1 + 1, w) { pixels[row + x] = 0 }
        }
        return Image(width: w, height: image.height, channels: 1, pixels: pixels)
    }
}

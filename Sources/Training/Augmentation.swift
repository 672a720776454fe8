import Checkpoints
import Foundation
import Imaging
import Lesions

/// An RGB8 photograph with its merged label map, as a training sample flows through augmentation.
public struct LabelledImage: Sendable, Equatable {
    public var name: String
    public var width: Int
    public var height: Int
    /// Interleaved RGB, row-major, 3·width·height bytes.
    public var rgb: [UInt8]
    /// width·height: 0 background, 1…4 = EX, HE, SE, MA (MA > SE > HE > EX where masks overlap), 5 = optic disc
    /// for a model with the disc channel (under every lesion).
    public var labels: [UInt8]
    /// Per output channel of the model, whether this image is annotated for it: EX, HE, SE, MA, and the optic disc
    /// when the model has that fifth channel.
    public var annotated: [Bool]

    public init(name: String, width: Int, height: Int, rgb: [UInt8], labels: [UInt8], annotated: [Bool]) {
        precondition(rgb.count == 3 * width * height && labels.count == width * height && annotated.count >= LesionClass.allCases.count,
                     "\(name): buffers do not fit \(width)×\(height)")
        self.name = name
        self.width = width
        self.height = height
        self.rgb = rgb
        self.labels = labels
        self.annotated = annotated
    }
}

/// The official mmseg 0.8 train pipeline (m2mrf-reference.md §4.2) on RGB8 + label buffers, every draw from the run's
/// `TrainingRNG`, in this order:
///
/// 1. Resize, keep ratio, scale jitter r ∈ [0.5, 2.0): target (⌊1440r⌋, ⌊960r⌋) as (long, short) maxima;
///    image bilinear, labels nearest.
/// 2. Flip / 90° rotation (ours, optional): one of identity, 90°, 180°, 270°, horizontal, vertical flip, uniformly —
///    the six copies the official `tools/augment.py` wrote offline, drawn online instead. Done before the crop so a
///    rotated landscape image still yields a crop of the configured shape.
/// 3. RandomCrop to crop size with cat_max_ratio 0.75: up to 10 re-draws until no label value covers ≥ 75 % of the
///    crop (and more than one is present).
/// 4. PhotoMetricDistortion: brightness, then contrast (before or after at random), saturation, hue.
///
/// Normalisation and padding to the crop size happen when the batch is assembled (`normalise(into:)`), as mmseg
/// pads after Normalize: padded image pixels are 0 after normalisation and padded labels 0 (background).
public struct TrainingAugmentation: Sendable {
    public var configuration: TrainingConfiguration

    public init(configuration: TrainingConfiguration) { self.configuration = configuration }

    /// The pipeline above, computing only what the crop keeps: the labels are resized and oriented whole (the crop
    /// is chosen on them), the photograph only inside the crop (`Resize.bilinear`'s window, then the orientation of
    /// that patch). The result is exactly `reference(_:rng:)`'s, which resizes and orients the whole photograph, for
    /// the same draws — a fifth to a tenth of the work at IDRiD's scale and a 384² crop.
    public func apply(_ sample: LabelledImage, rng: inout TrainingRNG) -> LabelledImage {
        let c = configuration
        let ratio = rng.uniform(c.ratioRange[0], c.ratioRange[1])
        let (w, h) = Self.rescaledSize(width: sample.width, height: sample.height, long: c.scaleLong, short: c.scaleShort, ratio: ratio)
        let resized = w == sample.width && h == sample.height
        let labels = resized ? sample.labels
            : Resize.nearest(Image(width: sample.width, height: sample.height, channels: 1, pixels: sample.labels), to: w, h).bytes
        let orientation = c.flipsAndRotations ? Orientation(rawValue: rng.below(6))! : .identity
        let oriented = Self.orient(LabelPlane(width: w, height: h, labels: labels, annotated: sample.annotated), orientation)
        var box: CropBox
        // The extra draw happens only when lesion-centred crops are on, so the official stream stays as it was.
        if let p = c.lesionCropProbability, p > 0, rng.unit() < p,
           let centred = Self.lesionCentredCropBox(oriented, height: c.cropHeight, width: c.cropWidth, rng: &rng) {
            box = centred
        } else {
            box = Self.randomCropBox(oriented, height: c.cropHeight, width: c.cropWidth, catMaxRatio: c.catMaxRatio, rng: &rng)
        }
        // The photograph inside the crop: its rectangle before the orientation, resized there only, then oriented.
        let source = box.unoriented(orientation, width: w, height: h)
        let photo = Image(width: sample.width, height: sample.height, channels: 3, pixels: sample.rgb)
        let patch = resized ? Resize.crop(photo, region: source) : Resize.bilinear(photo, to: w, h, window: source)
        var image = Self.orient(LabelledImage(name: sample.name, width: source.width, height: source.height, rgb: patch.bytes,
                                              labels: [UInt8](repeating: 0, count: source.width * source.height),
                                              annotated: sample.annotated), orientation)
        image.labels = oriented.cut(box)
        if c.photometricDistortion { PhotometricDistortion().apply(&image.rgb, rng: &rng) }
        return image
    }

    /// The pipeline step by step on whole images (rescale, orient, crop, distort): the definition `apply` is tested
    /// against.
    public func reference(_ sample: LabelledImage, rng: inout TrainingRNG) -> LabelledImage {
        let c = configuration
        var image = Self.rescale(sample, long: c.scaleLong, short: c.scaleShort, ratio: rng.uniform(c.ratioRange[0], c.ratioRange[1]))
        if c.flipsAndRotations { image = Self.orient(image, Orientation(rawValue: rng.below(6))!) }
        if let p = c.lesionCropProbability, p > 0, rng.unit() < p,
           let centred = Self.lesionCentredCrop(image, height: c.cropHeight, width: c.cropWidth, rng: &rng) {
            image = centred
        } else {
            image = Self.randomCrop(image, height: c.cropHeight, width: c.cropWidth, catMaxRatio: c.catMaxRatio, rng: &rng)
        }
        if c.photometricDistortion { PhotometricDistortion().apply(&image.rgb, rng: &rng) }
        return image
    }

    /// A label map with its size and the channels its image is annotated for: what the crop is chosen on.
    public struct LabelPlane: Sendable {
        public var width: Int
        public var height: Int
        public var labels: [UInt8]
        public var annotated: [Bool]

        func cut(_ b: CropBox) -> [UInt8] {
            var out = [UInt8](repeating: 0, count: b.width * b.height)
            for y in 0..<b.height {
                let src = (b.y + y) * width + b.x
                out.replaceSubrange(y * b.width ..< (y + 1) * b.width, with: labels[src ..< src + b.width])
            }
            return out
        }
    }

    /// A crop's rectangle (inside the image it is cut from).
    public struct CropBox: Sendable, Equatable {
        public var y: Int
        public var x: Int
        public var height: Int
        public var width: Int

        /// The rectangle of the image before `o` (a `width`×`height` one) that `o` turns into this box.
        func unoriented(_ o: Orientation, width w: Int, height h: Int) -> PixelRegion {
            switch o {
            case .identity: PixelRegion(x: x, y: y, width: width, height: height)
            case .rotate90: PixelRegion(x: w - y - height, y: x, width: height, height: width)
            case .rotate180: PixelRegion(x: w - x - width, y: h - y - height, width: width, height: height)
            case .rotate270: PixelRegion(x: y, y: h - x - width, width: height, height: width)
            case .flipHorizontal: PixelRegion(x: w - x - width, y: y, width: width, height: height)
            case .flipVertical: PixelRegion(x: x, y: h - y - height, width: width, height: height)
            }
        }
    }

    // MARK: 1. Resize with scale jitter

    /// mmcv `imrescale` to the (long, short) maxima scaled by `ratio`: factor = min(L/long side, S/short side),
    /// new size = ⌊dim·factor + 0.5⌋.
    public static func rescale(_ s: LabelledImage, long: Int, short: Int, ratio: Double) -> LabelledImage {
        let (w, h) = rescaledSize(width: s.width, height: s.height, long: long, short: short, ratio: ratio)
        if w == s.width && h == s.height { return s }
        // Imaging's resize, the one inference uses: OpenCV INTER_LINEAR geometry for the photograph, INTER_NEAREST
        // for labels (it never invents a label value).
        let rgb = Resize.bilinear(Image(width: s.width, height: s.height, channels: 3, pixels: s.rgb), to: w, h)
        let labels = Resize.nearest(Image(width: s.width, height: s.height, channels: 1, pixels: s.labels), to: w, h)
        return LabelledImage(name: s.name, width: w, height: h, rgb: rgb.bytes, labels: labels.bytes, annotated: s.annotated)
    }

    /// The size `rescale` produces: IDRiD 4288×2848 at ratio 1 → 1440×956.
    public static func rescaledSize(width: Int, height: Int, long: Int, short: Int, ratio: Double) -> (width: Int, height: Int) {
        // mmseg's jitter: img_scale (⌊long·r⌋, ⌊short·r⌋), then the keep-ratio rule inference uses too.
        let size = InputScale(longEdge: Int(Double(long) * ratio), shortEdge: Int(Double(short) * ratio))
            .resizedSize(width: width, height: height)
        return (max(1, size.width), max(1, size.height))
    }

    // MARK: 2. Flips and rotations

    public enum Orientation: Int, Sendable, CaseIterable {
        case identity, rotate90, rotate180, rotate270, flipHorizontal, flipVertical
    }

    /// Rotations are counter-clockwise, as PIL's `rotate(90)` in the official `augment.py`.
    public static func orient(_ s: LabelledImage, _ o: Orientation) -> LabelledImage {
        if o == .identity { return s }
        var rgb = [UInt8](repeating: 0, count: s.rgb.count), labels = [UInt8](repeating: 0, count: s.labels.count)
        let (nw, nh) = forEachOrientedPixel(width: s.width, height: s.height, o) { d, src in
            labels[d] = s.labels[src]
            rgb[3 * d] = s.rgb[3 * src]
            rgb[3 * d + 1] = s.rgb[3 * src + 1]
            rgb[3 * d + 2] = s.rgb[3 * src + 2]
        }
        return LabelledImage(name: s.name, width: nw, height: nh, rgb: rgb, labels: labels, annotated: s.annotated)
    }

    /// The same for a label map alone.
    public static func orient(_ s: LabelPlane, _ o: Orientation) -> LabelPlane {
        if o == .identity { return s }
        var labels = [UInt8](repeating: 0, count: s.labels.count)
        let (nw, nh) = forEachOrientedPixel(width: s.width, height: s.height, o) { d, src in labels[d] = s.labels[src] }
        return LabelPlane(width: nw, height: nh, labels: labels, annotated: s.annotated)
    }

    /// Calls `body(destination, source)` with the pixel indices of every pixel of a `width`×`height` image turned by
    /// `o`; returns the turned image's size.
    @inline(__always)
    static func forEachOrientedPixel(width w: Int, height h: Int, _ o: Orientation, _ body: (Int, Int) -> Void) -> (width: Int, height: Int) {
        let swaps = o == .rotate90 || o == .rotate270
        let nw = swaps ? h : w, nh = swaps ? w : h
        for y in 0..<nh {
            for x in 0..<nw {
                // Source pixel of destination (x, y).
                let (sx, sy): (Int, Int) = switch o {
                case .identity: (x, y)
                case .rotate90: (w - 1 - y, x)
                case .rotate180: (w - 1 - x, h - 1 - y)
                case .rotate270: (y, h - 1 - x)
                case .flipHorizontal: (w - 1 - x, y)
                case .flipVertical: (x, h - 1 - y)
                }
                body(y * nw + x, sy * w + sx)
            }
        }
        return (nw, nh)
    }

    // MARK: 3. Random crop

    /// mmseg `RandomCrop`: offsets uniform in [0, margin]; images smaller than the crop keep their size (padded later).
    public static func randomCrop(_ s: LabelledImage, height ch: Int, width cw: Int, catMaxRatio: Double, rng: inout TrainingRNG) -> LabelledImage {
        let box = randomCropBox(LabelPlane(width: s.width, height: s.height, labels: s.labels, annotated: s.annotated),
                                height: ch, width: cw, catMaxRatio: catMaxRatio, rng: &rng)
        return cut(s, y: box.y, x: box.x, height: box.height, width: box.width)
    }

    /// Where `randomCrop` cuts.
    public static func randomCropBox(_ s: LabelPlane, height ch: Int, width cw: Int, catMaxRatio: Double, rng: inout TrainingRNG) -> CropBox {
        func draw(_ rng: inout TrainingRNG) -> (y: Int, x: Int) {
            let y = rng.below(max(s.height - ch, 0) + 1)
            let x = rng.below(max(s.width - cw, 0) + 1)
            return (y, x)
        }
        let h = min(ch, s.height), w = min(cw, s.width)
        var box = draw(&rng)
        if catMaxRatio < 1 {
            for _ in 0..<10 {
                var counts = [Int](repeating: 0, count: 256)
                for y in box.y..<(box.y + h) {
                    for x in box.x..<(box.x + w) { counts[Int(s.labels[y * s.width + x])] += 1 }
                }
                counts[255] = 0   // mmseg's ignore index
                let present = counts.filter { $0 > 0 }
                if present.count > 1, Double(present.max()!) / Double(present.reduce(0, +)) < catMaxRatio { break }
                box = draw(&rng)
            }
        }
        return CropBox(y: box.y, x: box.x, height: h, width: w)
    }

    /// A crop around a lesion pixel: a label value among the annotated lesion classes present is drawn uniformly,
    /// then one of its pixels, then the crop's position so that pixel lies uniformly inside it (clamped to the image).
    /// For a model that trains the optic disc (five annotated channels) the disc is drawn among them as one more class:
    /// the disc and the bright retina around it then come in one crop in five or so, which is where the lesion channels
    /// learn that they are not exudate (uniform crops hold the disc too rarely). Four-channel models draw among the four
    /// lesions only, as before. Nil when the image has no annotated pixel of those classes (the caller draws a random
    /// crop instead).
    public static func lesionCentredCrop(_ s: LabelledImage, height ch: Int, width cw: Int, rng: inout TrainingRNG) -> LabelledImage? {
        lesionCentredCropBox(LabelPlane(width: s.width, height: s.height, labels: s.labels, annotated: s.annotated),
                             height: ch, width: cw, rng: &rng).map { cut(s, y: $0.y, x: $0.x, height: $0.height, width: $0.width) }
    }

    /// Where `lesionCentredCrop` cuts.
    public static func lesionCentredCropBox(_ s: LabelPlane, height ch: Int, width cw: Int, rng: inout TrainingRNG) -> CropBox? {
        let classes = min(s.annotated.count, LesionClass.allCases.count + 1)
        var counts = [Int](repeating: 0, count: classes + 1)
        for v in s.labels where v >= 1 && Int(v) <= classes { counts[Int(v)] += 1 }
        let present = (1...classes).filter { counts[$0] > 0 && s.annotated[$0 - 1] }
        guard !present.isEmpty else { return nil }
        let value = UInt8(present[rng.below(present.count)])
        var k = rng.below(counts[Int(value)]), at = 0
        for (i, v) in s.labels.enumerated() where v == value {
            if k == 0 { at = i; break }
            k -= 1
        }
        let h = min(ch, s.height), w = min(cw, s.width)
        let py = at / s.width, px = at % s.width
        let y = min(max(py - rng.below(h), 0), s.height - h)
        let x = min(max(px - rng.below(w), 0), s.width - w)
        return CropBox(y: y, x: x, height: h, width: w)
    }

    static func cut(_ s: LabelledImage, y y0: Int, x x0: Int, height h: Int, width w: Int) -> LabelledImage {
        var rgb = [UInt8](repeating: 0, count: 3 * w * h), labels = [UInt8](repeating: 0, count: w * h)
        for y in 0..<h {
            let src = (y0 + y) * s.width + x0
            labels.replaceSubrange(y * w ..< (y + 1) * w, with: s.labels[src ..< src + w])
            rgb.replaceSubrange(3 * y * w ..< 3 * (y + 1) * w, with: s.rgb[3 * src ..< 3 * (src + w)])
        }
        return LabelledImage(name: s.name, width: w, height: h, rgb: rgb, labels: labels, annotated: s.annotated)
    }

    // MARK: Normalise and pad

    /// Writes the image as normalised float [3, cropHeight, cropWidth] (RGB planes, (v − mean)·(1/std) as mmcv's
    /// `imnormalize`) and the labels as [cropHeight, cropWidth], zero beyond the image (bottom/right padding).
    public func normalise(_ s: LabelledImage, image: inout ArraySlice<Float>, labels: inout ArraySlice<UInt8>) {
        let ch = configuration.cropHeight, cw = configuration.cropWidth
        let inv = configuration.std.map { Float(1 / Double($0)) }, mean = configuration.mean
        let i0 = image.startIndex, l0 = labels.startIndex
        for y in 0..<min(ch, s.height) {
            for x in 0..<min(cw, s.width) {
                let src = y * s.width + x, dst = y * cw + x
                labels[l0 + dst] = s.labels[src]
                for k in 0..<3 { image[i0 + k * ch * cw + dst] = (Float(s.rgb[3 * src + k]) - mean[k]) * inv[k] }
            }
        }
    }
}

/// mmseg's `PhotoMetricDistortion` with its defaults, on interleaved RGB8. Each step happens with probability 0.5;
/// values are computed in float32 and truncated to uint8 as numpy's `astype(np.uint8)` after clipping.
/// HSV is OpenCV's 8-bit HSV (H in 0…179, S and V in 0…255), converted the way `cv2.cvtColor` does.
public struct PhotometricDistortion: Sendable {
    public var brightnessDelta = 32
    public var contrastRange: (Double, Double) = (0.5, 1.5)
    public var saturationRange: (Double, Double) = (0.5, 1.5)
    public var hueDelta = 18

    public init() {}

    public func apply(_ rgb: inout [UInt8], rng: inout TrainingRNG) {
        if rng.coin() {
            let beta = Float(rng.uniform(Double(-brightnessDelta), Double(brightnessDelta)))
            convert(&rgb, alpha: 1, beta: beta)
        }
        let contrastFirst = rng.coin()
        if contrastFirst { contrast(&rgb, rng: &rng) }
        if rng.coin() {
            let alpha = Float(rng.uniform(saturationRange.0, saturationRange.1))
            var hsv = Self.hsv(fromRGB: rgb)
            for i in stride(from: 1, to: hsv.count, by: 3) { hsv[i] = Self.convert(hsv[i], alpha: alpha, beta: 0) }
            rgb = Self.rgb(fromHSV: hsv)
        }
        if rng.coin() {
            let delta = rng.integer(-hueDelta, hueDelta)   // numpy randint: high exclusive, so −18…17
            var hsv = Self.hsv(fromRGB: rgb)
            for i in stride(from: 0, to: hsv.count, by: 3) { hsv[i] = UInt8(((Int(hsv[i]) + delta) % 180 + 180) % 180) }
            rgb = Self.rgb(fromHSV: hsv)
        }
        if !contrastFirst { contrast(&rgb, rng: &rng) }
    }

    private func contrast(_ rgb: inout [UInt8], rng: inout TrainingRNG) {
        if rng.coin() { convert(&rgb, alpha: Float(rng.uniform(contrastRange.0, contrastRange.1)), beta: 0) }
    }

    private func convert(_ values: inout [UInt8], alpha: Float, beta: Float) {
        for i in values.indices { values[i] = Self.convert(values[i], alpha: alpha, beta: beta) }
    }

    @inline(__always) static func convert(_ v: UInt8, alpha: Float, beta: Float) -> UInt8 {
        UInt8(min(max(Float(v) * alpha + beta, 0), 255))   // clip, then truncate
    }

    private static let shift = 12
    private static let saturationTable: [Int] = (0..<256).map { $0 == 0 ? 0 : Int((Double(255 << shift) / Double($0)).rounded(.toNearestOrEven)) }
    private static let hueTable: [Int] = (0..<256).map { $0 == 0 ? 0 : Int((Double(180 << shift) / (6 * Double($0))).rounded(.toNearestOrEven)) }

    /// OpenCV `RGB2HSV_b` with hrange 180 (fixed point, 12 fractional bits).
    public static func hsv(fromRGB rgb: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: rgb.count)
        let half = 1 << (shift - 1)
        for i in stride(from: 0, to: rgb.count, by: 3) {
            let r = Int(rgb[i]), g = Int(rgb[i + 1]), b = Int(rgb[i + 2])
            let v = max(r, g, b), diff = v - min(r, g, b)
            let s = (diff * saturationTable[v] + half) >> shift
            var h = v == r ? g - b : v == g ? b - r + 2 * diff : r - g + 4 * diff
            h = (h * hueTable[diff] + half) >> shift
            if h < 0 { h += 180 }
            out[i] = UInt8(min(h, 255))
            out[i + 1] = UInt8(s)
            out[i + 2] = UInt8(v)
        }
        return out
    }

    /// OpenCV `HSV2RGB_b` (float per pixel, rounded to nearest as its scalar path; some OpenCV versions' SIMD path
    /// truncates instead, a difference of at most one level).
    public static func rgb(fromHSV hsv: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: hsv.count)
        let hscale: Float = 6 / 180
        for i in stride(from: 0, to: hsv.count, by: 3) {
            var h = Float(hsv[i])
            let s = Float(hsv[i + 1]) * (1 / 255 as Float), v = Float(hsv[i + 2]) * (1 / 255 as Float)
            var r = v, g = v, b = v
            if s != 0 {
                h *= hscale
                h = fmodf(h, 6)
                var sector = Int(h.rounded(.down))
                h -= Float(sector)
                if sector < 0 || sector >= 6 { sector = 0; h = 0 }
                let tab: [Float] = [v, v * (1 - s), v * (1 - s * h), v * (1 - s * (1 - h))]
                // OpenCV's sector table gives (b, g, r) indices into tab.
                let sectors: [(Int, Int, Int)] = [(1, 3, 0), (1, 0, 2), (3, 0, 1), (0, 2, 1), (0, 1, 3), (2, 1, 0)]
                let (bi, gi, ri) = sectors[sector]
                b = tab[bi]; g = tab[gi]; r = tab[ri]
            }
            out[i] = saturate(r * 255)
            out[i + 1] = saturate(g * 255)
            out[i + 2] = saturate(b * 255)
        }
        return out
    }

    @inline(__always) private static func saturate(_ x: Float) -> UInt8 {
        UInt8(min(max(x.rounded(.toNearestOrEven), 0), 255))
    }
}

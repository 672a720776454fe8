import Foundation

/// The exact geometry from original pixels to the square the network sees, and back.
///
/// The square is cut from the decoded image (which may be a JPEG decoded at 1/`scale` size): `region`, in decoded
/// pixels, may reach past the image; those parts are zero padding. Decoded pixel i covers original pixels
/// [i·scale, (i+1)·scale). The network input is the square resized (bilinearly) to any `width × height`
/// (`InputScale.resizedSize`), so a network-space map of that size maps back by two exact affine steps.
/// Continuous coordinates throughout: pixel (i, j) covers [i, i+1) × [j, j+1).
public struct CropTransform: Sendable, Codable, Equatable {
    public var originalWidth: Int
    public var originalHeight: Int
    /// Original pixels per decoded pixel (JPEG DCT scaling), 1 for a full-size decode.
    public var scale: Int
    /// The square in decoded pixels; width == height.
    public var region: PixelRegion

    public init(originalWidth: Int, originalHeight: Int, scale: Int, region: PixelRegion) {
        self.originalWidth = originalWidth
        self.originalHeight = originalHeight
        self.scale = scale
        self.region = region
    }

    /// The square of side ≈ the field's diameter, centred on it, in decoded pixels of a 1/`scale` decode.
    public init(fieldOfView fov: FieldOfView, scale: Int = 1) {
        let side = max(1, Int((fov.diameter / Double(scale)).rounded()))
        let x = Int((fov.centreX / Double(scale) - Double(side) / 2).rounded())
        let y = Int((fov.centreY / Double(scale) - Double(side) / 2).rounded())
        self.init(originalWidth: fov.imageWidth, originalHeight: fov.imageHeight, scale: scale,
                  region: PixelRegion(x: x, y: y, width: side, height: side))
    }

    /// Side of the square in decoded pixels.
    public var side: Int { region.width }

    /// The square in original pixels (may reach past the image).
    public var squareInOriginal: PixelRegion {
        PixelRegion(x: region.x * scale, y: region.y * scale, width: region.width * scale, height: region.height * scale)
    }

    /// The cropped, zero-padded square of a decoded image (`decoded.scale` must equal `scale`).
    public func crop(_ image: Image) -> Image { Resize.crop(image, region: region) }

    /// The square resized (bilinear, OpenCV rule) to the network input size, without the intermediate crop.
    public func networkInput(_ image: Image, width: Int, height: Int) -> Image {
        Resize.bilinear(image, to: width, height, region: region)
    }

    /// A point of a network-space map of size `width × height` in original pixel coordinates.
    public func originalPoint(x: Double, y: Double, mapWidth: Int, mapHeight: Int) -> (x: Double, y: Double) {
        let sx = Double(region.width) / Double(mapWidth), sy = Double(region.height) / Double(mapHeight)
        return ((x * sx + Double(region.x)) * Double(scale), (y * sy + Double(region.y)) * Double(scale))
    }

    /// A point in original pixel coordinates in a network-space map of size `width × height`.
    public func mapPoint(x: Double, y: Double, mapWidth: Int, mapHeight: Int) -> (x: Double, y: Double) {
        let sx = Double(mapWidth) / Double(region.width), sy = Double(mapHeight) / Double(region.height)
        return ((x / Double(scale) - Double(region.x)) * sx, (y / Double(scale) - Double(region.y)) * sy)
    }

    /// Samples a network-space plane (row-major, `width × height`, e.g. probabilities or logits of one class)
    /// at the centre of every original pixel, bilinearly (align_corners = false, clamped at the map's edges),
    /// and returns an original-size 8-bit image with `encode(value)` inside the square and 0 outside it.
    /// One pass, no full-size float copy.
    public func mapToOriginal(_ plane: UnsafeBufferPointer<Float>, width: Int, height: Int,
                              encode: (Float) -> UInt8) -> Image {
        precondition(plane.count == width * height)
        let square = squareInOriginal
        let x0 = max(0, square.x), x1 = min(originalWidth, square.x + square.width)
        let y0 = max(0, square.y), y1 = min(originalHeight, square.y + square.height)
        let xs = Self.taps(x0, x1, origin: region.x, side: region.width, size: width, scale: scale)
        let ys = Self.taps(y0, y1, origin: region.y, side: region.height, size: height, scale: scale)
        return Image(width: originalWidth, height: originalHeight, channels: 1) { out in
            Self.forEachRow(plane, width: width, xs: xs, ys: ys) { y, top, bottom, t in
                let o = (y0 + y) * originalWidth + x0
                for col in 0..<xs.count { out[o + col] = encode(top[col] + (bottom[col] - top[col]) * t) }
            }
        }
    }

    /// For each photograph row of the square (taps `ys`), the two map rows it falls between, each interpolated
    /// along x at the taps `xs` — once per map row, as the photograph's rows reuse one map row several times — and
    /// the row's weight between them: body(row index, top, bottom, weight). Interpolating `top + (bottom − top)·w`
    /// then gives the same floats as the bilinear formula at every pixel.
    static func forEachRow(_ plane: UnsafeBufferPointer<Float>, width: Int, xs: [(Int, Int, Float)],
                           ys: [(Int, Int, Float)],
                           _ body: (Int, UnsafePointer<Float>, UnsafePointer<Float>, Float) -> Void) {
        let n = xs.count
        guard n > 0, !ys.isEmpty else { return }
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * n) { c in
            let base = c.baseAddress!
            var held = (-1, -1)  // the map rows slots 0 and 1 hold
            func fill(_ dst: UnsafeMutablePointer<Float>, mapRow r: Int) {
                let a = r * width
                for (col, s) in xs.enumerated() { dst[col] = plane[a + s.0] + (plane[a + s.1] - plane[a + s.0]) * s.2 }
            }
            // Map row r interpolated along x, without overwriting the slot that holds `keep`.
            func row(_ r: Int, keep: Int) -> UnsafeMutablePointer<Float> {
                if held.0 == r { return base }
                if held.1 == r { return base + n }
                if held.0 != keep { fill(base, mapRow: r); held.0 = r; return base }
                fill(base + n, mapRow: r); held.1 = r; return base + n
            }
            for (y, t) in ys.enumerated() {
                let top = row(t.0, keep: t.1), bottom = row(t.1, keep: t.0)
                body(y, top, bottom, t.2)
            }
        }
    }

    /// Binary mask (0/255) in original geometry: value > `threshold` (probabilities: 0.5; logits: 0).
    public func maskToOriginal(_ plane: [Float], width: Int, height: Int, threshold: Float = 0.5) -> Image {
        plane.withUnsafeBufferPointer { mapToOriginal($0, width: width, height: height) { $0 > threshold ? 255 : 0 } }
    }

    /// 8-bit probability map in original geometry from a plane of logits, as the official inference: logits resized
    /// to the photograph (bilinear), sigmoid last, stored as round(σ(x)·255). Thresholding the bytes above ⌊255·t⌋
    /// agrees with σ(x) > t up to the byte's rounding.
    public func sigmoidToOriginal(_ logits: [Float], width: Int, height: Int) -> Image {
        let table = SigmoidBytes.shared
        return logits.withUnsafeBufferPointer { plane in
            table.bounds.withUnsafeBufferPointer { bounds in
                table.start.withUnsafeBufferPointer { start in
                    mapToOriginal(plane, width: width, height: height) { x in table.byte(x, bounds: bounds, start: start) }
                }
            }
        }
    }

    /// Test-time augmentation's probability map: several passes' logit planes (each already in the input's
    /// orientation, same `width × height`), each resized to the photograph (bilinear, as `sigmoidToOriginal`), the
    /// sigmoid applied per pass, the probabilities averaged at every original pixel, stored as round(p̄·255).
    /// This is the official order with the mean taken where the official inference takes its sigmoid; one plane
    /// gives exactly `sigmoidToOriginal`. One pass over the photograph, no full-size float copy.
    public func meanSigmoidToOriginal(_ planes: [[Float]], width: Int, height: Int) -> Image {
        precondition(!planes.isEmpty && planes.allSatisfy { $0.count == width * height })
        if planes.count == 1 { return sigmoidToOriginal(planes[0], width: width, height: height) }
        let k = planes.count
        let square = squareInOriginal
        let x0 = max(0, square.x), x1 = min(originalWidth, square.x + square.width)
        let y0 = max(0, square.y), y1 = min(originalHeight, square.y + square.height)
        // Each pass sampled with mapToOriginal's taps, its sigmoid summed in float at the original pixel.
        let rowWidth = max(0, x1 - x0)
        var sum = [Float](repeating: 0, count: y1 > y0 ? rowWidth * (y1 - y0) : 0)
        if !sum.isEmpty {
            let xs = Self.taps(x0, x1, origin: region.x, side: region.width, size: width, scale: scale)
            let ys = Self.taps(y0, y1, origin: region.y, side: region.height, size: height, scale: scale)
            sum.withUnsafeMutableBufferPointer { acc in
                for p in planes {
                    p.withUnsafeBufferPointer { plane in
                        Self.forEachRow(plane, width: width, xs: xs, ys: ys) { row, top, bottom, t in
                            let o = row * rowWidth
                            for col in 0..<rowWidth { acc[o + col] += 1 / (1 + expf(-(top[col] + (bottom[col] - top[col]) * t))) }
                        }
                    }
                }
            }
        }
        let scaleDown = 1 / Float(k)
        return Image(width: originalWidth, height: originalHeight, channels: 1) { out in
            guard x1 > x0, y1 > y0 else { return }
            for row in 0..<(y1 - y0) {
                let o = (y0 + row) * originalWidth + x0
                for col in 0..<rowWidth {
                    out[o + col] = UInt8(max(0, min(255, (sum[row * rowWidth + col] * scaleDown * 255).rounded())))
                }
            }
        }
    }

    /// Channel `k` of each pass (planar [channels, height, width], as `meanSigmoidToOriginal` takes them) mapped to
    /// the photograph: screening and validation read every class, and the optic disc, this way.
    public func meanSigmoidToOriginal(channel k: Int, of passes: [[Float]], width: Int, height: Int) -> Image {
        let plane = width * height
        return meanSigmoidToOriginal(passes.map { Array($0[(k * plane)..<((k + 1) * plane)]) }, width: width, height: height)
    }

    /// Map coordinate of original pixel centre c: ((c + 0.5)/scale − origin)·(map/side) − 0.5, clamped at the edges.
    static func taps(_ from: Int, _ to: Int, origin: Int, side: Int, size: Int, scale: Int) -> [(Int, Int, Float)] {
        let s = Double(size) / Double(side)
        return (from..<max(from, to)).map { c in
            let u = ((Double(c) + 0.5) / Double(scale) - Double(origin)) * s - 0.5
            var i = Int(u.rounded(.down)), f = u - Double(i)
            if i < 0 { i = 0; f = 0 }
            if i >= size - 1 { i = size - 1; f = 0 }
            return (i, min(i + 1, size - 1), Float(f))
        }
    }

    /// 8-bit probability map (round(p·255)) in original geometry.
    public func probabilityToOriginal(_ plane: [Float], width: Int, height: Int) -> Image {
        plane.withUnsafeBufferPointer {
            mapToOriginal($0, width: width, height: height) { UInt8(max(0, min(255, ($0 * 255).rounded()))) }
        }
    }
}

/// round(255·σ(x)) without exp: the byte of a logit is how many of the 255 bounds logit((k − ½)/255) it reaches.
/// A table over [−6.25, 6.25) in steps far finer than the bounds' spacing (≥ 1/63.75) gives the byte at most one
/// away; one or two comparisons with the exact bounds settle it. Most of a photograph lies below the first bound.
struct SigmoidBytes: Sendable {
    static let shared = SigmoidBytes()
    static let low: Float = -6.25, high: Float = 6.25, cells = 4096

    /// bounds[k − 1] = logit((k − ½)/255), k = 1…255, in double precision then rounded to float.
    let bounds: [Float]
    /// The byte at the start of each cell.
    let start: [UInt8]
    let scale: Float

    init() {
        bounds = (1...255).map { k in
            let p = (Double(k) - 0.5) / 255
            return Float(log(p / (1 - p)))
        }
        scale = Float(Self.cells) / (Self.high - Self.low)
        let step = Double(Self.high - Self.low) / Double(Self.cells)
        var start = [UInt8](repeating: 0, count: Self.cells)
        var k = 0
        for i in 0..<Self.cells {
            let x = Float(Double(Self.low) + Double(i) * step)
            while k < 255 && x >= bounds[k] { k += 1 }
            start[i] = UInt8(k)
        }
        self.start = start
    }

    @inline(__always)
    func byte(_ x: Float, bounds: UnsafeBufferPointer<Float>, start: UnsafeBufferPointer<UInt8>) -> UInt8 {
        if x < bounds[0] { return 0 }
        if x >= bounds[254] { return 255 }
        var k = Int(start[min(Self.cells - 1, max(0, Int((x - Self.low) * scale)))])
        while k < 255 && x >= bounds[k] { k += 1 }
        while k > 0 && x < bounds[k - 1] { k -= 1 }
        return UInt8(k)
    }
}

import Checkpoints
import Foundation

/// A rectangle of source pixels, possibly reaching past the image (there the pixels are zero: padding).
public struct PixelRegion: Sendable, Equatable, Codable {
    public var x: Int
    public var y: Int
    public var width: Int
    public var height: Int

    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x
        self.y = y
        self.width = width
        self.height = height
    }
}

public enum Resize {
    /// Bilinear resize as OpenCV's INTER_LINEAR (what mmseg uses for images): source coordinate
    /// (d + 0.5)·(src/dst) − 0.5, clamped at the borders, no antialiasing. Rounds to nearest (OpenCV's fixed-point
    /// weights may differ by one level). With `region`, resizes that rectangle of `image` as if it had been cropped
    /// first and zero-padded where it leaves the image, without making the intermediate crop.
    ///
    /// With `window`, only that rectangle of the `width`×`height` result is computed and returned (its pixels are
    /// exactly those of the whole result there): training crops a small part of a resized photograph.
    public static func bilinear(_ image: Image, to fullWidth: Int, _ fullHeight: Int, region: PixelRegion? = nil,
                                window: PixelRegion? = nil) -> Image {
        let r = region ?? PixelRegion(x: 0, y: 0, width: image.width, height: image.height)
        precondition(r.width > 0 && r.height > 0 && fullWidth > 0 && fullHeight > 0)
        let out = window ?? PixelRegion(x: 0, y: 0, width: fullWidth, height: fullHeight)
        precondition(out.x >= 0 && out.y >= 0 && out.width > 0 && out.height > 0 && out.x + out.width <= fullWidth
                     && out.y + out.height <= fullHeight, "window \(out) outside the \(fullWidth)×\(fullHeight) result")
        let xs = Array(taps(count: fullWidth, source: r.width)[out.x ..< out.x + out.width])
        let ys = Array(taps(count: fullHeight, source: r.height)[out.y ..< out.y + out.height])
        let width = out.width, height = out.height
        let c = image.channels, w = image.width, h = image.height
        // Source sample offsets of each output column (−1: outside the image, reads as 0).
        let x0s = xs.map { t -> Int in let sx = r.x + t.i0; return sx >= 0 && sx < w ? sx * c : -1 }
        let x1s = xs.map { t -> Int in let sx = r.x + t.i1; return sx >= 0 && sx < w ? sx * c : -1 }
        let fx = xs.map(\.f)
        return Image(width: width, height: height, channels: c) { out in
            image.withPixels { src in
                let base = src.baseAddress!
                var row0 = [Float](repeating: 0, count: width * c)
                var row1 = [Float](repeating: 0, count: width * c)
                // Horizontal pass of one source row (in region coordinates) into `row`; zero outside the image.
                func horizontal(_ ry: Int, into row: inout [Float]) {
                    let sy = r.y + ry
                    row.withUnsafeMutableBufferPointer { dst in
                        guard sy >= 0, sy < h else {
                            dst.update(repeating: 0)
                            return
                        }
                        let line = base + sy * w * c
                        for dx in 0..<width {
                            let o0 = x0s[dx], o1 = x1s[dx], f = fx[dx]
                            for k in 0..<c {
                                let a: Float = o0 >= 0 ? Float(line[o0 + k]) : 0
                                let b: Float = o1 >= 0 ? Float(line[o1 + k]) : 0
                                dst[dx * c + k] = a + (b - a) * f
                            }
                        }
                    }
                }
                var cached0 = -1, cached1 = -1
                for dy in 0..<height {
                    let t = ys[dy]
                    if t.i0 == cached1 {
                        swap(&row0, &row1)
                        cached0 = cached1
                        cached1 = -1
                    }
                    if t.i0 != cached0 { horizontal(t.i0, into: &row0); cached0 = t.i0 }
                    if t.i1 != cached1 { horizontal(t.i1, into: &row1); cached1 = t.i1 }
                    let o = dy * width * c
                    row0.withUnsafeBufferPointer { a in
                        row1.withUnsafeBufferPointer { b in
                            for i in 0..<(width * c) {
                                let v = a[i] + (b[i] - a[i]) * t.f
                                out[o + i] = UInt8(max(0, min(255, v.rounded())))
                            }
                        }
                    }
                }
            }
        }
    }

    /// Source taps of OpenCV's INTER_LINEAR for `count` outputs over `source` inputs.
    static func taps(count: Int, source: Int) -> [(i0: Int, i1: Int, f: Float)] {
        let scale = Double(source) / Double(count)
        return (0..<count).map { d in
            let fx = (Double(d) + 0.5) * scale - 0.5
            var i = Int(fx.rounded(.down))
            var f = fx - Double(i)
            if i < 0 { i = 0; f = 0 }
            if i >= source - 1 { i = source - 1; f = 0 }
            return (i, min(i + 1, source - 1), Float(f))
        }
    }

    /// Nearest-neighbour resize as OpenCV's INTER_NEAREST (what mmseg uses for labels): source index
    /// floor(d·src/dst), clamped. Region semantics as in `bilinear`.
    public static func nearest(_ image: Image, to width: Int, _ height: Int, region: PixelRegion? = nil) -> Image {
        let r = region ?? PixelRegion(x: 0, y: 0, width: image.width, height: image.height)
        let c = image.channels, w = image.width, h = image.height
        let sx = (0..<width).map { min(Int((Double($0) * Double(r.width) / Double(width)).rounded(.down)), r.width - 1) + r.x }
        return Image(width: width, height: height, channels: c) { out in
            image.withPixels { src in
                for dy in 0..<height {
                    let y = min(Int((Double(dy) * Double(r.height) / Double(height)).rounded(.down)), r.height - 1) + r.y
                    guard y >= 0, y < h else { continue }
                    for dx in 0..<width where sx[dx] >= 0 && sx[dx] < w {
                        for k in 0..<c { out[(dy * width + dx) * c + k] = src[(y * w + sx[dx]) * c + k] }
                    }
                }
            }
        }
    }

    /// Crop `region` out of `image`, zero where it leaves the image (the square pad of the field of view).
    public static func crop(_ image: Image, region r: PixelRegion) -> Image {
        let c = image.channels, w = image.width, h = image.height
        return Image(width: r.width, height: r.height, channels: c) { out in
            image.withPixels { src in
                let x0 = max(0, r.x), x1 = min(w, r.x + r.width)
                guard x1 > x0 else { return }
                for y in 0..<r.height {
                    let sy = r.y + y
                    guard sy >= 0, sy < h else { continue }
                    let from = src.baseAddress! + (sy * w + x0) * c
                    let to = out.baseAddress! + (y * r.width + (x0 - r.x)) * c
                    to.update(from: from, count: (x1 - x0) * c)
                }
            }
        }
    }

    /// Box-average downsampling by an integer `factor`: output pixel j covers input pixels [j·f, (j+1)·f)
    /// (the last box may be partial; it is averaged over the pixels it has). Planar float output, one plane per
    /// channel, width ceil(w/f) × height ceil(h/f). For analysis (field of view, quality), not for the model.
    static func boxPlanes(_ image: Image, factor f: Int) -> (width: Int, height: Int, planes: [[Float]]) {
        let c = image.channels
        if c == 3 { return boxPlanesRGB(image, factor: f) }
        var planes: [[Float]] = []
        var size = (width: 0, height: 0)
        for k in 0..<c {
            let plane = boxPlane(image, channel: k, factor: f, region: PixelRegion(x: 0, y: 0, width: image.width, height: image.height))
            planes.append(plane.plane)
            size = (plane.width, plane.height)
        }
        return (size.width, size.height, planes)
    }
}

/// Checkpoints' `Normalisation` (what the model card says the network was trained with), applied to a photograph.
extension Normalisation {
    /// Planar float32 NCHW [1, 3, H, W]: (value − mean[c]) / std[c], channel order R, G, B.
    public func tensor(_ image: Image) -> [Float] {
        precondition(image.channels == 3, "normalisation needs an RGB image")
        precondition(mean.count == 3 && std.count == 3, "normalisation needs a mean and std per RGB channel")
        let n = image.width * image.height
        var out = [Float](repeating: 0, count: 3 * n)
        image.withPixels { src in
            out.withUnsafeMutableBufferPointer { dst in
                for c in 0..<3 {
                    let m = Float(mean[c]), s = Float(std[c]), o = c * n
                    for i in 0..<n { dst[o + i] = (Float(src[3 * i + c]) - m) / s }  // divide, as mmcv does
                }
            }
        }
        return out
    }
}

extension Resize {
    /// Box average of one channel over `region` (clipped to the image) by `factor`; as `boxPlanes`.
    /// `boxPlanes` of an RGB image in one pass over its pixels: the same integer sums and divisions per channel.
    static func boxPlanesRGB(_ image: Image, factor f: Int) -> (width: Int, height: Int, planes: [[Float]]) {
        let w = image.width, h = image.height
        guard w > 0, h > 0 else { return (0, 0, [[], [], []]) }
        let ow = (w + f - 1) / f, oh = (h + f - 1) / f
        var planes = [[Float]](repeating: [Float](repeating: 0, count: ow * oh), count: 3)
        var sums = [UInt32](repeating: 0, count: 3 * ow)
        image.withPixels { src in
            let base = src.baseAddress!
            sums.withUnsafeMutableBufferPointer { s in
                for oy in 0..<oh {
                    s.update(repeating: 0)
                    let ya = oy * f, yb = min(h, ya + f)
                    for y in ya..<yb {
                        var p = base + y * w * 3
                        for ox in 0..<ow {
                            var r: UInt32 = 0, g: UInt32 = 0, b: UInt32 = 0
                            for _ in 0..<min(f, w - ox * f) {
                                r &+= UInt32(p[0]); g &+= UInt32(p[1]); b &+= UInt32(p[2])
                                p += 3
                            }
                            s[3 * ox] &+= r; s[3 * ox + 1] &+= g; s[3 * ox + 2] &+= b
                        }
                    }
                    for k in 0..<3 {
                        planes[k].withUnsafeMutableBufferPointer { out in
                            for ox in 0..<ow {
                                out[oy * ow + ox] = Float(s[3 * ox + k]) / Float(min(f, w - ox * f) * (yb - ya))
                            }
                        }
                    }
                }
            }
        }
        return (ow, oh, planes)
    }

    static func boxPlane(_ image: Image, channel: Int, factor f: Int, region: PixelRegion) -> (width: Int, height: Int, plane: [Float]) {
        let x0 = max(0, region.x), y0 = max(0, region.y)
        let x1 = min(image.width, region.x + region.width), y1 = min(image.height, region.y + region.height)
        guard x1 > x0, y1 > y0 else { return (0, 0, []) }
        let w = x1 - x0, h = y1 - y0, c = image.channels, iw = image.width
        let ow = (w + f - 1) / f, oh = (h + f - 1) / f
        var plane = [Float](repeating: 0, count: ow * oh)
        image.withPixels { src in
            let base = src.baseAddress!
            var sums = [UInt32](repeating: 0, count: ow)
            sums.withUnsafeMutableBufferPointer { s in
                plane.withUnsafeMutableBufferPointer { out in
                    for oy in 0..<oh {
                        s.update(repeating: 0)
                        let ya = oy * f, yb = min(h, ya + f)
                        for y in ya..<yb {
                            var p = base + ((y0 + y) * iw + x0) * c + channel
                            for ox in 0..<ow {
                                let n = min(f, w - ox * f)
                                var sum: UInt32 = 0
                                for _ in 0..<n {
                                    sum &+= UInt32(p.pointee)
                                    p += c
                                }
                                s[ox] &+= sum
                            }
                        }
                        for ox in 0..<ow {
                            out[oy * ow + ox] = Float(s[ox]) / Float(min(f, w - ox * f) * (yb - ya))
                        }
                    }
                }
            }
        }
        return (ow, oh, plane)
    }
}

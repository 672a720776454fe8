import Foundation

/// An 8-bit RGB colour.
public struct RGBColour: Sendable, Codable, Equatable {
    public var red: UInt8
    public var green: UInt8
    public var blue: UInt8

    public init(red: UInt8, green: UInt8, blue: UInt8) {
        self.red = red
        self.green = green
        self.blue = blue
    }

    /// From a `(red, green, blue)` triple, as the lesion classes and the optic disc give their colours.
    public init(_ rgb: (red: UInt8, green: UInt8, blue: UInt8)) {
        self.init(red: rgb.red, green: rgb.green, blue: rgb.blue)
    }

    /// `#rrggbb`, for HTML legends.
    public var hex: String { String(format: "#%02x%02x%02x", red, green, blue) }
}

/// One class drawn on an overlay: its code (EX, HE, SE, MA), the colour the legend gives it, and its mask in
/// the same geometry as the photograph (value > 0 is the class).
public struct OverlayLayer: Sendable {
    public var code: String
    public var colour: RGBColour
    public var mask: Image
    public var style: Style

    /// `fill` tints every mask pixel (lesions); `outline` paints only the mask's border, opaque (the optic disc).
    public enum Style: Sendable { case fill, outline }

    public init(code: String, colour: RGBColour, mask: Image, style: Style = .fill) {
        self.code = code
        self.colour = colour
        self.mask = mask
        self.style = style
    }
}

public enum Overlay {
    /// The photograph with each layer's pixels tinted in its colour (`opacity` 0…1), layers in the given order
    /// (later ones on top). With `maxLongSide`, the result is box-averaged down to at most that long side; masks are
    /// reduced by "any pixel set" so that microaneurysms a few pixels wide stay visible.
    public static func draw(on photo: Image, layers: [OverlayLayer], opacity: Double = 0.6, maxLongSide: Int? = nil) -> Image {
        let rgb = photo.rgb()
        for layer in layers {
            precondition(layer.mask.width == rgb.width && layer.mask.height == rgb.height,
                         "mask \(layer.code) is \(layer.mask.width)x\(layer.mask.height), photo \(rgb.width)x\(rgb.height)")
        }
        let k = maxLongSide.map { max(1, (max(rgb.width, rgb.height) + $0 - 1) / $0) } ?? 1
        let base: Image
        if k == 1 {
            base = rgb
        } else {
            let (w, h, planes) = Resize.boxPlanes(rgb, factor: k)
            base = Image(width: w, height: h, channels: 3) { out in
                for i in 0..<(w * h) {
                    for c in 0..<3 { out[3 * i + c] = UInt8(min(255, planes[c][i].rounded())) }
                }
            }
        }
        let a = Float(max(0, min(1, opacity)))
        let masks = layers.map { layer in
            let m = k == 1 ? layer.mask.grey() : anyPool(layer.mask.grey(), factor: k)
            return layer.style == .outline ? border(m) : m
        }
        return Image(width: base.width, height: base.height, channels: 3) { out in
            base.withPixels { src in _ = out.update(fromContentsOf: src) }
            for (index, layer) in layers.enumerated() {
                let colour = [Float(layer.colour.red), Float(layer.colour.green), Float(layer.colour.blue)]
                let alpha: Float = layer.style == .outline ? 1 : a
                masks[index].withPixels { m in
                    for i in 0..<m.count where m[i] > 0 {
                        for c in 0..<3 {
                            let v = Float(out[3 * i + c])
                            out[3 * i + c] = UInt8((v + (colour[c] - v) * alpha).rounded())
                        }
                    }
                }
            }
        }
    }

    /// The mask of an 8-bit probability map (v/255) at `threshold`: 255 where the byte is above
    /// ⌊threshold·255⌋, so the mask, the lesions and the probability map agree (p > threshold), 0 elsewhere.
    public static func mask(probability: Image, threshold: Float) -> Image {
        let byte = UInt8(max(0, min(255, Int((threshold * 255).rounded(.down)))))
        return Image(width: probability.width, height: probability.height, channels: 1) { out in
            probability.withPixels { p in for i in 0..<p.count { out[i] = p[i] > byte ? 255 : 0 } }
        }
    }

    /// Two RGB pictures of the same height next to each other, `gap` black columns between them.
    public static func sideBySide(_ left: Image, _ right: Image, gap: Int = 8) -> Image {
        precondition(left.height == right.height && left.channels == 3 && right.channels == 3,
                     "side by side needs two RGB pictures of one height: \(left.width)x\(left.height), \(right.width)x\(right.height)")
        let w = left.width + gap + right.width, h = left.height
        return Image(width: w, height: h, channels: 3) { out in
            left.withPixels { l in
                right.withPixels { r in
                    for y in 0..<h {
                        for i in 0..<(3 * left.width) { out[3 * y * w + i] = l[3 * y * left.width + i] }
                        let o = 3 * (y * w + left.width + gap)
                        for i in 0..<(3 * right.width) { out[o + i] = r[3 * y * right.width + i] }
                    }
                }
            }
        }
    }

    /// The set pixels of a one-channel mask that touch an unset pixel or the frame (4-neighbours), thickened by one
    /// pixel inwards so the outline stays visible after a downscaled view.
    static func border(_ mask: Image) -> Image {
        let w = mask.width, h = mask.height
        return Image(width: w, height: h, channels: 1) { out in
            mask.withPixels { m in
                func on(_ x: Int, _ y: Int) -> Bool { x >= 0 && y >= 0 && x < w && y < h && m[y * w + x] > 0 }
                for y in 0..<h {
                    for x in 0..<w where m[y * w + x] > 0 {
                        var edge = false
                        for d in 1...2 where !edge {
                            edge = !on(x - d, y) || !on(x + d, y) || !on(x, y - d) || !on(x, y + d)
                        }
                        if edge { out[y * w + x] = 255 }
                    }
                }
            }
        }
    }

    /// Max-pooling of a one-channel image by `factor` (output pixel j covers input [j·f, (j+1)·f)).
    static func anyPool(_ mask: Image, factor f: Int) -> Image {
        let w = mask.width, h = mask.height, ow = (w + f - 1) / f, oh = (h + f - 1) / f
        return Image(width: ow, height: oh, channels: 1) { out in
            mask.withPixels { src in
                guard let base = src.baseAddress else { return }
                // Masks are mostly 0: runs of 16 zero bytes are skipped whole.
                for y in 0..<h {
                    let row = base + y * w, o = (y / f) * ow
                    var x = 0
                    while x < w {
                        if x + 16 <= w, UnsafeRawPointer(row + x).loadUnaligned(as: SIMD16<UInt8>.self) == .zero {
                            x += 16
                            continue
                        }
                        if row[x] > out[o + x / f] { out[o + x / f] = row[x] }
                        x += 1
                    }
                }
            }
        }
    }

    /// The image with a circle (centre, radius in this image's continuous pixel coordinates) drawn `thickness`
    /// pixels wide, for checking fields of view by eye.
    public static func drawCircle(on image: Image, centreX: Double, centreY: Double, radius: Double,
                                  colour: RGBColour, thickness: Double = 2) -> Image {
        let rgb = image.rgb()
        let w = rgb.width, h = rgb.height
        return Image(width: w, height: h, channels: 3) { out in
            rgb.withPixels { src in _ = out.update(fromContentsOf: src) }
            let y0 = max(0, Int(centreY - radius - thickness)), y1 = min(h - 1, Int(centreY + radius + thickness))
            let x0 = max(0, Int(centreX - radius - thickness)), x1 = min(w - 1, Int(centreX + radius + thickness))
            guard y1 >= y0, x1 >= x0 else { return }
            for y in y0...y1 {
                for x in x0...x1 {
                    let dx = Double(x) + 0.5 - centreX, dy = Double(y) + 0.5 - centreY
                    if abs((dx * dx + dy * dy).squareRoot() - radius) <= thickness / 2 {
                        out[3 * (y * w + x)] = colour.red
                        out[3 * (y * w + x) + 1] = colour.green
                        out[3 * (y * w + x) + 2] = colour.blue
                    }
                }
            }
        }
    }
}

/// Per-class masks and probability maps on disk, named as IDRiD does: `<image>_<CLS>.png`.
public enum MaskFiles {
    /// `<directory>/<stem>_<code>.png` (with `suffix`, e.g. "_prob": `<stem>_<code>_prob.png`).
    public static func url(directory: URL, imageStem: String, code: String, suffix: String = "") -> URL {
        directory.appendingPathComponent("\(imageStem)_\(code)\(suffix).png")
    }

    /// Writes one 8-bit grey PNG per class atomically (temporary file, then rename); returns the files.
    /// Binary masks should hold 0/255, probability maps round(p·255) (see `CropTransform`).
    @discardableResult
    /// `flat`: binary masks (fast run-length PNG); false for probability maps, whose gradients want row filters.
    public static func write(_ masks: [(code: String, image: Image)], directory: URL, imageStem: String,
                             suffix: String = "", flat: Bool = true) throws -> [URL] {
        try createFolder(directory)
        return try masks.map { entry in
            let url = url(directory: directory, imageStem: imageStem, code: entry.code, suffix: suffix)
            try AtomicFile.write(ImageCodec.encodePNG(entry.image.grey(), compressionLevel: 3, flat: flat), to: url)
            return url
        }
    }

    /// Creates the folder (and its parents) or says in one line why not (Foundation's error prints a dictionary).
    public static func createFolder(_ directory: URL) throws {
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            // The POSIX reason sits under the Cocoa error (on Linux as a Swift `Error`, which `as? NSError` misses).
            let posix = ((error as NSError).userInfo[NSUnderlyingErrorKey] as? Error).map { String(cString: strerror(Int32(($0 as NSError).code))) }
            throw ImagingError(.writeFailed, "\(directory.path): cannot create the folder: \(posix ?? error.localizedDescription)")
        }
    }

    /// Writes an image as PNG or JPEG (by the file's extension: .jpg/.jpeg → JPEG quality 90, else PNG), atomically.
    public static func writeImage(_ image: Image, to url: URL) throws {
        let ext = url.pathExtension.lowercased()
        let data = ext == "jpg" || ext == "jpeg" ? try ImageCodec.encodeJPEG(image, quality: 90) : try ImageCodec.encodePNG(image)
        try AtomicFile.write(data, to: url)
    }
}

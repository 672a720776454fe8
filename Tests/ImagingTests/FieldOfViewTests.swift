import Foundation
import Imaging
import Testing
import TestSupport

private let shared = Comment(rawValue: SharedFixtures.skipReason)

/// The true field-of-view circles of the shared images (centre x, centre y, radius; original pixels, continuous
/// coordinates). Derived independently of the detector: at full resolution, every 20th row and column was
/// scanned for the first and last pixel whose red channel (9-pixel running mean) exceeds 25 (surround ≈ 0…12,
/// field rim ≥ 40); points on the image border were left out; a least-squares circle was fitted in numpy with
/// outliers (the notch at the top right) dropped; the circle was then drawn on 2× magnified 120-pixel crops of the
/// left, right and lower edges of IDRiD_01, _04, _11 and retina.jpg and checked by eye to run along the edge.
/// IDRiD's circles are cut off by the frame at the top and bottom.
let trueCircles: [String: (Double, Double, Double)] = [
    "IDRiD_01": (1997.0, 1412.9, 1709.1),
    "IDRiD_02": (1982.0, 1421.1, 1707.0),
    "IDRiD_03": (1982.4, 1420.2, 1708.2),
    "IDRiD_04": (2007.1, 1419.8, 1900.3),
    "IDRiD_05": (1980.7, 1420.9, 1708.1),
    "IDRiD_06": (1992.5, 1413.3, 1707.4),
    "IDRiD_07": (1979.5, 1422.3, 1707.3),
    "IDRiD_08": (1991.0, 1412.5, 1707.8),
    "IDRiD_09": (1990.8, 1412.1, 1706.7),
    "IDRiD_10": (1990.5, 1411.3, 1706.7),
    "IDRiD_11": (1979.5, 1422.6, 1705.8),
    "IDRiD_12": (2006.5, 1422.6, 1900.6),
    "IDRiD_13": (1990.6, 1411.5, 1707.3),
    "IDRiD_14": (1990.1, 1411.6, 1707.4),
    "retina": (704.7, 703.5, 698.4),
]

/// Largest distance between the detected bounding box's edges and the true circle's (both clipped to the image).
func boxError(_ fov: FieldOfView, truth: (Double, Double, Double), width: Int, height: Int) -> Double {
    let (cx, cy, r) = truth
    let tx0 = max(0, cx - r), tx1 = min(Double(width), cx + r), ty0 = max(0, cy - r), ty1 = min(Double(height), cy + r)
    let b = fov.boundingBox
    return [abs(Double(b.x) - tx0), abs(Double(b.x + b.width) - tx1), abs(Double(b.y) - ty0), abs(Double(b.y + b.height) - ty1)].max()!
}

@Suite("Field of view")
struct FieldOfViewTests {
    @Test("On every IDRiD image and retina.jpg the box is within 1 % of the width of the true circle's edges, full size and at 1/4 decode",
          .enabled(if: SharedFixtures.available, shared))
    func matchesTrueCircles() throws {
        for file in SharedFixtures.idridImageFiles() + [SharedFixtures.otherRetina] {
            let stem = file.deletingPathExtension().lastPathComponent
            let truth = try #require(trueCircles[stem])
            for scale in [1, 4] {
                let decoded = try ImageCodec.decode(contentsOf: file, options: DecodeOptions(jpegScale: scale))
                let analysis = FieldOfViewDetector.analyse(decoded)
                let fov = try #require(analysis.fieldOfView, "\(stem): no field of view")
                let error = boxError(fov, truth: truth, width: decoded.originalWidth, height: decoded.originalHeight)
                #expect(error <= 0.01 * Double(decoded.originalWidth), "\(stem) at 1/\(scale): box off by \(error) px")
                #expect(abs(fov.radius - truth.2) <= 0.005 * Double(decoded.originalWidth), "\(stem): radius \(fov.radius)")
                #expect(analysis.isGradable, "\(stem): \(analysis.reasons) \(analysis.quality)")
                #expect(!fov.assumed)
            }
        }
    }

    @Test("IDRiD's field is clipped at the top and bottom: the box spans the full height, the circle does not fit")
    func clippedField() throws {
        // Synthetic: a 400×260 frame, surround grey 14 (not black), field of radius 160 centred at (190, 131).
        let image = disc(width: 400, height: 260, cx: 190, cy: 131, r: 160, inside: [150, 70, 30], outside: 14)
        let analysis = FieldOfViewDetector.analyse(image, analysisSize: 400)
        let fov = try #require(analysis.fieldOfView)
        #expect(abs(fov.centreX - 190) < 1 && abs(fov.centreY - 131) < 1 && abs(fov.radius - 160) < 1)
        let box = fov.boundingBox
        #expect(abs(box.x - 30) <= 1 && abs(box.width - 320) <= 1 && box.y == 0 && box.height == 260, "\(box)")
    }

    @Test("An off-centre field on a noisy grey surround is found")
    func offCentre() throws {
        let image = disc(width: 500, height: 400, cx: 320, cy: 180, r: 150, inside: [180, 90, 40], outside: 25, noise: 6)
        let fov = try #require(FieldOfViewDetector.analyse(image).fieldOfView)
        #expect(abs(fov.centreX - 320) < 1.5 && abs(fov.centreY - 180) < 1.5 && abs(fov.radius - 150) < 1.5)
    }

    @Test("Burnt-in text in the surround and a notch on the rim do not move the circle")
    func textAndNotch() throws {
        let base = disc(width: 480, height: 360, cx: 250, cy: 180, r: 150, inside: [170, 80, 35], outside: 8, noise: 3)
        let image = Image(width: 480, height: 360, channels: 3) { p in
            base.withPixels { src in _ = p.update(fromContentsOf: src) }
            for y in 10..<30 { for x in 10..<90 where (x / 3 + y / 4) % 2 == 0 { for c in 0..<3 { p[(y * 480 + x) * 3 + c] = 250 } } }
            for y in 60..<76 { for x in 350..<372 { for c in 0..<3 { p[(y * 480 + x) * 3 + c] = 120 } } }  // notch sticking out
        }
        let fov = try #require(FieldOfViewDetector.analyse(image).fieldOfView)
        #expect(abs(fov.centreX - 250) < 1.5 && abs(fov.centreY - 180) < 1.5 && abs(fov.radius - 150) < 1.5, "\(fov)")
    }

    @Test("Nothing but black: no field of view (and too dark)")
    func blackImage() {
        let analysis = FieldOfViewDetector.analyse(Image(width: 300, height: 200, channels: 3))
        #expect(analysis.fieldOfView == nil)
        #expect(analysis.reasons == [.noFieldOfView, .tooDark])
    }

    @Test("A uniform grey card is not a fundus: no field of view")
    func uniformCard() {
        let grey = Image(width: 300, height: 200, channels: 3) { p in for i in 0..<p.count { p[i] = i % 3 == 0 ? 9 : 5 } }
        #expect(FieldOfViewDetector.analyse(grey).reasons.contains(.noFieldOfView))
    }

    @Test("A field filling the whole frame is assumed to be the image's circumscribed square")
    func noSurround() throws {
        let image = disc(width: 300, height: 300, cx: 150, cy: 150, r: 400, inside: [170, 80, 40], outside: 0, noise: 20)
        let fov = try #require(FieldOfViewDetector.analyse(image).fieldOfView)
        #expect(fov.assumed && fov.radius == 150 && fov.centreX == 150)
    }

    @Test("Gradability: darkened, brightened, blurred and shrunk copies of IDRiD images give their reasons",
          .enabled(if: SharedFixtures.available, shared))
    func gradability() throws {
        for stem in ["IDRiD_01", "IDRiD_05", "IDRiD_11"] {
            let file = SharedFixtures.idridImages.appendingPathComponent("\(stem).jpg")
            let photo = try ImageCodec.decode(contentsOf: file, options: DecodeOptions(jpegScale: 2)).image
            let original = FieldOfViewDetector.analyse(photo, scale: 2)
            #expect(original.isGradable)

            let dark = FieldOfViewDetector.analyse(map(photo) { $0 / 6 }, scale: 2)
            #expect(dark.reasons.contains(.tooDark), "\(stem) dark: \(dark.quality)")

            let bright = FieldOfViewDetector.analyse(map(photo) { min(255, $0 * 4 + 120) }, scale: 2)
            #expect(bright.reasons.contains(.overExposed), "\(stem) bright: \(bright.quality)")

            // Defocus: down to 1/12 and back up bilinearly (a blur of about 12 px at half size).
            let small = Resize.bilinear(photo, to: photo.width / 12, photo.height / 12)
            let blurred = FieldOfViewDetector.analyse(Resize.bilinear(small, to: photo.width, photo.height), scale: 2)
            #expect(blurred.fieldOfView != nil)
            #expect(blurred.quality.sharpness < 0.4 * original.quality.sharpness)
            if stem != "IDRiD_11" {  // dark and noisy: its blurred copy stays above the default (see GradabilityThresholds)
                #expect(blurred.reasons == [.outOfFocus], "\(stem) blurred: \(blurred.quality) vs sharp \(original.quality)")
            }

            let tiny = FieldOfViewDetector.analyse(Resize.bilinear(photo, to: 268, 178))
            #expect(tiny.reasons.contains(.tooSmall), "\(stem) tiny: \(tiny.reasons)")
        }
    }

    @Test("Thresholds are parameters: a stricter sharpness makes a sharp image out of focus", .enabled(if: SharedFixtures.available, shared))
    func thresholdsAreParameters() throws {
        let decoded = try ImageCodec.decode(contentsOf: SharedFixtures.otherRetina)
        var strict = GradabilityThresholds()
        strict.minimumSharpness = 1000
        #expect(FieldOfViewDetector.analyse(decoded, thresholds: strict).reasons == [.outOfFocus])
        strict = GradabilityThresholds()
        strict.minimumDiameter = 2000
        #expect(FieldOfViewDetector.analyse(decoded, thresholds: strict).reasons == [.tooSmall])
    }
}

/// A synthetic fundus: a disc of colour `inside` on a grey `outside`, with optional uniform noise.
func disc(width: Int, height: Int, cx: Double, cy: Double, r: Double, inside: [UInt8], outside: UInt8, noise: Int = 0) -> Image {
    var seed: UInt64 = 12345
    return Image(width: width, height: height, channels: 3) { p in
        for y in 0..<height {
            for x in 0..<width {
                let dx = Double(x) + 0.5 - cx, dy = Double(y) + 0.5 - cy
                let isInside = dx * dx + dy * dy <= r * r
                for c in 0..<3 {
                    seed = seed &* 6364136223846793005 &+ 1442695040888963407
                    let n = noise > 0 ? Int(seed >> 33) % (2 * noise + 1) - noise : 0
                    let base = Int(isInside ? inside[c] : outside)
                    p[(y * width + x) * 3 + c] = UInt8(max(0, min(255, base + n)))
                }
            }
        }
    }
}

/// The image with every sample passed through `f`.
func map(_ image: Image, _ f: (Int) -> Int) -> Image {
    Image(width: image.width, height: image.height, channels: image.channels) { p in
        image.withPixels { src in for i in 0..<src.count { p[i] = UInt8(max(0, min(255, f(Int(src[i]))))) } }
    }
}

@Test("The field-of-view area counts pixel centres inside the circle, clipped by the frame")
func fovArea() {
    let full = FieldOfView(centreX: 50, centreY: 50, radius: 40, imageWidth: 100, imageHeight: 100)
    let area = full.area
    #expect(abs(Double(area) - Double.pi * 1600) < 60)
    // Clipped top and bottom as IDRiD photographs are: fewer pixels than the full disc.
    let clipped = FieldOfView(centreX: 50, centreY: 50, radius: 40, imageWidth: 100, imageHeight: 60)
    #expect(clipped.area < area)
    let img = full.masking(Image(width: 100, height: 100, channels: 1, pixels: [UInt8](repeating: 200, count: 10_000)))
    #expect(img.bytes.filter { $0 != 0 }.count == area)
    #expect(img.bytes[0] == 0 && img.bytes[50 * 100 + 50] == 200)
}

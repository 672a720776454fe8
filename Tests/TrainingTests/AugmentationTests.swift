import Foundation
import Imaging
import Testing
@testable import Training

/// A w×h image whose pixel (x, y) has RGB (x, y, 7) and label (x + y) % 5.
private func gradient(_ w: Int, _ h: Int) -> LabelledImage {
    var rgb: [UInt8] = [], labels: [UInt8] = []
    for y in 0..<h {
        for x in 0..<w {
            rgb += [UInt8(x % 256), UInt8(y % 256), 7]
            labels.append(UInt8((x + y) % 5))
        }
    }
    return LabelledImage(name: "g", width: w, height: h, rgb: rgb, labels: labels, annotated: [true, true, true, true])
}

@Test("Scale jitter follows mmcv imrescale: IDRiD 4288×2848 → 1440×956 at ratio 1, (720, 480) maxima at 0.5")
func rescaleSizes() {
    #expect(TrainingAugmentation.rescaledSize(width: 4288, height: 2848, long: 1440, short: 960, ratio: 1) == (1440, 956))
    #expect(TrainingAugmentation.rescaledSize(width: 4288, height: 2848, long: 1440, short: 960, ratio: 0.5) == (720, 478))
    #expect(TrainingAugmentation.rescaledSize(width: 2848, height: 4288, long: 1440, short: 960, ratio: 2) == (1913, 2880))   // 2848·(2880/4288) = 1912.8
    let small = TrainingAugmentation.rescale(gradient(8, 6), long: 16, short: 12, ratio: 1)
    #expect(small.width == 16 && small.height == 12)
    #expect(Set(small.labels).isSubset(of: Set(gradient(8, 6).labels)))   // nearest never invents labels
}

@Test("Rotations are PIL's counter-clockwise ones; four quarter turns and two flips give the image back")
func orientations() {
    let g = gradient(3, 2)
    let r90 = TrainingAugmentation.orient(g, .rotate90)
    #expect(r90.width == 2 && r90.height == 3)
    // Counter-clockwise: the top-right pixel (2, 0) becomes the top-left.
    #expect(Array(r90.rgb[0..<3]) == [2, 0, 7])
    var back = g
    for _ in 0..<4 { back = TrainingAugmentation.orient(back, .rotate90) }
    #expect(back == g)
    #expect(TrainingAugmentation.orient(TrainingAugmentation.orient(g, .rotate90), .rotate270) == g)
    #expect(TrainingAugmentation.orient(TrainingAugmentation.orient(g, .rotate180), .rotate180) == g)
    #expect(TrainingAugmentation.orient(TrainingAugmentation.orient(g, .flipHorizontal), .flipHorizontal) == g)
    #expect(TrainingAugmentation.orient(g, .flipVertical).labels == [1, 2, 3, 0, 1, 2])
}

@Test("Random crop stays inside the image, keeps a smaller image whole, and is reproducible from the seed")
func randomCrop() {
    let g = gradient(20, 10)
    var a = TrainingRNG(seed: 5), b = TrainingRNG(seed: 5)
    let c1 = TrainingAugmentation.randomCrop(g, height: 4, width: 6, catMaxRatio: 0.75, rng: &a)
    let c2 = TrainingAugmentation.randomCrop(g, height: 4, width: 6, catMaxRatio: 0.75, rng: &b)
    #expect(c1 == c2)
    #expect(c1.width == 6 && c1.height == 4)
    let x0 = Int(c1.rgb[0]), y0 = Int(c1.rgb[1])
    #expect(x0 + 6 <= 20 && y0 + 4 <= 10)
    #expect(c1.rgb[3 * 7] == UInt8(x0 + 1) && c1.rgb[3 * 7 + 1] == UInt8(y0 + 1))   // pixel (1, 1) of the crop
    let whole = TrainingAugmentation.randomCrop(g, height: 40, width: 60, catMaxRatio: 0.75, rng: &a)
    #expect(whole == g)
    // A crop that is all background is re-drawn up to 10 times, then kept.
    var blank = g
    blank.labels = [UInt8](repeating: 0, count: 200)
    blank.labels[0] = 1
    var rng = TrainingRNG(seed: 1)
    let drawsBefore = rng
    _ = TrainingAugmentation.randomCrop(blank, height: 4, width: 6, catMaxRatio: 0.75, rng: &rng)
    var count = 0, probe = drawsBefore
    while probe != rng && count < 30 { _ = probe.next(); count += 1 }
    #expect(count == 22)   // 11 boxes × 2 offsets
}

@Test("8-bit HSV matches OpenCV's: pure colours, grey, and a round trip within one level")
func hsvConversions() {
    #expect(PhotometricDistortion.hsv(fromRGB: [255, 0, 0, 0, 255, 0, 0, 0, 255, 128, 128, 128]) == [0, 255, 255, 60, 255, 255, 120, 255, 255, 0, 0, 128])
    var rng = TrainingRNG(seed: 11)
    let rgb = (0..<3000).map { _ in UInt8(rng.below(256)) }
    let back = PhotometricDistortion.rgb(fromHSV: PhotometricDistortion.hsv(fromRGB: rgb))
    let worst = zip(rgb, back).map { abs(Int($0) - Int($1)) }.max()!
    // 8-bit HSV quantises hue to 2° steps, so saturated colours move by a few levels.
    #expect(worst <= 6)
}

@Test("Photometric distortion is reproducible and keeps the image size; the whole pipeline is seeded")
func pipelineSeeded() {
    var configuration = TrainingConfiguration()
    configuration.cropHeight = 8
    configuration.cropWidth = 12
    configuration.scaleLong = 24
    configuration.scaleShort = 16
    let aug = TrainingAugmentation(configuration: configuration)
    let g = gradient(30, 20)
    var a = TrainingRNG(seed: 3), b = TrainingRNG(seed: 3), c = TrainingRNG(seed: 4)
    let outA = aug.apply(g, rng: &a), outB = aug.apply(g, rng: &b)
    #expect(outA == outB)
    var differs = false
    for _ in 0..<5 where aug.apply(g, rng: &c) != outA { differs = true }
    #expect(differs)
    #expect(outA.width <= 12 && outA.height <= 8)
    #expect(Set(outA.labels).isSubset(of: [0, 1, 2, 3, 4]))
}

@Test("Normalisation is (v − mean)/std per RGB channel; padding is 0 for the image and background for labels")
func normalisePads() {
    var configuration = TrainingConfiguration()
    configuration.cropHeight = 3
    configuration.cropWidth = 4
    let aug = TrainingAugmentation(configuration: configuration)
    let g = gradient(2, 2)
    var image = ArraySlice([Float](repeating: 9, count: 3 * 12)), labels = ArraySlice([UInt8](repeating: 9, count: 12))
    image = image.map { _ in 0 }[...]
    labels = labels.map { _ in 0 }[...]
    aug.normalise(g, image: &image, labels: &labels)
    #expect(abs(image[1] - (1 - 116.513) / 80.206) < 1e-5)          // R of pixel (1, 0)
    #expect(abs(image[12 + 4] - (1 - 56.437) / 41.232) < 1e-5)      // G of pixel (0, 1)
    #expect(abs(image[24] - (7 - 16.309) / 13.293) < 1e-5)          // B of pixel (0, 0)
    #expect(image[2] == 0 && image[11] == 0)
    #expect(Array(labels) == [0, 1, 0, 0, 1, 2, 0, 0, 0, 0, 0, 0])
}

@Test("apply (labels whole, the photograph only inside the crop) equals the whole-image reference draw for draw: jitter, every orientation, lesion-centred and random crops, crops larger than the image, 5 channels",
      arguments: [(false, 0.0), (true, 0.0), (true, 0.75), (false, 1.0)])
func croppedPipelineExact(flips: Bool, lesionCrops: Double) {
    var rng = TrainingRNG(seed: 17)
    for trial in 0..<60 {
        var configuration = TrainingConfiguration()
        configuration.flipsAndRotations = flips
        configuration.lesionCropProbability = lesionCrops
        configuration.cropHeight = 4 + rng.below(30)
        configuration.cropWidth = 4 + rng.below(30)
        configuration.scaleLong = 16 + rng.below(60)
        configuration.scaleShort = 12 + rng.below(40)
        configuration.photometricDistortion = trial % 3 != 0
        let w = 6 + rng.below(50), h = 6 + rng.below(40)
        // Photograph with texture; labels in sparse blobs of every class, 5 = the disc (five channels).
        var rgb = [UInt8](repeating: 0, count: 3 * w * h), labels = [UInt8](repeating: 0, count: w * h)
        for i in 0..<(w * h) {
            rgb[3 * i] = UInt8(rng.below(256)); rgb[3 * i + 1] = UInt8((i * 7) % 256); rgb[3 * i + 2] = UInt8(rng.below(256))
            if rng.below(9) == 0 { labels[i] = UInt8(1 + rng.below(5)) }
        }
        let sample = LabelledImage(name: "t\(trial)", width: w, height: h, rgb: rgb, labels: labels,
                                   annotated: [true, trial % 2 == 0, true, true, trial % 4 != 1])
        let aug = TrainingAugmentation(configuration: configuration)
        var a = TrainingRNG(seed: UInt64(100 + trial)), b = a
        let fast = aug.apply(sample, rng: &a), slow = aug.reference(sample, rng: &b)
        #expect(fast == slow, "trial \(trial): \(w)×\(h) → crop \(configuration.cropHeight)×\(configuration.cropWidth) at scale \(configuration.scaleLong)×\(configuration.scaleShort)")
        #expect(a == b, "the same draws")
    }
}

@Test("Resize.bilinear's window is exactly that part of the whole result")
func bilinearWindow() {
    var rng = TrainingRNG(seed: 2)
    for _ in 0..<30 {
        let w = 3 + rng.below(40), h = 3 + rng.below(40), ow = 1 + rng.below(70), oh = 1 + rng.below(70)
        let image = Image(width: w, height: h, channels: 3, pixels: (0..<(3 * w * h)).map { _ in UInt8(rng.below(256)) })
        let whole = Resize.bilinear(image, to: ow, oh)
        let x = rng.below(ow), y = rng.below(oh), ww = 1 + rng.below(ow - x), wh = 1 + rng.below(oh - y)
        let part = Resize.bilinear(image, to: ow, oh, window: PixelRegion(x: x, y: y, width: ww, height: wh))
        #expect(part.width == ww && part.height == wh)
        #expect(part.bytes == Resize.crop(whole, region: PixelRegion(x: x, y: y, width: ww, height: wh)).bytes)
    }
}

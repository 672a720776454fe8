import Checkpoints
import Foundation
import Imaging
import Testing
import TestSupport

private let shared = Comment(rawValue: SharedFixtures.skipReason)

@Suite("Resize and normalise")
struct ResizeTests {
    @Test("mmseg keep-ratio rule: IDRiD 4288×2848 → 1440×956, DDR long side → 1024, a square → 960×960")
    func keepRatio() {
        #expect(InputScale.idrid.resizedSize(width: 4288, height: 2848) == (1440, 956))
        #expect(InputScale.idrid.resizedSize(width: 2848, height: 4288) == (956, 1440))
        #expect(InputScale.idrid.resizedSize(width: 3418, height: 3418) == (960, 960))
        #expect(InputScale.ddr.resizedSize(width: 5184, height: 3456) == (1024, 683))
        #expect(InputScale.ddr.resizedSize(width: 1088, height: 1920) == (580, 1024))
    }

    @Test("Bilinear follows OpenCV's INTER_LINEAR: half-pixel centres, clamped borders, no antialiasing")
    func bilinearRule() {
        let row = Image(width: 2, height: 1, channels: 1, pixels: [0, 100])
        #expect(Resize.bilinear(row, to: 4, 1).bytes == [0, 25, 75, 100])
        let ramp = Image(width: 9, height: 1, channels: 1, pixels: (0..<9).map { UInt8($0 * 10) })
        #expect(Resize.bilinear(ramp, to: 3, 1).bytes == [10, 40, 70], "samples source pixels 1, 4, 7")
        let photo = Image(width: 13, height: 7, channels: 3) { p in for i in 0..<p.count { p[i] = UInt8(truncatingIfNeeded: i * 37) } }
        #expect(Resize.bilinear(photo, to: 13, 7).bytes == photo.bytes)
    }

    @Test("Resizing a region equals cropping (zero-padded) then resizing")
    func regionEqualsCrop() {
        let photo = Image(width: 40, height: 30, channels: 3) { p in for i in 0..<p.count { p[i] = UInt8(truncatingIfNeeded: i * 7 + i / 5) } }
        for region in [PixelRegion(x: 5, y: -8, width: 33, height: 33), PixelRegion(x: -3, y: 2, width: 50, height: 20)] {
            let cropped = Resize.crop(photo, region: region)
            #expect(Resize.bilinear(photo, to: 17, 11, region: region).bytes == Resize.bilinear(cropped, to: 17, 11).bytes)
            #expect(Resize.nearest(photo, to: 17, 11, region: region).bytes == Resize.nearest(cropped, to: 17, 11).bytes)
        }
    }

    @Test("Nearest follows OpenCV's INTER_NEAREST (floor(d·src/dst)) and keeps label values")
    func nearestRule() {
        let labels = Image(width: 4, height: 1, channels: 1, pixels: [1, 2, 3, 4])
        #expect(Resize.nearest(labels, to: 2, 1).bytes == [1, 3])
        #expect(Resize.nearest(labels, to: 8, 1).bytes == [1, 1, 2, 2, 3, 3, 4, 4])
        #expect(Resize.nearest(labels, to: 3, 1).bytes == [1, 2, 3])
    }

    @Test("Normalisation gives planar float32 NCHW with the IDRiD/DDR mean and std")
    func normalisation() {
        let image = Image(width: 2, height: 1, channels: 3, pixels: [255, 0, 10, 116, 56, 16])
        let t = Normalisation.idrid.tensor(image)
        #expect(t.count == 6)
        #expect(t[0] == (255 - 116.513) / 80.206 && t[1] == (116 - 116.513) / 80.206)
        #expect(t[2] == (0 - 56.437) / 41.232 && t[5] == (16 - 16.309) / 13.293)
        #expect(Normalisation.ddr.mean == [81.205, 50.636, 21.216])
    }
}

@Suite("Crop transform")
struct CropTransformTests {
    let fov = FieldOfView(centreX: 190, centreY: 131, radius: 160, imageWidth: 400, imageHeight: 260)

    @Test("The square is centred on the field, reaches past a clipped frame, and scales with DCT decoding")
    func square() {
        let t = CropTransform(fieldOfView: fov)
        #expect(t.region == PixelRegion(x: 30, y: -29, width: 320, height: 320))
        let half = CropTransform(fieldOfView: fov, scale: 2)
        #expect(half.region == PixelRegion(x: 15, y: -15, width: 160, height: 160))
        #expect(half.squareInOriginal == PixelRegion(x: 30, y: -30, width: 320, height: 320))
    }

    @Test("Points map to the network map and back exactly")
    func pointsRoundTrip() {
        let t = CropTransform(fieldOfView: fov, scale: 2)
        for (x, y) in [(0.0, 0.0), (57.25, 199.5), (399.0, 259.0)] {
            let m = t.mapPoint(x: x, y: y, mapWidth: 96, mapHeight: 96)
            let o = t.originalPoint(x: m.x, y: m.y, mapWidth: 96, mapHeight: 96)
            #expect(abs(o.x - x) < 1e-9 && abs(o.y - y) < 1e-9)
        }
    }

    @Test("A map of ones comes back as 255 on the square within the image and 0 elsewhere")
    func coverage() {
        let t = CropTransform(fieldOfView: fov)
        let mask = t.maskToOriginal([Float](repeating: 1, count: 64 * 64), width: 64, height: 64)
        #expect(mask.width == 400 && mask.height == 260)
        #expect(mask[30, 0] == 255 && mask[349, 259] == 255 && mask[29, 100] == 0 && mask[350, 100] == 0)
        #expect(mask.bytes.filter { $0 == 255 }.count == 320 * 260)
    }

    @Test("Probability maps come back as round(p·255); logits can be thresholded at 0")
    func probabilities() {
        let t = CropTransform(fieldOfView: fov)
        let plane: [Float] = [0, 0.5, 1, 0.25]  // a 2×2 map: bilinear between these at original pixel centres
        let p = t.probabilityToOriginal(plane, width: 2, height: 2)
        #expect(p[30, 0] == 0 && p[349, 0] == 128 && p[30, 259] == 255 && p[349, 259] == 64)
        let logits = t.maskToOriginal([-3, 2, -1, 4], width: 2, height: 2, threshold: 0)
        #expect(logits[30, 0] == 0 && logits[349, 259] == 255)
        // Logits resized first, sigmoid last: at the corners the plane's own values, σ(−3)·255 = 12.1, σ(4)·255 = 250.5.
        let sigmoid = t.sigmoidToOriginal([-3, 2, -1, 4], width: 2, height: 2)
        #expect(sigmoid[30, 0] == 12 && sigmoid[349, 259] == 250 && sigmoid[349, 0] == 225 && sigmoid[30, 259] == 69)
        // Between the corners the sigmoid of the interpolated logit, not the interpolated sigmoid.
        let mid = sigmoid[190, 130], expected = 255 / (1 + expf(-0.5))
        #expect(abs(Float(mid) - expected) <= 2.5)
        // The byte of every logit is round(255·σ(x)), found by comparisons instead of exp: check a dense sweep.
        let sweep = stride(from: Float(-12), through: 12, by: 0.001).map { $0 }
        let row = CropTransform(originalWidth: sweep.count, originalHeight: 1, scale: 1,
                                region: PixelRegion(x: 0, y: 0, width: sweep.count, height: 1))   // identity geometry
        let bytes = row.sigmoidToOriginal(sweep, width: sweep.count, height: 1).bytes
        var wrong = 0
        for (x, b) in zip(sweep, bytes) {
            let v = 255 / (1 + exp(-Double(x)))
            // Within float precision of a rounding tie (v = k + ½) either byte is right.
            if abs(v - v.rounded(.down) - 0.5) < 1e-5 { continue }
            if Int(v.rounded()) != Int(b) { wrong += 1 }
        }
        #expect(wrong == 0)
    }

    @Test("A full-size map maps back identically; a half-size binary map becomes its nearest-neighbour upsampling")
    func exactness() {
        let original = Image(width: 400, height: 260, channels: 1) { p in
            for y in 0..<260 { for x in 0..<400 where (x / 7 + y / 5) % 3 == 0 { p[y * 400 + x] = 255 } }
        }
        let t = CropTransform(fieldOfView: fov)
        let square = Resize.crop(original, region: t.region)
        let plane = square.bytes.map { Float($0) / 255 }
        let back = t.maskToOriginal(plane, width: t.side, height: t.side)
        for y in 0..<260 { for x in 30..<350 where back[x, y] != original[x, y] { Issue.record("differs at \(x),\(y)"); return } }

        // Decoded at 1/2: the network-space map at the square's own size maps back as nearest upsampling.
        let half = Resize.nearest(original, to: 200, 130)
        let th = CropTransform(fieldOfView: fov, scale: 2)
        let halfPlane = Resize.crop(half, region: th.region).bytes.map { Float($0) / 255 }
        let upsampled = th.maskToOriginal(halfPlane, width: th.side, height: th.side)
        var wrong = 0
        for y in 0..<260 { for x in 30..<350 where upsampled[x, y] != half[x / 2, y / 2] { wrong += 1 } }
        #expect(wrong == 0)
    }

    @Test("IDRiD HE mask → network space (960×960, nearest) → original: Dice ≥ 0.9 with the original mask",
          .enabled(if: SharedFixtures.available, shared))
    func realMaskRoundTrip() throws {
        let photo = try ImageCodec.decode(contentsOf: SharedFixtures.idridImages.appendingPathComponent("IDRiD_01.jpg"),
                                          options: DecodeOptions(jpegScale: 4))
        let fov = try #require(FieldOfViewDetector.analyse(photo).fieldOfView)
        let mask = try ImageCodec.decode(contentsOf: SharedFixtures.idridMasks.appendingPathComponent("HE/IDRiD_01_HE.png"), mode: .label).image
        let t = CropTransform(fieldOfView: fov)  // full-size geometry for the full-size mask
        let size = InputScale.idrid.resizedSize(width: t.side, height: t.side)
        #expect(size == (960, 960) || size.width == size.height)
        let network = Resize.bilinear(mask, to: size.width, size.height, region: t.region)
        let back = t.maskToOriginal(network.bytes.map { Float($0) / 255 }, width: size.width, height: size.height)
        var both = 0, a = 0, b = 0
        mask.withPixels { m in back.withPixels { r in
            for i in 0..<m.count {
                let x = m[i] > 0, y = r[i] > 0
                if x { a += 1 }
                if y { b += 1 }
                if x && y { both += 1 }
            }
        } }
        let dice = 2 * Double(both) / Double(a + b)
        #expect(a > 10_000 && dice >= 0.9, "Dice \(dice)")
    }
}

@Suite("Tiles")
struct TileTests {
    @Test("Plan: evenly spread tiles from edge to edge with at least the overlap")
    func plan() {
        let plan = TilePlan(width: 1440, height: 956, tileWidth: 512, tileHeight: 512, overlap: 128)
        let xs = Array(Set(plan.tiles.map(\.x))).sorted(), ys = Array(Set(plan.tiles.map(\.y))).sorted()
        #expect(xs.first == 0 && xs.last == 1440 - 512 && ys.first == 0 && ys.last == 956 - 512)
        #expect(plan.tiles.count == xs.count * ys.count)
        for (a, b) in zip(xs, xs.dropFirst()) { #expect(a + 512 - b >= 128) }
        for (a, b) in zip(ys, ys.dropFirst()) { #expect(a + 512 - b >= 128) }
        #expect(xs.count == 4 && ys.count == 3)
    }

    @Test("A tile as large as the image is one tile, and blending it gives exactly the whole-image result")
    func singleTile() {
        let plan = TilePlan(width: 37, height: 23, tileWidth: 64, tileHeight: 64, overlap: 16)
        #expect(plan.tiles == [Tile(x: 0, y: 0, width: 37, height: 23)])
        var rng = SystemRandomNumberGenerator()
        let values = (0..<(4 * 37 * 23)).map { _ in Float.random(in: -20...20, using: &rng) }
        var blender = TileBlender(plan: plan, channels: 4)
        blender.add(tile: 0, values: values)
        #expect(blender.result() == values)
    }

    @Test("Tiles cut from one map blend back to that map (Gaussian and uniform weights)")
    func blendReconstructs() {
        let w = 150, h = 90, c = 2
        let map = (0..<(c * w * h)).map { i in Float(sin(Double(i % (w * h)) * 0.013) + Double(i / (w * h))) }
        for weighting in [TileWeighting.nnUNet, .uniform] {
            let plan = TilePlan(width: w, height: h, tileWidth: 64, tileHeight: 48, overlap: 20)
            var blender = TileBlender(plan: plan, channels: c, weighting: weighting)
            for (index, tile) in plan.tiles.enumerated() {
                var values = [Float]()
                for k in 0..<c { for y in 0..<tile.height { for x in 0..<tile.width {
                    values.append(map[k * w * h + (tile.y + y) * w + tile.x + x])
                } } }
                blender.add(tile: index, values: values)
            }
            let result = blender.result()
            #expect(zip(result, map).allSatisfy { abs($0 - $1) < 1e-5 })
        }
    }

    @Test("Gaussian weights: peak 1 at the centre, symmetric, positive at the edges; overlaps are weighted")
    func gaussian() {
        let plan = TilePlan(width: 96, height: 32, tileWidth: 64, tileHeight: 32, overlap: 32)
        let blender = TileBlender(plan: plan, channels: 1)
        let w = blender.weights
        #expect(abs((w.max() ?? 0) - 1) < 1e-6 && (w.min() ?? 0) > 0)
        #expect(w[16 * 64 + 0] == w[16 * 64 + 63] && w[16 * 64 + 31] > w[16 * 64 + 5])
        // Two tiles, constant 0 and 1: in the overlap the nearer tile's centre dominates.
        var b = TileBlender(plan: plan, channels: 1)
        b.add(tile: 0, values: [Float](repeating: 0, count: 64 * 32))
        b.add(tile: 1, values: [Float](repeating: 1, count: 64 * 32))
        let r = b.result()
        #expect(r[16 * 96 + 10] == 0 && r[16 * 96 + 90] == 1)
        #expect(r[16 * 96 + 40] < 0.1 && r[16 * 96 + 47] < 0.5 && r[16 * 96 + 48] > 0.5 && r[16 * 96 + 56] > 0.9)
        #expect(abs(r[16 * 96 + 47] + r[16 * 96 + 48] - 1) < 1e-6, "symmetric about the overlap's middle")
    }
}

@Suite("Masks and overlays")
struct MaskOverlayTests {
    @Test("Per-class masks are written as <image>_<CLS>.png, atomically, and read back equal")
    func maskFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imaging-masks-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let ex = Image(width: 30, height: 20, channels: 1) { p in p[45] = 255 }
        let ma = Image(width: 30, height: 20, channels: 1) { p in p[599] = 255 }
        let urls = try MaskFiles.write([("EX", ex), ("MA", ma)], directory: dir, imageStem: "IDRiD_55")
        #expect(urls.map(\.lastPathComponent) == ["IDRiD_55_EX.png", "IDRiD_55_MA.png"])
        #expect(try ImageCodec.decode(contentsOf: urls[0], mode: .label).image.bytes == ex.bytes)
        #expect(try ImageCodec.decode(contentsOf: urls[1], mode: .label).image.bytes == ma.bytes)
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        #expect(left.sorted() == ["IDRiD_55_EX.png", "IDRiD_55_MA.png"], "no temporary files remain")
        #expect(MaskFiles.url(directory: dir, imageStem: "IDRiD_55", code: "HE", suffix: "_prob").lastPathComponent == "IDRiD_55_HE_prob.png")
    }

    @Test("Overlay tints each class in its colour, later layers on top; a reduced overlay keeps one-pixel lesions")
    func overlay() throws {
        let photo = Image(width: 40, height: 40, channels: 3) { p in for i in 0..<p.count { p[i] = 100 } }
        let a = Image(width: 40, height: 40, channels: 1) { p in p[0] = 255; p[41] = 255 }
        let b = Image(width: 40, height: 40, channels: 1) { p in p[41] = 255; p[39 * 40 + 39] = 255 }
        let red = RGBColour(red: 230, green: 25, blue: 25), blue = RGBColour(red: 40, green: 90, blue: 240)
        let full = Overlay.draw(on: photo, layers: [OverlayLayer(code: "EX", colour: red, mask: a),
                                                    OverlayLayer(code: "MA", colour: blue, mask: b)], opacity: 1)
        #expect([full[0, 0, 0], full[0, 0, 1], full[0, 0, 2]] == [230, 25, 25])
        #expect([full[1, 1, 0], full[1, 1, 2]] == [40, 240])
        #expect(full[5, 5, 0] == 100)
        let reduced = Overlay.draw(on: photo, layers: [OverlayLayer(code: "MA", colour: blue, mask: b)], opacity: 1, maxLongSide: 10)
        #expect(reduced.width == 10 && reduced[9, 9, 2] == 240)
        #expect(red.hex == "#e61919")
        let png = try ImageCodec.encodePNG(full)
        #expect(try ImageCodec.decode(png).image.bytes == full.bytes)
    }
}

import Testing
import Foundation
@testable import Imaging

/// A pseudo-random image of odd size (so the last block of a row and of a column is partial).
private func noise(_ w: Int, _ h: Int, channels: Int, seed: UInt64) -> Image {
    var state = seed
    return Image(width: w, height: h, channels: channels) { out in
        for i in 0..<out.count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            out[i] = UInt8(truncatingIfNeeded: state >> 56)
        }
    }
}

@Test("The one-pass RGB box downscale equals the per-channel one (overlay and field-of-view analysis)",
      arguments: [(37, 23, 4), (64, 48, 8), (5, 3, 7), (101, 57, 3)])
func rgbBoxDownscale(_ w: Int, _ h: Int, _ f: Int) {
    let image = noise(w, h, channels: 3, seed: UInt64(w * h * f))
    let fast = Resize.boxPlanes(image, factor: f)
    for c in 0..<3 {
        let slow = Resize.boxPlane(image, channel: c, factor: f, region: PixelRegion(x: 0, y: 0, width: w, height: h))
        #expect(fast.width == slow.width && fast.height == slow.height)
        #expect(fast.planes[c] == slow.plane, "channel \(c) differs at \(w)×\(h) ÷\(f)")
    }
}

@Test("Max-pooling a mask for the overlay keeps any set pixel of each block", arguments: [(37, 23, 4), (9, 9, 3), (6, 5, 8)])
func maskMaxPool(_ w: Int, _ h: Int, _ f: Int) {
    let mask = noise(w, h, channels: 1, seed: 99)
    let pooled = Overlay.anyPool(mask, factor: f)
    #expect(pooled.width == (w + f - 1) / f && pooled.height == (h + f - 1) / f)
    for oy in 0..<pooled.height {
        for ox in 0..<pooled.width {
            var m: UInt8 = 0
            for y in (oy * f)..<min(h, oy * f + f) { for x in (ox * f)..<min(w, ox * f + f) { m = max(m, mask[x, y]) } }
            #expect(pooled[ox, oy] == m, "block (\(ox), \(oy))")
        }
    }
}

@Test("Probabilities back at the photograph's pixels: each map row interpolated once gives the per-pixel bilinear bytes",
      arguments: [(1, 37), (2, 23), (1, 160)])
func mapToOriginalRows(_ scale: Int, _ mapSide: Int) {
    let fov = FieldOfView(centreX: 190, centreY: 131, radius: 160, imageWidth: 400, imageHeight: 260)
    let t = CropTransform(fieldOfView: fov, scale: scale)
    var state: UInt64 = 7
    let plane = (0..<(mapSide * mapSide)).map { _ -> Float in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int(state >> 40) % 2000 - 1000) / 100
    }
    let got = t.sigmoidToOriginal(plane, width: mapSide, height: mapSide)
    // The definition, pixel by pixel: bilinear at the pixel, then round(255·σ).
    let square = t.squareInOriginal
    let x0 = max(0, square.x), x1 = min(t.originalWidth, square.x + square.width)
    let y0 = max(0, square.y), y1 = min(t.originalHeight, square.y + square.height)
    let xs = CropTransform.taps(x0, x1, origin: t.region.x, side: t.region.width, size: mapSide, scale: scale)
    let ys = CropTransform.taps(y0, y1, origin: t.region.y, side: t.region.height, size: mapSide, scale: scale)
    var mismatches = 0
    for (row, r) in ys.enumerated() {
        for (col, c) in xs.enumerated() {
            let a = r.0 * mapSide, b = r.1 * mapSide
            let top = plane[a + c.0] + (plane[a + c.1] - plane[a + c.0]) * c.2
            let bottom = plane[b + c.0] + (plane[b + c.1] - plane[b + c.0]) * c.2
            let v = top + (bottom - top) * r.2
            let want = UInt8(max(0, min(255, (255 / (1 + Foundation.exp(-Double(v)))).rounded())))
            if got[x0 + col, y0 + row] != want { mismatches += 1 }
        }
    }
    #expect(mismatches == 0, "\(mismatches) pixels differ")
    #expect(got[0, 0] == 0 || square.x <= 0, "outside the square stays 0")
}

import Testing
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

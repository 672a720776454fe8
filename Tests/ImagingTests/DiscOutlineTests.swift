import Imaging
import Testing

@Test("The optic disc's outline style paints only the mask's border, opaque; fill layers are unchanged")
func discOutline() {
    let w = 12, h = 12
    let photo = Image(width: w, height: h, channels: 3, pixels: [UInt8](repeating: 40, count: 3 * w * h))
    var mask = [UInt8](repeating: 0, count: w * h)
    for y in 2..<10 { for x in 2..<10 { mask[y * w + x] = 255 } }
    let white = RGBColour(red: 255, green: 255, blue: 255)
    let out = Overlay.draw(on: photo, layers: [OverlayLayer(code: "OD", colour: white, mask: Image(width: w, height: h, channels: 1, pixels: mask),
                                                            style: .outline)])
    #expect(out[2, 2] == 255 && out[9, 5] == 255 && out[3, 6] == 255, "border (two pixels wide) in white")
    #expect(out[5, 5] == 40 && out[6, 6] == 40, "inside the disc stays the photograph")
    #expect(out[0, 0] == 40 && out[11, 11] == 40, "outside stays the photograph")
    let filled = Overlay.draw(on: photo, layers: [OverlayLayer(code: "EX", colour: white, mask: Image(width: w, height: h, channels: 1, pixels: mask))],
                              opacity: 1)
    #expect(filled[5, 5] == 255)
}

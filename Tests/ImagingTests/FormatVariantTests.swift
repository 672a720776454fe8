import Foundation
import Imaging
import Testing

/// PNG files built byte by byte (stored deflate blocks), so every colour type and depth can be tested without
/// another encoder.
enum HandmadePNG {
    static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        ~bytes.reduce(UInt32.max) { crcTable[Int(($0 ^ UInt32($1)) & 0xFF)] ^ ($0 >> 8) }
    }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return be32(UInt32(data.count)) + body + be32(crc32(body))
    }

    static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let n = min(65535, data.count - offset)
            let final: UInt8 = offset + n == data.count ? 1 : 0
            out += [final, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            out += data[offset..<(offset + n)]
            offset += n
        } while offset < data.count
        var a: UInt32 = 1, b: UInt32 = 0
        for byte in data {
            a = (a + UInt32(byte)) % 65521
            b = (b + a) % 65521
        }
        return out + be32(b << 16 | a)
    }

    /// `rows`: packed row bytes without the filter byte.
    static func file(width: Int, height: Int, depth: UInt8, colourType: UInt8, rows: [[UInt8]],
                     palette: [UInt8]? = nil, transparency: [UInt8]? = nil) -> Data {
        var bytes: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        bytes += chunk("IHDR", be32(UInt32(width)) + be32(UInt32(height)) + [depth, colourType, 0, 0, 0])
        if let palette { bytes += chunk("PLTE", palette) }
        if let transparency { bytes += chunk("tRNS", transparency) }
        bytes += chunk("IDAT", zlibStored(rows.flatMap { [0] + $0 }))
        bytes += chunk("IEND", [])
        return Data(bytes)
    }
}

@Suite("Format variants")
struct FormatVariantTests {
    @Test("PNG 1-bit grey: label 0/255, RGB replicated")
    func pngGrey1() throws {
        let png = HandmadePNG.file(width: 10, height: 2, depth: 1, colourType: 0, rows: [[0b1010_0000, 0b0100_0000], [0xFF, 0xC0]])
        let label = try ImageCodec.decode(png, mode: .label, name: "g1.png").image
        #expect(label.bytes == [255, 0, 255, 0, 0, 0, 0, 0, 0, 255] + [UInt8](repeating: 255, count: 10))
        let rgb = try ImageCodec.decode(png, mode: .rgb, name: "g1.png").image
        #expect(rgb.channels == 3 && rgb[0, 0, 1] == 255 && rgb[1, 0, 2] == 0)
    }

    @Test("PNG 16-bit grey: labels clamp at 255 so small values survive; RGB scales to 8 bits")
    func pngGrey16() throws {
        let values: [UInt16] = [0, 1, 300, 65535]
        let png = HandmadePNG.file(width: 4, height: 1, depth: 16, colourType: 0,
                                   rows: [values.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }])
        #expect(try ImageCodec.decode(png, mode: .label).image.bytes == [0, 1, 255, 255])
        let rgb = try ImageCodec.decode(png, mode: .rgb).image
        #expect(rgb.bytes == [0, 0, 0, 0, 0, 0, 1, 1, 1, 255, 255, 255])
    }

    @Test("PNG 2-bit palette with transparency: labels are the indices, RGB the palette colours (alpha dropped)")
    func pngPalette() throws {
        let palette: [UInt8] = [0, 0, 0, 255, 0, 0, 0, 255, 0, 10, 20, 30]
        let png = HandmadePNG.file(width: 4, height: 1, depth: 2, colourType: 3, rows: [[0b00_01_10_11]],
                                   palette: palette, transparency: [255, 128])
        let label = try ImageCodec.decode(png, mode: .label)
        #expect(label.image.bytes == [0, 1, 2, 3] && label.sourceHasPalette)
        #expect(try ImageCodec.decode(png, mode: .rgb).image.bytes == palette)
    }

    @Test("PNG grey+alpha and RGBA: alpha dropped; labels are grey or max(R, G, B)")
    func pngAlpha() throws {
        let ga = HandmadePNG.file(width: 2, height: 1, depth: 8, colourType: 4, rows: [[7, 255, 200, 0]])
        #expect(try ImageCodec.decode(ga, mode: .label).image.bytes == [7, 200])
        #expect(try ImageCodec.decode(ga, mode: .rgb).image.bytes == [7, 7, 7, 200, 200, 200])
        let rgba = HandmadePNG.file(width: 2, height: 1, depth: 8, colourType: 6, rows: [[1, 2, 3, 4, 90, 80, 70, 0]])
        #expect(try ImageCodec.decode(rgba, mode: .rgb).image.bytes == [1, 2, 3, 90, 80, 70])
        #expect(try ImageCodec.decode(rgba, mode: .label).image.bytes == [3, 90])
    }

    @Test("PNG 16-bit RGB scales to 8 bits")
    func pngRGB16() throws {
        let png = HandmadePNG.file(width: 1, height: 1, depth: 16, colourType: 2, rows: [[0xFF, 0xFF, 0x80, 0x00, 0x00, 0x00]])
        #expect(try ImageCodec.decode(png).image.bytes == [255, 128, 0])
    }

    @Test("TIFF: 1-bit and 8-bit, palette or grey, none/LZW/deflate/PackBits, strips or tiles, odd sizes")
    func tiffVariants() throws {
        let w = 70, h = 45
        let labels = Image(width: w, height: h, channels: 1) { p in for i in 0..<p.count { p[i] = (i * 7 + i / 13) % 5 == 0 ? 1 : 0 } }
        let greys = Image(width: w, height: h, channels: 1) { p in for i in 0..<p.count { p[i] = UInt8(truncatingIfNeeded: i * 31) } }
        let colours = [RGBColour(red: 0, green: 0, blue: 0), RGBColour(red: 255, green: 0, blue: 0)]
        var cases = 0
        for compression in ImageCodec.TIFFCompression.allCases {
            for layout in [(tile: Optional<Int>.none, rows: Optional<Int>.none), (nil, 7), (32, nil)] {
                // IDRiD style: 1-bit palette, indices 0/1.
                let palette1 = try ImageCodec.encodeTIFF(labels, bitsPerSample: 1, palette: colours, compression: compression,
                                                         tileSize: layout.tile, rowsPerStrip: layout.rows)
                let decoded = try ImageCodec.decode(palette1, mode: .label, name: "m.tif")
                #expect(decoded.format == .tiff && decoded.sourceHasPalette && decoded.sourceBitDepth == 1)
                #expect(decoded.image.bytes == labels.bytes, "1-bit palette \(compression) \(layout)")
                let rgb = try ImageCodec.decode(palette1, mode: .rgb, name: "m.tif").image
                #expect(rgb.grey().bytes == labels.bytes.map { $0 * 255 })
                // 1-bit grey (bilevel): 0/255.
                let bilevel = try ImageCodec.encodeTIFF(labels, bitsPerSample: 1, compression: compression,
                                                        tileSize: layout.tile, rowsPerStrip: layout.rows)
                #expect(try ImageCodec.decode(bilevel, mode: .label).image.bytes == labels.bytes.map { $0 * 255 })
                // 8-bit grey.
                let grey8 = try ImageCodec.encodeTIFF(greys, compression: compression, tileSize: layout.tile, rowsPerStrip: layout.rows)
                #expect(try ImageCodec.decode(grey8, mode: .label).image.bytes == greys.bytes)
                #expect(try ImageCodec.decode(grey8, mode: .rgb).image.grey().bytes == greys.bytes)
                // 8-bit RGB.
                let rgbImage = greys.rgb()
                let rgb8 = try ImageCodec.encodeTIFF(rgbImage, compression: compression, tileSize: layout.tile, rowsPerStrip: layout.rows)
                #expect(try ImageCodec.decode(rgb8).image.bytes == rgbImage.bytes)
                cases += 1
            }
        }
        #expect(cases == 12)
    }

    @Test("JPEG EXIF orientation is applied: 3 (180°), 6 (90° clockwise), 8 (270° clockwise)")
    func exifOrientation() throws {
        // 32×16: left half red, right half blue; big flat areas survive JPEG.
        let image = Image(width: 32, height: 16, channels: 3) { p in
            for y in 0..<16 { for x in 0..<32 { p[(y * 32 + x) * 3 + (x < 16 ? 0 : 2)] = 255 } }
        }
        let jpeg = try ImageCodec.encodeJPEG(image, quality: 95)
        func withOrientation(_ o: UInt8) -> Data {
            let tiff: [UInt8] = [0x4D, 0x4D, 0, 0x2A, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, o, 0, 0, 0, 0, 0, 0]
            let payload = Array("Exif".utf8) + [0, 0] + tiff
            let length = payload.count + 2
            return Data([0xFF, 0xD8, 0xFF, 0xE1, UInt8(length >> 8), UInt8(length & 0xFF)] + payload) + jpeg.dropFirst(2)
        }
        func isRed(_ i: Image, _ x: Int, _ y: Int) -> Bool { i[x, y, 0] > 200 && i[x, y, 2] < 60 }
        func isBlue(_ i: Image, _ x: Int, _ y: Int) -> Bool { i[x, y, 2] > 200 && i[x, y, 0] < 60 }

        let plain = try ImageCodec.decode(jpeg).image
        #expect(isRed(plain, 4, 8) && isBlue(plain, 28, 8))
        let o3 = try ImageCodec.decode(withOrientation(3))
        #expect(o3.orientation == 3 && o3.image.width == 32 && isBlue(o3.image, 4, 8) && isRed(o3.image, 28, 8))
        let o6 = try ImageCodec.decode(withOrientation(6))
        #expect(o6.orientation == 6 && o6.image.width == 16 && o6.image.height == 32 && o6.originalWidth == 16)
        #expect(isRed(o6.image, 8, 4) && isBlue(o6.image, 8, 28))
        let o8 = try ImageCodec.decode(withOrientation(8))
        #expect(o8.image.width == 16 && isBlue(o8.image, 8, 4) && isRed(o8.image, 8, 28))
        // With DCT scaling too.
        let o6half = try ImageCodec.decode(withOrientation(6), options: DecodeOptions(jpegScale: 2))
        #expect(o6half.image.width == 8 && o6half.image.height == 16 && o6half.originalHeight == 32)
    }
}

import Foundation
import Testing
@testable import Imaging

@Suite("The pixel limit (decompression bombs)")
struct PixelLimitTests {
    @Test("FUNDUS_MAX_PIXELS sets the limit; absent means 100 M; malformed values are refused naming the variable")
    func environment() throws {
        #expect(try DecodeOptions.maxPixelsSetting(environment: [:]) == 100_000_000)
        #expect(try DecodeOptions.maxPixelsSetting(environment: ["FUNDUS_MAX_PIXELS": ""]) == 100_000_000)
        #expect(try DecodeOptions.maxPixelsSetting(environment: ["FUNDUS_MAX_PIXELS": "25000000"]) == 25_000_000)
        #expect(try DecodeOptions.maxPixelsSetting(environment: ["FUNDUS_MAX_PIXELS": " 1_000_000 "]) == 1_000_000)
        for bad in ["lots", "-5", "0", "1e9", "4294967296999999999999"] {
            let error = try #require(throws: ImagingError.self) {
                try DecodeOptions.maxPixelsSetting(environment: ["FUNDUS_MAX_PIXELS": bad])
            }
            #expect(error.message.contains("FUNDUS_MAX_PIXELS"))
        }
        #expect(DecodeOptions().maxPixels == DecodeOptions.defaultMaxPixels)
    }

    @Test("A 300-byte PNG claiming 65,000 × 65,000 is refused under the default and under a configured limit")
    func pngBomb() throws {
        // Signature and an IHDR chunk only: the header is all the decoder may read before refusing.
        func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
            let typed = Array(type.utf8) + body
            return withUnsafeBytes(of: UInt32(body.count).bigEndian, Array.init) + typed
                + withUnsafeBytes(of: crc32(typed).bigEndian, Array.init)
        }
        let size = withUnsafeBytes(of: UInt32(65_000).bigEndian, Array.init)
        let png = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", size + size + [8, 2, 0, 0, 0])
                       + chunk("IDAT", [0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]) + chunk("IEND", []))
        for options in [DecodeOptions(), DecodeOptions(maxPixels: try DecodeOptions.maxPixelsSetting(environment: ["FUNDUS_MAX_PIXELS": "1000000"]))] {
            let error = try #require(throws: ImagingError.self) { try ImageCodec.decode(png, options: options, name: "bomb.png") }
            #expect(error.code == .tooLarge)
            #expect(error.message.contains("bomb.png"))
        }
    }

    func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c >> 1) ^ (c & 1 == 1 ? 0xEDB8_8320 : 0) }
        }
        return ~c
    }
}

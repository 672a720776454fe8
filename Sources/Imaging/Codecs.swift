import CImageCodecs
import Foundation

/// The file formats we decode, recognised by their first bytes, never by the file name.
public enum ImageFormat: String, Sendable, CaseIterable {
    case jpeg = "JPEG"
    case png = "PNG"
    case tiff = "TIFF"
    /// DICOM (through CDicom, see Dicom.swift): `DICM` after the 128-byte preamble.
    case dicom = "DICOM"

    /// The linked decoder libraries (libjpeg-turbo, libpng, DCMTK), for `fundus-screen --version` and bug reports.
    public static var libraryVersions: String {
        "\(String(cString: fundus_codecs_jpeg_version())), libpng \(String(cString: fundus_codecs_png_version())), "
            + DicomFile.libraryVersion
    }

    /// The format whose signature starts `bytes`, or nil.
    public static func sniff(_ bytes: some Collection<UInt8>) -> ImageFormat? {
        if DicomFile.hasPreamble(bytes) { return .dicom }
        let head = Array(bytes.prefix(8))
        if head.count >= 3, head[0] == 0xFF, head[1] == 0xD8, head[2] == 0xFF { return .jpeg }
        if head.count >= 8, head == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] { return .png }
        if head.count >= 4, (head[0] == 0x49 && head[1] == 0x49 && head[2] == 0x2A && head[3] == 0x00)
            || (head[0] == 0x4D && head[1] == 0x4D && head[2] == 0x00 && head[3] == 0x2A)
            || (head[0] == 0x49 && head[1] == 0x49 && head[2] == 0x2B && head[3] == 0x00)  // BigTIFF
            || (head[0] == 0x4D && head[1] == 0x4D && head[2] == 0x00 && head[3] == 0x2B) {
            return .tiff
        }
        return nil
    }

    /// File name extensions that usually carry this format.
    public var extensions: [String] {
        switch self {
        case .jpeg: ["jpg", "jpeg", "jpe", "jfif"]
        case .png: ["png"]
        case .tiff: ["tif", "tiff"]
        case .dicom: ["dcm", "dicom"]
        }
    }
}

/// What a decode should produce.
public enum DecodeMode: Sendable {
    /// RGB, 8-bit: photographs. Palette expanded, grey replicated, alpha dropped, 16-bit scaled to 8-bit.
    case rgb
    /// One 8-bit channel: masks. Palette images give their indices (IDRiD's TIFF masks: 0/1), grey images their
    /// value (1-bit grey becomes 0/255, 16-bit is clamped at 255), colour images max(R, G, B); a mask's
    /// foreground is every value > 0.
    case label
}

public struct DecodeOptions: Sendable {
    /// Refuse images whose declared width × height exceeds this, before allocating anything for pixels (a
    /// decompression bomb: a few kilobytes claiming 65,000 × 65,000 are refused right after the header is read).
    /// Default `defaultMaxPixels`: 100 M pixels, where the largest fundus cameras (DDR up to 3456×5184 = 18 MP)
    /// fit five times over; `FUNDUS_MAX_PIXELS` in the environment or `--max-pixels` change it.
    public var maxPixels: Int = DecodeOptions.defaultMaxPixels

    /// The environment variable that sets the default pixel limit of every decode.
    public static let maxPixelsVariable = "FUNDUS_MAX_PIXELS"
    public static let builtInMaxPixels = 100_000_000

    /// `$FUNDUS_MAX_PIXELS` when it is a positive whole number, else 100 M (the CLI refuses a malformed value
    /// with `maxPixelsSetting(environment:)` before anything is decoded).
    public static let defaultMaxPixels: Int = (try? maxPixelsSetting(environment: ProcessInfo.processInfo.environment))
        ?? builtInMaxPixels

    /// The limit `environment` asks for, the built-in one when it asks for none; an error names a malformed value.
    public static func maxPixelsSetting(environment: [String: String]) throws -> Int {
        guard let text = environment[maxPixelsVariable]?.trimmingCharacters(in: .whitespaces), !text.isEmpty else {
            return builtInMaxPixels
        }
        let digits = text.replacingOccurrences(of: "_", with: "")
        guard let value = Int(digits), value > 0 else {
            throw ImagingError(.invalidArgument,
                               "\(maxPixelsVariable)=\(text.debugDescription) is not a positive number of pixels (e.g. 100000000)")
        }
        return value
    }
    /// JPEG only: decode at 1/s size with libjpeg-turbo's DCT scaling (1, 2, 4 or 8); other formats ignore it.
    public var jpegScale: Int = 1
    /// JPEG only, when set: ignore `jpegScale` and take the largest scale (1, 2, 4 or 8) whose decoded short side
    /// is still at least this many pixels. With the model's short edge (IDRiD 960) a 4288×2848 JPEG decodes at
    /// 1/2 — about 3× faster — and the field's square still has more pixels than the network input. The network
    /// then sees a DCT-downscaled image rather than OpenCV's bilinear reduction of the full one (the official path).
    public var jpegMinimumShortSide: Int? = nil

    public init(maxPixels: Int = DecodeOptions.defaultMaxPixels, jpegScale: Int = 1, jpegMinimumShortSide: Int? = nil) {
        self.maxPixels = maxPixels
        self.jpegScale = jpegScale
        self.jpegMinimumShortSide = jpegMinimumShortSide
    }
}

/// A decoded image with what is known about the file it came from.
public struct DecodedImage: Sendable {
    public let image: Image
    public let format: ImageFormat
    /// Size in original pixels (after EXIF orientation, before any DCT scaling).
    public let originalWidth: Int
    public let originalHeight: Int
    /// `image` pixel i covers original pixels [i·scale, (i+1)·scale) on both axes; 1 unless JPEG DCT scaling was used.
    /// (With an EXIF mirror or rotation and a size not divisible by `scale`, a flipped axis is off by less than
    /// `scale` original pixels; camera sizes such as 4288×2848 divide by 8.)
    public let scale: Int
    /// EXIF orientation applied (1 = none).
    public let orientation: Int
    public let sourceChannels: Int
    public let sourceBitDepth: Int
    public let sourceHasPalette: Bool
    /// Non-fatal codec warnings.
    public let warnings: Int
    /// Set when the file name's extension does not match the content (we decode by content and say so).
    public let note: String?
}

/// Decoding and encoding through CImageCodecs (libjpeg-turbo, libpng, libtiff).
///
/// Policy on names: the format comes from the first bytes. A JPEG named `.png` is decoded as the JPEG it is, and
/// `DecodedImage.note` says so; a file that is none of the three formats is refused with `.unknownFormat`.
public enum ImageCodec {
    /// Decodes a file. Errors name the file.
    public static func decode(contentsOf url: URL, mode: DecodeMode = .rgb,
                              options: DecodeOptions = DecodeOptions()) throws -> DecodedImage {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw ImagingError(.unreadable, "\(url.path): cannot read: \(error.localizedDescription)")
        }
        return try decode(data, mode: mode, options: options, name: url.path)
    }

    /// Decodes bytes; `name` is used in messages and for the extension check.
    public static func decode(_ data: Data, mode: DecodeMode = .rgb, options: DecodeOptions = DecodeOptions(),
                              name: String = "image") throws -> DecodedImage {
        if data.isEmpty { throw ImagingError(.empty, "\(name): file is empty (0 bytes)") }
        guard let format = ImageFormat.sniff(data) else {
            let head = data.prefix(8).map { String(format: "%02x", $0) }.joined(separator: " ")
            throw ImagingError(.unknownFormat,
                               "\(name): not a JPEG, PNG, TIFF or DICOM file (first bytes: \(head))")
        }
        var note: String? = nil
        let ext = (name as NSString).pathExtension.lowercased()
        if !ext.isEmpty, !format.extensions.contains(ext) {
            note = "\((name as NSString).lastPathComponent) is a \(format.rawValue), not what its .\(ext) extension says; decoded as \(format.rawValue)"
        }
        if format == .dicom { return try DicomFile.decode(data, mode: mode, options: options, name: name, note: note) }
        let cMode: Int32 = mode == .rgb ? Int32(FUNDUS_DECODE_RGB) : Int32(FUNDUS_DECODE_LABEL)
        let limit = UInt64(max(0, options.maxPixels))
        var result = fundus_decoded()
        let status: Int32 = data.withUnsafeBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self).baseAddress
            switch format {
            case .jpeg:
                var scale = Int32(options.jpegScale)
                if let minimum = options.jpegMinimumShortSide {
                    var w: Int32 = 0, h: Int32 = 0
                    scale = 1
                    if fundus_probe_jpeg(bytes, raw.count, &w, &h) == FUNDUS_CODEC_OK {
                        let short = Int(min(w, h))
                        for s in [8, 4, 2] where (short + s - 1) / s >= minimum {
                            scale = Int32(s)
                            break
                        }
                    }
                }
                return fundus_decode_jpeg(bytes, raw.count, cMode, scale, limit, &result)
            case .png:
                return fundus_decode_png(bytes, raw.count, cMode, limit, &result)
            case .tiff:
                return fundus_decode_tiff(bytes, raw.count, cMode, limit, &result)
            case .dicom:
                return Int32(FUNDUS_CODEC_BAD_ARGUMENT)  // decoded by DicomFile above
            }
        }
        guard status == FUNDUS_CODEC_OK, let pixels = result.pixels else {
            fundus_codecs_free(result.pixels)
            let message = withUnsafeBytes(of: result.message) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            throw ImagingError(code(of: status), "\(name): cannot decode \(format.rawValue): \(message.isEmpty ? "out of memory" : message)")
        }
        let width = Int(result.width), height = Int(result.height), channels = Int(result.channels)
        let image = Image(width: width, height: height, channels: channels,
                          storage: PixelStorage(adopting: pixels, count: width * height * channels))
        return DecodedImage(
            image: image, format: format,
            originalWidth: Int(result.full_width), originalHeight: Int(result.full_height),
            scale: Int(result.scale_denominator), orientation: Int(result.orientation),
            sourceChannels: Int(result.source_channels), sourceBitDepth: Int(result.source_bit_depth),
            sourceHasPalette: result.source_palette != 0, warnings: Int(result.warnings), note: note)
    }

    static func code(of status: Int32) -> ImagingError.Code {
        switch status {
        case Int32(FUNDUS_CODEC_TOO_LARGE): .tooLarge
        case Int32(FUNDUS_CODEC_UNSUPPORTED): .unsupported
        case Int32(FUNDUS_CODEC_NO_MEMORY): .outOfMemory
        case Int32(FUNDUS_CODEC_BAD_ARGUMENT): .invalidArgument
        default: .corrupt
        }
    }

    /// PNG bytes of an 8-bit grey or RGB image. `compressionLevel` 0…9 (zlib). `flat`: the image is a few large
    /// uniform regions (a binary mask): written without row filters, with zlib's run-length strategy — several
    /// times faster for masks, and as small.
    public static func encodePNG(_ image: Image, compressionLevel: Int = 6, flat: Bool = false) throws -> Data {
        try encode(image, what: "PNG") { pixels, out in
            fundus_encode_png(pixels, Int32(image.width), Int32(image.height), Int32(image.channels),
                              Int32(compressionLevel), flat ? 1 : 0, out)
        }
    }

    /// JPEG bytes of an 8-bit grey or RGB image, `quality` 1…100.
    public static func encodeJPEG(_ image: Image, quality: Int = 90) throws -> Data {
        try encode(image, what: "JPEG") { pixels, out in
            fundus_encode_jpeg(pixels, Int32(image.width), Int32(image.height), Int32(image.channels),
                               Int32(quality), out)
        }
    }

    /// TIFF compression schemes we write.
    public enum TIFFCompression: Int32, Sendable, CaseIterable {
        case none = 1
        case lzw = 5
        case deflate = 8
        case packBits = 32773
    }

    /// TIFF bytes (for exports and test fixtures). `bitsPerSample` 8, or 1 for a bilevel grey image (values > 0
    /// set the bit); with `palette` (2 or 256 colours) the pixels are palette indices, as IDRiD's masks.
    /// `tileSize` (a multiple of 16) writes tiles, else strips of `rowsPerStrip` rows (nil: one strip).
    public static func encodeTIFF(_ image: Image, bitsPerSample: Int = 8, palette: [RGBColour]? = nil,
                                  compression: TIFFCompression = .deflate, tileSize: Int? = nil,
                                  rowsPerStrip: Int? = nil) throws -> Data {
        var table: [UInt16]? = nil
        if let palette {
            let n = 1 << bitsPerSample
            guard palette.count <= n else { throw ImagingError(.invalidArgument, "a \(bitsPerSample)-bit palette holds at most \(n) colours") }
            let padded = palette + Array(repeating: RGBColour(red: 0, green: 0, blue: 0), count: n - palette.count)
            table = padded.map { UInt16($0.red) * 257 } + padded.map { UInt16($0.green) * 257 } + padded.map { UInt16($0.blue) * 257 }
        }
        return try encode(image, what: "TIFF") { pixels, out in
            if let table {
                return table.withUnsafeBufferPointer {
                    fundus_encode_tiff(pixels, Int32(image.width), Int32(image.height), Int32(image.channels),
                                       Int32(bitsPerSample), $0.baseAddress, compression.rawValue,
                                       Int32(tileSize ?? 0), Int32(rowsPerStrip ?? 0), out)
                }
            }
            return fundus_encode_tiff(pixels, Int32(image.width), Int32(image.height), Int32(image.channels),
                                      Int32(bitsPerSample), nil, compression.rawValue,
                                      Int32(tileSize ?? 0), Int32(rowsPerStrip ?? 0), out)
        }
    }

    private static func encode(_ image: Image, what: String,
                               _ call: (UnsafePointer<UInt8>?, UnsafeMutablePointer<fundus_encoded>) -> Int32) throws -> Data {
        var out = fundus_encoded()
        let status = image.withPixels { call($0.baseAddress, &out) }
        defer { fundus_codecs_free(out.data) }
        guard status == FUNDUS_CODEC_OK, let bytes = out.data else {
            let message = withUnsafeBytes(of: out.message) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            throw ImagingError(code(of: status), "cannot encode \(image.width)x\(image.height) image as \(what): \(message)")
        }
        return Data(bytes: bytes, count: out.size)
    }
}

/// Writing files so that a reader never sees half of one: write a temporary file beside the target, flush it
/// to disk, then rename it over the target.
public enum AtomicFile {
    public static func write(_ data: Data, to url: URL) throws {
        let directory = url.deletingLastPathComponent()
        let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp")
        let fd = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else {
            throw ImagingError(.writeFailed, "\(url.path): cannot create temporary file: \(String(cString: strerror(errno)))")
        }
        var failure: String? = nil
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = String(cString: strerror(errno))
                    return
                }
                offset += n
            }
        }
        if failure == nil, fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
        close(fd)
        if failure == nil, rename(temporary.path, url.path) != 0 { failure = String(cString: strerror(errno)) }
        if let failure {
            unlink(temporary.path)
            throw ImagingError(.writeFailed, "\(url.path): cannot write: \(failure)")
        }
    }
}

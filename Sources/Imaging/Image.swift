// Imaging: image buffers, codecs (Swift side of CImageCodecs), resize, field-of-view detection and crop,
// normalisation, masks and overlays.
import Foundation

/// Pixel memory from `malloc` (ours or the codecs'), freed once. Invariant: written only by the one thread that
/// builds an `Image` (inside `Image.init(width:height:channels:initialise:)` or a decoder), read-only after, so
/// sharing it across threads is safe.
final class PixelStorage: @unchecked Sendable {
    let base: UnsafeMutablePointer<UInt8>
    let count: Int

    /// Takes ownership of malloc'd memory.
    init(adopting base: UnsafeMutablePointer<UInt8>, count: Int) {
        self.base = base
        self.count = count
    }

    init(zeroedCount count: Int) {
        guard let raw = calloc(max(count, 1), 1) else { fatalError("out of memory allocating \(count) bytes of pixels") }
        self.base = raw.assumingMemoryBound(to: UInt8.self)
        self.count = count
    }

    deinit { free(base) }
}

/// An 8-bit image, rows top to bottom, channels interleaved: 3 = RGB (photographs, overlays), 1 = grey/label
/// (masks, probability maps). `width * channels` bytes a row, no padding. Immutable; operations make new images.
public struct Image: Sendable {
    public let width: Int
    public let height: Int
    public let channels: Int
    let storage: PixelStorage

    init(width: Int, height: Int, channels: Int, storage: PixelStorage) {
        precondition(storage.count >= width * height * channels)
        self.width = width
        self.height = height
        self.channels = channels
        self.storage = storage
    }

    /// A new black image.
    public init(width: Int, height: Int, channels: Int) {
        self.init(width: width, height: height, channels: channels, initialise: { _ in })
    }

    /// A new zero-filled image whose pixels `initialise` writes.
    public init(width: Int, height: Int, channels: Int,
                initialise: (UnsafeMutableBufferPointer<UInt8>) throws -> Void) rethrows {
        precondition(width >= 0 && height >= 0 && (channels == 1 || channels == 3), "bad image shape \(width)x\(height)x\(channels)")
        let storage = PixelStorage(zeroedCount: width * height * channels)
        try initialise(UnsafeMutableBufferPointer(start: storage.base, count: width * height * channels))
        self.init(width: width, height: height, channels: channels, storage: storage)
    }

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * channels, "pixel count does not match \(width)x\(height)x\(channels)")
        self.init(width: width, height: height, channels: channels) { buffer in
            _ = buffer.initialize(from: pixels)
        }
    }

    public var pixelCount: Int { width * height }

    /// Read access to the pixels without copying.
    public func withPixels<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.base, count: width * height * channels))
    }

    public var bytes: [UInt8] { withPixels { Array($0) } }

    /// Sample `channel` of pixel (x, y).
    public subscript(x: Int, y: Int, channel: Int = 0) -> UInt8 {
        precondition(x >= 0 && x < width && y >= 0 && y < height && channel < channels)
        return storage.base[(y * width + x) * channels + channel]
    }

    /// The image with one channel: itself when grey, else the maximum of R, G, B per pixel (a mask drawn in
    /// any colour stays a mask).
    public func grey() -> Image {
        if channels == 1 { return self }
        return Image(width: width, height: height, channels: 1) { out in
            let src = storage.base
            for i in 0..<(width * height) {
                out[i] = max(src[3 * i], src[3 * i + 1], src[3 * i + 2])
            }
        }
    }

    /// The image with three channels (grey replicated).
    public func rgb() -> Image {
        if channels == 3 { return self }
        return Image(width: width, height: height, channels: 3) { out in
            let src = storage.base
            for i in 0..<(width * height) {
                out[3 * i] = src[i]
                out[3 * i + 1] = src[i]
                out[3 * i + 2] = src[i]
            }
        }
    }
}

/// An error of the imaging module: a stable code to match on and a message that names the file and the fault.
public struct ImagingError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable {
        case unreadable       // the file cannot be read (missing, permissions)
        case empty            // zero bytes
        case unknownFormat    // not JPEG, PNG or TIFF by its first bytes
        case corrupt          // malformed, truncated or corrupt data
        case tooLarge         // declared size above the pixel limit (refused before allocating)
        case unsupported      // valid file, feature we do not decode (CMYK JPEG, exotic TIFF)
        case outOfMemory
        case invalidArgument
        case writeFailed
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

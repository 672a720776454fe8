import Foundation
import Imaging
import Lesions

/// The pictures a patient page shows, written beside it.
///
/// A photograph a browser can show and that is small enough (IDRiD's camera JPEGs are ~0.4 MB) is copied as is,
/// so a grader who clicks it sees every pixel. Larger ones, and TIFFs that browsers cannot show, become a JPEG
/// preview with a long side of at most `previewLongSide` pixels; the source path on the page leads to the original.
/// Overlays come from the source when it has one, else they are drawn here from the per-class masks with
/// Imaging's overlay (fixed colour per class from `LesionClass.colour`, MA drawn last so it stays on top).
enum ReportPictures {
    static let previewLongSide = 2048
    static let copyLimitBytes = 4_000_000
    static let browserFormats: Set<String> = ["jpg", "jpeg", "png", "gif", "webp", "bmp", "avif"]
    static let overlayOpacity = 0.6

    /// Writes the photograph as `<stem>_photograph.<ext>` in `folder`; returns the file name.
    static func photograph(_ source: String, stem: String, folder: URL) throws -> String {
        let url = URL(fileURLWithPath: source)
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ReportError(.unreadableInput, "photograph \(source) cannot be read: \(error.localizedDescription)")
        }
        let ext = fileExtension(source)
        if browserFormats.contains(ext) && data.count <= copyLimitBytes {
            let name = "\(stem)_photograph.\(ext)"
            try write(data, to: folder.appendingPathComponent(name))
            return name
        }
        let decoded = try decode(data, mode: .rgb, what: "photograph", name: source)
        let preview = Overlay.draw(on: decoded, layers: [], maxLongSide: previewLongSide)
        let name = "\(stem)_photograph.jpg"
        try write(try encodeJPEG(preview, what: source), to: folder.appendingPathComponent(name))
        return name
    }

    /// Draws the lesion overlay from the per-class masks onto the photograph and writes `<stem>_overlay.jpg`.
    /// JPEG at quality 92: a fifth of the PNG's size at 2048 px, and the colours stay recognisable.
    static func drawOverlay(photograph: String, masks: [(LesionClass, String)], stem: String, folder: URL) throws -> String {
        let photoData: Data
        do { photoData = try Data(contentsOf: URL(fileURLWithPath: photograph)) } catch {
            throw ReportError(.unreadableInput, "photograph \(photograph) cannot be read: \(error.localizedDescription)")
        }
        let photo = try decode(photoData, mode: .rgb, what: "photograph", name: photograph)
        var layers: [OverlayLayer] = []
        for (lesionClass, path) in masks.sorted(by: { $0.0 < $1.0 }) {
            let maskData: Data
            do { maskData = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
                throw ReportError(.unreadableInput, "\(lesionClass.code) mask \(path) cannot be read: \(error.localizedDescription)")
            }
            let mask = try decode(maskData, mode: .label, what: "\(lesionClass.code) mask", name: path)
            // Overlay.draw requires equal sizes (a precondition); a mismatched mask is bad input, not a crash.
            guard mask.width == photo.width, mask.height == photo.height else {
                throw ReportError(
                    .invalidInput,
                    "\(lesionClass.code) mask \(path) is \(mask.width)×\(mask.height), the photograph \(photo.width)×\(photo.height)")
            }
            layers.append(OverlayLayer(code: lesionClass.code, colour: RGBColour(lesionClass.colour), mask: mask))
        }
        let overlay = Overlay.draw(on: photo, layers: layers, opacity: overlayOpacity, maxLongSide: previewLongSide)
        let name = "\(stem)_overlay.jpg"
        try write(try encodeJPEG(overlay, what: photograph, quality: 92), to: folder.appendingPathComponent(name))
        return name
    }

    /// Copies an overlay the source already drew.
    static func copyOverlay(_ source: String, stem: String, folder: URL) throws -> String {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: source)) } catch {
            throw ReportError(.unreadableInput, "overlay \(source) cannot be read: \(error.localizedDescription)")
        }
        let name = "\(stem)_overlay.\(fileExtension(source))"
        try write(data, to: folder.appendingPathComponent(name))
        return name
    }

    static func fileExtension(_ path: String) -> String {
        let ext = URL(fileURLWithPath: path).pathExtension.lowercased()
        // Only plain extensions reach a file name; anything odd becomes "img".
        let ok = !ext.isEmpty && ext.count <= 5
            && ext.unicodeScalars.allSatisfy { ($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9") }
        return ok ? ext : "img"
    }

    static func decode(_ data: Data, mode: DecodeMode, what: String, name: String) throws -> Image {
        do {
            return try ImageCodec.decode(data, mode: mode, name: name).image
        } catch {
            throw ReportError(.invalidInput, "\(what) \(error)")
        }
    }

    static func encodeJPEG(_ image: Image, what: String, quality: Int = 90) throws -> Data {
        do { return try ImageCodec.encodeJPEG(image, quality: quality) } catch {
            throw ReportError(.unwritableOutput, "picture for \(what): \(error)")
        }
    }

    static func write(_ data: Data, to url: URL) throws {
        do { try data.write(to: url, options: .atomic) } catch {
            throw ReportError(.unwritableOutput, "cannot write \(url.path): \(error.localizedDescription)")
        }
    }
}

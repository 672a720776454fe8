import Checkpoints
import ArgumentParser
import Foundation
import Imaging

struct ImageCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image",
        abstract: "Look at photographs: decode, field of view, gradability, crop; benchmark the preparation.",
        subcommands: [Inspect.self, Bench.self]
    )

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Size, format, field of view (original pixels), gradability and reasons, time taken.")

        @Argument(help: "Image files (JPEG, PNG, TIFF; recognised by content).")
        var files: [String]

        @Flag(help: "One JSON object per file, one per line.")
        var json = false

        @Option(help: "Write the field-of-view square (cropped, zero-padded). With several files: a folder, <stem>_crop.png.")
        var crop: String?

        @Option(help: "Folder for <stem>_fov.png: the photograph reduced, with the fitted circle drawn, to check by eye.")
        var overlay: String?

        @Option(help: "JPEG DCT scaling for speed: decode at 1/N size (1, 2, 4, 8); results stay in original pixels.")
        var jpegScale: Int = 1

        @Option(help: "Refuse images with more pixels than this (default $FUNDUS_MAX_PIXELS, else 100000000).")
        var maxPixels: Int = DecodeOptions.defaultMaxPixels

        func run() throws {
            var failures = 0
            for file in files {
                let url = URL(fileURLWithPath: file)
                let stem = url.deletingPathExtension().lastPathComponent
                do {
                    let options = PreparationOptions(decode: DecodeOptions(maxPixels: maxPixels, jpegScale: jpegScale))
                    let p = try Preparation.prepare(contentsOf: url, options: options)
                    print(json ? jsonLine(file, p) : textReport(file, p))
                    if let crop, let t = p.transform {
                        let target = files.count > 1 || crop.hasSuffix("/")
                            ? URL(fileURLWithPath: crop).appendingPathComponent("\(stem)_crop.png") : URL(fileURLWithPath: crop)
                        try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
                        try MaskFiles.writeImage(t.crop(p.decoded.image), to: target)
                    }
                    if let overlay {
                        try writeFieldOfViewOverlay(p, to: URL(fileURLWithPath: overlay).appendingPathComponent("\(stem)_fov.png"))
                    }
                } catch {
                    failures += 1
                    if json {
                        let object: [String: Any] = ["file": file, "error": "\(error)"]
                        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
                        print(String(decoding: data, as: UTF8.self))
                    } else {
                        print("\(file): error: \(error)")
                    }
                }
            }
            if failures > 0 { throw ExitCode(1) }
        }

        func textReport(_ file: String, _ p: PreparedPhotograph) -> String {
            let d = p.decoded
            var lines = ["\(file): \(d.format.rawValue) \(d.originalWidth)x\(d.originalHeight)"
                         + (d.scale > 1 ? " (decoded at 1/\(d.scale))" : "") + (d.orientation != 1 ? " EXIF orientation \(d.orientation)" : "")]
            if let note = d.note { lines.append("  note: \(note)") }
            if let f = p.analysis.fieldOfView {
                let b = f.boundingBox
                lines.append(String(format: "  field of view: centre (%.1f, %.1f) radius %.1f%@; box x %d…%d y %d…%d",
                                    f.centreX, f.centreY, f.radius, f.assumed ? " (assumed: no dark surround)" : "",
                                    b.x, b.x + b.width, b.y, b.y + b.height))
            } else {
                lines.append("  field of view: none found")
            }
            let q = p.analysis.quality
            lines.append(String(format: "  quality: luminance %.1f, saturated %.3f, sharpness %.2f, fit residual %.1f px (%d edge points)",
                                q.meanLuminance, q.saturatedShare, q.sharpness, q.fitResidual, q.edgePoints))
            lines.append(p.analysis.isGradable ? "  gradable"
                         : "  ungradable: " + p.analysis.reasons.map(\.explanation).joined(separator: "; "))
            lines.append(String(format: "  time: decode %.3f s, field of view %.3f s, resize %.3f s",
                                p.seconds.decode, p.seconds.fieldOfView, p.seconds.resize))
            return lines.joined(separator: "\n")
        }

        func jsonLine(_ file: String, _ p: PreparedPhotograph) -> String {
            let d = p.decoded, q = p.analysis.quality
            var object: [String: Any] = [
                "file": file, "format": d.format.rawValue, "width": d.originalWidth, "height": d.originalHeight,
                "decodeScale": d.scale, "orientation": d.orientation, "gradable": p.analysis.isGradable,
                "reasons": p.analysis.reasons.map(\.rawValue),
                "quality": ["meanLuminance": q.meanLuminance, "saturatedShare": q.saturatedShare,
                            "sharpness": q.sharpness, "fitResidual": q.fitResidual, "edgePoints": q.edgePoints],
                "seconds": ["decode": p.seconds.decode, "fieldOfView": p.seconds.fieldOfView, "resize": p.seconds.resize],
            ]
            if let note = d.note { object["note"] = note }
            if let f = p.analysis.fieldOfView {
                let b = f.boundingBox
                object["fieldOfView"] = ["centreX": f.centreX, "centreY": f.centreY, "radius": f.radius, "assumed": f.assumed,
                                         "boundingBox": ["x": b.x, "y": b.y, "width": b.width, "height": b.height]]
            }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        }

        func writeFieldOfViewOverlay(_ p: PreparedPhotograph, to url: URL) throws {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            let reduced = Overlay.draw(on: p.decoded.image, layers: [], maxLongSide: 1024)
            guard let f = p.analysis.fieldOfView else { return try MaskFiles.writeImage(reduced, to: url) }
            let unit = Double(p.decoded.originalWidth) / Double(reduced.width)
            let drawn = Overlay.drawCircle(on: reduced, centreX: f.centreX / unit, centreY: f.centreY / unit,
                                           radius: f.radius / unit, colour: RGBColour(red: 0, green: 255, blue: 255))
            try MaskFiles.writeImage(drawn, to: url)
        }
    }

    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time decode + field of view + resize to the model scale of one file on one core (use a release build).")

        @Argument(help: "An image file, e.g. a 4288x2848 IDRiD JPEG.")
        var file: String

        @Option(help: "Repetitions; the median is printed.")
        var repeats: Int = 9

        @Option(help: "JPEG DCT scaling (1, 2, 4, 8).")
        var jpegScale: Int = 1

        @Flag(help: "Pick the JPEG DCT scaling from the model's short edge (960): 1/2 for a 4288x2848 JPEG.")
        var automaticScale = false

        func run() throws {
            let url = URL(fileURLWithPath: file)
            var decode: [Double] = [], fov: [Double] = [], resize: [Double] = [], normalise: [Double] = [], total: [Double] = []
            var last: PreparedPhotograph? = nil
            for _ in 0..<max(1, repeats) {
                let decodeOptions = DecodeOptions(jpegScale: jpegScale, jpegMinimumShortSide: automaticScale ? InputScale.idrid.shortEdge : nil)
                let p = try Preparation.prepare(contentsOf: url, options: PreparationOptions(decode: decodeOptions))
                let t0 = DispatchTime.now().uptimeNanoseconds
                if let input = p.input { _ = Normalisation.idrid.tensor(input) }
                let n = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
                decode.append(p.seconds.decode)
                fov.append(p.seconds.fieldOfView)
                resize.append(p.seconds.resize)
                normalise.append(n)
                total.append(p.seconds.decode + p.seconds.fieldOfView + p.seconds.resize)
                last = p
            }
            func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
            if let p = last {
                let input = p.input.map { "\($0.width)x\($0.height)" } ?? "none (ungradable)"
                print("\(file): \(p.decoded.originalWidth)x\(p.decoded.originalHeight), decoded at 1/\(p.decoded.scale), network input \(input)")
            }
            print(String(format: "median of %d: decode %.3f s, field of view %.3f s, resize %.3f s; decode+FOV+resize %.3f s (normalise %.3f s more)",
                         decode.count, median(decode), median(fov), median(resize), median(total), median(normalise)))
        }
    }
}

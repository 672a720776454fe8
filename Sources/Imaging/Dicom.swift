import CDicom
import Foundation

/// What a DICOM file says about the photograph in it: the archive keeps patient, eye, study date and the study and
/// instance UIDs as columns (a manifest, where given, overrides them).
public struct DicomAttributes: Sendable, Equatable {
    /// (0010,0020) Patient ID.
    public var patientID: String?
    /// (0020,0062) Image Laterality, else (0020,0060) Laterality, as written: R, L, B (both) or U (unpaired).
    public var laterality: String?
    /// (0008,0020) Study Date, else (0008,0023) Content Date, as `YYYY-MM-DD` (as written when it is not 8 digits).
    public var studyDate: String?
    /// (0020,000D) Study Instance UID.
    public var studyUID: String?
    /// (0008,0018) SOP Instance UID: the same instance is the same image, whatever its path.
    public var instanceUID: String?
    public var sopClassUID: String?
    public var modality: String?
    public var transferSyntaxUID: String
    public var transferSyntaxName: String
    public var photometricInterpretation: String?
    public var rows: Int
    public var columns: Int
    public var frames: Int
    /// (0028,0030) Pixel Spacing (rows), in mm.
    public var pixelSpacingMM: Double?
}

/// DICOM photographs through CDicom (DCMTK): recognised by the `DICM` marker after the 128-byte preamble, never by
/// the file name (DICOM files often have none, or `.dcm`). One frame per file: multi-frame files are refused with
/// a message saying so, as are JPEG 2000 (DCMTK has no decoder for it) and files with no pixel data (a DICOMDIR).
public enum DicomFile {
    /// True when `bytes` starts with a DICOM preamble: 128 bytes, then `DICM`.
    public static func hasPreamble(_ bytes: some Collection<UInt8>) -> Bool {
        guard bytes.count >= 132 else { return false }
        let marker = bytes.dropFirst(128).prefix(4)
        return marker.elementsEqual([0x44, 0x49, 0x43, 0x4D])
    }

    /// True when the file starts with a DICOM preamble (reads 132 bytes).
    public static func hasPreamble(fileAt url: URL) -> Bool {
        guard let handle = try? FileHandle(forReadingFrom: url) else { return false }
        defer { try? handle.close() }
        return hasPreamble((try? handle.read(upToCount: 132)) ?? Data())
    }

    /// Reads the tags and checks, without decoding the pixels, that the file holds one photograph we can decode
    /// (pixel data present and as long as its header says, one frame, a transfer syntax we decode).
    public static func inspect(contentsOf url: URL) throws -> DicomAttributes {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ImagingError(.unreadable, "\(url.path): cannot read: \(error.localizedDescription)")
        }
        return try inspect(data, name: url.path)
    }

    /// As `inspect(contentsOf:)` for bytes; errors start with `name`.
    public static func inspect(_ data: Data, name: String) throws -> DicomAttributes {
        if data.isEmpty { throw ImagingError(.empty, "\(name): file is empty (0 bytes)") }
        var info = fundus_dicom_info()
        let status = data.withUnsafeBytes { raw in
            fundus_dicom_inspect(raw.bindMemory(to: UInt8.self).baseAddress, raw.count, &info)
        }
        guard status == FUNDUS_DICOM_OK else { throw error(status, info, context: name) }
        return attributes(info)
    }

    /// Decodes the photograph to RGB (or its label plane, as `ImageCodec` does for masks). Errors name the file.
    static func decode(_ data: Data, mode: DecodeMode, options: DecodeOptions, name: String, note: String?) throws -> DecodedImage {
        var out = fundus_dicom_image()
        let status = data.withUnsafeBytes { raw in
            fundus_dicom_decode(raw.bindMemory(to: UInt8.self).baseAddress, raw.count, UInt64(max(0, options.maxPixels)), &out)
        }
        guard status == FUNDUS_DICOM_OK, let pixels = out.pixels else {
            fundus_dicom_free(out.pixels)
            throw error(status == FUNDUS_DICOM_OK ? Int32(FUNDUS_DICOM_NO_MEMORY) : status, out.info,
                        context: "\(name): cannot decode DICOM")
        }
        let width = Int(out.width), height = Int(out.height)
        let rgb = Image(width: width, height: height, channels: 3, storage: PixelStorage(adopting: pixels, count: width * height * 3))
        let samples = Int(out.info.samples_per_pixel)
        return DecodedImage(
            image: mode == .rgb ? rgb : rgb.grey(), format: .dicom, originalWidth: width, originalHeight: height, scale: 1,
            orientation: 1, sourceChannels: samples, sourceBitDepth: Int(out.info.bits_stored), sourceHasPalette: false,
            warnings: 0, note: note)
    }

    /// The shim's code and message as an error: "`context`: message".
    static func error(_ status: Int32, _ info: fundus_dicom_info, context: String) -> ImagingError {
        let message = string(info.message)
        let code: ImagingError.Code = switch status {
        case Int32(FUNDUS_DICOM_TOO_LARGE): .tooLarge
        case Int32(FUNDUS_DICOM_UNSUPPORTED), Int32(FUNDUS_DICOM_NO_PIXELS): .unsupported
        case Int32(FUNDUS_DICOM_NO_MEMORY): .outOfMemory
        case Int32(FUNDUS_DICOM_BAD_ARGUMENT): .invalidArgument
        default: .corrupt
        }
        return ImagingError(code, "\(context): \(message.isEmpty ? "cannot read the DICOM file" : message)")
    }

    static func attributes(_ info: fundus_dicom_info) -> DicomAttributes {
        func text(_ value: String) -> String? { value.isEmpty ? nil : value }
        var date = text(string(info.study_date))
        if let d = date, d.count == 8, d.allSatisfy(\.isASCII), d.allSatisfy(\.isNumber) {
            date = "\(d.prefix(4))-\(d.dropFirst(4).prefix(2))-\(d.suffix(2))"
        }
        return DicomAttributes(
            patientID: text(string(info.patient_id)), laterality: text(string(info.laterality)), studyDate: date,
            studyUID: text(string(info.study_uid)), instanceUID: text(string(info.instance_uid)),
            sopClassUID: text(string(info.sop_class_uid)), modality: text(string(info.modality)),
            transferSyntaxUID: string(info.transfer_syntax_uid), transferSyntaxName: string(info.transfer_syntax_name),
            photometricInterpretation: text(string(info.photometric)), rows: Int(info.rows), columns: Int(info.columns),
            frames: Int(info.frames), pixelSpacingMM: info.pixel_spacing_mm > 0 ? info.pixel_spacing_mm : nil)
    }

    /// A fixed-size C character array as a String (up to its NUL).
    static func string<T>(_ field: T) -> String {
        withUnsafeBytes(of: field) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }

    /// DCMTK's version, for `--version` and bug reports.
    public static var libraryVersion: String { String(cString: fundus_dicom_version()) }
}

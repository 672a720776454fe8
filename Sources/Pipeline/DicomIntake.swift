import Foundation
import Imaging
import Store

/// The archive import's DICOM reader: Imaging's (DCMTK) tags and checks, in the Store's terms. A file whose
/// photograph could not be decoded (truncated, no pixel data, JPEG 2000, multi-frame, …) is refused at import, with
/// the reason, rather than failing its screening job later.
public enum DicomIntake {
    public static let tagReader: DicomTagReader = { path in
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ImagingError(.unreadable, "cannot read the file: \(error.localizedDescription)")
        }
        let a = try DicomFile.inspect(data, name: "DICOM")
        return DicomTags(patientID: a.patientID, laterality: a.laterality, studyDate: a.studyDate, studyUID: a.studyUID,
                         instanceUID: a.instanceUID, pixelSpacingMM: a.pixelSpacingMM)
    }
}

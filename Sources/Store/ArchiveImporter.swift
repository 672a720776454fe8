import Foundation
import Logging

/// What an import did.
public struct ImportReport: Sendable {
    /// Image files (or manifest rows) looked at.
    public var considered = 0
    public var added = 0
    public var alreadyPresent = 0
    /// One line per file that was not imported: which file and why.
    public var skipped: [String] = []
    /// Screening jobs enqueued for the active model.
    public var enqueued = 0
    /// Every archive image this import added or found there already (also by SOP Instance UID), sorted.
    public var imageIDs: [Int64] = []
    /// The active model the images were enqueued for; nil when there is none.
    public var modelVersion: String?
    public var seconds = 0.0
}

/// What a DICOM file's tags give the archive. Store reads no pixels: the caller's `DicomTagReader` (Pipeline's,
/// over Imaging's DCMTK reader) reads the file.
public struct DicomTags: Sendable, Equatable {
    public var patientID: String?
    /// Image Laterality (else Laterality) as written: R and L become the eye; B and U say nothing about it.
    public var laterality: String?
    /// Study date, `YYYY-MM-DD` or DICOM's `YYYYMMDD`.
    public var studyDate: String?
    public var studyUID: String?
    public var instanceUID: String?
    public var pixelSpacingMM: Double?

    public init(patientID: String? = nil, laterality: String? = nil, studyDate: String? = nil, studyUID: String? = nil,
                instanceUID: String? = nil, pixelSpacingMM: Double? = nil) {
        self.patientID = patientID
        self.laterality = laterality
        self.studyDate = studyDate
        self.studyUID = studyUID
        self.instanceUID = instanceUID
        self.pixelSpacingMM = pixelSpacingMM
    }
}

/// Reads a DICOM file's tags, and checks that its photograph can be decoded; throws an error whose description
/// says what is wrong with the file (the importer adds the path).
public typealias DicomTagReader = @Sendable (_ path: String) throws -> DicomTags

/// Imports image files into the archive, from a folder or a CSV manifest, and enqueues their screening with
/// the active model. Paths already in the archive are skipped without reading the files again.
///
/// DICOM files are recognised by their preamble (`DICM` at byte 128), with or without `.dcm`; patient, eye, study
/// date and UIDs come from their tags (a manifest's columns override them; the file name is the last resort), and a
/// SOP Instance UID already in the archive is the image already there. A DICOMDIR folder is imported as every
/// DICOM file under it (the DICOMDIR file itself is its index, not an image).
public struct ArchiveImporter {
    /// Extensions of the photographs we read.
    public static let imageExtensions: Set<String> = ["jpg", "jpeg", "png", "tif", "tiff"]

    let connection: Connection
    let logger: Logger
    public var pattern: FileNamePattern
    /// Priority of the screening jobs (1 on-demand … 3 nightly).
    public var priority: Int
    public var enqueue: Bool
    /// Reads DICOM files' tags; nil: DICOM files are skipped, saying so.
    public var dicom: DicomTagReader?

    public init(connection: Connection, pattern: FileNamePattern, priority: Int = 3, enqueue: Bool = true,
                dicom: DicomTagReader? = nil, logger: Logger) {
        self.connection = connection
        self.pattern = pattern
        self.priority = priority
        self.enqueue = enqueue
        self.dicom = dicom
        self.logger = logger
    }

    struct Candidate {
        var path: String
        var patient: String?
        var eye: Laterality?
        var acquiredOn: String?
        var studyUID: String?
        var instanceUID: String?
        var checksum: String?
        var size: Int64?
        var spacing: Double?
        /// A DICOM file (by its preamble): its tags fill what the manifest did not give.
        var isDicom = false
        /// Where it came from, for messages: a path or `manifest.csv line 12`.
        var origin: String
    }

    /// Every image file under `directory` (recursively): JPEG, PNG and TIFF by their extension, DICOM by its
    /// preamble; patient and eye from DICOM tags, else the file name. `directory` may also be a DICOMDIR file.
    public func importDirectory(_ directory: URL) throws -> ImportReport {
        let start = Date()
        var root = directory.standardizedFileURL
        if root.lastPathComponent.uppercased() == "DICOMDIR", !isFolder(root) { root = root.deletingLastPathComponent() }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DatabaseError(.invalidInput, "\(root.path) is not a folder")
        }
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey]) else {
            throw DatabaseError(.invalidInput, "cannot list \(root.path)")
        }
        var candidates: [Candidate] = []
        var report = ImportReport()
        let realRoot = Self.realPath(root.path) ?? root.path
        for case let url as URL in walker {
            let path = url.standardizedFileURL.path
            let ext = url.pathExtension.lowercased()
            // The DICOMDIR is the folder's index; the images it lists lie under the folder and are imported as files.
            if url.lastPathComponent.uppercased() == "DICOMDIR" { continue }
            let isImage = Self.imageExtensions.contains(ext)
            if !isImage && (try? url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) != true { continue }
            // A symbolic link (to a file, or a folder on the way) that leads out of the archive is not followed:
            // the archive holds what lies under its folder, whatever links someone left in it.
            if let outside = Self.leavesFolder(path, realRoot: realRoot) {
                report.considered += 1
                report.skipped.append("\(path.debugDescription): \(outside)")
                continue
            }
            if isImage {
                candidates.append(Candidate(path: path, origin: path))
            } else if DicomPreamble.present(atPath: path) {
                var c = Candidate(path: path, origin: path)
                c.isDicom = true
                candidates.append(c)
            } else if ext == "dcm" {
                report.considered += 1
                report.skipped.append("\(path): named .dcm but has no DICOM preamble (DICM at byte 128): not read")
            }
        }
        candidates.sort { $0.path < $1.path }
        try finish(candidates, report: &report)
        report.seconds = Date().timeIntervalSince(start)
        return report
    }

    /// Rows of a CSV manifest with a header. Columns (any order, case-insensitive): `path` (required; relative
    /// to the manifest's folder), `patient`, `eye`/`laterality`, `acquired_on`/`date`, `pixel_spacing_mm`,
    /// `sha256`/`checksum`, `size_bytes`, `study_uid`, `instance_uid`. Without a patient or eye column they
    /// come from the file name.
    public func importManifest(_ manifest: URL) throws -> ImportReport {
        let start = Date()
        let table = try CSVTable(contentsOf: manifest)
        logger.debug("manifest read", metadata: ["rows": "\(table.records.count)", "seconds": "\(Date().timeIntervalSince(start))"])
        let name = manifest.lastPathComponent
        guard let pathColumn = table.column(["path", "file", "image", "filename", "image_path"]) else {
            throw DatabaseError(.invalidInput, "\(manifest.path): no path column in the header (\(table.header.joined(separator: ",")))")
        }
        let patientColumn = table.column(["patient", "patient_id"])
        let eyeColumn = table.column(["eye", "laterality"])
        let dateColumn = table.column(["acquired_on", "acquisition_date", "date", "acquired"])
        let spacingColumn = table.column(["pixel_spacing_mm", "pixel_spacing"])
        let checksumColumn = table.column(["sha256", "checksum", "checksum_sha256"])
        let sizeColumn = table.column(["size_bytes", "size"])
        let studyColumn = table.column(["study_uid"])
        let instanceColumn = table.column(["instance_uid"])
        let basePath = manifest.standardizedFileURL.deletingLastPathComponent().path

        var report = ImportReport()
        var candidates: [Candidate] = []
        candidates.reserveCapacity(table.records.count)
        for (line, fields) in table.records {
            let origin = "\(name) line \(line)"
            func value(_ column: Int?) -> String? {
                guard let column, column < fields.count else { return nil }
                let v = Self.trimmed(fields[column])
                return v.isEmpty ? nil : v
            }
            guard let rawPath = value(pathColumn) else { report.skipped.append("\(origin): no path"); continue }
            // PostgreSQL text cannot hold NUL, and a C call would stop reading a path at it: refuse the row here
            // rather than fail the whole batch's insert.
            if let column = fields.firstIndex(where: { $0.contains("\u{0}") }) {
                let header = column < table.header.count ? table.header[column] : "column \(column + 1)"
                report.skipped.append("\(origin): the \(header) field holds a NUL byte"); continue
            }
            let path = Self.normalisedPath(rawPath.hasPrefix("/") ? rawPath : basePath + "/" + rawPath)
            if !rawPath.hasPrefix("/"), !path.hasPrefix(basePath == "/" ? "/" : basePath + "/") {
                report.skipped.append("\(origin): path \(rawPath.debugDescription) climbs out of the manifest's folder \(basePath)")
                continue
            }
            var c = Candidate(path: path, origin: "\(origin) (\(rawPath))")
            c.isDicom = !Self.imageExtensions.contains(Self.fileExtension(path)) && DicomPreamble.present(atPath: path)
            c.patient = value(patientColumn)
            if let eye = value(eyeColumn) {
                guard let l = Laterality(parsing: eye) else {
                    report.skipped.append("\(c.origin): eye \(eye.debugDescription) is not R, L, right, left, OD or OS"); continue
                }
                c.eye = l
            }
            if let date = value(dateColumn) {
                guard let d = CalendarDate.normalise(date) else {
                    report.skipped.append("\(c.origin): acquisition date \(date.debugDescription) is not YYYY-MM-DD"); continue
                }
                c.acquiredOn = d
            }
            if let s = value(spacingColumn) {
                guard let v = Double(s), v > 0, v.isFinite else {
                    report.skipped.append("\(c.origin): pixel spacing \(s.debugDescription) is not a positive number of mm"); continue
                }
                c.spacing = v
            }
            if let sum = value(checksumColumn) {
                let lower = sum.lowercased()
                guard lower.count == 64, lower.allSatisfy({ $0.isHexDigit }) else {
                    report.skipped.append("\(c.origin): checksum \(sum.debugDescription) is not a SHA-256 in hex"); continue
                }
                c.checksum = lower
            }
            if let s = value(sizeColumn) {
                guard let v = Int64(s), v >= 0 else {
                    report.skipped.append("\(c.origin): size \(s.debugDescription) is not a byte count"); continue
                }
                c.size = v
            }
            c.studyUID = value(studyColumn)
            c.instanceUID = value(instanceColumn)
            candidates.append(c)
        }
        let skippedBefore = report.skipped.count
        try finish(candidates, report: &report)
        report.considered += skippedBefore
        report.seconds = Date().timeIntervalSince(start)
        return report
    }

    private func finish(_ input: [Candidate], report: inout ImportReport) throws {
        report.considered += input.count
        var seen = Set<String>()
        var candidates: [Candidate] = []
        for c in input {
            if seen.insert(c.path).inserted { candidates.append(c) } else { report.skipped.append("\(c.origin): listed twice") }
        }
        let archive = Archive(connection: connection)
        var clock = Date()
        func phase(_ name: String) {
            logger.debug("import phase done", metadata: ["phase": "\(name)", "seconds": "\(Date().timeIntervalSince(clock))"])
            clock = Date()
        }
        let existing = try archive.ids(forPaths: candidates.map(\.path))
        phase("look up paths already in the archive")
        report.alreadyPresent = existing.count
        var fresh = candidates.filter { existing[$0.path] == nil }
        logger.info("importing images", metadata: ["new": "\(fresh.count)", "alreadyPresent": "\(existing.count)"])

        // DICOM tags where no column gave a value; a file whose photograph cannot be read is skipped, saying why.
        fresh = try readDicomTags(fresh, report: &report)
        phase("read DICOM tags")
        // The same SOP Instance UID is the same image: already in the archive, or twice in this import.
        var sameInstance: [Int64] = []
        let uids = fresh.compactMap(\.instanceUID)
        if !uids.isEmpty {
            let known = try archive.ids(forInstanceUIDs: uids)
            var firstPath: [String: String] = [:]
            fresh = fresh.filter { c in
                guard let uid = c.instanceUID else { return true }
                if let image = known[uid] {
                    sameInstance.append(image.id)
                    logger.info("same DICOM instance as an archive image: not added again",
                                metadata: ["file": "\(c.path)", "image": "\(image.path)", "instance": "\(uid)"])
                    return false
                }
                if let first = firstPath[uid] {
                    logger.info("same DICOM instance twice in this import: added once",
                                metadata: ["file": "\(c.path)", "first": "\(first)", "instance": "\(uid)"])
                    return false
                }
                firstPath[uid] = c.path
                return true
            }
            report.alreadyPresent += uids.count - fresh.filter { $0.instanceUID != nil }.count
        }

        // Patient and eye from the file name where no column or tag gave them.
        for i in fresh.indices where fresh[i].patient == nil || fresh[i].eye == nil {
            let stem = Self.fileStem(fresh[i].path)
            let match = pattern.match(stem)
            if fresh[i].patient == nil { fresh[i].patient = match?.patient ?? stem }
            if fresh[i].eye == nil { fresh[i].eye = match?.eye }
        }

        // Size and checksum of each new file, on all cores; files already in the archive are not read.
        let measured = Self.measure(fresh)
        phase("stat and checksum new files")
        var images: [NewImage] = []
        images.reserveCapacity(fresh.count)
        for (c, m) in zip(fresh, measured) {
            switch m {
            case .failure(let reason): report.skipped.append("\(c.origin): \(reason)")
            case .success(let (size, checksum)):
                if let expected = c.size, expected != size {
                    report.skipped.append("\(c.origin): file has \(size) bytes, the manifest says \(expected)")
                    continue
                }
                images.append(NewImage(path: c.path, patientID: c.patient ?? "", laterality: c.eye, acquiredOn: c.acquiredOn,
                                       studyUID: c.studyUID, instanceUID: c.instanceUID, checksum: c.checksum ?? checksum,
                                       sizeBytes: size, pixelSpacingMM: c.spacing))
            }
        }
        let added = try archive.add(images)
        phase("insert images")
        report.added = added.count
        report.alreadyPresent += images.count - added.count  // added meanwhile by another import
        // Same instance as a file listed earlier in this import: the image that file became.
        let addedUIDs = Set(images.filter { added[$0.path] != nil }.compactMap(\.instanceUID))
        let twins = Set(uids).subtracting(addedUIDs)
        if !twins.isEmpty { sameInstance += try archive.ids(forInstanceUIDs: Array(twins)).values.map(\.id) }
        report.imageIDs = Array(Set(Array(existing.values) + Array(added.values) + sameInstance)).sorted()

        guard enqueue else { return }
        guard let model = try ModelRegistry(connection: connection).active() else {
            logger.warning("no active model version: images imported, nothing enqueued for screening yet (the first model made active queues them)")
            return
        }
        report.modelVersion = model.name
        report.enqueued = try JobQueue(connection: connection, logger: logger)
            .enqueueScreening(imageIDs: report.imageIDs, modelVersionID: model.id, priority: priority)
        phase("enqueue screening")
    }

    /// Reads the tags of the DICOM candidates (in parallel) and fills what no manifest column gave; drops, with
    /// their reason, the files whose photograph cannot be read.
    private func readDicomTags(_ input: [Candidate], report: inout ImportReport) throws -> [Candidate] {
        let positions = input.indices.filter { input[$0].isDicom }
        guard !positions.isEmpty else { return input }
        guard let reader = dicom else {
            let dropped = Set(positions)
            for i in positions { report.skipped.append("\(input[i].origin): a DICOM file, and this import reads no DICOM") }
            return input.indices.filter { !dropped.contains($0) }.map { input[$0] }
        }
        var results = [Result<DicomTags, any Error>](repeating: .failure(DatabaseError(.invalidInput, "not read")),
                                                    count: positions.count)
        results.withUnsafeMutableBufferPointer { buffer in
            // Disjoint writers: iteration k writes only slot k; read after concurrentPerform returns.
            nonisolated(unsafe) let out = buffer
            DispatchQueue.concurrentPerform(iterations: positions.count) { k in
                out[k] = Result { try reader(input[positions[k]].path) }
            }
        }
        var output = input
        var dropped = Set<Int>()
        for (k, i) in positions.enumerated() {
            switch results[k] {
            case .failure(let error):
                report.skipped.append("\(input[i].origin): \(error)")
                dropped.insert(i)
            case .success(let tags):
                var c = output[i]
                if c.patient == nil { c.patient = tags.patientID.map(Self.trimmed).flatMap { $0.isEmpty ? nil : $0 } }
                if c.eye == nil { c.eye = tags.laterality.flatMap(Laterality.init(parsing:)) }
                if c.acquiredOn == nil { c.acquiredOn = tags.studyDate.flatMap(CalendarDate.normalise) }
                if c.studyUID == nil { c.studyUID = tags.studyUID }
                if c.instanceUID == nil { c.instanceUID = tags.instanceUID }
                if c.spacing == nil { c.spacing = tags.pixelSpacingMM }
                output[i] = c
            }
        }
        return output.indices.filter { !dropped.contains($0) }.map { output[$0] }
    }

    private func isFolder(_ url: URL) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    /// The extension, lower-case, without the dot ("" when none).
    static func fileExtension(_ path: String) -> String {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return "" }
        return name[name.index(after: dot)...].lowercased()
    }

    // String path handling: Foundation's URL costs tens of microseconds a call, seconds for a 100,000-row manifest.

    /// `/a/./b/../c` → `/a/c` for an absolute path; collapses repeated slashes.
    static func normalisedPath(_ path: String) -> String {
        if !path.contains("/.") && !path.contains("//") { return path }
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// The real path (symbolic links resolved), or nil when it cannot be resolved.
    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// Why `path` (found under the archive folder whose real path is `realRoot`) is not part of the archive: it
    /// resolves outside it through a symbolic link, or cannot be resolved. Nil when it is inside.
    static func leavesFolder(_ path: String, realRoot: String) -> String? {
        guard let real = realPath(path) else {
            return "cannot resolve the path (\(String(cString: strerror(errno)))): not imported"
        }
        if real == realRoot || real.hasPrefix(realRoot == "/" ? "/" : realRoot + "/") { return nil }
        return "a symbolic link to \(real.debugDescription), outside the archive folder \(realRoot.debugDescription): not imported"
    }

    /// The file name without folder and extension.
    static func fileStem(_ path: String) -> String {
        let name = path.split(separator: "/").last.map(String.init) ?? path
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return name }
        return String(name[..<dot])
    }

    static func trimmed(_ text: String) -> String {
        guard let first = text.first, let last = text.last else { return text }
        if first.isWhitespace || last.isWhitespace { return text.trimmingCharacters(in: .whitespaces) }
        return text
    }

    enum Measured { case success((Int64, String)), failure(String) }

    /// Stat every file, and checksum those without a given checksum, in parallel.
    static func measure(_ candidates: [Candidate]) -> [Measured] {
        var slots = [Measured](repeating: .failure("not measured"), count: candidates.count)
        let chunk = 256
        let chunks = (candidates.count + chunk - 1) / chunk
        slots.withUnsafeMutableBufferPointer { buffer in
            // Disjoint writers: chunk k writes only its own slots; read after concurrentPerform returns.
            nonisolated(unsafe) let out = buffer
            DispatchQueue.concurrentPerform(iterations: chunks) { k in
                for i in (k * chunk)..<min(candidates.count, (k + 1) * chunk) {
                    let c = candidates[i]
                    var info = stat()
                    guard stat(c.path, &info) == 0 else {
                        out[i] = .failure("cannot read the file: \(String(cString: strerror(errno)))")
                        continue
                    }
                    guard (info.st_mode & S_IFMT) == S_IFREG else { out[i] = .failure("not a regular file"); continue }
                    if let sum = c.checksum {
                        out[i] = .success((Int64(info.st_size), sum))
                    } else if let sum = try? SHA256.hex(fileAt: URL(fileURLWithPath: c.path)) {
                        out[i] = .success((Int64(info.st_size), sum))
                    } else {
                        out[i] = .failure("cannot read the file to compute its checksum")
                    }
                }
            }
        }
        return slots
    }
}

/// DICOM's file preamble: 128 bytes, then `DICM`. The only way an importer tells a DICOM file (named `.dcm`, or
/// nothing at all, as DICOMDIR folders name them) from other files; reading and decoding it is Imaging's work.
enum DicomPreamble {
    static func present(atPath path: String) -> Bool {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var bytes = [UInt8](repeating: 0, count: 132)
        let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 132, 0) }
        return n == 132 && bytes[128...] == [0x44, 0x49, 0x43, 0x4D]
    }
}

import Foundation
// Laterality is Lesions' (the lesion vocabulary is defined once there); the archive stores its raw value, R or L.
@_exported import enum Lesions.Laterality

/// An image of the archive as stored.
public struct ArchiveImage: Sendable, Equatable {
    public let id: Int64
    public let path: String
    public let patientID: String
    public let laterality: Laterality?
    /// `YYYY-MM-DD`.
    public let acquiredOn: String?
    public let checksum: String
    public let sizeBytes: Int64
    public let pixelSpacingMM: Double?
}

/// An image to add to the archive.
public struct NewImage: Sendable, Equatable {
    /// Absolute path.
    public var path: String
    public var patientID: String
    public var laterality: Laterality?
    /// `YYYY-MM-DD`.
    public var acquiredOn: String?
    public var studyUID: String?
    public var instanceUID: String?
    /// SHA-256, lower-case hex.
    public var checksum: String
    public var sizeBytes: Int64
    public var pixelSpacingMM: Double?

    public init(path: String, patientID: String, laterality: Laterality?, acquiredOn: String? = nil, studyUID: String? = nil,
                instanceUID: String? = nil, checksum: String, sizeBytes: Int64, pixelSpacingMM: Double? = nil) {
        self.path = path
        self.patientID = patientID
        self.laterality = laterality
        self.acquiredOn = acquiredOn
        self.studyUID = studyUID
        self.instanceUID = instanceUID
        self.checksum = checksum
        self.sizeBytes = sizeBytes
        self.pixelSpacingMM = pixelSpacingMM
    }
}

/// The archive table: bulk insert that skips paths already there, look-ups by path and id.
public struct Archive {
    let connection: Connection

    public init(connection: Connection) { self.connection = connection }

    /// Ids of the paths already in the archive, in chunks of `batchSize` per statement.
    public func ids(forPaths paths: [String], batchSize: Int = 10_000) throws -> [String: Int64] {
        var found: [String: Int64] = [:]
        for start in stride(from: 0, to: paths.count, by: batchSize) {
            let batch = Array(paths[start..<min(paths.count, start + batchSize)])
            for row in try connection.query(ArchiveSQL.imageIDsByPath, [batch]).rows {
                found[try row.decode("path")] = try row.decode("id")
            }
        }
        return found
    }

    /// Images with these SOP Instance UIDs: uid → (id, path).
    public func ids(forInstanceUIDs uids: [String], batchSize: Int = 10_000) throws -> [String: (id: Int64, path: String)] {
        var found: [String: (id: Int64, path: String)] = [:]
        for start in stride(from: 0, to: uids.count, by: batchSize) {
            let batch = Array(uids[start..<min(uids.count, start + batchSize)])
            for row in try connection.query(ArchiveSQL.imageIDsByInstanceUID, [batch]).rows {
                found[try row.decode("instance_uid")] = (try row.decode("id"), try row.decode("path"))
            }
        }
        return found
    }

    /// Adds images, `batchSize` rows per statement; a path (or a SOP Instance UID) already present is skipped. Returns path → id of
    /// the images added.
    @discardableResult
    public func add(_ images: [NewImage], batchSize: Int = 5000) throws -> [String: Int64] {
        var added: [String: Int64] = [:]
        for start in stride(from: 0, to: images.count, by: batchSize) {
            let b = images[start..<min(images.count, start + batchSize)]
            let result = try connection.query(ArchiveSQL.imageInsertMany, [
                b.map(\.path), b.map(\.patientID), b.map { $0.laterality?.rawValue }, b.map(\.acquiredOn),
                b.map(\.studyUID), b.map(\.instanceUID), b.map(\.checksum), b.map(\.sizeBytes), b.map(\.pixelSpacingMM),
            ])
            for row in result.rows { added[try row.decode("path")] = try row.decode("id") }
        }
        return added
    }

    public func image(id: Int64) throws -> ArchiveImage? {
        try connection.query(ArchiveSQL.imageGet, [id]).rows.first.map(Self.decode)
    }

    public func count() throws -> Int {
        try connection.query(ArchiveSQL.imageCount).rows[0].decode("n")
    }

    static func decode(_ row: Row) throws -> ArchiveImage {
        ArchiveImage(id: try row.decode("id"), path: try row.decode("path"), patientID: try row.decode("patient_id"),
                     laterality: try row.decodeIfPresent("laterality", as: String.self).flatMap(Laterality.init(rawValue:)),
                     acquiredOn: try row.decodeIfPresent("acquired_on"), checksum: try row.decode("checksum_sha256"),
                     sizeBytes: try row.decode("size_bytes"), pixelSpacingMM: try row.decodeIfPresent("pixel_spacing_mm"))
    }
}

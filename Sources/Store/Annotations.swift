import Foundation

/// Which part of the annotated set an image belongs to.
public enum AnnotationSplit: String, Sendable, CaseIterable {
    case train, validation
}

/// One annotated archive image: the photograph, and per annotated class its mask (nil: annotated, no lesion).
public struct AnnotatedImage: Sendable, Equatable {
    public let imageID: Int64
    public let path: String
    public let patientID: String
    public let split: AnnotationSplit
    public let grader: String?
    /// Class code (EX, HE, SE, MA) → absolute mask path, or nil when the grader found no lesion of that class.
    public let masks: [String: String?]
    public let annotatedAt: Date
}

/// The graders' annotations (sql/0004): register them against archive images, read them back for training.
public struct Annotations {
    public static let classCodes: Set<String> = ["EX", "HE", "SE", "MA"]
    let connection: Connection

    public init(connection: Connection) { self.connection = connection }

    /// Records (or replaces) the annotation of one archive image: its split, grader and per-class masks.
    /// Classes left out of `masks` are not annotated for the image. Mask paths must be absolute.
    public func register(imageID: Int64, split: AnnotationSplit, grader: String?, masks: [String: String?]) throws {
        for (code, path) in masks {
            guard Self.classCodes.contains(code) else { throw DatabaseError(.invalidInput, "annotation of image \(imageID): '\(code)' is not EX, HE, SE or MA") }
            if let path, !path.hasPrefix("/") { throw DatabaseError(.invalidInput, "annotation of image \(imageID): mask path \(path) is not absolute") }
        }
        guard !masks.isEmpty else { throw DatabaseError(.invalidInput, "annotation of image \(imageID) names no class") }
        let codes = masks.keys.sorted()
        try connection.transaction { conn in
            guard !(try conn.query(ArchiveSQL.imageExists, [imageID]).rows.isEmpty) else {
                throw DatabaseError(.notFound, "no archive image with id \(imageID)")
            }
            try conn.query(AnnotationSQL.annotationUpsert, [imageID, split.rawValue, grader])
            try conn.query(AnnotationSQL.annotationMasksClear, [imageID])
            try conn.query(AnnotationSQL.annotationMasksInsert, [imageID, codes, codes.map { masks[$0]! }])
        }
    }

    /// Annotated images, optionally of one split, in path order.
    public func list(split: AnnotationSplit? = nil) throws -> [AnnotatedImage] {
        let rows = try connection.query(AnnotationSQL.annotationList, [split?.rawValue]).rows
        return try rows.map { row in
            let classes = try row.decodeArray("classes").compactMap { $0 }, paths = try row.decodeArray("masks")
            var masks: [String: String?] = [:]
            for (c, p) in zip(classes, paths) { masks[c] = (p ?? "").isEmpty ? .some(nil) : p }
            guard let split = AnnotationSplit(rawValue: try row.decode("split")) else {
                throw DatabaseError(.decoding, "unknown annotation split \(row["split"] ?? "NULL")")
            }
            return AnnotatedImage(imageID: try row.decode("image_id"), path: try row.decode("path"),
                                  patientID: try row.decode("patient_id"), split: split, grader: try row.decodeIfPresent("grader"),
                                  masks: masks, annotatedAt: try row.decode("annotated_at"))
        }
    }

    /// Removes an image's annotation; false when it had none.
    @discardableResult
    public func remove(imageID: Int64) throws -> Bool {
        try connection.query(AnnotationSQL.annotationRemove, [imageID]).affectedRows > 0
    }

    /// Archive ids of images by SHA-256 checksum (for matching annotation folders to archive images by content).
    public func imageIDs(forChecksums checksums: [String]) throws -> [String: Int64] {
        var found: [String: Int64] = [:]
        for row in try connection.query(ArchiveSQL.imageIDsByChecksum, [checksums]).rows {
            found[try row.decode("checksum_sha256")] = try row.decode("id")
        }
        return found
    }
}

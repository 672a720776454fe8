/// Statements over the archive: `images` (sql/0001, sql/0005).
enum ArchiveSQL {
    static var imageIDsByPath: Statement { Statement("""
        SELECT id, path FROM images WHERE path = ANY($1::text[])
        """) }

    static var imageIDsByInstanceUID: Statement { Statement("""
        SELECT id, path, instance_uid FROM images WHERE instance_uid = ANY($1::text[])
        """) }

    /// Adds images from parallel arrays; a path or a SOP Instance UID already in the archive is skipped. Returns
    /// what was added.
    static var imageInsertMany: Statement { Statement("""
        INSERT INTO images (path, patient_id, laterality, acquired_on, study_uid, instance_uid, checksum_sha256, size_bytes,
                            pixel_spacing_mm)
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::text[], $6::text[], $7::text[],
                             $8::bigint[], $9::double precision[])
        ON CONFLICT DO NOTHING
        RETURNING id, path
        """) }

    static var imageGet: Statement { Statement("""
        SELECT id, path, patient_id, laterality, acquired_on::text AS acquired_on, checksum_sha256, size_bytes, pixel_spacing_mm
        FROM images WHERE id = $1
        """) }

    static var imageCount: Statement { Statement("""
        SELECT count(*) AS n FROM images
        """) }

    static var imageExists: Statement { Statement("""
        SELECT 1 FROM images WHERE id = $1
        """) }

    /// Archive ids of images by SHA-256 checksum $1 (text[]); the oldest image of a checksum that is there twice.
    static var imageIDsByChecksum: Statement { Statement("""
        SELECT DISTINCT ON (checksum_sha256) checksum_sha256, id FROM images
        WHERE checksum_sha256 = ANY($1::text[]) ORDER BY checksum_sha256, id
        """) }
}

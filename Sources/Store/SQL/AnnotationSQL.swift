/// Statements over the graders' annotations: `annotated_images`, `annotation_masks` (sql/0004).
enum AnnotationSQL {
    /// Marks image $1 annotated, in split $2 by grader $3 (NULL: unknown); a second annotation replaces the first.
    static var annotationUpsert: Statement { Statement("""
        INSERT INTO annotated_images (image_id, split, grader) VALUES ($1, $2, $3)
        ON CONFLICT (image_id) DO UPDATE SET split = EXCLUDED.split, grader = EXCLUDED.grader, annotated_at = now()
        """) }

    /// Removes the class masks of image $1 (before writing its new ones).
    static var annotationMasksClear: Statement { Statement("""
        DELETE FROM annotation_masks WHERE image_id = $1
        """) }

    /// The class masks of image $1 from parallel arrays: $2 class codes, $3 mask paths (NULL: the class is absent).
    static var annotationMasksInsert: Statement { Statement("""
        INSERT INTO annotation_masks (image_id, lesion_class, mask_path)
        SELECT $1, c, p FROM unnest($2::text[], $3::text[]) AS m(c, p)
        """) }

    /// Annotated images of split $1 (NULL: all) with their classes and masks (empty path: absent), in path order.
    static var annotationList: Statement { Statement("""
        SELECT a.image_id, i.path, i.patient_id, a.split, a.grader, a.annotated_at,
               array_agg(m.lesion_class ORDER BY m.lesion_class) AS classes,
               array_agg(coalesce(m.mask_path, '') ORDER BY m.lesion_class) AS masks
        FROM annotated_images a
        JOIN images i ON i.id = a.image_id
        JOIN annotation_masks m ON m.image_id = a.image_id
        WHERE $1::text IS NULL OR a.split = $1::text
        GROUP BY a.image_id, i.path, i.patient_id, a.split, a.grader, a.annotated_at
        ORDER BY i.path
        """) }

    /// Removes image $1's annotation (its masks go with it).
    static var annotationRemove: Statement { Statement("""
        DELETE FROM annotated_images WHERE image_id = $1
        """) }
}

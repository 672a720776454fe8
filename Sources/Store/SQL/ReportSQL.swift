/// What reports and exports read: images with their screening results, under `images`, `screening_results`,
/// `findings`, `optic_discs` and `model_versions` (sql/0001, sql/0003, sql/0006, sql/0008). Read only.
enum ReportSQL {
    /// The columns a `ScreenedImage` is decoded from (`ScreenedImage.decode`), over `images i`, `screening_results r`
    /// and `model_versions m`, with the settings of the run that wrote the result (`screening_runs s`, left-joined).
    static let screenedImageColumns = """
        i.id AS image_id, i.patient_id, i.laterality, i.path, r.id AS result_id, r.gradable, r.ungradable_reasons,
        r.flag, r.flag_rule, r.flag_rule_version, r.screened_at, r.screening_run_id, m.name AS model_version,
        s.settings::text AS run_settings
        """

    /// Patients chosen by the selection ($1 patient id, $2 screening run id, $3 screened since; NULL = any), and for
    /// each of their images the newest result under any model version, with the model's name.
    static var newestResultsOfPatients: Statement { Statement("""
        WITH chosen AS (
            SELECT DISTINCT i.patient_id
            FROM images i JOIN screening_results r ON r.image_id = i.id
            WHERE ($1::text IS NULL OR i.patient_id = $1)
              AND ($2::bigint IS NULL OR r.screening_run_id = $2)
              AND ($3::timestamptz IS NULL OR r.screened_at >= $3)
        )
        SELECT \(screenedImageColumns)
        FROM images i
        JOIN chosen c ON c.patient_id = i.patient_id
        JOIN LATERAL (
            SELECT * FROM screening_results r WHERE r.image_id = i.id ORDER BY r.screened_at DESC, r.id DESC LIMIT 1
        ) r ON true
        JOIN model_versions m ON m.id = r.model_version_id
        LEFT JOIN screening_runs s ON s.id = r.screening_run_id
        ORDER BY i.patient_id, i.laterality NULLS LAST, i.path
        """) }

    /// Images $1 (bigint[]) with their result under model version $2, in the order given; an image without one is
    /// left out.
    static var resultsOfImages: Statement { Statement("""
        SELECT \(screenedImageColumns)
        FROM unnest($1::bigint[]) WITH ORDINALITY AS wanted (id, position)
        JOIN images i ON i.id = wanted.id
        JOIN screening_results r ON r.image_id = i.id AND r.model_version_id = $2::bigint
        JOIN model_versions m ON m.id = r.model_version_id
        LEFT JOIN screening_runs s ON s.id = r.screening_run_id
        ORDER BY wanted.position
        """) }

    /// The per-class findings of results $1 (bigint[]), classes in the order EX, HE, SE, MA.
    static var findingsOfResults: Statement { Statement("""
        SELECT result_id, lesion_class, lesion_count, area_px, fov_share, area_mm2, largest_lesion_px, mask_path,
               probability_path
        FROM findings WHERE result_id = ANY($1::bigint[])
        ORDER BY result_id, array_position(ARRAY['EX', 'HE', 'SE', 'MA'], lesion_class)
        """) }

    /// The optic discs of results $1 (bigint[]) (optic_discs, sql/0006).
    static var opticDiscsOfResults: Statement { Statement("""
        SELECT result_id, found, centre_x, centre_y, diameter_px, area_px, area_mm2_from_disc, assumed_diameter_mm
        FROM optic_discs WHERE result_id = ANY($1::bigint[])
        """) }
}

/// Statements for screening results, findings and lesions.
enum FindingsSQL {
    /// Removes the result of image $1 under model version $2 (its findings and lesions go with it).
    static var resultDelete: Statement { Statement("""
        DELETE FROM screening_results WHERE image_id = $1 AND model_version_id = $2
        """) }

    /// The verdict goes in `flag` (sql/0008) and whether it asks for review in `flagged` beside it.
    static var resultInsert: Statement { Statement("""
        INSERT INTO screening_results (image_id, model_version_id, screening_run_id, job_id, gradable, ungradable_reasons,
                                       flag, flagged, flag_rule, flag_rule_version)
        VALUES ($1, $2, $3, $4, $5, $6::text[], $7, $8, $9, $10)
        RETURNING id
        """) }

    /// All classes of result $1 from parallel arrays.
    static var findingInsertMany: Statement { Statement("""
        INSERT INTO findings (result_id, lesion_class, lesion_count, area_px, fov_share, area_mm2, largest_lesion_px,
                              mask_path, probability_path)
        SELECT $1, * FROM unnest($2::text[], $3::integer[], $4::bigint[], $5::double precision[], $6::double precision[],
                                 $7::bigint[], $8::text[], $9::text[])
        """) }

    /// All lesions of result $1 from parallel arrays, one statement per image however many lesions it has.
    static var lesionInsertMany: Statement { Statement("""
        INSERT INTO lesions (result_id, lesion_class, lesion_index, bbox_x, bbox_y, bbox_width, bbox_height, area_px,
                             centroid_x, centroid_y, mean_probability, max_probability)
        SELECT $1, * FROM unnest($2::text[], $3::integer[], $4::integer[], $5::integer[], $6::integer[], $7::integer[],
                                 $8::bigint[], $9::double precision[], $10::double precision[], $11::real[], $12::real[])
        """) }

    /// The optic disc of result $1 (optic_discs, sql/0006).
    static var opticDiscInsert: Statement { Statement("""
        INSERT INTO optic_discs (result_id, found, centre_x, centre_y, diameter_px, area_px, area_mm2_from_disc,
                                 assumed_diameter_mm)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        """) }

    /// The optic disc of result $1 (optic_discs, sql/0006).
    static var opticDiscGet: Statement { Statement("""
        SELECT found, centre_x, centre_y, diameter_px, area_px, area_mm2_from_disc, assumed_diameter_mm
        FROM optic_discs WHERE result_id = $1
        """) }

    static var resultGet: Statement { Statement("""
        SELECT id, screening_run_id, gradable, ungradable_reasons, flag, flag_rule, flag_rule_version
        FROM screening_results WHERE image_id = $1 AND model_version_id = $2
        """) }

    static var findingList: Statement { Statement("""
        SELECT lesion_class, lesion_count, area_px, fov_share, area_mm2, largest_lesion_px, mask_path, probability_path
        FROM findings WHERE result_id = $1
        ORDER BY array_position(ARRAY['EX', 'HE', 'SE', 'MA'], lesion_class)
        """) }

    static var lesionList: Statement { Statement("""
        SELECT lesion_class, lesion_index, bbox_x, bbox_y, bbox_width, bbox_height, area_px, centroid_x, centroid_y,
               mean_probability, max_probability
        FROM lesions WHERE result_id = $1
        ORDER BY lesion_class, lesion_index
        """) }
}

/// Statements over the model registry and the runs: `model_versions`, `training_runs`, `screening_runs` (sql/0001).
enum ModelSQL {
    /// The columns a `ModelVersion` is decoded from (`ModelRegistry.decode`).
    static let versionColumns = """
        id, name, architecture, weights_path, checksum_sha256, metrics::text AS metrics, status::text AS status,
        training_run_id, created_at, promoted_at, retired_at
        """

    /// Registers a candidate: $1 name, $2 architecture, $3 weights path, $4 checksum, $5 metrics (jsonb),
    /// $6 training run (NULL: none).
    static var modelVersionInsert: Statement { Statement("""
        INSERT INTO model_versions (name, architecture, weights_path, checksum_sha256, metrics, training_run_id)
        VALUES ($1, $2, $3, $4, $5::jsonb, $6)
        RETURNING \(versionColumns)
        """) }

    /// Locks version $1 and the active one, in id order, so that concurrent activations take turns.
    static var modelVersionLockForActivation: Statement { Statement("""
        SELECT \(versionColumns) FROM model_versions WHERE id = $1 OR status = 'active' ORDER BY id FOR UPDATE
        """) }

    /// Retires the active version unless it is $1.
    static var modelVersionRetireActive: Statement { Statement("""
        UPDATE model_versions SET status = 'retired', retired_at = now()
        WHERE status = 'active' AND id <> $1
        """) }

    /// Makes version $1 the active one (run after modelVersionRetireActive).
    static var modelVersionPromote: Statement { Statement("""
        UPDATE model_versions SET status = 'active', promoted_at = now(), retired_at = NULL
        WHERE id = $1
        RETURNING \(versionColumns)
        """) }

    static var modelVersionRetire: Statement { Statement("""
        UPDATE model_versions SET status = 'retired', retired_at = now() WHERE id = $1 AND status <> 'retired'
        """) }

    static var modelVersionActive: Statement { Statement("""
        SELECT \(versionColumns) FROM model_versions WHERE status = 'active'
        """) }

    static var modelVersionByName: Statement { Statement("""
        SELECT \(versionColumns) FROM model_versions WHERE name = $1
        """) }

    static var modelVersionList: Statement { Statement("""
        SELECT \(versionColumns) FROM model_versions ORDER BY id
        """) }

    static var modelVersionExists: Statement { Statement("""
        SELECT 1 FROM model_versions WHERE id = $1
        """) }

    /// Starts a training run: $1 architecture, $2 configuration (jsonb), $3 host.
    static var trainingRunStart: Statement { Statement("""
        INSERT INTO training_runs (architecture, config, host) VALUES ($1, $2::jsonb, $3) RETURNING id
        """) }

    /// Finishes running training run $1 as $2 (succeeded, failed, cancelled) with metrics $3 (jsonb) and error $4.
    static var trainingRunFinish: Statement { Statement("""
        UPDATE training_runs SET state = $2::training_state, finished_at = now(), metrics = $3::jsonb, error = $4
        WHERE id = $1 AND state = 'running'
        """) }

    /// Starts a screening run: $1 model version, $2 worker, $3 settings (jsonb).
    static var screeningRunStart: Statement { Statement("""
        INSERT INTO screening_runs (model_version_id, worker, settings) VALUES ($1, $2, $3::jsonb) RETURNING id
        """) }

    /// Finishes running screening run $1 after $2 images: finished, or failed with error $3.
    static var screeningRunFinish: Statement { Statement("""
        UPDATE screening_runs
        SET state = CASE WHEN $3::text IS NULL THEN 'finished' ELSE 'failed' END::screening_run_state,
            finished_at = now(), images_screened = $2, error = $3::text
        WHERE id = $1 AND state = 'running'
        """) }
}

/// The screening work that follows the model registry: what a model version is queued for when it becomes active,
/// and the operator's re-screen of the archive. Every statement keys its jobs with `screening_job_key(image, model
/// version)` (sql/0007, as `jobInsertScreening`), so running any of them twice adds nothing.
extension QueueSQL {
    /// Queues screening with model version $1 as it becomes active, in the activating transaction and before its
    /// row is marked active ($1's earlier promotion and retirement decide the scope). $2 queue, $3 priority,
    /// $4 max attempts. Images that already have a result for $1 are never queued. The others are queued when:
    /// - no version was ever active before (the first activation): the whole archive;
    /// - $1 was active once and is coming back (rollback): what was imported while it was retired;
    /// - no model was ever asked to screen the image (it was imported while no model was active);
    /// - the image waits for the version being replaced (jobCancelSupersededScreening cancels that job).
    /// Activating the version that is already active queues nothing. Returns the ids inserted.
    static var jobInsertScreeningOnActivation: Statement { Statement("""
        INSERT INTO jobs (kind, queue, priority, max_attempts, image_id, model_version_id, unique_key)
        SELECT 'screen', $2::text, $3::smallint, $4::integer, i.id, m.id, screening_job_key(i.id, m.id)
        FROM model_versions m CROSS JOIN images i
        WHERE m.id = $1::bigint AND m.status <> 'active'
          AND NOT EXISTS (SELECT 1 FROM screening_results r WHERE r.image_id = i.id AND r.model_version_id = m.id)
          AND (NOT EXISTS (SELECT 1 FROM model_versions o WHERE o.id <> m.id AND o.promoted_at IS NOT NULL)
               OR (m.promoted_at IS NOT NULL AND i.imported_at >= m.retired_at)
               OR (NOT EXISTS (SELECT 1 FROM jobs j WHERE j.kind = 'screen' AND j.image_id = i.id)
                   AND NOT EXISTS (SELECT 1 FROM screening_results r WHERE r.image_id = i.id))
               OR EXISTS (SELECT 1 FROM jobs j JOIN model_versions a ON a.id = j.model_version_id
                          WHERE j.kind = 'screen' AND j.image_id = i.id AND a.status = 'active' AND a.id <> m.id
                            AND j.state IN ('available', 'retryable')))
        ORDER BY i.id
        ON CONFLICT (kind, unique_key) WHERE unique_key IS NOT NULL DO NOTHING
        RETURNING id
        """) }

    /// Cancels the screening jobs still waiting for the version that model version $1 replaces (the one active
    /// now), noting $2 (the new version's name) as the reason; run after jobInsertScreeningOnActivation, which
    /// queued their images for $1. Running jobs finish. Returns the ids cancelled.
    static var jobCancelSupersededScreening: Statement { Statement("""
        UPDATE jobs SET state = 'cancelled', finalized_at = now(),
                        errors = array_append(errors, jsonb_build_object(
                            'attempt', attempt, 'at', now(), 'worker', 'model registry',
                            'message', 'superseded: model version ' || $2::text || ' became active'))
        WHERE kind = 'screen' AND state IN ('available', 'retryable')
          AND model_version_id IN (SELECT id FROM model_versions WHERE status = 'active' AND id <> $1::bigint)
        RETURNING id
        """) }

    /// Re-screening of the archive with model version $1: every image imported at or after $5 (NULL: all of them)
    /// that has no result for $1. $2 queue, $3 priority, $4 max attempts. Returns the ids inserted.
    static var jobInsertRescreen: Statement { Statement("""
        INSERT INTO jobs (kind, queue, priority, max_attempts, image_id, model_version_id, unique_key)
        SELECT 'screen', $2::text, $3::smallint, $4::integer, i.id, $1::bigint, screening_job_key(i.id, $1::bigint)
        FROM images i
        WHERE ($5::timestamptz IS NULL OR i.imported_at >= $5::timestamptz)
          AND NOT EXISTS (SELECT 1 FROM screening_results r WHERE r.image_id = i.id AND r.model_version_id = $1::bigint)
        ORDER BY i.id
        ON CONFLICT (kind, unique_key) WHERE unique_key IS NOT NULL DO NOTHING
        RETURNING id
        """) }

    /// Moves the waiting screening jobs of images $1 (bigint[]) with model version $2 to queue $3 (the local form
    /// screens a folder on its own queue, and the folder's images may have been queued by an archive import).
    /// Returns the ids moved.
    static var jobMoveWaitingScreening: Statement { Statement("""
        UPDATE jobs SET queue = $3::text
        WHERE kind = 'screen' AND image_id = ANY($1::bigint[]) AND model_version_id = $2::bigint
          AND state IN ('available', 'retryable') AND queue <> $3::text
        RETURNING id
        """) }
}

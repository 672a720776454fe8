-- One unique key for a screening job, defined once: `<image id>/<model version id>`. Every statement that queues
-- screening (Store's QueueSQL: import, activation, re-screen, the local form) keys its jobs with this function, so
-- the unique index on (kind, unique_key) stops an image being queued twice for one model version, whichever path
-- queued it.
CREATE OR REPLACE FUNCTION screening_job_key(image_id bigint, model_version_id bigint) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN image_id::text || '/' || model_version_id::text;

-- Jobs still keyed in the local form's old format `screen:<image>:<model>` (0005 left those whose image and model
-- version had a job under the new key as well: two jobs for one piece of work). Of the screening jobs of one image
-- and model version under either key, one is kept: the one that got furthest (completed, then running, then
-- waiting, then discarded, then cancelled), the oldest among equals. The others lose their key (the unique index
-- ignores NULL) and note the job kept in their metadata (`duplicate_of`); those still waiting are cancelled with
-- that reason, a running one finishes (its result replaces the same result, never adds one), finished ones stay as
-- history. Then the kept jobs still under the old key take the new one. Running this file again changes nothing.
WITH screening AS (
    SELECT id,
           row_number() OVER w AS place,
           first_value(id) OVER w AS kept
    FROM jobs
    WHERE kind = 'screen'
      AND unique_key IN (screening_job_key(image_id, model_version_id),
                         'screen:' || image_id::text || ':' || model_version_id::text)
    WINDOW w AS (PARTITION BY image_id, model_version_id
                 ORDER BY CASE state WHEN 'completed' THEN 0 WHEN 'running' THEN 1 WHEN 'available' THEN 2
                                     WHEN 'retryable' THEN 2 WHEN 'discarded' THEN 3 ELSE 4 END, id)
)
UPDATE jobs j SET
    unique_key = NULL,
    metadata = jsonb_set(j.metadata, '{duplicate_of}', to_jsonb(s.kept)),
    state = CASE WHEN j.state IN ('available', 'retryable') THEN 'cancelled' ELSE j.state END::job_state,
    finalized_at = CASE WHEN j.state IN ('available', 'retryable') THEN now() ELSE j.finalized_at END,
    errors = CASE WHEN j.state IN ('available', 'retryable')
                  THEN array_append(j.errors, jsonb_build_object(
                           'attempt', j.attempt, 'at', now(), 'worker', 'migration 0007',
                           'message', 'duplicate of job ' || s.kept || ' (same image and model version)'))
                  ELSE j.errors END
FROM screening s
WHERE j.id = s.id AND s.place > 1;

UPDATE jobs SET unique_key = screening_job_key(image_id, model_version_id)
WHERE kind = 'screen' AND unique_key = 'screen:' || image_id::text || ':' || model_version_id::text;

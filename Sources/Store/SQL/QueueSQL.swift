/// Every statement of the job queue, one per name, readable (and `EXPLAIN`-able) without the Swift around it.
/// Parameters are `$n`, cast to their types; nothing is ever pasted into these strings.
enum QueueSQL {
    /// Inserts many jobs at once from parallel arrays; a job whose (kind, unique_key) exists already is skipped.
    /// $1 kind[] $2 queue[] $3 priority[] $4 max_attempts[] $5 args[] (jsonb) $6 image_id[] $7 model_version_id[]
    /// $8 unique_key[] $9 scheduled_at[] (NULL = now). Returns the ids inserted.
    static var jobInsertMany: Statement { Statement("""
        INSERT INTO jobs (kind, queue, priority, max_attempts, args, image_id, model_version_id, unique_key, scheduled_at)
        SELECT kind, queue, priority, max_attempts, args, image_id, model_version_id, unique_key, coalesce(scheduled_at, now())
        FROM unnest($1::text[], $2::text[], $3::smallint[], $4::integer[], $5::jsonb[], $6::bigint[], $7::bigint[],
                    $8::text[], $9::timestamptz[])
             AS new (kind, queue, priority, max_attempts, args, image_id, model_version_id, unique_key, scheduled_at)
        ON CONFLICT (kind, unique_key) WHERE unique_key IS NOT NULL DO NOTHING
        RETURNING id
        """) }

    /// Enqueues screening of images $1 (bigint[]) with model version $2 in queue $3 at priority $4, skipping
    /// images that already have a job or a result for that model version; $5 max attempts. Returns the ids inserted.
    /// The one key of a screening job is `screening_job_key(image, model version)` (sql/0007): every statement that
    /// queues screening uses it, so no two paths can queue the same work twice.
    static var jobInsertScreening: Statement { Statement("""
        INSERT INTO jobs (kind, queue, priority, max_attempts, image_id, model_version_id, unique_key)
        SELECT 'screen', $3::text, $4::smallint, $5::integer, img.id, $2::bigint, screening_job_key(img.id, $2::bigint)
        FROM unnest($1::bigint[]) AS img (id)
        WHERE NOT EXISTS (SELECT 1 FROM screening_results r WHERE r.image_id = img.id AND r.model_version_id = $2::bigint)
        ON CONFLICT (kind, unique_key) WHERE unique_key IS NOT NULL DO NOTHING
        RETURNING id
        """) }

    /// Claims up to $3 claimable jobs of queue $1 for worker $2: highest priority first, then oldest. Rows other
    /// workers have locked are skipped, so concurrent claims never wait on each other or take the same job.
    static var jobClaim: Statement { Statement("""
        WITH picked AS (
            SELECT id FROM jobs
            WHERE state IN ('available', 'retryable') AND queue = $1 AND scheduled_at <= now()
              AND ($4::bigint IS NULL OR model_version_id = $4)
            ORDER BY priority, scheduled_at, id
            LIMIT $3
            FOR UPDATE SKIP LOCKED
        )
        UPDATE jobs
        SET state = 'running', attempt = jobs.attempt + 1, attempted_at = now(), heartbeat_at = now(), attempted_by = $2
        FROM picked
        WHERE jobs.id = picked.id
        RETURNING jobs.id, jobs.kind, jobs.queue, jobs.priority, jobs.attempt, jobs.max_attempts, jobs.args::text AS args,
                  jobs.image_id, jobs.model_version_id, jobs.attempted_by, jobs.scheduled_at, jobs.attempted_at
        """) }

    /// Refreshes the heartbeat of the jobs worker $1 still holds: ids $2 with attempts $3. Returns those it holds;
    /// any missing was rescued and now belongs to someone else.
    static var jobHeartbeat: Statement { Statement("""
        UPDATE jobs SET heartbeat_at = now()
        FROM unnest($2::bigint[], $3::integer[]) AS held (id, attempt)
        WHERE jobs.id = held.id AND jobs.attempt = held.attempt AND jobs.attempted_by = $1 AND jobs.state = 'running'
        RETURNING jobs.id
        """) }

    /// Completes job $1 if worker $3 still holds attempt $2. No row back: the lease was lost.
    static var jobSetCompletedIfRunning: Statement { Statement("""
        UPDATE jobs SET state = 'completed', finalized_at = now()
        WHERE id = $1 AND attempt = $2 AND attempted_by = $3 AND state = 'running'
        RETURNING id
        """) }

    /// Records a failed attempt of job $1 (attempt $2, worker $3, message $4). Permanent ($5) or out of attempts:
    /// discarded now. Otherwise retryable, scheduled $6 seconds from now. Returns the new state and schedule.
    static var jobSetFailedIfRunning: Statement { Statement("""
        UPDATE jobs SET
            state = CASE WHEN $5::boolean OR attempt >= max_attempts THEN 'discarded' ELSE 'retryable' END::job_state,
            finalized_at = CASE WHEN $5::boolean OR attempt >= max_attempts THEN now() END,
            scheduled_at = CASE WHEN $5::boolean OR attempt >= max_attempts THEN scheduled_at
                                ELSE now() + make_interval(secs => $6::double precision) END,
            errors = array_append(errors, jsonb_build_object(
                'attempt', attempt, 'at', now(), 'worker', $3::text, 'message', $4::text, 'permanent', $5::boolean))
        WHERE id = $1 AND attempt = $2 AND attempted_by = $3 AND state = 'running'
        RETURNING state::text AS state, scheduled_at
        """) }

    /// What became of job $1: used to tell "lost the lease" from "already completed by this very attempt" when a
    /// completion is retried after a dropped connection.
    static var jobGetState: Statement { Statement("""
        SELECT state::text AS state, attempt, attempted_by FROM jobs WHERE id = $1
        """) }

    /// The state that attempt $2 of job $1 by worker $3 ended in, if it ended in failure (last error by that worker
    /// for that attempt).
    static var jobFailedState: Statement { Statement("""
        SELECT state::text AS state, scheduled_at FROM jobs
        WHERE id = $1 AND attempt = $2 AND attempted_by = $3 AND state IN ('retryable', 'discarded')
              AND (errors[cardinality(errors)]) ->> 'worker' = $3 AND ((errors[cardinality(errors)]) ->> 'attempt')::integer = $2
        """) }

    /// Running jobs whose heartbeat is older than $1 seconds go back to available (or discarded when their
    /// attempts are spent), the rescue noted in their errors and metadata. Returns the ids and new states.
    static var jobRescueExpired: Statement { Statement("""
        WITH expired AS (
            SELECT id FROM jobs
            WHERE state = 'running' AND heartbeat_at < now() - make_interval(secs => $1::double precision)
            FOR UPDATE SKIP LOCKED
        )
        UPDATE jobs SET
            state = CASE WHEN attempt >= max_attempts THEN 'discarded' ELSE 'available' END::job_state,
            finalized_at = CASE WHEN attempt >= max_attempts THEN now() END,
            scheduled_at = now(),
            errors = array_append(errors, jsonb_build_object(
                'attempt', attempt, 'at', now(), 'worker', attempted_by, 'rescued', true,
                'message', 'lease expired: no heartbeat since ' || heartbeat_at::text)),
            metadata = jsonb_set(metadata, '{rescues}', to_jsonb(coalesce((metadata ->> 'rescues')::integer, 0) + 1))
        FROM expired
        WHERE jobs.id = expired.id
        RETURNING jobs.id, jobs.state::text AS state
        """) }

    /// Jobs by queue and state, with mean queue time (attempted − scheduled) and run time (finalized − attempted)
    /// of those that have them, in seconds.
    static var jobCountByState: Statement { Statement("""
        SELECT queue, state::text AS state, count(*) AS jobs,
               extract(epoch FROM avg(attempted_at - scheduled_at) FILTER (WHERE attempted_at IS NOT NULL)) AS mean_wait_s,
               extract(epoch FROM avg(finalized_at - attempted_at) FILTER (WHERE state = 'completed')) AS mean_run_s
        FROM jobs
        GROUP BY queue, state
        ORDER BY queue, state
        """) }

    /// Up to $2 jobs in state $1 (NULL: any), oldest first.
    static var jobList: Statement { Statement("""
        SELECT id, kind, queue, state::text AS state, priority, attempt, max_attempts, args::text AS args, image_id,
               model_version_id, attempted_by, scheduled_at, attempted_at, finalized_at, unique_key,
               (errors[cardinality(errors)]) ->> 'message' AS last_error, cardinality(errors) AS error_count
        FROM jobs
        WHERE ($1::job_state IS NULL OR state = $1::job_state)
        ORDER BY id
        LIMIT $2
        """) }

    /// Puts finished or waiting jobs $1 (bigint[]) back to available now, with room for one more attempt.
    /// Running jobs are left alone. Returns the ids changed.
    static var jobRetry: Statement { Statement("""
        UPDATE jobs SET state = 'available', scheduled_at = now(), finalized_at = NULL,
                        max_attempts = greatest(max_attempts, attempt + 1)
        WHERE id = ANY($1::bigint[]) AND state <> 'running'
        RETURNING id
        """) }

    /// Discards jobs $1 (bigint[]) that are not finished, by an operator ($2 says who). A running job's worker
    /// will find its completion rejected.
    static var jobDiscard: Statement { Statement("""
        UPDATE jobs SET state = 'discarded', finalized_at = now(),
                        errors = array_append(errors, jsonb_build_object(
                            'attempt', attempt, 'at', now(), 'worker', $2::text, 'message', 'discarded by operator'))
        WHERE id = ANY($1::bigint[]) AND state IN ('available', 'retryable', 'running')
        RETURNING id
        """) }

    /// Deletes up to $2 finished jobs finalized more than $1 seconds ago; run in batches until none is left.
    static var jobPurgeFinished: Statement { Statement("""
        DELETE FROM jobs
        WHERE id IN (
            SELECT id FROM jobs
            WHERE finalized_at < now() - make_interval(secs => $1::double precision)
            LIMIT $2
        )
        """) }
}

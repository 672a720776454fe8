-- The job queue (see design/QUEUE.md): claimed with FOR UPDATE SKIP LOCKED, leases kept by heartbeats.

CREATE TYPE job_state AS ENUM ('available', 'running', 'retryable', 'completed', 'discarded', 'cancelled');

CREATE TABLE jobs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text NOT NULL CHECK (kind <> ''),
    queue            text NOT NULL DEFAULT 'default' CHECK (queue <> ''),
    state            job_state NOT NULL DEFAULT 'available',
    -- 1 runs first: on-demand patient requests 1, the nightly backlog 3.
    priority         smallint NOT NULL DEFAULT 3 CHECK (priority BETWEEN 1 AND 4),
    args             jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(args) = 'object'),
    image_id         bigint REFERENCES images (id) ON DELETE CASCADE,
    model_version_id bigint REFERENCES model_versions (id),
    attempt          integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts     integer NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    scheduled_at     timestamptz NOT NULL DEFAULT now(),
    attempted_at     timestamptz,
    heartbeat_at     timestamptz,
    finalized_at     timestamptz,
    attempted_by     text,
    errors           jsonb[] NOT NULL DEFAULT '{}',
    metadata         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    unique_key       text,
    CHECK (attempt <= max_attempts),
    -- finalized_at is set exactly when the job is finished one way or another.
    CHECK ((state IN ('completed', 'discarded', 'cancelled')) = (finalized_at IS NOT NULL)),
    -- A running job has an owner, a start and a heartbeat.
    CHECK (state <> 'running' OR (attempt >= 1 AND attempted_by IS NOT NULL AND attempted_at IS NOT NULL
                                  AND heartbeat_at IS NOT NULL)),
    -- A screening job names its image and model version.
    CHECK (kind <> 'screen' OR (image_id IS NOT NULL AND model_version_id IS NOT NULL))
) WITH (fillfactor = 90);

-- Claiming: the partial index holds only the jobs that can be claimed.
CREATE INDEX jobs_claimable ON jobs (queue, priority, scheduled_at, id) WHERE state IN ('available', 'retryable');
-- Rescue of expired leases.
CREATE INDEX jobs_running_heartbeat ON jobs (heartbeat_at) WHERE state = 'running';
-- The cleaner.
CREATE INDEX jobs_finalized ON jobs (finalized_at) WHERE finalized_at IS NOT NULL;
CREATE INDEX jobs_state_queue ON jobs (state, queue);
-- Enqueueing the same work twice adds nothing.
CREATE UNIQUE INDEX jobs_unique_key ON jobs (kind, unique_key) WHERE unique_key IS NOT NULL;

-- Wake sleeping workers when jobs become claimable: on insert, and when a job goes back to available.
-- Notifications are sent at commit, one per queue and statement.
CREATE FUNCTION jobs_notify_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('fundus_jobs', q.queue) FROM (SELECT DISTINCT queue FROM inserted) AS q;
    RETURN NULL;
END $$;

CREATE FUNCTION jobs_notify_available() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('fundus_jobs', q.queue)
    FROM (SELECT DISTINCT n.queue FROM updated n JOIN previous o ON o.id = n.id
          WHERE n.state = 'available' AND o.state <> 'available') AS q;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_inserted AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION jobs_notify_inserted();
CREATE TRIGGER jobs_made_available AFTER UPDATE ON jobs
    REFERENCING NEW TABLE AS updated OLD TABLE AS previous FOR EACH STATEMENT EXECUTE FUNCTION jobs_notify_available();

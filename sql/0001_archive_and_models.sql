-- The archive of fundus photographs, the training runs, and the registry of model versions.

-- One row per image file. Laterality is DICOM Image Laterality: R or L, NULL when the archive does not say.
CREATE TABLE images (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    path             text NOT NULL UNIQUE CHECK (path LIKE '/%'),
    patient_id       text NOT NULL CHECK (patient_id <> ''),
    laterality       text CHECK (laterality IN ('R', 'L')),
    acquired_on      date,
    study_uid        text,
    instance_uid     text,
    checksum_sha256  text NOT NULL CHECK (checksum_sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes       bigint NOT NULL CHECK (size_bytes >= 0),
    pixel_spacing_mm double precision CHECK (pixel_spacing_mm > 0),
    imported_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX images_patient ON images (patient_id, laterality);

CREATE TYPE training_state AS ENUM ('running', 'succeeded', 'failed', 'cancelled');

CREATE TABLE training_runs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    architecture text NOT NULL CHECK (architecture <> ''),
    config       jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    state        training_state NOT NULL DEFAULT 'running',
    host         text,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    metrics      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metrics) = 'object'),
    error        text,
    -- A run is finished exactly when it is no longer running; a failed run says why.
    CHECK ((state = 'running') = (finished_at IS NULL)),
    CHECK (state <> 'failed' OR error IS NOT NULL),
    CHECK (finished_at IS NULL OR finished_at >= started_at)
);

CREATE TYPE model_status AS ENUM ('candidate', 'active', 'retired');

CREATE TABLE model_versions (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name             text NOT NULL UNIQUE CHECK (name <> ''),
    architecture     text NOT NULL CHECK (architecture <> ''),
    weights_path     text NOT NULL CHECK (weights_path <> ''),
    checksum_sha256  text NOT NULL CHECK (checksum_sha256 ~ '^[0-9a-f]{64}$'),
    metrics          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metrics) = 'object'),
    status           model_status NOT NULL DEFAULT 'candidate',
    training_run_id  bigint REFERENCES training_runs (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    promoted_at      timestamptz,
    retired_at       timestamptz,
    -- An active model was promoted; a retired one says when; a candidate was never retired.
    CHECK (status <> 'active' OR promoted_at IS NOT NULL),
    CHECK ((status = 'retired') = (retired_at IS NOT NULL))
);
-- At most one model screens the archive at a time.
CREATE UNIQUE INDEX model_versions_one_active ON model_versions (status) WHERE status = 'active';

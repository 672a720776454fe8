-- Screening runs and what they found: one result per image × model version, one finding per lesion class,
-- one row per lesion.

CREATE TYPE screening_run_state AS ENUM ('running', 'finished', 'failed');

CREATE TABLE screening_runs (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_version_id bigint NOT NULL REFERENCES model_versions (id),
    state            screening_run_state NOT NULL DEFAULT 'running',
    worker           text NOT NULL CHECK (worker <> ''),
    settings         jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    started_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    images_screened  integer NOT NULL DEFAULT 0 CHECK (images_screened >= 0),
    error            text,
    CHECK ((state = 'running') = (finished_at IS NULL)),
    CHECK (state <> 'failed' OR error IS NOT NULL)
);

-- The outcome for one image under one model version. Re-screening replaces it (delete and insert in the
-- transaction that completes the job).
CREATE TABLE screening_results (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_id          bigint NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    model_version_id  bigint NOT NULL REFERENCES model_versions (id),
    screening_run_id  bigint REFERENCES screening_runs (id) ON DELETE SET NULL,
    job_id            bigint,  -- no foreign key: finished jobs are purged, results stay
    gradable          boolean NOT NULL,
    ungradable_reasons text[] NOT NULL DEFAULT '{}',
    -- "Suspected more-than-mild DR" for a grader to review; decided by a named, versioned rule.
    flagged           boolean,
    flag_rule         text,
    flag_rule_version text,
    screened_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (image_id, model_version_id),
    -- Ungradable exactly when there are reasons; only gradable images carry a flag, and every flag names its rule.
    CHECK (gradable = (cardinality(ungradable_reasons) = 0)),
    CHECK (gradable OR flagged IS NULL),
    CHECK ((flagged IS NULL) = (flag_rule IS NULL) AND (flag_rule IS NULL) = (flag_rule_version IS NULL))
);
CREATE INDEX screening_results_model ON screening_results (model_version_id, flagged);

CREATE TABLE findings (
    result_id          bigint NOT NULL REFERENCES screening_results (id) ON DELETE CASCADE,
    lesion_class       text NOT NULL CHECK (lesion_class IN ('EX', 'HE', 'SE', 'MA')),
    lesion_count       integer NOT NULL CHECK (lesion_count >= 0),
    area_px            bigint NOT NULL CHECK (area_px >= 0),
    fov_share          double precision NOT NULL CHECK (fov_share BETWEEN 0 AND 1),
    area_mm2           double precision CHECK (area_mm2 >= 0),
    largest_lesion_px  bigint NOT NULL CHECK (largest_lesion_px >= 0),
    mask_path          text,
    probability_path   text,
    PRIMARY KEY (result_id, lesion_class),
    -- No lesions exactly when no area; the largest lesion fits in the total.
    CHECK ((lesion_count = 0) = (area_px = 0)),
    CHECK (largest_lesion_px <= area_px),
    CHECK (lesion_count = 0 OR largest_lesion_px > 0)
);

CREATE TABLE lesions (
    result_id         bigint NOT NULL,
    lesion_class      text NOT NULL,
    lesion_index      integer NOT NULL CHECK (lesion_index >= 0),
    -- Bounding box in pixels of the original image: left, top, width, height.
    bbox_x            integer NOT NULL CHECK (bbox_x >= 0),
    bbox_y            integer NOT NULL CHECK (bbox_y >= 0),
    bbox_width        integer NOT NULL CHECK (bbox_width > 0),
    bbox_height       integer NOT NULL CHECK (bbox_height > 0),
    area_px           bigint NOT NULL CHECK (area_px > 0 AND area_px <= bbox_width::bigint * bbox_height),
    centroid_x        double precision NOT NULL,
    centroid_y        double precision NOT NULL,
    mean_probability  real NOT NULL CHECK (mean_probability BETWEEN 0 AND 1),
    max_probability   real NOT NULL CHECK (max_probability BETWEEN 0 AND 1),
    PRIMARY KEY (result_id, lesion_class, lesion_index),
    FOREIGN KEY (result_id, lesion_class) REFERENCES findings (result_id, lesion_class) ON DELETE CASCADE,
    CHECK (mean_probability <= max_probability),
    CHECK (centroid_x >= bbox_x AND centroid_x <= bbox_x + bbox_width
           AND centroid_y >= bbox_y AND centroid_y <= bbox_y + bbox_height)
);

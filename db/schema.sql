-- The current schema in one file, for readers. Migrations are the source of truth that
-- `conveyor migrate` applies; tests/db/test_migrations.py checks both produce the same database.


CREATE TYPE job_status AS ENUM ('BLOCKED', 'PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED');

-- One row per upload notification, unique by its identity: a duplicate MinIO event or a redelivered
-- Kafka offset finds the row already there and creates nothing.
CREATE TABLE object_events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bucket           text        NOT NULL,
    object_key       text        NOT NULL,
    version_id       text        NOT NULL DEFAULT '',
    event_name       text        NOT NULL,
    sequencer        text        NOT NULL DEFAULT '',
    etag             text,
    size_bytes       bigint,
    content_type     text,
    user_metadata    jsonb       NOT NULL DEFAULT '{}',
    event_time       timestamptz,
    source_topic     text,
    source_partition integer,
    source_offset    bigint,
    received_at      timestamptz NOT NULL DEFAULT now(),
    -- What brought the event: a bucket notification, a reconciliation sweep, a backfill, a replay.
    origin           text        NOT NULL DEFAULT 'notification'
                                 CHECK (origin IN ('notification', 'sweep', 'backfill', 'replay')),
    -- When the object was written (a notification's sequencer or a listing's LastModified), if known.
    modified_at      timestamptz,
    CONSTRAINT object_events_identity UNIQUE (bucket, object_key, version_id, event_name, sequencer)
);
CREATE INDEX object_events_received_at ON object_events (received_at);

CREATE TABLE workers (
    id                  uuid PRIMARY KEY,
    name                text        NOT NULL,
    worker_type         text        NOT NULL DEFAULT 'python',
    capabilities        text[]      NOT NULL DEFAULT '{}',
    max_concurrent_jobs integer     NOT NULL DEFAULT 1 CHECK (max_concurrent_jobs > 0),
    host                text,
    pid                 integer,
    version             text,
    status              text        NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'DRAINING', 'STOPPED', 'LOST')),
    started_at          timestamptz NOT NULL DEFAULT now(),
    last_heartbeat_at   timestamptz NOT NULL DEFAULT now(),
    stopped_at          timestamptz,
    jobs_completed      bigint      NOT NULL DEFAULT 0,
    jobs_failed         bigint      NOT NULL DEFAULT 0
);
CREATE INDEX workers_alive ON workers (last_heartbeat_at) WHERE status IN ('ACTIVE', 'DRAINING');

CREATE TABLE worker_health_logs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    worker_id      uuid        NOT NULL REFERENCES workers (id) ON DELETE CASCADE,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    status         text        NOT NULL,
    jobs_in_flight integer     NOT NULL DEFAULT 0,
    rss_bytes      bigint,
    cpu_percent    real
);
CREATE INDEX worker_health_logs_worker ON worker_health_logs (worker_id, recorded_at DESC);
CREATE INDEX worker_health_logs_recorded_at ON worker_health_logs (recorded_at);

CREATE TABLE jobs (
    id                uuid PRIMARY KEY,            -- UUIDv7: ordering by id is ordering by creation
    job_type          text        NOT NULL,
    payload           jsonb       NOT NULL DEFAULT '{}',
    status            job_status  NOT NULL,
    priority          integer     NOT NULL DEFAULT 0,   -- higher runs first
    attempts          integer     NOT NULL DEFAULT 0,   -- incremented by each claim
    attempt_floor     integer     NOT NULL DEFAULT 0,   -- attempts at the last manual retry
    max_retries       integer     NOT NULL DEFAULT 3 CHECK (max_retries >= 0),
    timeout_ms        integer     NOT NULL DEFAULT 300000 CHECK (timeout_ms > 0),
    run_at            timestamptz NOT NULL DEFAULT now(),
    lease_expires_at  timestamptz,
    worker_id         uuid,
    cancel_requested  boolean     NOT NULL DEFAULT false,
    pending_parents   integer     NOT NULL DEFAULT 0 CHECK (pending_parents >= 0),
    result            jsonb,
    errors            jsonb       NOT NULL DEFAULT '[]',
    idempotency_key   text UNIQUE,
    pipeline          text,
    step              text,
    object_event_id   bigint REFERENCES object_events (id) ON DELETE SET NULL,
    source_bucket     text,
    source_key        text,
    source_version    text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    CONSTRAINT jobs_blocked_has_parents CHECK (status <> 'BLOCKED' OR pending_parents > 0)
);
CREATE INDEX jobs_running_lease ON jobs (lease_expires_at) WHERE status = 'RUNNING';
CREATE INDEX jobs_worker_running ON jobs (worker_id) WHERE status = 'RUNNING';
-- Queue depth for metrics: an index-only count over live jobs, never a scan of history.
CREATE INDEX jobs_live ON jobs (status, job_type) WHERE status IN ('BLOCKED', 'PENDING', 'RUNNING');
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED');
CREATE INDEX jobs_source ON jobs (source_bucket, source_key);
CREATE INDEX jobs_object_event ON jobs (object_event_id);
CREATE INDEX jobs_type_id ON jobs (job_type, id);
ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 1000,
                      autovacuum_analyze_scale_factor = 0.05);

CREATE TABLE job_dependencies (
    parent_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    child_id  uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (parent_id, child_id),
    CHECK (parent_id <> child_id)
);
CREATE INDEX job_dependencies_child ON job_dependencies (child_id);

-- The latest checkpoint of a job, so a retried attempt can resume where the last one stopped.
-- Why a RUNNING job was asked to stop (kind and message), for the error entry its worker writes when it
-- does. A table of its own, not columns of jobs: a worker of the previous release reads every column of
-- the jobs it claims, and must keep working during a rolling upgrade.
CREATE TABLE cancel_requests (
    job_id       uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    kind         text        NOT NULL,
    message      text        NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE state_snapshots (
    job_id     uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    attempt    integer     NOT NULL,
    state      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Messages the ingestor could not turn into jobs, kept with their original bytes and the reason, so
-- `conveyor dlq replay` can send them through routing again after a fix.

CREATE TABLE dead_letters (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reason           text        NOT NULL,
    error            text        NOT NULL,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    message_key      bytea,
    message_value    bytea       NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    replayed_at      timestamptz,
    replay_count     integer     NOT NULL DEFAULT 0,
    last_replay_error text,
    CONSTRAINT dead_letters_source UNIQUE (source_topic, source_partition, source_offset)
);
CREATE INDEX dead_letters_open ON dead_letters (created_at) WHERE replayed_at IS NULL;

-- What "this upload" is: see migration 0003 for the whole story.
-- Whether an object written with (etag, modified) is a new upload, given what is recorded of the same
-- object version. The one definition, used both when recording events and when comparing listings.
-- Two writes are the same upload when their etags are equal and their times are within `tolerance`
-- (listings and notifications carry the time at different precisions). A multipart etag ("<md5>-<parts>")
-- ignores the time: S3 lists a multipart object with the time its upload began, not when it completed.
-- A write older than the recorded one, or not newer than its removal, is stale: a late notification.
CREATE FUNCTION upload_is_new(
    recorded_etag text, recorded_modified timestamptz, removed_at timestamptz,
    etag text, modified timestamptz, tolerance interval
) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN removed_at IS NOT NULL THEN modified IS NULL OR modified > removed_at
        WHEN recorded_modified IS NOT NULL AND modified IS NOT NULL AND modified < recorded_modified - tolerance
            THEN false
        WHEN recorded_etag IS DISTINCT FROM etag THEN true
        WHEN etag LIKE '%-%' OR recorded_modified IS NULL OR modified IS NULL THEN false
        ELSE modified > recorded_modified + tolerance
    END
$$;

CREATE TABLE uploads (
    bucket       text        NOT NULL,
    object_key   text        NOT NULL,
    version_id   text        NOT NULL DEFAULT '',
    etag         text,
    size_bytes   bigint,
    modified_at  timestamptz,
    -- The event that started this upload's pipelines, and the pipelines started for it so far (a
    -- backfill of a new rule adds its pipeline here, so a second backfill starts nothing).
    event_id     bigint REFERENCES object_events (id) ON DELETE SET NULL,
    pipelines    text[]      NOT NULL DEFAULT '{}',
    origin       text        NOT NULL,
    removed_at   timestamptz,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bucket, object_key, version_id)
);
CREATE INDEX uploads_removed ON uploads (removed_at) WHERE removed_at IS NOT NULL;

-- Since when conveyor watches a bucket: sweeps fill gaps from then on; older objects are a backfill's.
-- `sweep_requested_at` asks the reconciler for an early sweep (a gap is suspected).
CREATE TABLE watched_buckets (
    bucket             text PRIMARY KEY,
    since              timestamptz NOT NULL DEFAULT now(),
    sweep_requested_at timestamptz,
    request_reason     text
);

-- Listings of a bucket: reconciliation sweeps and backfills. Each page's outcome and the cursor after it
-- commit in one transaction with the jobs the page created, so a killed run resumes exactly.
CREATE TABLE sweeps (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             text        NOT NULL CHECK (kind IN ('reconcile', 'backfill')),
    bucket           text        NOT NULL,
    prefix           text        NOT NULL DEFAULT '',
    pipeline         text,
    since            timestamptz,
    dry_run          boolean     NOT NULL DEFAULT false,
    reason           text        NOT NULL,
    status           text        NOT NULL DEFAULT 'PENDING'
                                 CHECK (status IN ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED')),
    owner            text,
    lease_expires_at timestamptz,
    cursor_key       text,
    cursor_version   text,
    -- A backfill first counts what it will list (for its progress); the count resumes like the listing.
    count_cursor     text,
    objects_counted  bigint      NOT NULL DEFAULT 0,
    objects_total    bigint,
    objects_listed   bigint      NOT NULL DEFAULT 0,
    objects_missing  bigint      NOT NULL DEFAULT 0,
    objects_started  bigint      NOT NULL DEFAULT 0,
    jobs_created     bigint      NOT NULL DEFAULT 0,
    pages            bigint      NOT NULL DEFAULT 0,
    error            text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sweeps_unfinished ON sweeps (created_at) WHERE status IN ('PENDING', 'RUNNING');
CREATE INDEX sweeps_bucket_finished ON sweeps (bucket, kind, finished_at DESC) WHERE status = 'COMPLETED';

-- Flow control (concurrency keys, fair share, limits): see migration 0004 for the whole story.
-- The previous release reads every column of `jobs` into a record of its own, so a new column would stop
-- its workers mid rolling upgrade. The table takes a new name, and `jobs` stays as a view of the columns
-- that release knows (PostgreSQL updates through a simple view); a later release drops the view.
ALTER TABLE jobs RENAME TO job_rows;
ALTER TABLE job_rows ADD COLUMN concurrency_key text NOT NULL DEFAULT '';
CREATE VIEW jobs AS
SELECT id, job_type, payload, status, priority, attempts, attempt_floor, max_retries, timeout_ms, run_at,
       lease_expires_at, worker_id, cancel_requested, pending_parents, result, errors, idempotency_key,
       pipeline, step, object_event_id, source_bucket, source_key, source_version, created_at, started_at,
       finished_at
FROM job_rows;

-- The fair claim's reads: ready jobs by key in claim order, and each key's RUNNING count.
CREATE INDEX job_rows_claimable_by_key ON job_rows (concurrency_key, priority DESC, run_at, id)
    WHERE status = 'PENDING';
CREATE INDEX job_rows_running_by_key ON job_rows (concurrency_key) WHERE status = 'RUNNING';
-- No statistics of a job's status: a queue's mix changes by the second, and plans made from a quiet
-- moment's read a burst whole (see migration 0006).
ALTER TABLE job_rows ALTER COLUMN status SET STATISTICS 0;

CREATE TYPE flow_scope AS ENUM ('key', 'job_type');

-- A concurrency key's or job type's limits, weight and live counts. A key without a row is unlimited
-- with weight 1. `running` is kept by the trigger below; `tokens` is the rate limit's bucket as of
-- `tokens_at` (it refills at `rate_per_second` up to `burst`). Rows an operator set stay; rows a
-- pipeline or an API call set for a key are pruned once the key has no live jobs.
CREATE TABLE flow_limits (
    scope           flow_scope       NOT NULL,
    name            text             NOT NULL,
    max_running     integer          CHECK (max_running > 0),
    rate_per_second double precision CHECK (rate_per_second > 0),
    burst           integer          CHECK (burst > 0),
    weight          integer          NOT NULL DEFAULT 1 CHECK (weight > 0),
    running         integer          NOT NULL DEFAULT 0 CHECK (running >= 0),
    tokens          double precision NOT NULL DEFAULT 0,
    tokens_at       timestamptz      NOT NULL DEFAULT now(),
    set_by          text             NOT NULL CHECK (set_by IN ('operator', 'pipeline', 'api')),
    updated_at      timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, name),
    CHECK ((rate_per_second IS NULL) = (burst IS NULL))
);

-- Keep `flow_limits.running` equal to the RUNNING jobs of each scope, whichever statement moved them.
-- One call per statement (transition tables), and none of its work when no scope has a row.
CREATE FUNCTION flow_limits_count_running() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM flow_limits) THEN
        RETURN NULL;
    END IF;
    WITH moved AS (
        SELECT n.concurrency_key, n.job_type,
               (n.status = 'RUNNING')::integer - (o.status = 'RUNNING')::integer AS delta
        FROM new_rows n JOIN old_rows o ON o.id = n.id
        WHERE (n.status = 'RUNNING') <> (o.status = 'RUNNING')
    ), deltas AS (
        -- Two equality joins (each on the primary key), not one join on an OR.
        SELECT scope, name, sum(delta) AS delta
        FROM (SELECT l.scope, l.name, m.delta
              FROM moved m JOIN flow_limits l ON l.scope = 'key' AND l.name = m.concurrency_key
              UNION ALL
              SELECT l.scope, l.name, m.delta
              FROM moved m JOIN flow_limits l ON l.scope = 'job_type' AND l.name = m.job_type) AS matched
        GROUP BY scope, name
    ), locked AS (
        -- In (scope, name) order, as the claim locks them: two statements never wait on each other.
        SELECT l.scope, l.name FROM flow_limits l JOIN deltas d USING (scope, name)
        ORDER BY l.scope, l.name FOR UPDATE OF l
    )
    UPDATE flow_limits l
    SET running = greatest(0, l.running + d.delta)
    FROM deltas d JOIN locked k USING (scope, name)
    WHERE l.scope = d.scope AND l.name = d.name;
    RETURN NULL;
END
$$;
CREATE TRIGGER job_rows_count_running AFTER UPDATE ON job_rows
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION flow_limits_count_running();

-- The operator's console: see migration 0005. Job pages by status or bucket in id (creation) order, and a
-- bucket's objects by key prefix in byte order, whatever the database's collation.
CREATE INDEX job_rows_status_id ON job_rows (status, id);
CREATE INDEX job_rows_bucket_id ON job_rows (source_bucket, id);
CREATE INDEX uploads_key_order ON uploads (bucket, (object_key COLLATE "C"), version_id);

-- The Kafka headers a dead letter arrived with ([name, value] pairs): see migration 0005.
CREATE TABLE dead_letter_headers (
    letter_id bigint PRIMARY KEY REFERENCES dead_letters (id) ON DELETE CASCADE,
    headers   jsonb  NOT NULL
);

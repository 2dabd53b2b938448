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
-- The claim query's WHERE and ORDER BY, over ready jobs only: the index stays as small as the backlog.
CREATE INDEX jobs_claimable ON jobs (priority DESC, run_at, id) WHERE status = 'PENDING';
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

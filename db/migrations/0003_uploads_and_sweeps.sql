-- What "this upload" is, and the listings that find the uploads notifications never delivered.
--
-- An upload is one version of one object: (bucket, key, version id) and the content and time it was
-- written (etag, modified_at). Every event that reaches an object (a notification, a sweep's listing, a
-- backfill, a replay) is kept in object_events; only the first event of an upload starts its pipelines.
-- `uploads` holds the latest upload of each object version, so a late or repeated notification, and a
-- sweep that finds what a notification already brought, start nothing.

ALTER TABLE object_events
    ADD COLUMN origin      text NOT NULL DEFAULT 'notification'
        CHECK (origin IN ('notification', 'sweep', 'backfill', 'replay')),
    ADD COLUMN modified_at timestamptz;

-- Why a RUNNING job was asked to stop (kind and message), for the error entry its worker writes when it
-- does. A table of its own, not columns of jobs: a worker of the previous release reads every column of
-- the jobs it claims, and must keep working during a rolling upgrade.
CREATE TABLE cancel_requests (
    job_id       uuid PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    kind         text        NOT NULL,
    message      text        NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now()
);

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

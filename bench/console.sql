-- The console's benchmark data: a million jobs the way a busy week leaves them. Every upload (an object
-- event and its recorded upload) starts three jobs: fingerprint/checksum, fingerprint/inspect (after the
-- checksum) and csv/profile. Uploads are spread evenly over the last $3 seconds across $2 buckets; the newest
-- hundredth is still live (RUNNING, PENDING, BLOCKED), the rest finished: 96% COMPLETED, 3% FAILED with an
-- error entry, 1% CANCELLED. Ids are UUIDv7 of the creation time, as the engine makes them.

-- name: console_fill_events
-- $1 uploads, $2 buckets, $3 seconds.
INSERT INTO object_events (bucket, object_key, event_name, sequencer, etag, size_bytes, received_at, modified_at,
                           origin)
SELECT 'bench-' || (n % $2), format('incoming/%s/orders-%s.csv', n % 97, n), 's3:ObjectCreated:Put', to_hex(n),
       md5(n::text), 1000 + n % 100000, at, at, CASE WHEN n % 500 = 0 THEN 'sweep' ELSE 'notification' END
FROM generate_series(1, $1::int) AS n,
     LATERAL (SELECT now() - make_interval(secs => $3::float8 * ($1 - n) / $1)) AS t(at);

-- name: console_fill_uploads
INSERT INTO uploads (bucket, object_key, version_id, etag, size_bytes, modified_at, event_id, origin, pipelines,
                     recorded_at)
SELECT bucket, object_key, '', etag, size_bytes, modified_at, id, origin, '{fingerprint,csv}', received_at
FROM object_events;

-- name: console_fill_jobs
-- $1 uploads (the newest hundredth is live), $2 the ids of the workers that run the RUNNING ones.
INSERT INTO job_rows (id, job_type, payload, status, attempts, max_retries, run_at, pending_parents, result, errors,
                      pipeline, step, object_event_id, source_bucket, source_key, source_version, created_at,
                      started_at, finished_at, worker_id, lease_expires_at)
SELECT (lpad(to_hex((extract(epoch FROM created) * 1000)::bigint), 12, '0') || '7' || substr(md5(random()::text), 1, 3)
        || '8' || substr(md5(random()::text), 1, 15))::uuid,
       s.job_type, '{"params": {}}', status::job_status, CASE WHEN status IN ('PENDING', 'BLOCKED') THEN 0 ELSE 1 END,
       3, created, CASE WHEN status = 'BLOCKED' THEN 1 ELSE 0 END,
       CASE WHEN status = 'COMPLETED' THEN jsonb_build_object('sha256', e.etag, 'bytes', e.size_bytes) END,
       CASE WHEN status = 'FAILED' THEN jsonb_build_array(jsonb_build_object('at', created, 'attempt', 1, 'kind',
            'error', 'message', 'ValueError: line 7 has 3 fields, the header 2'))
            WHEN status = 'CANCELLED' THEN jsonb_build_array(jsonb_build_object('at', created, 'attempt', 0, 'kind',
            'cancelled', 'message', 'cancelled by request'))
            ELSE '[]' END,
       s.pipeline, s.step, e.id, e.bucket, e.object_key, '', created,
       CASE WHEN status IN ('COMPLETED', 'FAILED', 'RUNNING') THEN created + interval '40 ms' END,
       CASE WHEN status IN ('COMPLETED', 'FAILED', 'CANCELLED') THEN created + interval '90 ms' END,
       CASE WHEN status = 'RUNNING' THEN ($2::uuid[])[1 + e.id % cardinality($2::uuid[])] END,
       CASE WHEN status = 'RUNNING' THEN now() + interval '5 minutes' END
FROM object_events e
CROSS JOIN (VALUES ('checksum', 'fingerprint', 'checksum', 0), ('inspect', 'fingerprint', 'inspect', 1),
                   ('csv.profile', 'csv', 'profile', 2)) AS s(job_type, pipeline, step, k)
CROSS JOIN LATERAL (SELECT e.received_at + make_interval(secs => s.k / 1000.0) AS created,
                           CASE WHEN e.id > $1::int * 0.99 THEN
                                    CASE s.step WHEN 'inspect' THEN 'BLOCKED'
                                                ELSE CASE WHEN e.id % 4 = 0 THEN 'RUNNING' ELSE 'PENDING' END END
                                WHEN abs(hashint4((e.id * 3 + s.k)::int)) % 100 IN (0, 1, 2) THEN 'FAILED'
                                WHEN abs(hashint4((e.id * 3 + s.k)::int)) % 100 = 3 THEN 'CANCELLED'
                                ELSE 'COMPLETED' END AS status) AS l;

-- name: console_fill_edges
INSERT INTO job_dependencies (parent_id, child_id)
SELECT c.id, i.id
FROM job_rows c JOIN job_rows i ON i.object_event_id = c.object_event_id
WHERE c.step = 'checksum' AND i.step = 'inspect';

-- name: console_fill_dead_letters
-- $1 letters.
INSERT INTO dead_letters (reason, error, source_topic, source_partition, source_offset, message_key, message_value)
SELECT 'unrouted', 'no pipeline matches s3://bench-0/elsewhere/' || n, 'conveyor.events', n % 4, n,
       convert_to('bench-0/elsewhere/' || n, 'UTF8'),
       convert_to('{"EventName": "s3:ObjectCreated:Put", "Key": "bench-0/elsewhere/' || n || '"}', 'UTF8')
FROM generate_series(1, $1::int) AS n;

-- name: console_fill_backfills
-- $1 finished backfills of the first bucket, one per prefix.
INSERT INTO sweeps (kind, bucket, prefix, reason, status, objects_total, objects_listed, objects_started,
                    jobs_created, pages, created_at, started_at, finished_at)
SELECT 'backfill', 'bench-0', format('incoming/%s/', n), 'bench', 'COMPLETED', 3437, 3437, 3437, 10311, 4,
       now() - make_interval(hours => n), now() - make_interval(hours => n), now() - make_interval(hours => n)
FROM generate_series(1, $1::int) AS n;

-- name: console_fill_limits
-- $1 keys capped by an operator, and two job types rate-limited.
INSERT INTO flow_limits (scope, name, max_running, rate_per_second, burst, weight, set_by)
SELECT 'key'::flow_scope, format('bench-%s/incoming/%s', n % 4, n), 4, NULL::float8, NULL::int, 1 + n % 3, 'operator'
FROM generate_series(1, $1::int) AS n
UNION ALL
SELECT 'job_type'::flow_scope, t, NULL, 50, 50, 1, 'operator' FROM unnest(ARRAY['checksum', 'inspect']) AS t;

-- name: console_counts
SELECT current_setting('fsync') AS fsync, (SELECT count(*) FROM job_rows) AS jobs, (SELECT count(*) FROM object_events) AS events,
       (SELECT count(*) FROM job_dependencies) AS edges;

-- name: console_sample
-- Values the pages are asked about: a FAILED job, an object with its jobs, a key prefix, a job mid-way.
SELECT (SELECT id FROM job_rows WHERE status = 'FAILED' ORDER BY id DESC LIMIT 1) AS failed_job,
       (SELECT id FROM job_rows WHERE step = 'inspect' ORDER BY id DESC OFFSET 50000 LIMIT 1) AS inspect_job,
       (SELECT id FROM job_rows ORDER BY id DESC OFFSET 500000 LIMIT 1) AS middle_job,
       (SELECT bucket FROM object_events ORDER BY id DESC OFFSET 1000 LIMIT 1) AS bucket,
       (SELECT object_key FROM object_events ORDER BY id DESC OFFSET 1000 LIMIT 1) AS object_key;

-- What the console's two indexes on job_rows cost every job's writes (migration 0005): dropped and made
-- again between otherwise identical runs of the engine benchmark's enqueue and drain.

-- name: console_drop_job_indexes
DROP INDEX IF EXISTS job_rows_status_id, job_rows_bucket_id;

-- name: console_create_job_indexes
CREATE INDEX IF NOT EXISTS job_rows_status_id ON job_rows (status, id);
CREATE INDEX IF NOT EXISTS job_rows_bucket_id ON job_rows (source_bucket, id);

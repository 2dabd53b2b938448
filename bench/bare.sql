-- The bare loop of bench/engine.py: the least work a PostgreSQL queue can do per job, with no framework
-- around it. It sets the ceiling conveyor's engine is measured against.

-- name: bare_claim
-- $1 worker, $2 batch size. The bench's jobs carry no concurrency key (''): the ready ones in claim order are
-- one range of the index conveyor's claim reads (job_rows_claimable_by_key), the only index of ready jobs.
WITH next AS (
    SELECT id FROM job_rows
    WHERE concurrency_key = '' AND status = 'PENDING' AND run_at <= now()
    ORDER BY concurrency_key, priority DESC, run_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE job_rows j SET status = 'RUNNING', attempts = j.attempts + 1, worker_id = $1, started_at = now()
FROM next WHERE j.id = next.id
RETURNING j.id, j.attempts;

-- name: bare_complete
-- $1 ids, $2 attempts. The ids reach unnest through a sub-select, as in conveyor's job_complete_many: given $1
-- itself, a custom plan for one id looks cheaper than the generic plan's guess of ten, and PostgreSQL then
-- plans the statement afresh on every call.
UPDATE job_rows j SET status = 'COMPLETED', finished_at = now(), result = '{}'
FROM unnest((SELECT $1::uuid[]), $2::integer[]) AS u(id, attempt)
WHERE j.id = u.id AND j.status = 'RUNNING' AND j.attempts = u.attempt;

-- name: bench_reset
-- Empty the queue between runs.
TRUNCATE job_rows CASCADE;

-- name: bench_durability
SELECT current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS synchronous_commit,
       current_setting('server_version') AS server_version;

-- name: bench_completed
-- How many jobs are COMPLETED (benchmarks poll this on their own small database).
SELECT count(*) FROM job_rows WHERE status = 'COMPLETED';

-- name: bench_running
-- How many jobs are RUNNING.
SELECT count(*) FROM job_rows WHERE status = 'RUNNING';

-- name: bench_started_of
-- When each of jobs $1 was created and started (NULL: not yet).
SELECT created_at, started_at FROM job_rows WHERE id = ANY($1::uuid[]);

-- name: bench_start_times
-- Every start recorded.
SELECT started_at FROM job_rows WHERE started_at IS NOT NULL;

-- The bare loop of bench/ingest.py: the rows one ingest batch writes (its events, their uploads, two jobs
-- each and the edge between them), inserted as typed arrays with no framework around them.

-- name: bare_events
-- $1.. one array per column; returns the new ids in the order given.
INSERT INTO object_events (bucket, object_key, version_id, event_name, sequencer, etag, size_bytes, content_type,
                           event_time, source_topic, source_partition, source_offset, modified_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
                     $8::text[], $9::timestamptz[], $10::text[], $11::integer[], $12::bigint[], $13::timestamptz[])
RETURNING id;

-- name: bare_uploads
INSERT INTO uploads (bucket, object_key, version_id, etag, size_bytes, modified_at, event_id, origin, pipelines)
SELECT b, k, v, e, s, m, i, 'notification', ARRAY[p]
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::timestamptz[], $7::bigint[],
            $8::text[]) AS u(b, k, v, e, s, m, i, p);

-- name: bare_jobs
INSERT INTO job_rows (id, job_type, payload, status, pending_parents, pipeline, step, object_event_id, source_bucket,
                      source_key)
SELECT i, t, p::jsonb, s::job_status, n, pl, st, e, b, k
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::integer[], $6::text[], $7::text[], $8::bigint[],
            $9::text[], $10::text[]) AS u(i, t, p, s, n, pl, st, e, b, k);

-- name: bare_edges
INSERT INTO job_dependencies (parent_id, child_id) SELECT * FROM unnest($1::uuid[], $2::uuid[]);

-- name: bench_span
-- Seconds from the first job started to the last one finished, over the COMPLETED jobs.
SELECT extract(epoch FROM max(finished_at) - min(started_at))::float8 FROM job_rows WHERE status = 'COMPLETED';

-- The bare endpoint of bench/api.py: one statement per request, nothing around it.

-- name: bare_insert_job
INSERT INTO job_rows (id, job_type, payload, status) VALUES ($1, $2, $3, 'PENDING');

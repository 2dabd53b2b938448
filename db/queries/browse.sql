-- The operator's read side: pages over many rows for the console, each served by an index in the order
-- it shows (migration 0005). Run with `plan_cache_mode = force_custom_plan` (browse_custom_plans): a
-- generic plan of an optional filter (`$1 IS NULL OR status = $1`) cannot pick the index that filter needs.

-- name: browse_custom_plans
SET LOCAL plan_cache_mode = force_custom_plan;

-- name: browse_jobs_descending
-- A page of jobs, highest id (newest) first. Optional filters: $1 status, $2 type, $3 source bucket, $4
-- source key; $5 ids above this one, $6 ids below this one (keyset bounds and creation-time bounds); $7 limit.
SELECT j.*
FROM job_rows j
WHERE ($1::job_status IS NULL OR j.status = $1)
  AND ($2::text IS NULL OR j.job_type = $2)
  AND ($3::text IS NULL OR j.source_bucket = $3)
  AND ($4::text IS NULL OR j.source_key = $4)
  AND ($5::uuid IS NULL OR j.id > $5)
  AND ($6::uuid IS NULL OR j.id < $6)
ORDER BY j.id DESC
LIMIT $7;

-- name: browse_jobs_ascending
-- browse_jobs_descending, lowest id (oldest) first.
SELECT j.*
FROM job_rows j
WHERE ($1::job_status IS NULL OR j.status = $1)
  AND ($2::text IS NULL OR j.job_type = $2)
  AND ($3::text IS NULL OR j.source_bucket = $3)
  AND ($4::text IS NULL OR j.source_key = $4)
  AND ($5::uuid IS NULL OR j.id > $5)
  AND ($6::uuid IS NULL OR j.id < $6)
ORDER BY j.id
LIMIT $7;

-- name: browse_jobs_count
-- How many jobs match browse_jobs_descending's filters ($1..$6), counting no further than $7.
SELECT count(*)
FROM (SELECT 1
      FROM job_rows j
      WHERE ($1::job_status IS NULL OR j.status = $1)
        AND ($2::text IS NULL OR j.job_type = $2)
        AND ($3::text IS NULL OR j.source_bucket = $3)
        AND ($4::text IS NULL OR j.source_key = $4)
        AND ($5::uuid IS NULL OR j.id > $5)
        AND ($6::uuid IS NULL OR j.id < $6)
      LIMIT $7) AS matching;

-- name: browse_job_briefs
-- The jobs $1 in a line each (a job page's parents and children), in id order.
SELECT id, job_type, pipeline, step, status, attempts, worker_id, source_bucket, source_key, started_at,
       finished_at
FROM job_rows
WHERE id = ANY($1::uuid[])
ORDER BY id;

-- name: browse_running_on
-- The RUNNING jobs of workers $1 (the partial index jobs_worker_running), longest running first, at most $2.
SELECT id, job_type, pipeline, step, status, attempts, worker_id, source_bucket, source_key, started_at,
       finished_at
FROM job_rows
WHERE status = 'RUNNING' AND worker_id = ANY($1::uuid[])
ORDER BY started_at
LIMIT $2;

-- name: browse_objects
-- A page of bucket $1's recorded uploads whose key starts with $2, in byte order of (key, version): keys
-- from $2 up to $3 (the first key past the prefix; NULL: no end), after the cursor ($4 key, $5 version;
-- NULL: from the start). $6 limit.
SELECT u.bucket, u.object_key, u.version_id, u.etag, u.size_bytes, u.modified_at, u.origin, u.pipelines,
       u.recorded_at, u.removed_at
FROM uploads u
WHERE u.bucket = $1
  AND (u.object_key COLLATE "C") >= ($2::text COLLATE "C")
  AND ($3::text IS NULL OR (u.object_key COLLATE "C") < ($3::text COLLATE "C"))
  AND ($4::text IS NULL OR ((u.object_key COLLATE "C"), u.version_id) > (($4::text COLLATE "C"), $5::text))
ORDER BY (u.object_key COLLATE "C"), u.version_id
LIMIT $6;

-- name: browse_throughput
-- Per minute since $1: object events received (uploads reaching conveyor by any path), jobs finished, and
-- of those how many FAILED. Reads the indexes object_events_received_at and jobs_finished.
SELECT minute, sum(uploads)::bigint AS uploads, sum(finished)::bigint AS finished, sum(failed)::bigint AS failed
FROM (SELECT date_trunc('minute', received_at) AS minute, count(*) AS uploads, 0 AS finished, 0 AS failed
      FROM object_events
      WHERE received_at >= $1::timestamptz
      GROUP BY 1
      UNION ALL
      SELECT date_trunc('minute', finished_at), 0, count(*), count(*) FILTER (WHERE status = 'FAILED')
      FROM job_rows
      WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED') AND finished_at >= $1::timestamptz
      GROUP BY 1) AS counts
GROUP BY minute
ORDER BY minute;

-- name: browse_swept_missing
-- Objects that reconciliation sweeps found with no notification recorded, in sweeps finished since $1.
SELECT coalesce(sum(objects_missing), 0)::bigint
FROM sweeps
WHERE kind = 'reconcile' AND finished_at >= $1::timestamptz;

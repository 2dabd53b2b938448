-- Sweeps: listings of a bucket, by the reconciler (filling notification gaps) or a backfill.

-- name: watched_bucket_ensure
-- Start watching buckets $1 (since now) unless already watched; returns every one of them with its row.
INSERT INTO watched_buckets (bucket) SELECT unnest($1::text[])
ON CONFLICT (bucket) DO NOTHING;

-- name: watched_buckets_get
-- The watched buckets among $1.
SELECT * FROM watched_buckets WHERE bucket = ANY ($1::text[]) ORDER BY bucket;

-- name: watched_bucket_request_sweep
-- Ask for an early sweep of buckets $1 (every watched bucket when empty), saying why ($2).
UPDATE watched_buckets
SET sweep_requested_at = now(), request_reason = $2
WHERE cardinality($1::text[]) = 0 OR bucket = ANY ($1::text[])
RETURNING bucket;

-- name: sweep_create
-- A new sweep: $1 kind, $2 bucket, $3 prefix, $4 pipeline, $5 since, $6 dry run, $7 reason. Returns it.
INSERT INTO sweeps (kind, bucket, prefix, pipeline, since, dry_run, reason)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING *;

-- name: sweep_claim
-- Take sweep $1 for owner $2 for $3 seconds, when it is PENDING, or RUNNING with its lease lapsed (its
-- runner died) or already ours. Returns it, or nothing when another runner holds it or it is finished.
UPDATE sweeps
SET status = 'RUNNING', owner = $2, lease_expires_at = now() + make_interval(secs => $3::double precision),
    started_at = coalesce(started_at, now()), updated_at = now()
WHERE id = $1
  AND (status = 'PENDING' OR (status = 'RUNNING' AND (lease_expires_at < now() OR owner = $2)))
RETURNING *;

-- name: sweep_next_claimable
-- The oldest unfinished sweep of kind $1 that owner $2 may run: PENDING, RUNNING with a lapsed lease
-- (its runner died), or already its own (a long sweep resumed on the owner's next turn).
SELECT id FROM sweeps
WHERE status IN ('PENDING', 'RUNNING') AND kind = $1
  AND (status = 'PENDING' OR lease_expires_at < now() OR owner = $2)
ORDER BY created_at
LIMIT 1;

-- name: sweep_find_unfinished
-- An unfinished sweep with the same parameters ($1 kind, $2 bucket, $3 prefix, $4 pipeline, $5 since,
-- $6 dry run), to resume instead of starting again.
SELECT * FROM sweeps
WHERE status IN ('PENDING', 'RUNNING') AND kind = $1 AND bucket = $2 AND prefix = $3
  AND pipeline IS NOT DISTINCT FROM $4 AND since IS NOT DISTINCT FROM $5 AND dry_run = $6
ORDER BY created_at
LIMIT 1;

-- name: sweep_count
-- One page of sweep $1's counting pass, by owner $2: the cursor after it ($3) and the objects counted so
-- far ($4); when $5 (the last page) they are the total. The lease is renewed for $6 seconds.
UPDATE sweeps
SET count_cursor = $3, objects_counted = $4::bigint, objects_total = CASE WHEN $5::boolean THEN $4::bigint END,
    lease_expires_at = now() + make_interval(secs => $6::double precision), updated_at = now()
WHERE id = $1 AND owner = $2 AND status = 'RUNNING'
RETURNING *;

-- name: sweep_advance
-- One page of sweep $1 done by owner $2: the cursor after it ($3 key, $4 version) and its counts ($5
-- listed, $6 missing, $7 objects started, $8 jobs created); the lease is renewed for $9 seconds. Guarded by
-- the owner: a runner that lost its lease changes nothing (and its transaction rolls back).
UPDATE sweeps
SET cursor_key = $3, cursor_version = $4, objects_listed = objects_listed + $5,
    objects_missing = objects_missing + $6, objects_started = objects_started + $7,
    jobs_created = jobs_created + $8, pages = pages + 1,
    lease_expires_at = now() + make_interval(secs => $9::double precision), updated_at = now()
WHERE id = $1 AND owner = $2 AND status = 'RUNNING'
RETURNING *;

-- name: sweep_finish
-- Sweep $1 (held by $2) ends with status $3 (and error $4). Returns it.
UPDATE sweeps
SET status = $3, error = $4, finished_at = now(), lease_expires_at = NULL, updated_at = now()
WHERE id = $1 AND owner = $2 AND status = 'RUNNING'
RETURNING *;

-- name: sweep_get
-- Sweep $1.
SELECT * FROM sweeps WHERE id = $1;

-- name: sweep_list
-- Sweeps of kind $1, newest first, below id $2 (keyset), at most $3.
SELECT * FROM sweeps WHERE kind = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3;

-- name: sweep_last_completed
-- Per (bucket, prefix) of the buckets $1 swept before: the last completed reconcile sweep's start and
-- finish (NULL when none completed), and the last finished one's status and finish.
SELECT bucket, prefix, c.started_at, c.finished_at, f.status AS last_status, f.finished_at AS last_finished_at
FROM (SELECT DISTINCT ON (bucket, prefix) bucket, prefix, started_at, finished_at
      FROM sweeps
      WHERE kind = 'reconcile' AND status = 'COMPLETED' AND bucket = ANY ($1::text[])
      ORDER BY bucket, prefix, finished_at DESC) c
RIGHT JOIN (SELECT DISTINCT ON (bucket, prefix) bucket, prefix, status, finished_at
            FROM sweeps
            WHERE kind = 'reconcile' AND status IN ('COMPLETED', 'FAILED') AND bucket = ANY ($1::text[])
            ORDER BY bucket, prefix, finished_at DESC) f USING (bucket, prefix);

-- name: sweeps_prune
-- Delete up to $2 sweeps finished before $1, except the last completed one of each (kind, bucket, prefix):
-- the reconciler times the next sweep from it.
DELETE FROM sweeps
WHERE id IN (
    SELECT s.id FROM sweeps s
    WHERE s.finished_at < $1::timestamptz
      AND s.id NOT IN (SELECT DISTINCT ON (kind, bucket, prefix) id FROM sweeps WHERE status = 'COMPLETED'
                       ORDER BY kind, bucket, prefix, finished_at DESC)
    LIMIT $2
);

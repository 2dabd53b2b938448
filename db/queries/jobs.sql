-- The job engine's statements. Every transition is guarded by the status it expects and, for a job a
-- worker holds, by the attempt that worker claimed: zero rows back means someone else got there first.
-- A trailing `now` parameter is NULL in production and a fixed time in tests (an injectable clock).
--
-- A statement that names its jobs by id tests their status as text (`j.status::text = 'RUNNING'`). No
-- partial index matches that test, so the jobs are read by primary key: as many rows as ids. Tested as
-- the enum, the status matches the partial indexes of RUNNING, BLOCKED or PENDING jobs, and PostgreSQL
-- reads every job in that status through one of them whenever its statistics were taken while few jobs
-- had it (an idle queue, a table just emptied). It kept that generic plan for completions: each batch read
-- every running job, and every dead entry of the index, and one worker's 60,000-job drain stalled for
-- 30 s, its completions timing out. tests/db/test_plans.py holds it.

-- name: job_insert_many
-- Insert jobs given as one JSON array of objects (one document: far cheaper to send than an array per
-- column); rows whose idempotency key exists are skipped. Returns the new ids. $1 jobs, $2 now. Each
-- object: id, job_type, payload, status, priority, max_retries, timeout_ms, run_at (null = now),
-- idempotency_key, pending_parents, pipeline, step, object_event_id, source_bucket, source_key,
-- source_version, concurrency_key.
INSERT INTO job_rows (id, job_type, payload, status, priority, max_retries, timeout_ms, run_at, idempotency_key,
                      pending_parents, pipeline, step, object_event_id, source_bucket, source_key, source_version,
                      concurrency_key)
SELECT u.id, u.job_type, coalesce(u.payload, '{}'), u.status, u.priority, u.max_retries, u.timeout_ms,
       coalesce(u.run_at, $2::timestamptz, now()), u.idempotency_key, u.pending_parents, u.pipeline, u.step,
       u.object_event_id, u.source_bucket, u.source_key, u.source_version, coalesce(u.concurrency_key, '')
FROM jsonb_to_recordset($1::jsonb)
     AS u(id uuid, job_type text, payload jsonb, status job_status, priority integer, max_retries integer,
          timeout_ms integer, run_at timestamptz, idempotency_key text, pending_parents integer, pipeline text,
          step text, object_event_id bigint, source_bucket text, source_key text, source_version text,
          concurrency_key text)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id;

-- name: job_insert_one
-- Insert one job (the HTTP API's create), as job_insert_many would without the JSON document; nothing when its
-- idempotency key exists. $1..$15 the columns below up to concurrency_key, $16 run_at (null = now),
-- $17 idempotency key, $18 now. Returns the new id.
INSERT INTO job_rows (id, job_type, payload, status, priority, max_retries, timeout_ms, pending_parents, pipeline,
                      step, object_event_id, source_bucket, source_key, source_version, concurrency_key, run_at,
                      idempotency_key)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
        coalesce($16::timestamptz, $18::timestamptz, now()), $17)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id;

-- name: job_ids_by_keys
-- The ids of existing jobs with these idempotency keys. $1 keys.
SELECT idempotency_key, id FROM job_rows WHERE idempotency_key = ANY($1::text[]);

-- name: job_lock_parents
-- Share-lock prospective parents before edges are added, so a parent cannot complete unseen between our
-- count of its children's pending parents and our commit. $1 parent ids.
SELECT id, status FROM job_rows WHERE id = ANY($1::uuid[]) ORDER BY id FOR SHARE;

-- name: dependency_insert_many
-- $1 parent ids, $2 child ids (parallel arrays).
INSERT INTO job_dependencies (parent_id, child_id)
SELECT * FROM unnest($1::uuid[], $2::uuid[])
ON CONFLICT DO NOTHING;

-- name: job_settle_dependencies
-- Recount the unfinished parents of jobs $1 (BLOCKED or PENDING only): none left → PENDING; some → BLOCKED;
-- any parent FAILED or CANCELLED → CANCELLED with an `upstream_failed` error naming it. $2 now.
WITH counts AS (
    SELECT d.child_id,
           count(*) FILTER (WHERE p.status <> 'COMPLETED') AS pending,
           (array_agg(p.id ORDER BY p.id) FILTER (WHERE p.status IN ('FAILED', 'CANCELLED')))[1] AS failed_parent
    FROM job_dependencies d
    JOIN job_rows p ON p.id = d.parent_id
    WHERE d.child_id = ANY($1::uuid[])
    GROUP BY d.child_id
)
UPDATE job_rows c
SET pending_parents = counts.pending,
    status = CASE WHEN counts.failed_parent IS NOT NULL THEN 'CANCELLED'
                  WHEN counts.pending > 0 THEN 'BLOCKED'
                  ELSE 'PENDING' END::job_status,
    finished_at = CASE WHEN counts.failed_parent IS NOT NULL THEN coalesce($2::timestamptz, now()) END,
    errors = CASE WHEN counts.failed_parent IS NULL THEN c.errors
                  ELSE c.errors || jsonb_build_array(jsonb_build_object(
                      'at', coalesce($2::timestamptz, now()), 'attempt', c.attempts, 'kind', 'upstream_failed',
                      'message', 'upstream job ' || counts.failed_parent || ' did not complete',
                      'upstream_job_id', counts.failed_parent)) END
FROM counts
WHERE c.id = counts.child_id AND c.status::text IN ('BLOCKED', 'PENDING')
RETURNING c.id, c.status;

-- name: job_raise_ancestor_priority
-- Priority inheritance: every unfinished ancestor of jobs $1 takes the highest priority waiting on it.
WITH RECURSIVE ancestors(id, priority) AS (
    SELECT d.parent_id, c.priority
    FROM job_dependencies d JOIN job_rows c ON c.id = d.child_id
    WHERE d.child_id = ANY($1::uuid[])
    UNION
    SELECT d.parent_id, a.priority
    FROM job_dependencies d JOIN ancestors a ON d.child_id = a.id
)
UPDATE job_rows j
SET priority = wanted.priority
FROM (SELECT id, max(priority) AS priority FROM ancestors GROUP BY id) AS wanted
WHERE j.id = wanted.id AND j.priority < wanted.priority AND j.status::text IN ('BLOCKED', 'PENDING');

-- name: job_claim
-- Claim up to $3 ready jobs of types $1 (empty = any) for worker $2, within every flow limit and fairly
-- across concurrency keys. The lease is the job's timeout plus $4 seconds of grace. $5 now.
--
-- Priority comes first. Among equal priorities the next slot goes to the key with the fewest RUNNING jobs
-- per unit of its weight (water-filling: a new key's first jobs overtake a busy key's backlog), then to
-- the job ready longest. A limited key or job type gives at most its room: max_running minus RUNNING,
-- and the whole tokens its rate has refilled. Candidates are locked SKIP LOCKED, so concurrent claimers
-- consider different jobs and never wait on each other's; limit rows are then locked in (scope, name)
-- order and read as they are now, not as the statement's snapshot saw them.
--
-- The plain case takes a short way: when no scope has a flow_limits row and the PENDING jobs share one key,
-- the fair share and the rooms decide nothing, and the claim is the first $3 ready jobs by priority, then
-- run_at, then id, as a bare queue's. The statement tests that itself; a one-time filter then runs one way
-- or the other, never both (tests/db/test_claim_plain.py holds the two ways to the same grants). Claiming
-- one job at a time from one key, the backend's CPU per claim measured 0.58-0.92 ms by the full way, 0.49-0.58
-- by the short way, 0.43-0.45 for a bare queue's claim (bench/bare.sql).
WITH RECURSIVE plain AS MATERIALIZED (
    -- taken: the short way applies; concurrency_key: the one key with PENDING jobs. The min and the max are
    -- a probe each, at either end of the key index; OFFSET 0 keeps k a subquery, so the min (read twice
    -- above) is made once.
    SELECT NOT EXISTS (SELECT FROM flow_limits) AND k.low IS NOT DISTINCT FROM k.high AS taken, k.low AS concurrency_key
    FROM (SELECT (SELECT min(concurrency_key) FROM job_rows WHERE status = 'PENDING') AS low,
                 (SELECT max(concurrency_key) FROM job_rows WHERE status = 'PENDING') AS high
          OFFSET 0) AS k
), ready_keys(concurrency_key) AS (
    -- Each key with a PENDING job: a loose index scan, one probe per key.
    (SELECT concurrency_key FROM job_rows WHERE status = 'PENDING' ORDER BY concurrency_key LIMIT 1)
    UNION ALL
    SELECT (SELECT j.concurrency_key FROM job_rows j
            WHERE j.status = 'PENDING' AND j.concurrency_key > r.concurrency_key
            ORDER BY j.concurrency_key LIMIT 1)
    FROM ready_keys r
    WHERE r.concurrency_key IS NOT NULL
), keys AS MATERIALIZED (
    -- Each of those keys with its weight and RUNNING count (the fair share's measure of what it has now).
    SELECT k.concurrency_key, coalesce(w.weight, 1) AS weight,
           (SELECT count(*) FROM job_rows r  -- a range for the key's own index, as below
            WHERE r.concurrency_key >= k.concurrency_key AND r.concurrency_key <= k.concurrency_key
              AND r.status = 'RUNNING') AS running
    FROM ready_keys k
    LEFT JOIN flow_limits w ON w.scope = 'key' AND w.name = k.concurrency_key  -- read, not locked: a share
    WHERE k.concurrency_key IS NOT NULL
), candidates AS MATERIALIZED (
    -- Each key's first ready jobs, locked: up to its weight's share of $3 and a quarter more, or up to $3
    -- for a key with nothing running (a newcomer may take the whole claim). A key far behind otherwise
    -- catches up over a few claims. Those not granted are free again at commit.
    SELECT c.id, c.job_type, c.priority, c.run_at, k.concurrency_key, k.running,
           row_number() OVER (PARTITION BY k.concurrency_key ORDER BY c.priority DESC, c.run_at, c.id) AS key_rank
    FROM keys k
    CROSS JOIN LATERAL (
        SELECT id, job_type, priority, run_at
        FROM job_rows
        -- A range, not `=`: the planner then needs this key's index for the order, where with `=` it may
        -- pick the priority index and filter a busy key's neighbours row by row.
        WHERE concurrency_key >= k.concurrency_key AND concurrency_key <= k.concurrency_key AND status = 'PENDING'
          AND run_at <= coalesce($5::timestamptz, now())
          AND (cardinality($1::text[]) = 0 OR job_type = ANY($1::text[]))
        ORDER BY concurrency_key, priority DESC, run_at, id
        LIMIT CASE WHEN k.running = 0 THEN $3
                   ELSE least($3, ceil(1.25 * $3::integer * k.weight / (SELECT sum(weight) FROM keys))::integer) END
        FOR UPDATE SKIP LOCKED
    ) c
), limits AS MATERIALIZED (
    -- The limits of the scopes these jobs belong to, locked: what they say now, not at the snapshot.
    SELECT l.scope, l.name, l.max_running, l.running, l.rate_per_second, l.burst, l.tokens, l.tokens_at, l.weight
    FROM flow_limits l
    WHERE (l.scope = 'key' AND l.name IN (SELECT concurrency_key FROM candidates))
       OR (l.scope = 'job_type' AND l.name IN (SELECT job_type FROM candidates))
    ORDER BY l.scope, l.name
    FOR UPDATE
), rooms AS (
    -- How many more starts each scope allows now (NULL: no limit); `tokens` is the refilled bucket.
    SELECT scope, name, weight, tokens, least(max_running - running, floor(tokens)::integer) AS room
    FROM (SELECT scope, name, weight, max_running, running,
                 least(burst, tokens + rate_per_second
                       * greatest(0, extract(epoch FROM coalesce($5::timestamptz, now()) - tokens_at))) AS tokens
          FROM limits) AS refilled
), turns AS (
    -- A job's turn: its key's RUNNING count plus its rank in the key, per unit of the key's weight; jobs
    -- past their key's room are out.
    SELECT c.id, c.job_type, c.priority, c.run_at, c.concurrency_key,
           (c.running + c.key_rank)::float8 / coalesce(kr.weight, 1) AS turn
    FROM candidates c
    LEFT JOIN rooms kr ON kr.scope = 'key' AND kr.name = c.concurrency_key
    WHERE kr.room IS NULL OR c.key_rank <= kr.room
), granted AS (
    -- The plain case: the first $3 ready jobs, locked.
    SELECT p.id, p.job_type, p.concurrency_key
    FROM (SELECT id, job_type, concurrency_key
          FROM job_rows
          -- The key's range, as in candidates: its index gives the order, and a LIMIT reads no further.
          WHERE (SELECT taken FROM plain) AND concurrency_key >= (SELECT concurrency_key FROM plain)
            AND concurrency_key <= (SELECT concurrency_key FROM plain) AND status = 'PENDING'
            AND run_at <= coalesce($5::timestamptz, now())
            AND (cardinality($1::text[]) = 0 OR job_type = ANY($1::text[]))
          ORDER BY concurrency_key, priority DESC, run_at, id
          LIMIT $3
          FOR UPDATE SKIP LOCKED) AS p
    UNION ALL
    -- Otherwise the first $3 turns within their job types' rooms.
    (SELECT t.id, t.job_type, t.concurrency_key
     FROM (SELECT t.*, row_number() OVER (PARTITION BY t.job_type ORDER BY t.priority DESC, t.turn, t.run_at, t.id)
                           AS type_rank
           FROM turns t) AS t
     LEFT JOIN rooms tr ON tr.scope = 'job_type' AND tr.name = t.job_type
     WHERE NOT (SELECT taken FROM plain) AND (tr.room IS NULL OR t.type_rank <= tr.room)
     ORDER BY t.priority DESC, t.turn, t.run_at, t.id
     LIMIT $3)
), spent AS (
    -- Rate limits: the granted starts take their tokens from each bucket.
    UPDATE flow_limits l
    SET tokens = r.tokens - s.started, tokens_at = coalesce($5::timestamptz, now())
    FROM (SELECT 'key'::flow_scope AS scope, concurrency_key AS name, count(*) AS started
          FROM granted GROUP BY concurrency_key
          UNION ALL
          SELECT 'job_type'::flow_scope, job_type, count(*) FROM granted GROUP BY job_type) AS s
    JOIN rooms r USING (scope, name)
    WHERE l.scope = s.scope AND l.name = s.name AND r.tokens IS NOT NULL AND NOT (SELECT taken FROM plain)
)
UPDATE job_rows j
SET status = 'RUNNING',
    attempts = j.attempts + 1,
    worker_id = $2,
    cancel_requested = false,
    started_at = coalesce($5::timestamptz, now()),
    lease_expires_at = coalesce($5::timestamptz, now()) + make_interval(secs => j.timeout_ms / 1000.0 + $4::float8)
WHERE j.id = ANY(ARRAY(SELECT id FROM granted))  -- by primary key: the planner cannot size the CTEs above
-- has_checkpoint: an earlier attempt (or a snooze) saved progress; without one the handler skips the lookup.
-- A scalar sub-select, not EXISTS: the planner may hash an EXISTS over the whole table of checkpoints (they
-- stay until retention) on every claim, where this probes the primary key per job (tests/db/test_plans.py).
RETURNING j.*, (SELECT true FROM state_snapshots s WHERE s.job_id = j.id) IS NOT NULL AS has_checkpoint;

-- name: job_extend_leases
-- Heartbeat: extend the leases of the jobs a worker still holds. $1 ids, $2 attempts, $3 grace seconds,
-- $4 now. Returns the jobs still held, with whether each was asked to stop; a missing id was rescued.
UPDATE job_rows j
SET lease_expires_at = coalesce($4::timestamptz, now()) + make_interval(secs => j.timeout_ms / 1000.0 + $3::float8)
FROM unnest($1::uuid[], $2::integer[]) AS u(id, attempt)
WHERE j.id = u.id AND j.status::text = 'RUNNING' AND j.attempts = u.attempt
RETURNING j.id, j.cancel_requested;

-- name: job_complete_many
-- Complete jobs and, in the same statement, release each child whose last unfinished parent this was.
-- $1 ids, $2 attempts, $3 results, $4 now, $5 worker id. A job completes while RUNNING at its attempt; a NULL
-- attempt stands for "the attempt $5 holds" (an HTTP worker names the job and itself, not the attempt), and
-- a NULL $5 for any worker. Returns ('completed', id), ('released', child id, type) rows, and
-- ('freed', NULL, type) for each type of the jobs that freed a slot of a capped flow limit (to wake them).
-- Two parents finishing in concurrent transactions serialise on the child's row; the second decrement
-- re-reads the first's result, so a release is never lost.
-- Written so that a custom plan costs what the generic plan does, which PostgreSQL then keeps: the ids reach
-- unnest through a sub-select (given $1 itself, a custom plan counts its elements where the generic plan
-- guesses ten), and the worker test is not an index condition for a known $5 alone. Without that, while a
-- growing job table had no statistics yet, every call was planned afresh: 0.5 ms of planning for 0.15 ms of
-- work (pg_stat_statements, the API's acquire-complete benchmark). tests/db/test_plans.py holds it.
WITH done AS (
    UPDATE job_rows j
    SET status = 'COMPLETED', result = u.result, finished_at = coalesce($4::timestamptz, now()),
        lease_expires_at = NULL, cancel_requested = false
    FROM unnest((SELECT $1::uuid[]), $2::integer[], $3::jsonb[]) AS u(id, attempt, result)
    WHERE j.id = u.id AND j.status::text = 'RUNNING' AND (j.attempts = u.attempt OR u.attempt IS NULL)
      AND j.worker_id IS NOT DISTINCT FROM coalesce($5::uuid, j.worker_id)
    RETURNING j.id, j.job_type, j.concurrency_key
), released AS (
    UPDATE job_rows c
    SET pending_parents = c.pending_parents - n.parents,
        status = CASE WHEN c.pending_parents - n.parents = 0 THEN 'PENDING' ELSE 'BLOCKED' END::job_status,
        run_at = greatest(c.run_at, coalesce($4::timestamptz, now()))
    FROM (SELECT d.child_id, count(*) AS parents
          FROM job_dependencies d JOIN done ON d.parent_id = done.id
          GROUP BY d.child_id) AS n
    WHERE c.id = n.child_id AND c.status::text = 'BLOCKED'
    RETURNING c.id, c.status, c.job_type
)
SELECT 'completed' AS outcome, id, NULL AS job_type FROM done
UNION ALL
SELECT 'released', id, job_type FROM released WHERE status = 'PENDING'
UNION ALL
SELECT DISTINCT 'freed', NULL::uuid, d.job_type
FROM done d
WHERE EXISTS (SELECT 1 FROM flow_limits l
              WHERE l.max_running IS NOT NULL
                AND (l.scope = 'key' AND l.name = d.concurrency_key OR l.scope = 'job_type' AND l.name = d.job_type));

-- name: job_fail_many
-- Record a failed attempt: back to PENDING at $4 (a retry), or FAILED where $4 is NULL (retries exhausted
-- or not retryable). $1 ids, $2 attempts, $3 error entries, $4 retry times, $5 now. `frees_limit`: the
-- job freed a slot of a capped flow limit (its type is woken).
UPDATE job_rows j
SET status = CASE WHEN u.retry_at IS NULL THEN 'FAILED' ELSE 'PENDING' END::job_status,
    run_at = coalesce(u.retry_at, j.run_at),
    errors = j.errors || jsonb_build_array(u.error),
    finished_at = CASE WHEN u.retry_at IS NULL THEN coalesce($5::timestamptz, now()) END,
    lease_expires_at = NULL,
    cancel_requested = false
FROM unnest($1::uuid[], $2::integer[], $3::jsonb[], $4::timestamptz[]) AS u(id, attempt, error, retry_at)
WHERE j.id = u.id AND j.status::text = 'RUNNING' AND j.attempts = u.attempt
RETURNING j.id, j.status, j.job_type,
          EXISTS (SELECT 1 FROM flow_limits l
                  WHERE l.max_running IS NOT NULL
                    AND (l.scope = 'key' AND l.name = j.concurrency_key OR l.scope = 'job_type' AND l.name = j.job_type))
              AS frees_limit;

-- name: job_requeue_many
-- Give jobs back without spending the attempt: unrun at shutdown, or snoozed by a handler until $3
-- (NULL = now). $1 ids, $2 attempts, $4 now.
UPDATE job_rows j
SET status = 'PENDING', attempts = j.attempts - 1, worker_id = NULL, lease_expires_at = NULL,
    started_at = NULL, cancel_requested = false,
    run_at = greatest(coalesce($3::timestamptz, $4::timestamptz, now()), j.run_at)
FROM unnest($1::uuid[], $2::integer[]) AS u(id, attempt)
WHERE j.id = u.id AND j.status::text = 'RUNNING' AND j.attempts = u.attempt
RETURNING j.id;

-- name: job_cancel
-- Cancel job $1: at once unless RUNNING, where it is only asked to stop (its worker sees the request at
-- its next heartbeat; the reason is kept in cancel_requests for when it does). $2 reason, $3 now.
-- Returns the status after the call, or nothing if already final.
WITH cancelled AS (
    UPDATE job_rows
    SET status = CASE WHEN status = 'RUNNING' THEN status ELSE 'CANCELLED' END::job_status,
        cancel_requested = (status = 'RUNNING'),
        finished_at = CASE WHEN status = 'RUNNING' THEN NULL ELSE coalesce($3::timestamptz, now()) END,
        errors = CASE WHEN status = 'RUNNING' THEN errors
                      ELSE errors || jsonb_build_array(jsonb_build_object(
                          'at', coalesce($3::timestamptz, now()), 'attempt', attempts, 'kind', 'cancelled',
                          'message', $2::text)) END
    WHERE id = $1 AND status::text IN ('BLOCKED', 'PENDING', 'RUNNING')
    RETURNING id, status
), asked AS (
    INSERT INTO cancel_requests (job_id, kind, message)
    SELECT id, 'cancelled', $2::text FROM cancelled WHERE status = 'RUNNING'
    ON CONFLICT (job_id) DO UPDATE SET kind = excluded.kind, message = excluded.message, requested_at = now()
)
SELECT id, status FROM cancelled;

-- name: job_cancel_running
-- The worker running job $1 (attempt $2) stopped it: on request (the entry keeps the request's kind and
-- reason), or ($4 kind, $5 message) because what it works on is gone. $3 now.
UPDATE job_rows
SET status = 'CANCELLED', finished_at = coalesce($3::timestamptz, now()), lease_expires_at = NULL,
    cancel_requested = false,
    errors = errors || jsonb_build_array(jsonb_build_object(
        'at', coalesce($3::timestamptz, now()), 'attempt', attempts,
        'kind', coalesce($4::text, (SELECT r.kind FROM cancel_requests r WHERE r.job_id = $1), 'cancelled'),
        'message', coalesce($5::text, (SELECT r.message || ' (while running)' FROM cancel_requests r WHERE r.job_id = $1),
                            'cancelled while running')))
WHERE id = $1 AND status::text = 'RUNNING' AND attempts = $2
RETURNING id;

-- name: jobs_cancel_for_removed
-- Removed objects cancel their unfinished jobs: $1 a JSON array of (bucket, object_key, version_id,
-- any_version, removed_at, message). A job matches when it reads that object (that version, or any
-- version for a delete marker) and was started by an upload written before the removal. BLOCKED and
-- PENDING jobs are CANCELLED now with an `object_removed` entry; RUNNING ones are asked to stop with
-- the same reason. $2 now. Returns (id, status, job_type) of each job changed.
WITH removed AS (
    SELECT * FROM jsonb_to_recordset($1::jsonb)
        AS r(bucket text, object_key text, version_id text, any_version boolean, removed_at timestamptz,
             message text)
), hit AS (
    SELECT DISTINCT ON (j.id) j.id, r.message
    FROM removed r
    JOIN job_rows j ON j.source_bucket = r.bucket AND j.source_key = r.object_key
    LEFT JOIN object_events e ON e.id = j.object_event_id
    WHERE j.status IN ('BLOCKED', 'PENDING', 'RUNNING')
      AND (r.any_version OR coalesce(j.source_version, '') = r.version_id)
      AND coalesce(e.modified_at, e.event_time, j.created_at) <= r.removed_at
    ORDER BY j.id
), cancelled AS (
    UPDATE job_rows j
    SET status = CASE WHEN j.status = 'RUNNING' THEN j.status ELSE 'CANCELLED' END::job_status,
        cancel_requested = (j.status = 'RUNNING'),
        finished_at = CASE WHEN j.status = 'RUNNING' THEN NULL ELSE coalesce($2::timestamptz, now()) END,
        errors = CASE WHEN j.status = 'RUNNING' THEN j.errors
                      ELSE j.errors || jsonb_build_array(jsonb_build_object(
                          'at', coalesce($2::timestamptz, now()), 'attempt', j.attempts, 'kind', 'object_removed',
                          'message', h.message)) END
    FROM hit h
    WHERE j.id = h.id
    RETURNING j.id, j.status, j.job_type, h.message
), asked AS (
    INSERT INTO cancel_requests (job_id, kind, message)
    SELECT id, 'object_removed', message FROM cancelled WHERE status = 'RUNNING'
    ON CONFLICT (job_id) DO UPDATE SET kind = excluded.kind, message = excluded.message, requested_at = now()
)
SELECT id, status, job_type FROM cancelled;

-- name: job_cancel_descendants
-- Cancel every unfinished descendant of jobs $1, each with an error entry naming the job that ended
-- without completing: kind `upstream_failed`, or $3 with message $4 when the cause is known (an object
-- removed). $2 now. Returns the ids cancelled.
WITH RECURSIVE descendants(id, root) AS (
    SELECT d.child_id, d.parent_id FROM job_dependencies d WHERE d.parent_id = ANY($1::uuid[])
    UNION
    SELECT d.child_id, descendants.root FROM job_dependencies d JOIN descendants ON d.parent_id = descendants.id
), first_root AS (
    SELECT DISTINCT ON (id) id, root FROM descendants ORDER BY id, root
)
UPDATE job_rows c
SET status = 'CANCELLED', finished_at = coalesce($2::timestamptz, now()),
    errors = c.errors || jsonb_build_array(jsonb_build_object(
        'at', coalesce($2::timestamptz, now()), 'attempt', c.attempts, 'kind', coalesce($3::text, 'upstream_failed'),
        'message', coalesce($4::text || ' (upstream job ' || f.root || ')', 'upstream job ' || f.root || ' did not complete'),
        'upstream_job_id', f.root))
FROM first_root f
WHERE c.id = f.id AND c.status::text IN ('BLOCKED', 'PENDING')
RETURNING c.id;

-- name: job_retry
-- Run a FAILED or CANCELLED job $1 again, with a fresh retry budget (and no stale stop request). $2 now.
WITH retried AS (
    UPDATE job_rows
    SET status = 'PENDING', attempt_floor = attempts, run_at = coalesce($2::timestamptz, now()), finished_at = NULL,
        result = NULL, worker_id = NULL, cancel_requested = false, pending_parents = 0
    WHERE id = $1 AND status::text IN ('FAILED', 'CANCELLED')
    RETURNING id
), forgotten AS (
    DELETE FROM cancel_requests WHERE job_id IN (SELECT id FROM retried)
)
SELECT id FROM retried;

-- name: job_reblock_descendants
-- After a retry of job $1: its descendants that were cancelled because of it (or of each other) wait again.
WITH RECURSIVE descendants(id) AS (
    SELECT d.child_id FROM job_dependencies d WHERE d.parent_id = $1
    UNION
    SELECT d.child_id FROM job_dependencies d JOIN descendants ON d.parent_id = descendants.id
)
UPDATE job_rows c
SET status = 'BLOCKED', pending_parents = 1, finished_at = NULL
FROM descendants
WHERE c.id = descendants.id AND c.status::text = 'CANCELLED' AND c.errors -> -1 ->> 'kind' = 'upstream_failed'
RETURNING c.id;

-- name: job_rescue_expired
-- Jobs whose lease lapsed (their worker died or hung) go back to PENDING, or to FAILED when that was their
-- last attempt, with a `worker_lost` error. Guarded by the attempt read, so a job completed meanwhile is
-- left alone; SKIP LOCKED lets several rescuers run at once. $1 batch size, $2 now.
WITH lapsed AS (
    SELECT id, attempts
    FROM job_rows
    WHERE status = 'RUNNING' AND lease_expires_at < coalesce($2::timestamptz, now())
    ORDER BY lease_expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE job_rows j
SET status = CASE WHEN j.attempts - j.attempt_floor > j.max_retries THEN 'FAILED' ELSE 'PENDING' END::job_status,
    finished_at = CASE WHEN j.attempts - j.attempt_floor > j.max_retries THEN coalesce($2::timestamptz, now()) END,
    run_at = coalesce($2::timestamptz, now()),
    lease_expires_at = NULL,
    cancel_requested = false,
    errors = j.errors || jsonb_build_array(jsonb_build_object(
        'at', coalesce($2::timestamptz, now()), 'attempt', j.attempts, 'kind', 'worker_lost',
        'message', 'worker lost: lease expired while running', 'worker_id', j.worker_id))
FROM lapsed
WHERE j.id = lapsed.id AND j.status::text = 'RUNNING' AND j.attempts = lapsed.attempts
RETURNING j.id, j.status, j.job_type;

-- name: job_expire_leases_of_workers
-- The workers $1 are known dead: end their jobs' leases now, so the next rescue takes them at once. $2 now.
UPDATE job_rows
SET lease_expires_at = coalesce($2::timestamptz, now()) - interval '1 microsecond'
WHERE worker_id = ANY($1::uuid[]) AND status = 'RUNNING'
RETURNING id;

-- name: job_get
-- One job with the ids it depends on and the ids depending on it. $1 id.
SELECT j.*,
       ARRAY(SELECT parent_id FROM job_dependencies WHERE child_id = j.id ORDER BY parent_id) AS depends_on,
       ARRAY(SELECT child_id FROM job_dependencies WHERE parent_id = j.id ORDER BY child_id) AS dependents
FROM job_rows j
WHERE j.id = $1;

-- name: job_list
-- Newest first, keyset-paginated by id (UUIDv7, so id order is creation order). Every filter is optional:
-- $1 status, $2 type, $3 source bucket, $4 source key, $5 created since, $6 ids below this one, $7 limit.
SELECT j.*,
       ARRAY(SELECT parent_id FROM job_dependencies WHERE child_id = j.id ORDER BY parent_id) AS depends_on,
       ARRAY(SELECT child_id FROM job_dependencies WHERE parent_id = j.id ORDER BY child_id) AS dependents
FROM job_rows j
WHERE ($1::job_status IS NULL OR j.status = $1)
  AND ($2::text IS NULL OR j.job_type = $2)
  AND ($3::text IS NULL OR j.source_bucket = $3)
  AND ($4::text IS NULL OR j.source_key = $4)
  AND ($5::timestamptz IS NULL OR j.created_at >= $5)
  AND ($6::uuid IS NULL OR j.id < $6)
ORDER BY j.id DESC
LIMIT $7;

-- name: job_parent_results
-- What a job's parents produced, for the job to read. $1 child id.
SELECT p.id, p.step, p.job_type, p.status, p.result
FROM job_dependencies d JOIN job_rows p ON p.id = d.parent_id
WHERE d.child_id = $1
ORDER BY p.id;

-- name: job_depth
-- Live jobs by status and type, counted from the small partial index `jobs_live` (not from history), with
-- the age of the oldest ready job of each type. $1 now.
SELECT status, job_type, count(*) AS jobs,
       extract(epoch FROM coalesce($1::timestamptz, now()) - min(run_at) FILTER (
           WHERE status = 'PENDING' AND run_at <= coalesce($1::timestamptz, now())))::float8 AS oldest_ready_seconds
FROM job_rows
WHERE status IN ('BLOCKED', 'PENDING', 'RUNNING')
GROUP BY status, job_type;

-- name: job_prune
-- Delete up to $3 finished jobs: COMPLETED and CANCELLED that finished before $1, FAILED before $2.
-- A job whose dependents are still live is kept: they may read its result.
DELETE FROM job_rows
WHERE id IN (
    SELECT j.id
    FROM job_rows j
    WHERE ((j.status IN ('COMPLETED', 'CANCELLED') AND j.finished_at < $1::timestamptz)
        OR (j.status = 'FAILED' AND j.finished_at < $2::timestamptz))
      AND NOT EXISTS (SELECT 1 FROM job_dependencies d JOIN job_rows c ON c.id = d.child_id
                      WHERE d.parent_id = j.id AND c.status IN ('BLOCKED', 'PENDING', 'RUNNING'))
    LIMIT $3
    FOR UPDATE SKIP LOCKED
);

-- name: snapshot_save
-- Keep job $1's latest checkpoint, written by attempt $2 (a stale attempt cannot overwrite it). $3 state.
INSERT INTO state_snapshots (job_id, attempt, state)
SELECT $1, $2, $3::jsonb
FROM job_rows WHERE id = $1 AND status::text = 'RUNNING' AND attempts = $2
ON CONFLICT (job_id) DO UPDATE SET attempt = excluded.attempt, state = excluded.state, updated_at = now()
RETURNING job_id;

-- name: snapshot_get
-- The latest checkpoint of job $1, if any.
SELECT attempt, state, updated_at FROM state_snapshots WHERE job_id = $1;

-- name: job_extend_leases_of_worker
-- An HTTP worker's heartbeat: extend the leases of every job worker $1 holds. $2 grace seconds, $3 now.
-- Returns those jobs, with whether each was asked to stop.
UPDATE job_rows
SET lease_expires_at = coalesce($3::timestamptz, now()) + make_interval(secs => timeout_ms / 1000.0 + $2::float8)
WHERE worker_id = $1 AND status = 'RUNNING'
RETURNING id, cancel_requested;

-- name: job_running_past_lease
-- RUNNING jobs whose lease lapsed: the rescuer should take them within seconds (from jobs_running_lease).
SELECT count(*) FROM job_rows WHERE status = 'RUNNING' AND lease_expires_at < now();

-- name: pipeline_runs_finished
-- Pipeline runs (the jobs one recorded event started for one pipeline) whose last job finished in ($1, $2],
-- oldest first: one row each with its outcome counts and the upload's time. Uses the jobs_finished index.
WITH touched AS (
    SELECT DISTINCT object_event_id, pipeline
    FROM job_rows
    WHERE status IN ('COMPLETED', 'FAILED', 'CANCELLED') AND finished_at > $1 AND finished_at <= $2
      AND object_event_id IS NOT NULL
)
SELECT e.bucket, e.object_key, t.pipeline,
       count(*) AS jobs,
       count(*) FILTER (WHERE j.status = 'COMPLETED') AS completed,
       count(*) FILTER (WHERE j.status = 'FAILED') AS failed,
       count(*) FILTER (WHERE j.status = 'CANCELLED') AS cancelled,
       coalesce(e.event_time, e.received_at) AS uploaded_at,
       max(j.finished_at) AS finished_at
FROM touched t
JOIN job_rows j ON j.object_event_id = t.object_event_id AND j.pipeline IS NOT DISTINCT FROM t.pipeline
JOIN object_events e ON e.id = t.object_event_id
GROUP BY e.id, t.pipeline
HAVING bool_and(j.status IN ('COMPLETED', 'FAILED', 'CANCELLED')) AND max(j.finished_at) > $1
   AND max(j.finished_at) <= $2
ORDER BY max(j.finished_at);

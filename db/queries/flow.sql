-- Flow limits: the limits and weights of concurrency keys and job types, and what waits on them. The
-- claim statement (jobs.sql, job_claim) enforces them; a trigger keeps `running` (migration 0004).

-- name: flow_limit_set
-- An operator sets scope $1 name $2: max_running $3, rate_per_second $4, burst $5, weight $6 (NULL leaves
-- a rate or a cap unset). The RUNNING count starts from the jobs running now; a new bucket starts full
-- as of $7 (NULL = now()).
INSERT INTO flow_limits AS l (scope, name, max_running, rate_per_second, burst, weight, running, tokens,
                              tokens_at, set_by)
SELECT $1::flow_scope, $2::text, $3::integer, $4::float8, $5::integer, coalesce($6::integer, 1),
       (SELECT count(*) FROM job_rows j
        WHERE j.status = 'RUNNING' AND ($1::flow_scope = 'key' AND j.concurrency_key = $2
                                        OR $1::flow_scope = 'job_type' AND j.job_type = $2)),
       coalesce($5::integer, 0), coalesce($7::timestamptz, now()), 'operator'
ON CONFLICT (scope, name) DO UPDATE
SET max_running = EXCLUDED.max_running, rate_per_second = EXCLUDED.rate_per_second, burst = EXCLUDED.burst,
    weight = EXCLUDED.weight, set_by = 'operator', updated_at = now(),
    tokens = CASE WHEN l.burst IS DISTINCT FROM EXCLUDED.burst THEN EXCLUDED.tokens ELSE l.tokens END,
    tokens_at = CASE WHEN l.burst IS DISTINCT FROM EXCLUDED.burst THEN EXCLUDED.tokens_at ELSE l.tokens_at END
RETURNING scope;

-- name: flow_limit_clear
-- Remove the limits of scope $1 name $2: its jobs run unlimited, with weight 1. Returns the row removed.
DELETE FROM flow_limits WHERE scope = $1::flow_scope AND name = $2 RETURNING scope;

-- name: flow_key_limits_ensure
-- Keys $1 get max_running $2 (parallel arrays), as their jobs are created by $3 ('pipeline' or 'api').
-- A key an operator set is left as the operator set it; an unchanged key is not written (nor locked).
WITH wanted AS (
    SELECT * FROM unnest($1::text[], $2::integer[]) AS w(name, max_running)
), added AS (
    INSERT INTO flow_limits (scope, name, max_running, running, set_by)
    SELECT 'key', w.name, w.max_running,
           (SELECT count(*) FROM job_rows j WHERE j.status = 'RUNNING' AND j.concurrency_key = w.name), $3
    FROM wanted w
    WHERE NOT EXISTS (SELECT 1 FROM flow_limits l WHERE l.scope = 'key' AND l.name = w.name)
    ORDER BY w.name
    ON CONFLICT (scope, name) DO NOTHING
    RETURNING name
)
UPDATE flow_limits l
SET max_running = w.max_running, updated_at = now()
FROM wanted w
WHERE l.scope = 'key' AND l.name = w.name AND l.set_by <> 'operator'
  AND l.max_running IS DISTINCT FROM w.max_running;

-- name: flow_limits_list
-- Every limited scope (or only scope $2 name $3, when given) with its live counts: RUNNING now, ready and
-- waiting, and the tokens refilled by now ($1; NULL = now()), the oldest ready job's age in seconds.
SELECT l.scope, l.name, l.max_running, l.rate_per_second, l.burst, l.weight, l.running, l.set_by,
       CASE WHEN l.rate_per_second IS NOT NULL
            THEN least(l.burst, l.tokens + l.rate_per_second
                       * greatest(0, extract(epoch FROM coalesce($1::timestamptz, now()) - l.tokens_at))) END AS tokens,
       w.ready, w.oldest_ready_seconds
FROM flow_limits l
CROSS JOIN LATERAL (
    -- One branch per scope, each on its own index; the other branch is skipped by its constant filter.
    SELECT count(*) AS ready,
           coalesce(extract(epoch FROM coalesce($1::timestamptz, now()) - min(u.run_at)), 0)::float8
               AS oldest_ready_seconds
    FROM (SELECT j.run_at FROM job_rows j
          WHERE l.scope = 'key' AND j.concurrency_key = l.name
            AND j.status = 'PENDING' AND j.run_at <= coalesce($1::timestamptz, now())
          UNION ALL
          SELECT j.run_at FROM job_rows j
          WHERE l.scope = 'job_type' AND j.job_type = l.name
            AND j.status = 'PENDING' AND j.run_at <= coalesce($1::timestamptz, now())) AS u
) w
WHERE ($2::flow_scope IS NULL OR l.scope = $2::flow_scope) AND ($3::text IS NULL OR l.name = $3::text)
ORDER BY l.scope, l.name;

-- name: flow_holds_of_job
-- The limits holding back ready PENDING job $1: each scope of the job at its cap or out of tokens. $2 now.
SELECT l.scope, l.name, l.max_running, l.running, l.rate_per_second
FROM job_rows j
JOIN flow_limits l ON (l.scope = 'key' AND l.name = j.concurrency_key)
                   OR (l.scope = 'job_type' AND l.name = j.job_type)
WHERE j.id = $1 AND j.status = 'PENDING' AND j.run_at <= coalesce($2::timestamptz, now())
  AND (l.running >= l.max_running
       OR least(l.burst, l.tokens + l.rate_per_second
                * greatest(0, extract(epoch FROM coalesce($2::timestamptz, now()) - l.tokens_at))) < 1)
ORDER BY l.scope, l.name;

-- name: flow_rate_limited
-- Whether any scope has a rate limit (workers then ask flow_rate_wait when a claim comes back short).
SELECT EXISTS (SELECT 1 FROM flow_limits WHERE rate_per_second IS NOT NULL);

-- name: flow_rate_wait
-- Seconds until the first rate limit holding back a ready job of types $1 (empty = any) has a whole token
-- again; NULL when no rate limit holds one back. $2 now.
SELECT min(greatest(0, (1 - t.tokens) / t.rate_per_second))::float8 AS seconds
FROM (SELECT l.scope, l.name, l.rate_per_second,
             least(l.burst, l.tokens + l.rate_per_second
                   * greatest(0, extract(epoch FROM coalesce($2::timestamptz, now()) - l.tokens_at))) AS tokens
      FROM flow_limits l
      WHERE l.rate_per_second IS NOT NULL) AS t
WHERE t.tokens < 1
  AND (t.scope = 'job_type' AND (cardinality($1::text[]) = 0 OR t.name = ANY($1::text[]))
       OR t.scope = 'key' AND EXISTS (SELECT 1 FROM job_rows j
                                      WHERE j.concurrency_key = t.name AND j.status = 'PENDING'
                                        AND j.run_at <= coalesce($2::timestamptz, now())
                                        AND (cardinality($1::text[]) = 0 OR j.job_type = ANY($1::text[]))));

-- name: flow_limits_lock
-- Lock every limit row, in claim order: no claim or finish of their jobs is in flight once this returns.
SELECT scope, name FROM flow_limits ORDER BY scope, name FOR UPDATE;

-- name: flow_limits_recount
-- After flow_limits_lock, in the same transaction (so this statement's snapshot sees every transition
-- committed before the lock): set each scope's RUNNING count to the jobs RUNNING now, where it differs.
-- Returns the scopes mended: a repair means a count drifted (a limit set while its jobs ran).
WITH running AS (
    SELECT concurrency_key, job_type, count(*) AS jobs FROM job_rows WHERE status = 'RUNNING'
    GROUP BY concurrency_key, job_type
), counted AS (
    SELECT l.scope, l.name,
           coalesce((SELECT sum(r.jobs) FROM running r
                     WHERE l.scope = 'key' AND r.concurrency_key = l.name
                        OR l.scope = 'job_type' AND r.job_type = l.name), 0)::integer AS running
    FROM flow_limits l
)
UPDATE flow_limits l
SET running = c.running
FROM counted c
WHERE l.scope = c.scope AND l.name = c.name AND l.running <> c.running
RETURNING l.scope, l.name, c.running;

-- name: flow_limits_prune
-- Remove key limits a pipeline or an API call set before $1 whose key has no PENDING or RUNNING job (both
-- on an index; a key whose only jobs are BLOCKED behind other keys' jobs gets its limit back when its
-- pipeline next creates jobs). Returns how many.
WITH pruned AS (
    DELETE FROM flow_limits l
    WHERE l.scope = 'key' AND l.set_by <> 'operator' AND l.updated_at < $1
      AND NOT EXISTS (SELECT 1 FROM job_rows j
                      WHERE j.concurrency_key = l.name AND j.status = 'PENDING')
      AND NOT EXISTS (SELECT 1 FROM job_rows j
                      WHERE j.concurrency_key = l.name AND j.status = 'RUNNING')
    RETURNING 1
)
SELECT count(*) FROM pruned;

-- Flow control: concurrency keys, fair share across them, and limits on keys and job types, all enforced
-- by the claim statement itself (db/queries/jobs.sql, job_claim).
--
-- Every job carries a concurrency key ('' when none was given: the jobs nobody keyed share one). Among
-- ready jobs of equal priority the claim gives the next slot to the key with the fewest RUNNING jobs per
-- unit of its weight, so a small tenant's job overtakes a big tenant's backlog. A key or a job type may
-- be limited: at most `max_running` RUNNING at once, at most `rate_per_second` starts (token bucket of
-- `burst`). A trigger keeps each limited scope's count of RUNNING jobs, so every way in or out of RUNNING
-- (claim, completion, failure, requeue, cancel, a lapsed lease's rescue, an older release's statements)
-- is counted, and a lost worker's slots come back when its jobs are rescued.

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

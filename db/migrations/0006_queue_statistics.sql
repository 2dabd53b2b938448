-- The planner no longer believes what ANALYZE saw of a job's status.
--
-- A queue's mix of statuses changes by the second: analyzed between bursts, the statistics say almost no
-- job is PENDING or RUNNING, and PostgreSQL keeps the plans it makes from them. With such statistics the
-- fair claim read ready jobs through the priority index and sorted every one of them, several times per
-- claim, so a burst after a quiet spell made each claim slower as the backlog grew and the backlog never
-- drained (tests/db/test_plans.py). Without statistics for the column, PostgreSQL takes a fixed share of
-- the table for each status, and reads ready jobs in the claim's order through the key's index.
ALTER TABLE job_rows ALTER COLUMN status SET STATISTICS 0;

-- ANALYZE leaves the statistics it no longer gathers where they are: changing the column to its own type
-- drops them. The table is not rewritten; the partial indexes on status are rebuilt, once. The view the
-- previous release reads stands on the column, so it is made again as it was (migration 0004).
DROP VIEW jobs;
ALTER TABLE job_rows ALTER COLUMN status TYPE job_status;
CREATE VIEW jobs AS
SELECT id, job_type, payload, status, priority, attempts, attempt_floor, max_retries, timeout_ms, run_at,
       lease_expires_at, worker_id, cancel_requested, pending_parents, result, errors, idempotency_key,
       pipeline, step, object_event_id, source_bucket, source_key, source_version, created_at, started_at,
       finished_at
FROM job_rows;

-- The first claim's index (migration 0001). Every claim reads ready jobs through the key's index since
-- migration 0004, so this one only cost a write per ready job, and lured the planner away from that index.
DROP INDEX jobs_claimable;

-- What a benchmark reads of PostgreSQL's own statistics.

-- name: stats_clear_snapshot
-- The statistics are read once per transaction: drop that snapshot so the next read is fresh.
SELECT pg_stat_clear_snapshot();

-- name: stats_commits
-- Transactions committed in database $1 since the statistics were reset.
SELECT xact_commit FROM pg_stat_database WHERE datname = $1;

-- name: stats_jobs_per_object
-- How many objects have how many jobs (a backfill's exactly-once check).
SELECT jobs, count(*) AS objects FROM (SELECT source_key, count(*) AS jobs FROM job_rows GROUP BY source_key) per
GROUP BY jobs;

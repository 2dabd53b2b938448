-- name: statistics_outgrown
-- The engine's busiest tables that grew past twice the size PostgreSQL last measured (pg_class.relpages,
-- set by ANALYZE and VACUUM; 0 before either ran), and $1 pages more. Plans PostgreSQL caches follow the
-- measure: planned while the job table was a few pages, a completion read the whole table for each batch
-- until autovacuum came by, up to a minute later, while a fresh install's table grew by thousands of jobs.
SELECT c.relname::text AS table_name
FROM pg_class c
WHERE c.relnamespace = current_schema()::regnamespace
  AND c.relname IN ('job_rows', 'job_dependencies', 'state_snapshots', 'object_events', 'uploads')
  AND pg_relation_size(c.oid) / current_setting('block_size')::bigint > 2 * c.relpages::bigint + $1
ORDER BY 1;

-- name: statistics_refresh
-- Measure the engine's busiest tables again: their size and a sample of their rows. PostgreSQL then plans
-- afresh every cached statement that reads them. A table conveyor's role does not own is skipped with a
-- warning, not an error.
ANALYZE job_rows, job_dependencies, state_snapshots, object_events, uploads;

-- Statements about the database itself: health, migrations, schema introspection.

-- name: ping
-- A real round trip: proves the server accepts queries, not just connections.
SELECT 1;

-- name: migration_lock
-- Serialise concurrent `conveyor migrate` runs for the rest of the transaction. $1 = lock key.
SELECT pg_advisory_xact_lock($1);

-- name: migration_table_create
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: migration_applied
-- The migrations already applied, oldest first.
SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version;

-- name: migration_record
-- $1 = version, $2 = name, $3 = sha256 of the file's text.
INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3);

-- name: schema_columns
-- The shape of every table in the public schema, for the migration test.
SELECT table_name, column_name, data_type, is_nullable, column_default
FROM information_schema.columns
WHERE table_schema = 'public'
ORDER BY table_name, column_name;

-- name: schema_statistics_targets
-- Columns whose statistics target is not the default, for the migration test.
SELECT c.relname AS table_name, a.attname AS column_name, a.attstattarget
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped AND a.attstattarget >= 0
ORDER BY 1, 2;

-- name: schema_indexes
SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY tablename, indexname;

-- name: schema_constraints
SELECT conrelid::regclass::text AS table_name, conname, pg_get_constraintdef(oid) AS definition
FROM pg_constraint
WHERE connamespace = 'public'::regnamespace
ORDER BY 1, 2;

-- name: database_create_statement
-- Build (safely quoted) the statement that creates database $1 as a copy of template $2.
SELECT format('CREATE DATABASE %I TEMPLATE %I', $1::text, $2::text);

-- name: database_drop_statement
-- Build the statement that drops database $1, disconnecting its sessions.
SELECT format('DROP DATABASE IF EXISTS %I WITH (FORCE)', $1::text);

-- name: leader_try_lock
-- Try to take the session advisory lock $1 (bigint) without waiting: true when this session now holds it.
-- Advisory locks belong to the current database, so databases on one server elect their leaders apart.
SELECT pg_try_advisory_lock($1);

-- name: leader_unlock
-- Give up the session advisory lock $1; false when this session did not hold it.
SELECT pg_advisory_unlock($1);

-- name: lock_waiters
-- Sessions of this database waiting for a lock right now: an operator's first question when work stalls,
-- and how tests know a statement they started is blocked where they pinned it.
SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock';

-- name: connections_of_database
-- Sessions connected to this database now (the soak watches it stay flat).
SELECT count(*) FROM pg_stat_activity WHERE datname = current_database();

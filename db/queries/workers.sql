-- Workers: registration, liveness, health samples, and the detection of workers that died.

-- name: worker_register
-- $1 id, $2 name, $3 type, $4 capabilities, $5 max concurrent jobs, $6 host, $7 pid, $8 version.
INSERT INTO workers (id, name, worker_type, capabilities, max_concurrent_jobs, host, pid, version)
VALUES ($1, $2, $3, $4::text[], $5, $6, $7, $8)
RETURNING *;

-- name: worker_heartbeat
-- Worker $1 is alive; $2 = its status (ACTIVE or DRAINING). $3, $4 = jobs completed / failed since the
-- last heartbeat. Returns nothing for an unknown worker or one already marked STOPPED or LOST.
UPDATE workers
SET last_heartbeat_at = now(), status = $2, jobs_completed = jobs_completed + $3, jobs_failed = jobs_failed + $4
WHERE id = $1 AND status IN ('ACTIVE', 'DRAINING')
RETURNING id;

-- name: worker_stop
-- Worker $1 exited cleanly.
UPDATE workers SET status = 'STOPPED', stopped_at = now() WHERE id = $1 AND status <> 'STOPPED' RETURNING id;

-- name: worker_mark_lost
-- Workers silent for more than $1 seconds are LOST. Returns their ids, for their jobs to be rescued.
UPDATE workers
SET status = 'LOST', stopped_at = now()
WHERE status IN ('ACTIVE', 'DRAINING') AND last_heartbeat_at < now() - make_interval(secs => $1::float8)
RETURNING id;

-- name: worker_health_log
-- $1 worker, $2 status, $3 jobs in flight, $4 RSS bytes, $5 CPU percent.
INSERT INTO worker_health_logs (worker_id, status, jobs_in_flight, rss_bytes, cpu_percent)
VALUES ($1, $2, $3, $4, $5);

-- name: worker_get
-- Worker $1 with its jobs in flight.
SELECT w.*, (SELECT count(*) FROM job_rows j WHERE j.worker_id = w.id AND j.status = 'RUNNING') AS jobs_in_flight
FROM workers w WHERE w.id = $1;

-- name: worker_list
-- Workers, live ones first, then most recently seen. $1 = include STOPPED and LOST ones.
SELECT w.*, (SELECT count(*) FROM job_rows j WHERE j.worker_id = w.id AND j.status = 'RUNNING') AS jobs_in_flight
FROM workers w
WHERE $1 OR w.status IN ('ACTIVE', 'DRAINING')
ORDER BY (w.status IN ('ACTIVE', 'DRAINING')) DESC, w.last_heartbeat_at DESC
LIMIT 500;

-- name: worker_health_recent
-- The latest $2 health samples of worker $1.
SELECT recorded_at, status, jobs_in_flight, rss_bytes, cpu_percent
FROM worker_health_logs WHERE worker_id = $1 ORDER BY recorded_at DESC LIMIT $2;

-- name: worker_health_prune
-- Delete up to $2 health samples older than $1.
DELETE FROM worker_health_logs
WHERE id IN (SELECT id FROM worker_health_logs WHERE recorded_at < $1 LIMIT $2);

-- name: worker_prune
-- Delete up to $2 workers that stopped (or were lost) before $1.
DELETE FROM workers
WHERE id IN (SELECT id FROM workers WHERE status IN ('STOPPED', 'LOST') AND stopped_at < $1 LIMIT $2);

-- name: worker_liveness
-- Live workers (ACTIVE or DRAINING) and the age in seconds of the stalest heartbeat among them.
SELECT count(*) AS alive,
       coalesce(extract(epoch FROM now() - min(last_heartbeat_at)), 0)::float8 AS oldest_heartbeat_seconds
FROM workers
WHERE status IN ('ACTIVE', 'DRAINING');

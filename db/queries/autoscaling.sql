-- The one query worker autoscaling scales on: the built-in autoscaler (`conveyor worker --autoscale`) runs it
-- by name, and the Helm chart's KEDA PostgreSQL trigger runs the same text (deploy/helm/conveyor/files links to
-- this file). KEDA binds no parameters, so the chart writes the worker group's job types, as an array literal,
-- in place of each `$1::text[]`; a test proves the rendered query is this text and counts the same.

-- name: job_ready_backlog
-- Ready jobs (PENDING and due) of the job types in $1, or of every type when $1 is empty; counted from the
-- partial index of live jobs.
SELECT count(*)::bigint AS ready
FROM job_rows
WHERE status = 'PENDING' AND run_at <= now()
  AND (cardinality($1::text[]) = 0 OR job_type = ANY($1::text[]));

-- name: job_running_count
-- RUNNING jobs of the job types in $1 (every type when empty), from the same partial index: the built-in
-- autoscaler retires a process only when these would fit, with room to spare, in the processes left. KEDA
-- does not read it: the HPA's scale-down stabilization window is what keeps a steady load from flapping there.
SELECT count(*)::bigint AS running
FROM job_rows
WHERE status = 'RUNNING'
  AND (cardinality($1::text[]) = 0 OR job_type = ANY($1::text[]));

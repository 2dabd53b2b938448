-- Uploads: the latest write of each object version conveyor has recorded (see migration 0003).

-- name: upload_record_many
-- Record the uploads of new creation events: $1 a JSON array of (bucket, object_key, version_id, etag,
-- size_bytes, modified_at, event_id, origin, pipelines), at most one per object version; $2 the
-- same-upload tolerance in seconds. An entry that `upload_is_new` says is the recorded upload again (or
-- older) changes nothing. Returns the entries recorded as new uploads: only they start pipelines.
INSERT INTO uploads AS u (bucket, object_key, version_id, etag, size_bytes, modified_at, event_id, origin, pipelines)
SELECT n.bucket, n.object_key, n.version_id, n.etag, n.size_bytes, n.modified_at, n.event_id, n.origin, n.pipelines
FROM jsonb_to_recordset($1::jsonb)
     AS n(bucket text, object_key text, version_id text, etag text, size_bytes bigint, modified_at timestamptz,
          event_id bigint, origin text, pipelines text[])
ON CONFLICT (bucket, object_key, version_id) DO UPDATE
SET etag = excluded.etag, size_bytes = excluded.size_bytes, modified_at = excluded.modified_at,
    event_id = excluded.event_id, origin = excluded.origin, pipelines = excluded.pipelines,
    removed_at = NULL, recorded_at = now()
WHERE upload_is_new(u.etag, u.modified_at, u.removed_at, excluded.etag, excluded.modified_at,
                    make_interval(secs => $2::double precision))
RETURNING u.bucket, u.object_key, u.version_id;

-- name: upload_remove_many
-- Record removals: $1 a JSON array of (bucket, object_key, version_id, removed_at). A removal older than
-- the recorded upload (a late delete of what was since written again) changes nothing; a removal of
-- something never recorded leaves a tombstone, so its late creation event starts nothing.
INSERT INTO uploads AS u (bucket, object_key, version_id, origin, removed_at)
SELECT r.bucket, r.object_key, r.version_id, 'notification', r.removed_at
FROM jsonb_to_recordset($1::jsonb) AS r(bucket text, object_key text, version_id text, removed_at timestamptz)
ON CONFLICT (bucket, object_key, version_id) DO UPDATE
SET removed_at = excluded.removed_at
WHERE (u.modified_at IS NULL OR u.modified_at <= excluded.removed_at)
  AND (u.removed_at IS NULL OR u.removed_at < excluded.removed_at)
RETURNING u.bucket, u.object_key, u.version_id;

-- name: uploads_for_listing
-- What conveyor has recorded of each listed object: $1 the bucket, $2 a JSON array of (i, object_key,
-- version_id, etag, modified_at), $3 the same-upload tolerance in seconds. One row per listed entry (by
-- its index i): whether it is a new upload, the pipelines its recorded upload started, and the recorded
-- event's routing inputs. One statement per listed page, by primary key.
SELECT l.i,
       (u.bucket IS NULL OR upload_is_new(u.etag, u.modified_at, u.removed_at, l.etag, l.modified_at,
                                          make_interval(secs => $3::double precision))) AS is_new,
       coalesce(u.pipelines, '{}') AS pipelines,
       e.event_name, e.content_type, e.user_metadata
FROM jsonb_to_recordset($2::jsonb)
     AS l(i integer, object_key text, version_id text, etag text, modified_at timestamptz)
LEFT JOIN uploads u ON u.bucket = $1 AND u.object_key = l.object_key AND u.version_id = l.version_id
LEFT JOIN object_events e ON e.id = u.event_id
ORDER BY l.i;

-- name: upload_add_pipelines
-- A backfill starts more pipelines for recorded uploads: $1 the bucket, $2 a JSON array of (object_key,
-- version_id, pipelines). Each row is locked and gains the pipelines it lacks; returns, per upload
-- changed, the pipelines added (a concurrent backfill that added them first leaves nothing to add).
WITH wanted AS (
    SELECT * FROM jsonb_to_recordset($2::jsonb) AS w(object_key text, version_id text, pipelines text[])
), current AS (
    SELECT u.object_key, u.version_id, u.pipelines, u.event_id
    FROM uploads u JOIN wanted w USING (object_key, version_id)
    WHERE u.bucket = $1
    FOR UPDATE OF u
), added AS (
    SELECT c.object_key, c.version_id, c.event_id,
           ARRAY(SELECT p FROM unnest(w.pipelines) p WHERE p <> ALL (c.pipelines)) AS pipelines
    FROM current c JOIN wanted w USING (object_key, version_id)
)
UPDATE uploads u
SET pipelines = u.pipelines || a.pipelines
FROM added a
WHERE u.bucket = $1 AND u.object_key = a.object_key AND u.version_id = a.version_id
  AND cardinality(a.pipelines) > 0
RETURNING u.object_key, u.version_id, u.event_id, a.pipelines AS added;

-- name: upload_get
-- The recorded upload of object version ($1 bucket, $2 key, $3 version id), if any.
SELECT * FROM uploads WHERE bucket = $1 AND object_key = $2 AND version_id = $3;

-- name: uploads_prune_removed
-- Delete up to $2 tombstones of objects removed before $1 (older than any notification Kafka can still
-- redeliver: the same bound as the recorded events').
DELETE FROM uploads
WHERE (bucket, object_key, version_id) IN (
    SELECT bucket, object_key, version_id FROM uploads WHERE removed_at < $1::timestamptz LIMIT $2
);

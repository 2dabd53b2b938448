-- Object events (upload notifications) and the dead letters of the ingestor.

-- name: object_event_insert_many
-- Record events given as one JSON array of objects; an event whose identity (bucket, key, version, event
-- name, sequencer) is already known is skipped. Returns the identity and id of each event that is new.
-- $1 events (bucket, object_key, version_id, event_name, sequencer, etag, size_bytes, content_type,
-- user_metadata, event_time, source_partition, source_offset, origin, modified_at), $2 the topic they
-- were read from (NULL for a sweep's or a backfill's).
INSERT INTO object_events (bucket, object_key, version_id, event_name, sequencer, etag, size_bytes, content_type,
                           user_metadata, event_time, source_topic, source_partition, source_offset, origin,
                           modified_at)
SELECT u.bucket, u.object_key, u.version_id, u.event_name, u.sequencer, u.etag, u.size_bytes, u.content_type,
       coalesce(u.user_metadata, '{}'), u.event_time, CASE WHEN u.source_offset IS NOT NULL THEN $2::text END,
       u.source_partition, u.source_offset, u.origin, u.modified_at
FROM jsonb_to_recordset($1::jsonb)
     AS u(bucket text, object_key text, version_id text, event_name text, sequencer text, etag text,
          size_bytes bigint, content_type text, user_metadata jsonb, event_time timestamptz,
          source_partition integer, source_offset bigint, origin text, modified_at timestamptz)
ON CONFLICT ON CONSTRAINT object_events_identity DO NOTHING
RETURNING id, bucket, object_key, version_id, event_name, sequencer;

-- name: object_events_for_key
-- Every recorded event of object $2 in bucket $1, oldest first.
SELECT * FROM object_events WHERE bucket = $1 AND object_key = $2 ORDER BY id LIMIT 1000;

-- name: dead_letter_insert_many
-- Keep messages that could not become jobs; a redelivered offset is recorded once. Parallel arrays:
-- $1 reasons, $2 errors, $3 topics, $4 partitions, $5 offsets, $6 keys, $7 values. Returns the new ones' ids
-- with their source (to match each to the headers it came with).
INSERT INTO dead_letters (reason, error, source_topic, source_partition, source_offset, message_key, message_value)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[], $5::bigint[], $6::bytea[], $7::bytea[])
ON CONFLICT ON CONSTRAINT dead_letters_source DO NOTHING
RETURNING id, source_topic, source_partition, source_offset;

-- name: dead_letter_headers_insert
-- The Kafka headers of new dead letters: $1 a JSON array of (letter_id, headers: [name, value] pairs).
INSERT INTO dead_letter_headers (letter_id, headers)
SELECT h.letter_id, h.headers FROM jsonb_to_recordset($1::jsonb) AS h(letter_id bigint, headers jsonb);

-- name: dead_letter_headers_of
-- The kept headers of dead letters $1 (those that arrived with none have no row).
SELECT letter_id, headers FROM dead_letter_headers WHERE letter_id = ANY($1::bigint[]);

-- name: dead_letter_list
-- Newest first. $1 = include replayed ones, $2 = ids below this one (keyset), $3 = limit.
SELECT * FROM dead_letters
WHERE ($1 OR replayed_at IS NULL) AND ($2::bigint IS NULL OR id < $2)
ORDER BY id DESC
LIMIT $3;

-- name: dead_letter_lock
-- Dead letter $1, locked for a replay.
SELECT * FROM dead_letters WHERE id = $1 FOR UPDATE;

-- name: dead_letter_replayed
-- Record a replay of dead letter $1: done when $2 (the error) is NULL, else still open with that error.
UPDATE dead_letters
SET replay_count = replay_count + 1,
    replayed_at = CASE WHEN $2::text IS NULL THEN now() END,
    last_replay_error = $2::text
WHERE id = $1
RETURNING *;

-- name: object_event_job_counts
-- Every recorded event with the number of jobs it started (exactly-once checks, lineage summaries).
SELECT e.id, e.bucket, e.object_key, e.sequencer, e.event_name, count(j.id) AS jobs
FROM object_events e LEFT JOIN job_rows j ON j.object_event_id = e.id
GROUP BY e.id
ORDER BY e.id;

-- name: dead_letter_open_count
-- Dead letters not replayed yet, from the small partial index.
SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL;

-- name: object_events_prune
-- Delete up to $2 recorded events received before $1 that no job refers to any more (their jobs were
-- pruned). Only ever older than the events topic's retention (ingest refuses settings that would not be),
-- so no offset Kafka can still redeliver has lost the row that makes it a duplicate.
DELETE FROM object_events
WHERE id IN (
    SELECT e.id
    FROM object_events e
    WHERE e.received_at < $1::timestamptz
      AND NOT EXISTS (SELECT 1 FROM job_rows j WHERE j.object_event_id = e.id)
    LIMIT $2
    FOR UPDATE SKIP LOCKED
);

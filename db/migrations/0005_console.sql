-- The operator's console (`/ui`) pages through millions of jobs by status or by bucket in id order (id
-- order is creation order), and searches a bucket's objects by key prefix. Each of those reads one index
-- in the order it shows, instead of sorting every matching row.
CREATE INDEX job_rows_status_id ON job_rows (status, id);
CREATE INDEX job_rows_bucket_id ON job_rows (source_bucket, id);
-- Byte order ("C"), whatever the database's collation: a key prefix is then one contiguous range.
CREATE INDEX uploads_key_order ON uploads (bucket, (object_key COLLATE "C"), version_id);

-- The Kafka headers a dead letter arrived with, as [name, value] pairs (a value's bytes that are not UTF-8
-- are kept as \xNN escapes). A table of its own, not a column: the previous release reads every column of
-- dead_letters into a record that knows only its own, and would stop at a new one mid rolling upgrade.
CREATE TABLE dead_letter_headers (
    letter_id bigint PRIMARY KEY REFERENCES dead_letters (id) ON DELETE CASCADE,
    headers   jsonb  NOT NULL
);

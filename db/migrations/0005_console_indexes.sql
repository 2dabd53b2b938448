-- The operator's console (`/ui`) pages through millions of jobs by status or by bucket in id order (id
-- order is creation order), and searches a bucket's objects by key prefix. Each of those reads one index
-- in the order it shows, instead of sorting every matching row.
CREATE INDEX job_rows_status_id ON job_rows (status, id);
CREATE INDEX job_rows_bucket_id ON job_rows (source_bucket, id);
-- Byte order ("C"), whatever the database's collation: a key prefix is then one contiguous range.
CREATE INDEX uploads_key_order ON uploads (bucket, (object_key COLLATE "C"), version_id);

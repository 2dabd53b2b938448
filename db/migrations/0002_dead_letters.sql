-- Messages the ingestor could not turn into jobs, kept with their original bytes and the reason, so
-- `conveyor dlq replay` can send them through routing again after a fix.

CREATE TABLE dead_letters (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reason           text        NOT NULL,
    error            text        NOT NULL,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    message_key      bytea,
    message_value    bytea       NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    replayed_at      timestamptz,
    replay_count     integer     NOT NULL DEFAULT 0,
    last_replay_error text,
    CONSTRAINT dead_letters_source UNIQUE (source_topic, source_partition, source_offset)
);
CREATE INDEX dead_letters_open ON dead_letters (created_at) WHERE replayed_at IS NULL;

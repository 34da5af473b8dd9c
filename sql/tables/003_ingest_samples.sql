-- One row per input row of an ingest, failures included.
CREATE TABLE ingest_samples (
    run_id             VARCHAR NOT NULL,
    dataset_uri        VARCHAR NOT NULL,
    shard_id           INTEGER NOT NULL,
    key                VARCHAR NOT NULL,
    url                VARCHAR,
    domain             VARCHAR,
    caption            VARCHAR,
    status             VARCHAR NOT NULL,   -- success | failed_to_download | failed_to_resize
    error_message      VARCHAR,
    width              INTEGER,
    height             INTEGER,
    original_width     INTEGER,
    original_height    INTEGER,
    sha256             VARCHAR,
    duplicate          BOOLEAN,           -- same sha256 as an earlier key of the shard
    written_at         TIMESTAMPTZ NOT NULL
);

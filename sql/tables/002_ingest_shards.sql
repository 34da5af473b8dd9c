-- One row per committed ingest shard.
CREATE TABLE ingest_shards (
    run_id          VARCHAR NOT NULL,
    dataset_uri     VARCHAR NOT NULL,
    shard_id        INTEGER NOT NULL,
    num_samples     INTEGER NOT NULL,   -- input rows in the shard
    num_success     INTEGER NOT NULL,
    num_failed      INTEGER NOT NULL,
    num_duplicates  INTEGER NOT NULL,   -- successes whose sha256 was already seen in the shard
    bytes_written   BIGINT,
    duration_s      DOUBLE,
    written_at      TIMESTAMPTZ NOT NULL,
    node            VARCHAR             -- where the shard was crawled: '<ip>/<Ray node id>' (host name outside Ray)
);

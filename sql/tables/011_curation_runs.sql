-- One row per curation run: what went in, what was kept, and the digest of the kept samples (keys, image sha256,
-- captions in key order: the same input and filters give the same digest).
CREATE TABLE curation_runs (
    run_id       VARCHAR NOT NULL,
    data         VARCHAR NOT NULL,    -- the input shards as given
    output_uri   VARCHAR NOT NULL,    -- the curated shards, sizes.json, kept_keys.parquet, scores.parquet
    scorer       VARCHAR,             -- the CLIP checkpoint scores came from (NULL: no model)
    total        BIGINT NOT NULL,     -- readable input samples
    kept         BIGINT NOT NULL,
    num_shards   INTEGER NOT NULL,    -- curated shards written
    digest       VARCHAR NOT NULL,
    time         TIMESTAMPTZ NOT NULL
);

-- One row per checkpoint written.
CREATE TABLE checkpoints (
    run_id        VARCHAR NOT NULL,
    step          BIGINT NOT NULL,
    samples_seen  BIGINT,
    uri           VARCHAR NOT NULL,
    model         VARCHAR,
    time          TIMESTAMPTZ NOT NULL
);

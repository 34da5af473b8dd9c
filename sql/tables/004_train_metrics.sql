-- Training (and validation) scalars, one row per (run, step, name).
CREATE TABLE train_metrics (
    run_id   VARCHAR NOT NULL,
    step     BIGINT NOT NULL,
    name     VARCHAR NOT NULL,    -- e.g. loss, lr, logit_scale, samples_per_s, skipped_samples
    value    DOUBLE,
    time     TIMESTAMPTZ NOT NULL
);

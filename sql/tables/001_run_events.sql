-- One row each time a run changes state (started, completed, failed).
-- The view `runs` (views/010_runs.sql) keeps the latest row per run.
CREATE TABLE run_events (
    run_id        VARCHAR NOT NULL,   -- clipline's run id (also the Prefect flow run id when there is one)
    flow          VARCHAR NOT NULL,   -- flow name, e.g. ingest_images
    config        VARCHAR,            -- the resolved config, as JSON
    status        VARCHAR NOT NULL,   -- running | completed | failed
    started_at    TIMESTAMPTZ,
    ended_at      TIMESTAMPTZ,
    code_version  VARCHAR,            -- git commit (or package version outside a checkout)
    host          VARCHAR,
    error         VARCHAR,            -- one-line error for failed runs
    event_time    TIMESTAMPTZ NOT NULL
);

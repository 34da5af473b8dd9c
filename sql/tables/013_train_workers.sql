-- One row per training worker per attempt: a run restarted after a lost worker (or resized, elastic) adds a row
-- for each worker of the new attempt, saying where it ran and from which step it went on.
CREATE TABLE train_workers (
    run_id      VARCHAR NOT NULL,
    rank        INTEGER NOT NULL,
    world_size  INTEGER NOT NULL,    -- workers in this attempt (fewer than --workers after a loss, elastic)
    accum_freq  INTEGER NOT NULL,    -- micro-batches per step in this attempt
    from_step   BIGINT NOT NULL,     -- the step the attempt started from (0, or its checkpoint's)
    node        VARCHAR,             -- '<ip>/<Ray node id>' of the worker (host name outside Ray)
    started_at  TIMESTAMPTZ NOT NULL
);

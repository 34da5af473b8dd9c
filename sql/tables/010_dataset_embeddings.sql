-- One row per dataset embedded for a dataset-distance run: how many points, and where they were computed.
CREATE TABLE dataset_embeddings (
    run_id      VARCHAR NOT NULL,
    dataset     VARCHAR NOT NULL,
    space       VARCHAR NOT NULL,    -- clip_image
    num_points  INTEGER NOT NULL,
    dim         INTEGER NOT NULL,
    node        VARCHAR,             -- '<ip>/<Ray node id>' of the task (host name outside Ray)
    time        TIMESTAMPTZ NOT NULL
);

-- Wasserstein-1 (or other) distances between two datasets in one embedding space.
CREATE TABLE dataset_distances (
    run_id       VARCHAR NOT NULL,
    dataset_a    VARCHAR NOT NULL,
    dataset_b    VARCHAR NOT NULL,
    space        VARCHAR NOT NULL,    -- clip_image | fasttext_text
    method       VARCHAR NOT NULL,    -- exact | sliced | sinkhorn
    value        DOUBLE NOT NULL,
    ci_low       DOUBLE,
    ci_high      DOUBLE,
    num_samples  INTEGER,
    time         TIMESTAMPTZ NOT NULL
);

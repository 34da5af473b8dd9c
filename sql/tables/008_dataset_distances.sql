-- Wasserstein-1 distances between two datasets in one embedding space (dataset_a = dataset_b: the split-half
-- self distance, the floor a pair is read against; excess = value - (self_a + self_b) / 2).
CREATE TABLE dataset_distances (
    run_id       VARCHAR NOT NULL,
    dataset_a    VARCHAR NOT NULL,
    dataset_b    VARCHAR NOT NULL,
    space        VARCHAR NOT NULL,    -- clip_image | fasttext_text
    method       VARCHAR NOT NULL,    -- exact | sliced | sinkhorn
    value        DOUBLE NOT NULL,
    ci_low       DOUBLE,
    ci_high      DOUBLE,
    num_samples  INTEGER,             -- n points per dataset, the same for every pair of a run and space
    self_a       DOUBLE,
    self_b       DOUBLE,
    excess       DOUBLE,
    not_optimal  BOOLEAN,             -- the exact solver stopped at its iteration limit (value is an upper bound)
    reg          DOUBLE,              -- sinkhorn: the entropic regularisation used
    time         TIMESTAMPTZ NOT NULL
);

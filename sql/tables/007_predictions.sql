-- Per-sample predictions of an evaluation, so failures can be inspected; captioning (task 'captioning') fills
-- caption and references instead of the label columns. Files written before those two columns read them as NULL.
CREATE TABLE predictions (
    run_id           VARCHAR NOT NULL,
    checkpoint       VARCHAR NOT NULL,
    dataset          VARCHAR NOT NULL,
    task             VARCHAR NOT NULL,
    strategy         VARCHAR,
    key              VARCHAR NOT NULL,
    true_label       VARCHAR,
    predicted_label  VARCHAR,
    correct          BOOLEAN,
    top5_labels      VARCHAR[],
    top5_scores      DOUBLE[],
    caption          VARCHAR,         -- captioning: the generated caption
    "references"     VARCHAR[]        -- captioning: the sample's reference captions (quoted: a DuckDB keyword)
);

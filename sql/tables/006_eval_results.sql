-- One row per metric of an evaluation of (checkpoint, dataset, task, strategy).
CREATE TABLE eval_results (
    run_id      VARCHAR NOT NULL,
    checkpoint  VARCHAR NOT NULL,
    dataset     VARCHAR NOT NULL,
    task        VARCHAR NOT NULL,    -- zeroshot | retrieval | linear-probe | video-retrieval | captioning
    strategy    VARCHAR,             -- zero-shot prompt strategy (single | ensemble | vote); captioning: decoding method
    metric      VARCHAR NOT NULL,    -- acc1, acc5, mean_per_class_recall, image_retrieval_recall@5, ...
    value       DOUBLE,
    time        TIMESTAMPTZ NOT NULL,
    node        VARCHAR              -- where the (checkpoint, dataset) pair was evaluated: '<ip>/<Ray node id>'
);

-- Latest evaluation of each (checkpoint, dataset, task, strategy), best first within each dataset and task.
WITH latest AS (
    SELECT *
    FROM eval_results
    QUALIFY row_number() OVER (
        PARTITION BY checkpoint, dataset, task, strategy, metric ORDER BY time DESC) = 1
)
SELECT
    dataset,
    task,
    strategy,
    checkpoint,
    max(value) FILTER (WHERE metric = 'acc1') AS acc1,
    max(value) FILTER (WHERE metric = 'acc5') AS acc5,
    max(value) FILTER (WHERE metric = 'mean_per_class_recall') AS mean_per_class_recall,
    max(value) FILTER (WHERE metric = 'image_retrieval_recall@1') AS image_r1,
    max(value) FILTER (WHERE metric = 'image_retrieval_recall@5') AS image_r5,
    max(value) FILTER (WHERE metric = 'text_retrieval_recall@1') AS text_r1,
    max(value) FILTER (WHERE metric = 'text_retrieval_recall@5') AS text_r5,
    max(value) FILTER (WHERE metric = 'bleu_4') AS bleu_4,
    max(value) FILTER (WHERE metric = 'meteor') AS meteor,
    max(value) FILTER (WHERE metric = 'rouge_l') AS rouge_l,
    max(value) FILTER (WHERE metric = 'cider') AS cider,
    max(value) FILTER (WHERE metric = 'num_samples')::BIGINT AS samples,
    max(time) AS evaluated_at,
    arg_max(run_id, time) AS run_id
FROM latest
GROUP BY dataset, task, strategy, checkpoint
ORDER BY dataset, task, strategy NULLS FIRST, coalesce(acc1, image_r1, cider) DESC NULLS LAST, checkpoint;

-- Samples most confidently wrong in the latest runs: true label outside the top 5 first, then by top score.
WITH latest AS (
    SELECT checkpoint, dataset, task, strategy, arg_max(run_id, time) AS run_id
    FROM eval_results
    GROUP BY ALL
)
SELECT
    p.dataset,
    p.task,
    p.strategy,
    p.checkpoint,
    p.key,
    p.true_label,
    p.predicted_label,
    p.top5_scores[1] AS top_score,
    list_position(p.top5_labels, p.true_label) AS true_rank_in_top5,
    count(*) OVER (PARTITION BY p.dataset, p.key) AS evaluations_wrong
FROM predictions AS p
JOIN latest AS l
    ON p.run_id = l.run_id AND p.checkpoint = l.checkpoint AND p.dataset = l.dataset AND p.task = l.task
    AND p.strategy IS NOT DISTINCT FROM l.strategy
WHERE NOT p.correct
ORDER BY true_rank_in_top5 IS NOT NULL, evaluations_wrong DESC, top_score DESC, p.dataset, p.key
LIMIT 50;

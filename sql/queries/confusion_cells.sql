-- Every (true, predicted) cell, diagonal included, of the latest classification run of each evaluation.
WITH latest AS (
    SELECT checkpoint, dataset, task, strategy, arg_max(run_id, time) AS run_id, max(time) AS evaluated_at
    FROM eval_results
    WHERE task IN ('zeroshot', 'linear-probe')
    GROUP BY ALL
)
SELECT p.dataset, p.task, p.strategy, p.checkpoint, p.true_label, p.predicted_label, count(*) AS samples,
       any_value(l.evaluated_at) AS evaluated_at
FROM predictions AS p
JOIN latest AS l
    ON p.run_id = l.run_id AND p.checkpoint = l.checkpoint AND p.dataset = l.dataset AND p.task = l.task
    AND p.strategy IS NOT DISTINCT FROM l.strategy
GROUP BY p.dataset, p.task, p.strategy, p.checkpoint, p.true_label, p.predicted_label
ORDER BY evaluated_at DESC, p.dataset, p.task, p.strategy NULLS FIRST, p.checkpoint, p.true_label, p.predicted_label;

-- Accuracy per true class in the latest classification run of each (checkpoint, dataset, task, strategy), worst first.
WITH latest AS (
    SELECT checkpoint, dataset, task, strategy, arg_max(run_id, time) AS run_id
    FROM eval_results
    WHERE task IN ('zeroshot', 'linear-probe')
    GROUP BY ALL
)
SELECT
    p.dataset,
    p.task,
    p.strategy,
    p.checkpoint,
    p.true_label,
    count(*) AS samples,
    count(*) FILTER (WHERE p.correct) AS correct,
    round(count(*) FILTER (WHERE p.correct) / count(*), 4) AS accuracy
FROM predictions AS p
JOIN latest AS l
    ON p.run_id = l.run_id AND p.checkpoint = l.checkpoint AND p.dataset = l.dataset AND p.task = l.task
    AND p.strategy IS NOT DISTINCT FROM l.strategy
GROUP BY ALL
ORDER BY p.dataset, p.task, p.strategy NULLS FIRST, p.checkpoint, accuracy, p.true_label;

-- Most frequent (true, predicted) mistakes in the latest classification run of each evaluation.
WITH latest AS (
    SELECT checkpoint, dataset, task, strategy, arg_max(run_id, time) AS run_id
    FROM eval_results
    WHERE task IN ('zeroshot', 'linear-probe')
    GROUP BY ALL
),
cells AS (
    SELECT p.dataset, p.task, p.strategy, p.checkpoint, p.true_label, p.predicted_label, count(*) AS samples
    FROM predictions AS p
    JOIN latest AS l
        ON p.run_id = l.run_id AND p.checkpoint = l.checkpoint AND p.dataset = l.dataset AND p.task = l.task
        AND p.strategy IS NOT DISTINCT FROM l.strategy
    GROUP BY ALL
),
shares AS (
    SELECT *, round(samples / sum(samples) OVER (
        PARTITION BY dataset, task, strategy, checkpoint, true_label), 4) AS share_of_class
    FROM cells
)
SELECT *
FROM shares
WHERE true_label <> predicted_label
ORDER BY samples DESC, dataset, task, strategy NULLS FIRST, checkpoint, true_label, predicted_label
LIMIT 100;

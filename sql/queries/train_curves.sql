-- Loss, learning rate and logit scale of every training run by step, newest run first (the report's curves).
WITH curves AS (
    SELECT run_id, name, step, avg(value) AS value, max(time) AS time
    FROM train_metrics
    WHERE name IN ('loss', 'lr', 'logit_scale')
    GROUP BY ALL
)
SELECT run_id, name, step, value, max(time) OVER (PARTITION BY run_id) AS run_last_time
FROM curves
ORDER BY run_last_time DESC, run_id, name, step;

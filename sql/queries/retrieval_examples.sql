-- Image-to-text retrieval in the latest run of each (checkpoint, dataset): per image its own caption and the
-- five best captions, misses first, up to 8 images per evaluation.
WITH latest AS (
    SELECT checkpoint, dataset, arg_max(run_id, time) AS run_id
    FROM eval_results
    WHERE task = 'retrieval'
    GROUP BY ALL
)
SELECT p.dataset, p.checkpoint, p.key, p.true_label AS caption, p.correct, p.top5_labels, p.top5_scores
FROM predictions AS p
JOIN latest AS l ON p.run_id = l.run_id AND p.checkpoint = l.checkpoint AND p.dataset = l.dataset
WHERE p.task = 'retrieval'
QUALIFY row_number() OVER (PARTITION BY p.dataset, p.checkpoint ORDER BY p.correct, p.key) <= 8
ORDER BY p.dataset, p.checkpoint, p.correct, p.key;

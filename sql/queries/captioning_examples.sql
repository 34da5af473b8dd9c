-- Captioning in the latest run of each (checkpoint, dataset, decoding method): per image the generated caption and
-- its references, up to 8 images per evaluation.
WITH latest AS (
    SELECT checkpoint, dataset, strategy, arg_max(run_id, time) AS run_id
    FROM eval_results
    WHERE task = 'captioning'
    GROUP BY ALL
)
SELECT p.dataset, p.checkpoint, p.strategy, p.key, p.caption, p."references"
FROM predictions AS p
JOIN latest AS l ON p.run_id = l.run_id AND p.checkpoint = l.checkpoint AND p.dataset = l.dataset
    AND p.strategy IS NOT DISTINCT FROM l.strategy
WHERE p.task = 'captioning'
QUALIFY row_number() OVER (PARTITION BY p.dataset, p.checkpoint, p.strategy ORDER BY p.key) <= 8
ORDER BY p.dataset, p.checkpoint, p.strategy, p.key;

-- The ten most frequent caption words of each dataset in the latest distance run, side by side.
WITH latest AS (
    SELECT arg_max(run_id, time) AS run_id FROM dataset_words
)
SELECT
    rank,
    dataset,
    word,
    count,
    round(share, 4) AS share
FROM dataset_words
WHERE run_id = (SELECT run_id FROM latest) AND rank <= 10
ORDER BY dataset, rank;

-- Every dataset pair of the latest distance run, per embedding space: raw W1, the two split-half self
-- baselines at the same n, and the excess over them (near 0: as close as two halves of one dataset).
WITH latest AS (
    SELECT arg_max(run_id, time) AS run_id FROM dataset_distances
)
SELECT
    space,
    dataset_a,
    dataset_b,
    method,
    num_samples AS n,
    round(value, 4) AS w1,
    round(ci_low, 4) AS ci_low,
    round(ci_high, 4) AS ci_high,
    round(self_a, 4) AS self_a,
    round(self_b, 4) AS self_b,
    round(excess, 4) AS excess,
    not_optimal,
    run_id
FROM dataset_distances
WHERE run_id = (SELECT run_id FROM latest)
ORDER BY space, dataset_a = dataset_b DESC, excess DESC, dataset_a, dataset_b;

-- The latest curation run's funnel: input samples, then each filter with what it removes alone, beyond the
-- others, and the samples left after it; the last row is what was kept, with the digest.
WITH latest AS (
    SELECT arg_max(run_id, time) AS run_id FROM curation_runs
),
run AS (
    SELECT * FROM curation_runs WHERE run_id = (SELECT run_id FROM latest)
)
SELECT 0 AS position, 'input' AS step, NULL AS rule, NULL AS removed_alone, NULL AS removed_beyond_others,
       total AS remaining, NULL AS digest, run_id
FROM run
UNION ALL
SELECT position, filter, rule, removed_alone, removed_beyond_others, remaining_after, NULL, run_id
FROM curation_filters
WHERE run_id = (SELECT run_id FROM latest)
UNION ALL
SELECT 1000, 'kept', NULL, NULL, total - kept, kept, digest, run_id
FROM run
ORDER BY position;

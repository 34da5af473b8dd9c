-- The latest curation run: its input, output folder, scorer, counts and digest.
SELECT run_id, data, output_uri, scorer, total, kept, num_shards, digest, time
FROM curation_runs
ORDER BY time DESC
LIMIT 1;

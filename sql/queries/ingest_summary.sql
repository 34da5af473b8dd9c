-- Per dataset: shards, samples and the share that succeeded (the latest write of each shard).
WITH shards AS (
    SELECT *
    FROM ingest_shards
    QUALIFY row_number() OVER (PARTITION BY dataset_uri, shard_id ORDER BY written_at DESC) = 1
)
SELECT
    dataset_uri,
    count(*) AS shards,
    sum(num_samples) AS samples,
    sum(num_success) AS successes,
    sum(num_failed) AS failed,
    sum(num_duplicates) AS duplicates,
    round(100.0 * sum(num_success) / nullif(sum(num_samples), 0), 1) AS success_pct,
    max(written_at) AS last_written_at
FROM shards
GROUP BY dataset_uri
ORDER BY dataset_uri;

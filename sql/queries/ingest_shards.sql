-- Per-shard outcome of the latest write of each shard.
SELECT dataset_uri, shard_id, num_samples, num_success, num_failed, num_duplicates,
       round(bytes_written / 1e6, 1) AS mb, round(duration_s, 1) AS seconds, run_id, written_at
FROM ingest_shards
QUALIFY row_number() OVER (PARTITION BY dataset_uri, shard_id ORDER BY written_at DESC) = 1
ORDER BY dataset_uri, shard_id;

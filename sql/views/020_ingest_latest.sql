-- The latest status of every input row of every dataset: the rows of each shard's latest write (a rerun or
-- --retry-failed rewrites every row of a shard, carrying committed successes over, so the latest write is
-- whole). Found as a semi join on each shard's newest written_at (an aggregate to one row per shard) rather
-- than a window over every row: at 10 million rows the window took 7 s for top_errors, this 1.8 s.
CREATE VIEW ingest_latest AS
WITH latest AS (
    SELECT dataset_uri, shard_id, max(written_at) AS written_at
    FROM ingest_samples
    GROUP BY ALL
)
SELECT s.*
FROM ingest_samples AS s
SEMI JOIN latest USING (dataset_uri, shard_id, written_at);

-- The latest status of every input row of every dataset (a rerun or --retry-failed replaces older rows).
-- Every write of a shard records all of its rows, so the latest rows are those of each shard's latest
-- write: a small aggregate and a join, rather than a sort of every row ever written.
CREATE VIEW ingest_latest AS
SELECT s.*
FROM ingest_samples AS s
JOIN (
    SELECT dataset_uri, shard_id, max(written_at) AS written_at
    FROM ingest_samples
    GROUP BY dataset_uri, shard_id
) AS latest USING (dataset_uri, shard_id, written_at);

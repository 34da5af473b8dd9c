-- The latest status of every input row of every dataset (a rerun or --retry-failed replaces older rows).
CREATE VIEW ingest_latest AS
SELECT *
FROM ingest_samples
QUALIFY row_number() OVER (PARTITION BY dataset_uri, key ORDER BY written_at DESC) = 1;

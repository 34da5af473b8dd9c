-- The most frequent ingest errors, with an example URL for each.
SELECT
    dataset_uri,
    status,
    error_message,
    count(*) AS samples,
    any_value(url) AS example_url
FROM ingest_latest
WHERE status <> 'success'
GROUP BY ALL
ORDER BY samples DESC, error_message
LIMIT 20;
